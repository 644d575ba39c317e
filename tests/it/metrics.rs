//! Prometheus metrics: the server's `/metrics` and the daemon's (on its
//! `--health-address`) move with real terraform builds, and what they print
//! is well-formed text exposition (a parser here; `promtool check metrics`
//! too where the Debian package `prometheus` is installed).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::daemons::DaemonProcess;
use crate::harness::*;

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch what Prometheus would
/// refuse: every sample's family has `# HELP` and `# TYPE` before it,
/// labels are `name="value"` pairs, values are numbers, the output ends
/// with `# EOF` or a newline.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed = std::collections::HashSet::new();
    let mut helped = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap_or_default().to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default().to_owned();
            let kind = parts.next().unwrap_or_default();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped", "info", "unknown"]
                    .contains(&kind),
                "bad type line {line:?}"
            );
            typed.insert(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels {line:?}"));
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) =
                        pair.split_once("=\"").unwrap_or_else(|| panic!("bad label {line:?}"));
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        assert!(name.starts_with("provisionerd_"), "unprefixed metric {name}");
        let family = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(&name)
            .to_owned();
        assert!(typed.contains(&family), "{name} has no # TYPE line");
        assert!(helped.contains(&family), "{name} has no # HELP line");
        samples.push(Sample { name, labels, value });
    }
    samples
}

/// The sum of the samples named `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

async fn scrape(url: &str) -> (String, Vec<Sample>) {
    let resp = reqwest::get(url).await.expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().expect("content type").to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct}");
    let text = resp.text().await.expect("body");
    let samples = parse(&text);
    (text, samples)
}

/// Runs `promtool check metrics` on `text` when promtool is installed.
fn promtool(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed (Debian package `prometheus`): its check is skipped");
        return;
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_move_with_real_builds() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let url = format!("{}/metrics", server.url);
    let (_, before) = scrape(&url).await;
    let import = [("job_type", "template_version_import"), ("provisioner", "terraform")];
    let build = [("job_type", "workspace_build"), ("result", "succeeded")];

    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let done = wait_build(&c, ws.latest_build.id, Duration::from_secs(120)).await;
    assert_eq!(done.job.status, "succeeded");
    let (text, after) = scrape(&url).await;
    promtool(&text);

    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    // Other tests in this binary share the process's registry: counters
    // grow by at least what this test did.
    assert!(grew("provisionerd_jobs_completed_total", &import) >= 1.0, "{text}");
    assert!(grew("provisionerd_jobs_completed_total", &build) >= 1.0, "{text}");
    let start = [("job_type", "workspace_build"), ("transition", "start")];
    assert!(grew("provisionerd_job_duration_seconds_count", &start) >= 1.0, "{text}");
    assert!(grew("provisionerd_job_queue_seconds_count", &start) >= 1.0, "{text}");
    for command in ["init", "plan", "apply", "show", "graph"] {
        let n =
            grew("provisionerd_terraform_command_duration_seconds_count", &[("command", command)]);
        assert!(n >= 1.0, "terraform {command} was not timed: {text}");
    }
    assert!(grew("provisionerd_log_lines_stored_total", &[]) >= 1.0, "{text}");
    assert!(grew("provisionerd_log_stored_bytes_total", &[]) >= 1.0, "{text}");
    assert!(value(&after, "provisionerd_daemons_connected", &[]) >= 1.0, "{text}");
    // Routes are patterns, never raw ids.
    let route = [("method", "GET"), ("route", "/api/v2/workspacebuilds/{id}"), ("status", "200")];
    assert!(grew("provisionerd_http_requests_total", &route) >= 1.0, "{text}");
    assert!(!text.contains(&ws.latest_build.id.to_string()), "a raw id became a label: {text}");
    let dur = [("method", "GET"), ("route", "/api/v2/workspacebuilds/{id}")];
    assert!(grew("provisionerd_http_request_duration_seconds_count", &dur) >= 1.0, "{text}");

    // Unknown paths share one series.
    let _ = reqwest::get(format!("{}/no/such/{}", server.url, uuid::Uuid::new_v4())).await;
    let (text, _) = scrape(&url).await;
    assert!(text.contains(r#"route="other",status="404""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_jobs_no_daemon_can_take_are_counted() {
    let server = TestServer::start(Opts { builtin_daemons: 0, ..Opts::default() }).await;
    let c = server.client().await;
    let dir = echo_template(&serde_json::json!({}));
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(dir.path()).expect("tar")).await.expect("upload");
    let req = provisionerd::sdk::CreateTemplateVersionRequest::new(file, "echo");
    c.create_template_version("coder", &req).await.expect("version");
    let (text, samples) = scrape(&format!("{}/metrics", server.url)).await;
    // Gauges are set from this server's own state at each scrape.
    assert_eq!(value(&samples, "provisionerd_jobs_pending", &[]), 1.0, "{text}");
    assert_eq!(value(&samples, "provisionerd_jobs_pending_unmatched", &[]), 1.0, "{text}");
    assert_eq!(value(&samples, "provisionerd_daemons_connected", &[]), 0.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_metrics_on_the_health_address() {
    let psk = format!("metrics-test-{}", uuid::Uuid::new_v4().simple());
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.clone()), ..Opts::default() })
            .await;
    let c = server.client().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let address = format!("127.0.0.1:{port}");
    let extra = ["--health-address", address.as_str()];
    let daemon = DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &extra);
    let url = format!("http://{address}/metrics");
    wait_for("the daemon's metrics", Duration::from_secs(30), || async {
        reqwest::get(&url).await.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;

    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let done = wait_build(&c, ws.latest_build.id, Duration::from_secs(120)).await;
    assert_eq!(done.job.status, "succeeded");
    let (text, samples) = scrape(&url).await;
    promtool(&text);
    // Its own process: exact counts. An import runs init and show/graph of
    // its plan; the build runs init, plan, apply and show.
    let count = |command| {
        value(
            &samples,
            "provisionerd_terraform_command_duration_seconds_count",
            &[("command", command)],
        )
    };
    assert_eq!(count("apply"), 1.0, "{text}");
    assert_eq!(count("init"), 2.0, "{text}");
    assert_eq!(value(&samples, "provisionerd_daemon_running_jobs", &[]), 0.0, "{text}");
    assert_eq!(value(&samples, "provisionerd_daemon_buffered_log_lines", &[]), 0.0, "{text}");
    daemon.stop().await;
}
