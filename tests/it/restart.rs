//! A server restarted again and again while a daemon runs terraform: the
//! daemon keeps terraform running, reconnects, resumes the same job, and the
//! build completes once with every log line stored once, in order.

use std::time::{Duration, Instant};

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
    let (template_id, _) = create_template(&c, template.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template_id).await;
    let build_id = ws.latest_build.id;
    wait_for("the apply to print", Duration::from_secs(60), || async {
        let logs = c.build_logs(build_id, Default::default()).await.ok()?;
        logs.iter().any(|l| l.output.contains("line-1")).then_some(())
    })
    .await;

    let c = provisionerd::sdk::Client::login(&server.url, EMAIL, PASSWORD).await.expect("login");
    let mut kept_dirs = Vec::new();
    let mut restart_times = Vec::new();
    for _ in 0..RESTARTS {
        let connects = daemon.log_count("connected to server");
        let stored = line_count(&c, build_id).await;
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
            (line_count(&c, build_id).await > stored).then_some(())
        })
        .await;
    }
    eprintln!("restart times: {restart_times:?}");
    let b = wait_build(&c, build_id, Duration::from_secs(120)).await;
    assert_eq!(b.status, "running", "the build completed once, successfully: {b:?}");

    let logs = log_outputs(&c, build_id).await;
    let numbered: Vec<usize> = logs
        .iter()
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
async fn line_count(c: &provisionerd::sdk::Client, build_id: uuid::Uuid) -> usize {
    c.build_logs(build_id, Default::default()).await.map_or(0, |l| l.len())
}

const FLOOD: usize = 70_000;
/// The daemon's cap on unacknowledged lines (src/worker/session.rs), plus
/// the events it may take in one batch past the check.
const CAP: u64 = 50_000 + 2_000;

/// Resident memory high-water mark of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_buffers_in_bounded_memory_and_loses_nothing() {
    let psk = format!("outage-{}", uuid::Uuid::new_v4().simple());
    let opts = || Opts {
        builtin_daemons: 0,
        psk: Some(psk.clone()),
        heartbeat_timeout: Duration::from_secs(600),
        ..Opts::default()
    };
    let server = TestServer::start(opts()).await;
    let address: std::net::SocketAddr =
        server.url.trim_start_matches("http://").parse().expect("address");
    let data_dir = server.data_dir.clone();
    let c = server.client().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let probe_address = format!("127.0.0.1:{port}");
    let daemon = DaemonProcess::spawn_with(
        &server.url,
        &psk,
        &[],
        server.path(),
        &["--health-address", &probe_address],
    );

    let template = tempfile::tempdir().expect("dir");
    std::fs::write(
        template.path().join("main.tf"),
        format!(
            r#"resource "terraform_data" "flood" {{
  provisioner "local-exec" {{
    command = "sleep 3; seq -f 'n-%.0f' 1 {FLOOD}"
  }}
}}
"#
        ),
    )
    .expect("write");
    let (template_id, _) = create_template(&c, template.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template_id).await;
    let build_id = ws.latest_build.id;
    wait_for("the local-exec to start", Duration::from_secs(60), || async {
        let logs = c.build_logs(build_id, Default::default()).await.ok()?;
        logs.iter().any(|l| l.output.contains("Executing")).then_some(())
    })
    .await;
    let kept = server.stop().await;

    // With the server gone, the daemon fills its buffer up to the cap.
    let buffered = |text: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix("buffered_lines "))
            .and_then(|n| n.trim().parse().ok())
    };
    let held =
        wait_for("the daemon to hold its cap of lines", Duration::from_secs(180), || async {
            let text = reqwest::get(&health).await.ok()?.text().await.ok()?;
            buffered(&text).filter(|n| *n >= 50_000)
        })
        .await;
    assert!(held <= CAP, "buffer stays bounded: {held} lines");
    let rss_mib = vm_hwm_kib(daemon.pid()) / 1024;
    eprintln!("daemon buffering {held} lines: peak RSS {rss_mib} MiB");
    assert!(rss_mib < 128, "daemon memory stays bounded while the server is away: {rss_mib} MiB");

    let server =
        TestServer::start(Opts { data_dir: Some(data_dir), address: Some(address), ..opts() })
            .await;
    let b = wait_build(&c, build_id, Duration::from_secs(300)).await;
    assert_eq!(b.status, "running", "{b:?}");
    let logs = log_outputs(&c, build_id).await;
    let numbered: Vec<usize> = logs
        .iter()
        .filter(|o| o.contains("(local-exec): n-"))
        .filter_map(|o| o.rsplit("n-").next()?.trim().parse().ok())
        .collect();
    assert_eq!(numbered.len(), FLOOD, "every line stored once");
    assert!(numbered.iter().copied().eq(1..=FLOOD), "in order");
    daemon.stop().await;
    server.stop().await;
    drop(kept);
}
