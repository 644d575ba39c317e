//! Network partitions between a daemon and the server, through the proxy
//! in `proxy.rs`: a daemon cut off mid-build is told to cancel the build
//! the server gave up on as soon as it is back, the state it reports late is
//! kept for the workspace (or recorded as a conflict when a newer build has
//! started), no build of that workspace runs while the server knows the old
//! one still does, and offers to a dead connection go to another daemon.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::daemons::DaemonProcess;
use provisionerd::sdk::WorkspaceBuild;
use uuid::Uuid;

use crate::harness::*;
use crate::proxy::{Mode, Proxy};

const PSK: &str = "partition-test-psk-0123456789";

fn server_addr(server: &TestServer) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().expect("server address")
}

/// A server without built-in daemons whose reaper gives up on a silent
/// daemon after 2 s.
fn opts() -> Opts {
    Opts {
        builtin_daemons: 0,
        psk: Some(PSK.into()),
        heartbeat_timeout: Duration::from_secs(2),
        ..Opts::default()
    }
}

/// A template whose apply runs `command` in a `local-exec` provisioner.
fn tf_template(command: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let tf = format!(
        "resource \"terraform_data\" \"box\" {{\n  provisioner \"local-exec\" {{\n    command = \"{command}\"\n  }}\n}}\n"
    );
    std::fs::write(dir.path().join("main.tf"), tf).expect("write main.tf");
    dir
}

async fn logs_text(c: &provisionerd::sdk::Client, build_id: Uuid) -> String {
    log_outputs(c, build_id).await.join("\n")
}

async fn wait_log(c: &provisionerd::sdk::Client, build_id: Uuid, needle: &str) {
    wait_for(&format!("build log {needle:?}"), Duration::from_secs(120), || async {
        logs_text(c, build_id).await.contains(needle).then_some(())
    })
    .await;
}

async fn get_build(c: &provisionerd::sdk::Client, build_id: Uuid) -> WorkspaceBuild {
    c.build(build_id).await.expect("build")
}

/// Waits until the build's job error says `needle` (the late result's note).
async fn wait_error(c: &provisionerd::sdk::Client, build_id: Uuid, needle: &str) -> WorkspaceBuild {
    wait_for(&format!("build error {needle:?}"), Duration::from_secs(60), || async {
        let b = get_build(c, build_id).await;
        b.job.error.as_deref()?.contains(needle).then_some(b)
    })
    .await
}

/// The build's job was failed by the reaper while the daemon was cut off.
async fn wait_daemon_lost(c: &provisionerd::sdk::Client, build_id: Uuid) -> WorkspaceBuild {
    let failed = wait_build(c, build_id, Duration::from_secs(60)).await;
    assert_eq!(failed.job.status, "failed", "{failed:?}");
    assert_eq!(failed.job.error_code.as_deref(), Some("PROVISIONER_DAEMON_LOST"), "{failed:?}");
    failed
}

/// Issue 12: the apply finished while the daemon was cut off and the server
/// had failed the build; the daemon reports it once it is back. The state
/// is kept (the next build sees the resource instead of creating it again),
/// the late log lines are kept, and both sides log the late result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_result_after_a_partition_keeps_its_state_for_the_workspace() {
    let server = TestServer::start(opts()).await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    let daemon = DaemonProcess::spawn(&proxy.url(), PSK, &[], server.path());
    let tpl = tf_template("echo apply-started; sleep 4; echo apply-finished");
    let (template, _) = create_template(&c, tpl.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = ws.latest_build.id;
    wait_log(&c, b1, "apply-started").await;
    let finished_before = daemon.log_count("job finished");

    proxy.set(Mode::Blackhole);
    wait_daemon_lost(&c, b1).await;
    assert_eq!(build_state(&c, b1).await, "", "the server knows no state yet");
    // The apply completes on the far side of the partition.
    wait_for("the cut-off daemon to finish the build", Duration::from_secs(60), || async {
        (daemon.log_count("job finished") > finished_before).then_some(())
    })
    .await;

    proxy.set(Mode::Pass);
    let b = wait_error(&c, b1, "kept for the workspace").await;
    assert_eq!(b.job.status, "failed", "the build still reads failed: {b:?}");
    assert_eq!(b.job.error_code.as_deref(), Some("PROVISIONER_DAEMON_LOST"), "{b:?}");
    let state = build_state(&c, b1).await;
    assert!(state.contains("terraform_data"), "the reported state is kept: {state}");
    let logs = logs_text(&c, b1).await;
    assert!(logs.contains("apply-finished"), "the late log lines are kept: {logs}");
    assert!(logs.contains("after the server had given up"), "the log says so: {logs}");
    daemon.wait_for_log("did not take this job's result as a normal completion").await;

    // The workspace's next build starts from that state: the resource
    // exists, so it is not created (its provisioner not run) again.
    let b2 = build(&c, ws_id, "start").await;
    let b2_id = b2.id;
    let b2 = wait_build(&c, b2_id, Duration::from_secs(120)).await;
    assert_eq!(b2.job.status, "succeeded", "{b2:?}");
    let logs = logs_text(&c, b2_id).await;
    assert!(!logs.contains("apply-started"), "the resource was not created twice: {logs}");
    drop(daemon);
    server.stop().await;
}

