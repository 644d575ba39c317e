//! Daemons with several servers (issue 14 point 5), on real processes: two
//! `provisionerd server` replicas on one scratch PostgreSQL database and an
//! external `provisionerd start` given both URLs. SIGKILL of the replica the
//! daemon is connected to, in the middle of an apply: the daemon resumes the
//! job on the other replica, the build completes once with every log line
//! once and in order, and work queued afterwards runs. A daemon given a dead
//! URL and a live one connects to the live one.
//!
//! The database comes from the test cluster (`pg.rs`): the one `PROVISIONERD_TEST_DATABASE_URL`
//! names (`scripts/test` starts a throwaway one); without it the tests start
//! a cluster with `scripts/test-postgres` that stops when the test process
//! exits. Each test drops its database and stops every process it started.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::daemons::DaemonProcess;
use crate::harness::*;
use crate::pg::ScratchDb;
use provisionerd::sdk::Client;

const PSK: &str = "failover-test-psk-0123456789";

/// A `provisionerd server` child process without built-in daemons, killed
/// when dropped; its log (stderr) is kept.
struct ServerProcess {
    child: tokio::process::Child,
    url: String,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl ServerProcess {
    async fn start(database_url: &str, name: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
            .args(["--log", "provisionerd=info", "server", "--address", "127.0.0.1:0"])
            .args(["--builtin-daemons", "0", "--database-url", database_url])
            .arg("--data-dir")
            .arg(dir.path())
            .env("PROVISIONERD_PSK", PSK)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn provisionerd server");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let kept = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{name}] {line}");
                let mut log = kept.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = wait_for(&format!("{name} to listen"), Duration::from_secs(60), || async {
            let log = log.lock().expect("log lock");
            let line = log.lines().find(|l| l.contains("provisionerd server listening"))?;
            let addr = line.split_whitespace().find_map(|w| w.strip_prefix("addr="))?;
            Some(addr.to_owned())
        })
        .await;
        Self { child, url: format!("http://{addr}"), log, _dir: dir }
    }

    /// Lines of the server's log that contain every one of `needles`.
    fn log_lines(&self, needles: &[&str]) -> usize {
        let log = self.log.lock().expect("log lock");
        log.lines().filter(|l| needles.iter().all(|n| l.contains(n))).count()
    }

    /// SIGKILL, as a crashed machine or an OOM kill would.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL the server");
        let status = self.child.wait().await.expect("reap the server");
        assert!(!status.success(), "the server was killed: {status:?}");
    }

    /// SIGTERM and wait for a clean exit.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        assert!(matches!(status, Ok(Ok(s)) if s.success()), "server exits 0: {status:?}");
    }
}

/// The URL of the server the daemon's log says it connected to last, and
/// how many times it connected.
fn connected_to(daemon: &DaemonProcess) -> Option<(String, usize)> {
    let log = daemon.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("connected to server")).collect();
    let last = lines.last()?;
    let url = last.split_whitespace().find_map(|w| w.strip_prefix("url="))?;
    Some((url.to_owned(), lines.len()))
}

/// A template whose apply prints `line-1` .. `line-{n}`, ten a second.
fn counting_template(n: u32) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let tf = format!(
        "resource \"terraform_data\" \"count\" {{\n  provisioner \"local-exec\" {{\n    \
         command = \"for i in $(seq 1 {n}); do echo line-$i; sleep 0.1; done\"\n  }}\n}}\n"
    );
    std::fs::write(dir.path().join("main.tf"), tf).expect("write main.tf");
    dir
}

/// The numbers of the `line-N` lines of a build's log, in log order.
async fn counted_lines(c: &provisionerd::sdk::Client, build_id: Uuid) -> Vec<u32> {
    let logs = c.build_logs(build_id, Default::default()).await.expect("logs");
    logs.iter().filter_map(|l| l.output.split("line-").nth(1)?.trim().parse().ok()).collect()
}

