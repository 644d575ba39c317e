//! Stopping daemons the way operators do: SIGTERM drains, a second SIGTERM
//! cancels, `--max-jobs` and `--idle-timeout` end ephemeral daemons, and a
//! daemon exits in bounded time even when the server is gone.

use std::time::Duration;

use provisionerd::sdk::{Client, CreateTemplateVersionRequest, ProvisionerJob};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::daemons::DaemonProcess;
use crate::harness::*;

/// A server without built-in daemons and with its own PSK, so a daemon of
/// one test can never join another test's server on a reused port.
async fn server() -> (TestServer, String) {
    let psk = format!("drain-test-{}", uuid::Uuid::new_v4().simple());
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.clone()), ..Opts::default() })
            .await;
    (server, psk)
}

/// Waits until the import of `version` has a log line, which proves its
/// daemon acknowledged it.
async fn wait_acknowledged(c: &Client, version: Uuid) {
    wait_for("the daemon to take the job", Duration::from_secs(30), || async {
        let logs = c.template_version_logs(version, Default::default()).await.ok()?;
        (!logs.is_empty()).then_some(())
    })
    .await;
}

/// Queues a template import of an echo template and returns its id.
async fn queue_import(c: &Client, script: &Value) -> Uuid {
    let dir = echo_template(script);
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(dir.path()).expect("tar")).await.expect("upload");
    let req = CreateTemplateVersionRequest::new(file, "echo");
    c.create_template_version("coder", &req).await.expect("version").id
}

async fn job_status(c: &Client, version: Uuid) -> ProvisionerJob {
    c.template_version(version).await.expect("version").job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sigterm_drains_and_second_cancels() {
    let (server, psk) = server().await;
    let c = server.client().await;
    let mut daemon =
        DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &["--cancel-grace", "5s"]);

    // First signal: the running job finishes, the queued one is left alone.
    let running = queue_import(&c, &json!({"delay_ms": 1500, "logs": [{"output": "done"}]})).await;
    wait_acknowledged(&c, running).await;
    daemon.terminate();
    let queued = queue_import(&c, &json!({})).await;
    let status = daemon.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "a drained daemon exits 0: {status:?}");
    assert_eq!(job_status(&c, running).await.status, "succeeded", "the running job finished");
    assert_eq!(job_status(&c, queued).await.status, "pending", "no new job taken while draining");

    // Second signal: the running job is canceled and reported.
    let mut daemon =
        DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &["--cancel-grace", "5s"]);
    wait_for("the queued job to run", Duration::from_secs(30), || async {
        (job_status(&c, queued).await.status == "succeeded").then_some(())
    })
    .await;
    let long = queue_import(&c, &json!({"delay_ms": 600000})).await;
    wait_acknowledged(&c, long).await;
    daemon.terminate();
    // A second signal sent before the first is handled would merge with it
    // (the kernel keeps one pending SIGTERM), as for an operator pressing
    // twice within microseconds: wait for the daemon to acknowledge the first.
    daemon.wait_for_log("draining").await;
    daemon.terminate();
    let status = daemon.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "an aborted daemon that reported its jobs exits 0: {status:?}");
    assert_eq!(
        job_status(&c, long).await.status,
        "canceled",
        "the running job was canceled and reported"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_jobs_and_idle_timeout_end_ephemeral_daemons() {
    let (server, psk) = server().await;
    let c = server.client().await;
    let first = queue_import(&c, &json!({})).await;
    let second = queue_import(&c, &json!({})).await;
    let mut daemon =
        DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &["--max-jobs", "1"]);
    let status = daemon.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(job_status(&c, first).await.status, "succeeded");
    assert_eq!(job_status(&c, second).await.status, "pending", "--max-jobs 1 took one job");

    let mut idle = DaemonProcess::spawn_with(
        &server.url,
        &psk,
        &["pool=empty"],
        server.path(),
        &["--idle-timeout", "1s"],
    );
    let status = idle.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "an idle daemon exits 0: {status:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_exits_in_bounded_time_when_the_server_is_gone() {
    let (server, psk) = server().await;
    let c = server.client().await;
    let mut daemon =
        DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &["--cancel-grace", "1s"]);
    let long = queue_import(&c, &json!({"delay_ms": 600000})).await;
    wait_acknowledged(&c, long).await;
    let _dir = server.stop().await;
    daemon.terminate();
    daemon.wait_for_log("draining").await;
    daemon.terminate();
    // Cancel grace (1s) plus the report window (10s), with room to spare.
    let status = daemon.exit_status(Duration::from_secs(25)).await;
    assert!(
        !status.success(),
        "a daemon that could not report its job says so in its exit code: {status:?}"
    );
}

