//! A server restarted again and again while a daemon runs terraform: the
//! daemon keeps terraform running, reconnects, resumes the same job, and the
//! build completes once with every log line stored once, in order.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemons::DaemonProcess;
use crate::harness::*;

const PSK: &str = "restart-test-psk-0123456789";
const LINES: usize = 150;
const RESTARTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restarts_mid_apply_lose_and_double_nothing() {
    let opts = || Opts { builtin_daemons: 0, psk: Some(PSK.into()), ..Opts::default() };
    let mut server = TestServer::start(opts()).await;
    let address: std::net::SocketAddr =
        server.url.trim_start_matches("http://").parse().expect("address");
    let data_dir = server.data_dir.clone();
    let c = server.client().await;
    let daemon = DaemonProcess::spawn(&server.url, PSK, &[], server.path());

    let template = tempfile::tempdir().expect("dir");
    std::fs::write(
        template.path().join("main.tf"),
        format!(
            r#"resource "terraform_data" "chatty" {{
  provisioner "local-exec" {{
    command = "for i in $(seq 1 {LINES}); do echo line-$i; sleep 0.1; done"
  }}
}}
"#
        ),
    )
    .expect("write");
    let (template_id, _) = create_template(&c, template.path(), "terraform", json!({})).await;
    let ws = create_workspace(&c, &template_id).await;
    let build_id = ws["latest_build"]["id"].as_str().expect("id").to_owned();
    let logs_path = format!("/api/v2/workspacebuilds/{build_id}/logs");
    wait_for("the apply to print", Duration::from_secs(60), || async {
        let logs = c.get(&logs_path).await.ok()?;
        logs.as_array()?
            .iter()
            .any(|l| l["output"].as_str().is_some_and(|o| o.contains("line-1")))
            .then_some(())
    })
    .await;

    let c = provisionerd::demo::Client::login(&server.url, EMAIL, PASSWORD).await.expect("login");
    let mut kept_dirs = Vec::new();
    let mut restart_times = Vec::new();
    for _ in 0..RESTARTS {
        let connects = daemon.log_count("connected to server");
        let stored = line_count(&c, &logs_path).await;
        let t = Instant::now();
        kept_dirs.push(server.stop().await);
        let again = Opts { data_dir: Some(data_dir.clone()), address: Some(address), ..opts() };
        server = TestServer::start(again).await;
        restart_times.push(t.elapsed());
        // The daemon found the new server, and lines flow again.
        wait_for("the daemon to reconnect", Duration::from_secs(30), || async {
            (daemon.log_count("connected to server") > connects).then_some(())
        })
        .await;
        wait_for("new lines after the restart", Duration::from_secs(30), || async {
            (line_count(&c, &logs_path).await > stored).then_some(())
        })
        .await;
    }
    eprintln!("restart times: {restart_times:?}");
    let b = wait_build(&c, &build_id, Duration::from_secs(120)).await;
    assert_eq!(b["status"], "running", "the build completed once, successfully: {b}");

    let logs = c.get(&logs_path).await.expect("logs");
    let numbered: Vec<usize> = logs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|l| l["output"].as_str())
        .filter_map(|o| o.rsplit("line-").next().filter(|_| o.contains("(local-exec): line-")))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert_eq!(numbered, (1..=LINES).collect::<Vec<_>>(), "every line once, in order");
    let restarts_during_apply = restart_times.len();
    assert_eq!(restarts_during_apply, RESTARTS);
    daemon.stop().await;
    server.stop().await;
}

/// Lines of the build's log stored so far (0 while the server is away).
async fn line_count(c: &provisionerd::demo::Client, logs_path: &str) -> usize {
    c.get(logs_path).await.ok().and_then(|l| l.as_array().map(Vec::len)).unwrap_or(0)
}