/// Issue 12: the daemon comes back while terraform still runs the build the
/// server gave up on. The server tells it at once to cancel; terraform
/// stops within seconds, not when its step would have ended. A newer build
/// of the workspace that started meanwhile (on a healthy daemon: the server
/// could not know the old one still ran) keeps its state, and the late
/// result is recorded on the old build as a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_daemon_cancels_an_ended_build_and_a_newer_build_records_the_conflict() {
    let server = TestServer::start(opts()).await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    let cut_off = DaemonProcess::spawn(&proxy.url(), PSK, &[], &server.path().join("a"));
    // Only the start build is slow: the newer build is a quick stop.
    let tpl = tf_template(
        "echo apply-started; [ $CODER_WORKSPACE_TRANSITION = start ] && sleep 120; echo apply-finished",
    );
    let (template, _) = create_template(&c, tpl.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = ws.latest_build.id;
    wait_log(&c, b1, "apply-started").await;

    proxy.set(Mode::Blackhole);
    wait_daemon_lost(&c, b1).await;
    // A retry runs on a healthy daemon: the server cannot see the other one.
    let healthy = DaemonProcess::spawn(&server.url, PSK, &[], &server.path().join("b"));
    let b2 = build(&c, ws_id, "stop").await;
    let b2_id = b2.id;
    let b2 = wait_build(&c, b2_id, Duration::from_secs(120)).await;
    assert_eq!(b2.job.status, "succeeded", "{b2:?}");
    let b2_state = build_state(&c, b2_id).await;

    let env = format!("CODER_WORKSPACE_ID={ws_id}");
    assert!(!processes_with_env(&env).is_empty(), "the cut-off daemon still runs terraform");
    let healed = Instant::now();
    proxy.set(Mode::Pass);
    cut_off.wait_for_log("the server ended this job; canceling it").await;
    wait_for("the ended build's terraform to stop", Duration::from_secs(30), || async {
        processes_with_env(&env).is_empty().then_some(())
    })
    .await;
    assert!(healed.elapsed() < Duration::from_secs(30), "stopped at once: {:?}", healed.elapsed());

    let b = wait_error(&c, b1, "conflict").await;
    let error = b.job.error.as_deref().unwrap_or_default().to_owned();
    assert!(error.contains("build #2"), "the conflict names the newer build: {error}");
    assert_eq!(build_state(&c, b2_id).await, b2_state, "the newer build's state stands");
    let logs = logs_text(&c, b1).await;
    assert!(logs.contains("conflict"), "the build's log records the conflict: {logs}");
    cut_off.wait_for_log("did not take this job's result as a normal completion").await;
    drop(cut_off);
    healthy.stop().await;
    server.stop().await;
}

/// Issue 12: once the daemon is back and told to cancel, the server knows
/// the ended build still runs until the daemon reports it: a newer build of
/// the workspace waits in the queue meanwhile, even with an idle daemon, so
/// two applies of one workspace never run at once. The fake terraform
/// ignores SIGINT, so the ended build runs for the whole cancel grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_waits_while_a_returned_daemon_still_runs_an_ended_build_of_its_workspace() {
    let server = TestServer::start(opts()).await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    // The import runs on real terraform, then the fake takes the builds.
    let importer = DaemonProcess::spawn(&server.url, PSK, &[], &server.path().join("i"));
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    importer.stop().await;
    let fake = fake_terraform("terraform-ignores-sigint");
    let fake = fake.to_str().expect("utf-8 path");
    let cut_off = DaemonProcess::spawn_with(
        &proxy.url(),
        PSK,
        &[],
        &server.path().join("a"),
        // After that build it takes no more (its fake would hang them).
        &["--terraform-path", fake, "--cancel-grace", "4s", "--max-jobs", "1"],
    );
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = ws.latest_build.id;
    wait_log(&c, b1, "fake apply started").await;

    proxy.set(Mode::Blackhole);
    wait_daemon_lost(&c, b1).await;
    let b2 = build(&c, ws_id, "start").await;
    let b2_id = b2.id;
    proxy.set(Mode::Pass);
    cut_off.wait_for_log("the server ended this job; canceling it").await;

    let idle = DaemonProcess::spawn(&server.url, PSK, &[], &server.path().join("b"));
    let env = format!("CODER_WORKSPACE_ID={ws_id}");
    let b2_job = b2.job.id.to_string();
    let mut checks = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the ended build was not stopped after its grace");
        let taken = idle.log_count(&b2_job);
        // The fake itself, not its background child, which may outlive it
        // by a moment: the daemon reports only once it has reaped the fake.
        let running = processes_with_env(&env).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("terraform-ignores-sigint"))
        });
        if !running {
            break;
        }
        // Read before the check above: the old apply still ran after it.
        assert_eq!(taken, 0, "no daemon takes the newer build while the old one runs");
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checks > 0, "the ended build ran on after the daemon came back");
    let b2 = wait_build(&c, b2_id, Duration::from_secs(120)).await;
    assert_eq!(b2.job.status, "succeeded", "then it runs: {b2:?}");
    wait_error(&c, b1, "after the server had given up").await;
    drop(cut_off);
    idle.stop().await;
    server.stop().await;
}