/// Status code of a plain GET, or 0 when nothing answers.
async fn probe(url: &str) -> u16 {
    reqwest::get(url).await.map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_follow_the_connection() {
    let (server, psk) = server().await;
    assert_eq!(probe(&format!("{}/healthz", server.url)).await, 200);
    assert_eq!(
        probe(&format!("{}/readyz", server.url)).await,
        200,
        "the server's database answers"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let address = format!("127.0.0.1:{port}");
    let extra = ["--health-address", address.as_str(), "--health-timeout", "1s"];
    let mut daemon = DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &extra);
    let (healthz, readyz) =
        (format!("http://{address}/healthz"), format!("http://{address}/readyz"));
    wait_for("the daemon to be ready", Duration::from_secs(30), || async {
        (probe(&readyz).await == 200).then_some(())
    })
    .await;
    assert_eq!(probe(&healthz).await, 200);

    let _dir = server.stop().await;
    wait_for("readiness to drop with the server", Duration::from_secs(30), || async {
        (probe(&readyz).await == 503).then_some(())
    })
    .await;
    wait_for("health to fail after the timeout", Duration::from_secs(30), || async {
        (probe(&healthz).await == 503).then_some(())
    })
    .await;
    daemon.terminate();
    let status = daemon.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "an idle daemon drains at once, server or not: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_runs_jobs_side_by_side() {
    let (server, psk) = server().await;
    let c = server.client().await;
    let extra = ["--concurrency", "2"];
    let daemon = DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &extra);
    let a = queue_import(&c, &json!({"delay_ms": 600000})).await;
    let b = queue_import(&c, &json!({"delay_ms": 600000})).await;
    // Both jobs run at the same time on the one daemon (with one slot the
    // second would stay pending).
    wait_for("both jobs to run at once", Duration::from_secs(30), || async {
        let (ja, jb) = (job_status(&c, a).await, job_status(&c, b).await);
        (ja.status == "running" && jb.status == "running").then_some(())
    })
    .await;
    let listed = c.daemons("coder").await.expect("daemons");
    assert_eq!(listed[0].status, "busy");
    drop(daemon);
    server.stop().await;
}

/// The third signal exits at once, and takes terraform down with it even
/// though terraform ignores SIGINT and the cancel grace is long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_signal_exits_at_once_and_leaves_no_terraform() {
    let (server, psk) = server().await;
    let c = server.client().await;
    let fake = fake_terraform("terraform-ignores-sigint").display().to_string();
    let extra = ["--terraform-path", fake.as_str(), "--cancel-grace", "300s"];
    let mut daemon = DaemonProcess::spawn_with(&server.url, &psk, &[], server.path(), &extra);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("main.tf"), "# used with a fake terraform\n").expect("write");
    let (template, _) = create_template(&c, dir.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let needle = format!("CODER_WORKSPACE_ID={}", ws.id);
    let build_id = ws.latest_build.id;
    wait_for("the fake apply to start", Duration::from_secs(30), || async {
        let logs = c.build_logs(build_id, Default::default()).await.ok()?;
        logs.iter().any(|l| l.output == "fake apply started").then_some(())
    })
    .await;
    daemon.terminate();
    daemon.wait_for_log("draining").await;
    daemon.terminate();
    daemon.wait_for_log("canceling running jobs").await;
    daemon.terminate();
    let status = daemon.exit_status(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(130), "the third signal exits at once: {status:?}");
    wait_for("terraform to be gone with the daemon", Duration::from_secs(10), || async {
        processes_with_env(&needle).is_empty().then_some(())
    })
    .await;
    server.stop().await;
}
