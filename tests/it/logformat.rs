//! `--log-format json`: every line the binary writes to stderr is one JSON
//! object with time, level, message and target, and lines logged while a
//! job runs carry the job's span fields; an error that ends the process is
//! a JSON line too.

use std::time::Duration;

use serde_json::Value;

use crate::daemons::DaemonProcess;
use crate::harness::*;

/// Parses every line as a JSON object with the fields every line has.
fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line:?}"));
            for key in ["timestamp", "level", "message", "target"] {
                assert!(v.get(key).is_some(), "no {key} in {line}");
            }
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_with_span_fields() {
    let psk = format!("logformat-test-{}", uuid::Uuid::new_v4().simple());
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.clone()), ..Opts::default() })
            .await;
    let c = server.client().await;
    let daemon = DaemonProcess::spawn_env(
        &server.url,
        &psk,
        &[],
        server.path(),
        &["--log-format", "json"],
        &[("PROVISIONERD_LOG", "info")],
    );
    let v = push_version(&c, &template_dir("basic"), "terraform", plain).await;
    assert_eq!(v.job.status, "succeeded");
    let job = v.job.id.to_string();
    wait_for("the daemon to log the job's end", Duration::from_secs(30), || async {
        daemon.log_text().contains("job finished").then_some(())
    })
    .await;
    let mut daemon = daemon;
    daemon.terminate();
    assert!(daemon.exit_status(Duration::from_secs(30)).await.success());
    // Lines that are not complete yet would not parse; the reader may still
    // hold the last ones, so wait for the exit line.
    wait_for("the daemon's last line", Duration::from_secs(10), || async {
        daemon.log_text().ends_with("\n").then_some(())
    })
    .await;
    let lines = parse_lines(&daemon.log_text());
    let in_job = lines
        .iter()
        .filter(|l| {
            l["job"] == job
                || l["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["job"] == job))
        })
        .count();
    assert!(in_job >= 1, "no line carries the job's span: {lines:#?}");
    assert!(
        lines.iter().filter(|l| l["span"]["daemon"] == "external-test").count() >= 3,
        "the daemon's name is a span field: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_is_a_json_line_too() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .args(["start", "--log-format", "json", "--terraform-path", "/nonexistent/terraform"])
        .env("PROVISIONERD_URL", "http://127.0.0.1:9")
        .output()
        .await
        .expect("run provisionerd");
    assert!(!out.status.success());
    let lines = parse_lines(&String::from_utf8_lossy(&out.stderr));
    let last = lines.last().expect("a line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(last["error"].as_str().is_some_and(|e| e.contains("/nonexistent/terraform")), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colour_codes_off_a_terminal() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .args(["start", "--terraform-path", "/nonexistent/terraform"])
        .env("PROVISIONERD_URL", "http://127.0.0.1:9")
        .env_remove("NO_COLOR")
        .output()
        .await
        .expect("run provisionerd");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.is_empty());
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");
}