/// Issue 13: an offer to a daemon whose connection is silently dead is not
/// acknowledged; after the ack deadline it goes back to the queue and a
/// healthy daemon runs it (the server's keepalive is kept long here, so
/// only the deadline can save the build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_to_a_partitioned_daemon_goes_to_a_healthy_one() {
    let server = TestServer::start(Opts {
        offer_ack_timeout: Duration::from_secs(1),
        keepalive_interval: Duration::from_secs(300),
        keepalive_timeout: Duration::from_secs(300),
        heartbeat_timeout: Duration::from_secs(300),
        ..opts()
    })
    .await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    let cut_off = DaemonProcess::spawn(&proxy.url(), PSK, &[], &server.path().join("a"));
    let echo = echo_template(&json!({"logs": [{"output": "hello from echo"}]}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;

    proxy.set(Mode::Blackhole);
    let ws = create_workspace(&c, template).await;
    let b1 = ws.latest_build.id;
    // Offered to the cut-off daemon (the store marks a job started when it
    // is offered) before a healthy daemon exists.
    wait_for("the offer to the cut-off daemon", Duration::from_secs(30), || async {
        (get_build(&c, b1).await.job.status == "running").then_some(())
    })
    .await;
    let healthy = DaemonProcess::spawn(&server.url, PSK, &[], &server.path().join("b"));
    let b = wait_build(&c, b1, Duration::from_secs(30)).await;
    assert_eq!(b.job.status, "succeeded", "{b:?}");
    let job_id = b.job.id.to_string();
    healthy.wait_for_log(&job_id).await;
    assert_eq!(cut_off.log_count(&job_id), 0, "the cut-off daemon never got it");
    drop(cut_off);
    healthy.stop().await;
    server.stop().await;
}

/// Issue 13: a daemon on a slow link acknowledges an offer after the
/// deadline, when the job is already back in the queue and on a healthy
/// daemon: it is told to cancel, its logs and result are refused (and it
/// logs that), and the build has the healthy daemon's lines only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ack_is_answered_with_a_cancel_and_its_result_refused() {
    let server = TestServer::start(Opts {
        offer_ack_timeout: Duration::from_secs(1),
        // The slow link's round trip (3 s) stays under the daemon's silence
        // limit (3 heartbeats + 1 s) and the server's keepalive timeout.
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_timeout: Duration::from_secs(30),
        ..opts()
    })
    .await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    let slow = DaemonProcess::spawn(&proxy.url(), PSK, &[], &server.path().join("a"));
    let script = json!({"logs": [{"output": "hello from echo"}], "delay_ms": 8000});
    let echo = echo_template(&json!({"transitions": {"start": script}}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;

    proxy.set(Mode::Delay(Duration::from_millis(1500)));
    let ws = create_workspace(&c, template).await;
    let b1 = ws.latest_build.id;
    wait_for("the offer to the slow daemon", Duration::from_secs(30), || async {
        (get_build(&c, b1).await.job.status == "running").then_some(())
    })
    .await;
    let healthy = DaemonProcess::spawn(&server.url, PSK, &[], &server.path().join("b"));
    let b = wait_build(&c, b1, Duration::from_secs(60)).await;
    assert_eq!(b.job.status, "succeeded", "{b:?}");
    let job_id = b.job.id.to_string();
    healthy.wait_for_log(&job_id).await;
    slow.wait_for_log("the server ended this job; canceling it").await;
    slow.wait_for_log("did not take this job's result as a normal completion").await;
    let logs = logs_text(&c, b1).await;
    assert_eq!(logs.matches("hello from echo").count(), 1, "one daemon's lines: {logs}");
    // The slow daemon began the job too (its first lines came after its
    // ack); they were acknowledged and dropped.
    assert_eq!(logs.matches("Downloading template archive").count(), 1, "{logs}");
    drop(slow);
    healthy.stop().await;
    server.stop().await;
}

/// Issue 13: the server pings daemon connections; a daemon whose
/// connection went silently dead leaves the daemon list within seconds
/// (and gets no more offers), while the proxy keeps both sockets open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_drops_a_silently_dead_daemon_connection_within_seconds() {
    let server = TestServer::start(Opts {
        keepalive_interval: Duration::from_millis(500),
        keepalive_timeout: Duration::from_secs(1),
        ..opts()
    })
    .await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    let daemon = DaemonProcess::spawn(&proxy.url(), PSK, &[], server.path());
    let count = || async { c.daemons("coder").await.ok().map(|l| l.len()) };
    wait_for("the daemon to connect", Duration::from_secs(30), || async {
        (count().await? == 1).then_some(())
    })
    .await;

    proxy.set(Mode::Blackhole);
    let cut = Instant::now();
    wait_for("the server to drop the dead connection", Duration::from_secs(10), || async {
        (count().await? == 0).then_some(())
    })
    .await;
    assert!(cut.elapsed() < Duration::from_secs(8), "noticed in {:?}", cut.elapsed());

    proxy.set(Mode::Pass);
    wait_for("the daemon to come back", Duration::from_secs(30), || async {
        (count().await? == 1).then_some(())
    })
    .await;
    drop(daemon);
    server.stop().await;
}

/// The proxy's other modes lose nothing: a build through a delayed link
/// and across a killed connection completes with all its lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_killed_connections_lose_nothing() {
    let server = TestServer::start(opts()).await;
    let c = server.client().await;
    let proxy = Proxy::start(server_addr(&server)).await;
    let daemon = DaemonProcess::spawn(&proxy.url(), PSK, &[], server.path());
    let logs: Vec<Value> = (1..=50).map(|i| json!({"output": format!("line {i}")})).collect();
    let echo = echo_template(&json!({"logs": logs, "delay_ms": 1500}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    proxy.set(Mode::Delay(Duration::from_millis(30)));
    let ws = create_workspace(&c, template).await;
    let b1 = ws.latest_build.id;
    wait_for("the build to run", Duration::from_secs(30), || async {
        (get_build(&c, b1).await.job.status == "running").then_some(())
    })
    .await;
    proxy.kill();
    proxy.set(Mode::Pass);
    let b = wait_build(&c, b1, Duration::from_secs(60)).await;
    assert_eq!(b.job.status, "succeeded", "{b:?}");
    let text = logs_text(&c, b1).await;
    for i in 1..=50 {
        let line = format!("line {i}");
        assert_eq!(text.lines().filter(|l| *l == line).count(), 1, "{line} once: {text}");
    }
    drop(daemon);
    server.stop().await;
}

/// Issue 13: a daemon that exits (drained by SIGTERM) or dies (SIGKILL)
/// ends its session as an ordinary disconnect: the server process logs it
/// at INFO, never as a WARN "h2 protocol error".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_exits_or_dies_is_not_a_warning_in_the_server_log() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"));
    cmd.arg("server")
        .args(["--address", &format!("127.0.0.1:{port}"), "--builtin-daemons", "0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("PROVISIONERD_PSK", PSK)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut server = cmd.spawn().expect("spawn provisionerd server");
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = server.stderr.take() {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[server] {line}");
                let mut log = log.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let count = |needle: &str| log.lock().expect("log lock").matches(needle).count();
    let wait_count = |needle: &'static str, n: usize| {
        let count = &count;
        wait_for(needle, Duration::from_secs(30), move || async move {
            (count(needle) >= n).then_some(())
        })
    };
    wait_count("provisionerd server listening", 1).await;

    let exits = DaemonProcess::spawn(&url, PSK, &[], &dir.path().join("a"));
    wait_count("daemon connected", 1).await;
    exits.stop().await;
    wait_count("daemon disconnected", 1).await;
    let dies = DaemonProcess::spawn(&url, PSK, &[], &dir.path().join("b"));
    wait_count("daemon connected", 2).await;
    drop(dies); // SIGKILL
    wait_count("daemon disconnected", 2).await;

    let text = log.lock().expect("log lock").clone();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| l.contains("daemon") || l.contains("h2"))
        .collect();
    assert!(warnings.is_empty(), "disconnects are not warnings: {warnings:#?}");
    if let Some(pid) = server.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait()).await;
    assert!(matches!(status, Ok(Ok(s)) if s.success()), "server exits 0: {status:?}");
}