/// Issue 14 point 5: SIGKILL of the replica the daemon is connected to in
/// the middle of an apply. The daemon fails over to the other replica and
/// resumes the job there: the build succeeds, completed once, with every
/// line of its log once and in order; a build queued through the surviving
/// replica after the kill runs too; no terraform process is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_daemons_replica_mid_apply_completes_the_build_once_with_its_full_log() {
    const LINES: u32 = 50;
    let db = ScratchDb::create().await;
    let mut a = ServerProcess::start(&db.url, "server-a").await;
    let b = ServerProcess::start(&db.url, "server-b").await;
    let home = tempfile::tempdir().expect("daemon dir");
    // Both URLs, as a repeated flag.
    let daemon = DaemonProcess::spawn_with(&a.url, PSK, &[], home.path(), &["--url", &b.url]);
    let (first, _) = wait_for("the daemon to connect", Duration::from_secs(30), || async {
        connected_to(&daemon)
    })
    .await;
    assert_eq!(first, a.url, "the daemon connects to the first URL first");
    let ca = Client::login(&a.url, EMAIL, PASSWORD).await.expect("login on server-a");
    let cb = Client::login(&b.url, EMAIL, PASSWORD).await.expect("login on server-b");

    // Built on the replica the daemon is connected to (waking a daemon on
    // another replica is the cross-replica event bus's job, not this test's).
    let tpl = counting_template(LINES);
    let (template, _) = create_template(&ca, tpl.path(), "terraform", plain).await;
    let ws = create_workspace(&ca, template).await;
    let (build_id, job_id) = (ws.latest_build.id, ws.latest_build.job.id);
    wait_for("the apply to be under way", Duration::from_secs(120), || async {
        counted_lines(&ca, build_id).await.contains(&5).then_some(())
    })
    .await;
    let before_kill = counted_lines(&cb, build_id).await;
    a.kill().await;
    assert!(
        !before_kill.contains(&LINES),
        "the replica died in the middle of the apply: {before_kill:?}"
    );

    let (now, sessions) = wait_for("the daemon to fail over", Duration::from_secs(30), || async {
        connected_to(&daemon).filter(|(url, _)| *url == b.url)
    })
    .await;
    assert_eq!((now.as_str(), sessions), (b.url.as_str(), 2), "one failover, to server-b");
    let done = wait_build(&cb, build_id, Duration::from_secs(120)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert_eq!(
        counted_lines(&cb, build_id).await,
        (1..=LINES).collect::<Vec<_>>(),
        "every line of the apply once, in order"
    );
    let logs = cb.build_logs(build_id, Default::default()).await.expect("logs");
    assert!(logs.windows(2).all(|w| w[0].id < w[1].id), "log ids ascend");
    let job = job_id.to_string();
    let finished = daemon.log_text().lines().filter(|l| l.contains("job finished")).count();
    assert_eq!(finished, 2, "the daemon ran the import and the build once each");
    assert_eq!(
        a.log_lines(&["job completed", &job]) + b.log_lines(&["job completed", &job]),
        1,
        "the build's job was completed once"
    );
    assert_eq!(b.log_lines(&["job completed", &job]), 1, "by the surviving replica");

    // Work queued after the kill, through the surviving replica, runs.
    let stop = build(&cb, ws.id, "stop").await;
    let stopped = wait_build(&cb, stop.id, Duration::from_secs(120)).await;
    assert_eq!(stopped.job.status, "succeeded", "{stopped:?}");
    let needle = format!("CODER_WORKSPACE_ID={}", ws.id);
    assert_eq!(processes_with_env(&needle), Vec::<i32>::new(), "no terraform process is left");

    daemon.stop().await;
    b.stop().await;
    drop(db);
}

/// How a test gives the daemon its servers.
enum Given {
    /// `PROVISIONERD_URL`, comma-separated.
    Env,
    /// A list under `url` in the `--config` YAML file.
    ConfigFile,
}

/// A daemon given a dead URL first and a live one connects to the live one
/// at once, runs its work, and its `/readyz` names that server.
async fn a_daemon_skips_a_dead_url(given: Given) {
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(PSK.into()), ..Opts::default() })
            .await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let health = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let urls = format!("{dead}, {}", server.url);
    let config = server.path().join("daemon.yaml");
    std::fs::write(&config, format!("url:\n  - {dead}\n  - {}\n", server.url)).expect("config");
    let config = config.display().to_string();
    let (extra, env) = match given {
        Given::Env => (vec![], vec![("PROVISIONERD_URL", urls.as_str())]),
        Given::ConfigFile => (vec!["--config", config.as_str()], vec![]),
    };
    let extra = [&["--health-address", health.as_str()], extra.as_slice()].concat();
    let daemon = DaemonProcess::spawn_env("", PSK, &[], server.path(), &extra, &env);
    let started = std::time::Instant::now();
    let (url, sessions) = wait_for("the daemon to connect", Duration::from_secs(30), || async {
        connected_to(&daemon)
    })
    .await;
    assert_eq!((url.as_str(), sessions), (server.url.as_str(), 1));
    // The dead server is skipped at once, not after a growing pause.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let ready = reqwest::get(format!("http://{health}/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.expect("readyz body");
    assert!(body.contains(&format!("server {}", server.url)), "{body}");

    let c = server.client().await;
    let tpl = echo_template(&serde_json::json!({"logs": [{"output": "hello"}]}));
    let (template, _) = create_template(&c, tpl.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let done = wait_build(&c, ws.latest_build.id, Duration::from_secs(60)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    daemon.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_given_a_dead_url_and_a_live_one_in_its_environment_connects_to_the_live_one() {
    a_daemon_skips_a_dead_url(Given::Env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_given_a_dead_url_and_a_live_one_in_its_config_file_connects_to_the_live_one() {
    a_daemon_skips_a_dead_url(Given::ConfigFile).await;
}
