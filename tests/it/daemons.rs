//! External daemons: a `provisionerd start` process runs builds, and tags
//! decide which daemon may take a job.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::*;
use provisionerd::sdk::{
    CreateProvisionerKeyRequest, CreateTemplateVersionRequest, CreateUserRequest,
};

/// A `provisionerd start` child process, killed when dropped. Its log
/// (stderr) is kept so tests can wait for what it says.
pub struct DaemonProcess {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl DaemonProcess {
    pub fn spawn(url: &str, psk: &str, tags: &[&str], dir: &std::path::Path) -> Self {
        Self::spawn_with(url, psk, tags, dir, &[])
    }

    pub fn spawn_with(
        url: &str,
        psk: &str,
        tags: &[&str],
        dir: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        Self::spawn_env(url, psk, tags, dir, extra, &[])
    }

    /// Like `spawn_with`, with extra environment variables for the daemon.
    pub fn spawn_env(
        url: &str,
        psk: &str,
        tags: &[&str],
        dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"));
        cmd.arg("start").arg("--name").arg("external-test");
        // Without a URL the daemon takes its servers from the environment.
        if !url.is_empty() {
            cmd.arg("--url").arg(url);
        }
        for t in tags {
            cmd.arg("--tag").arg(t);
        }
        if !extra.contains(&"--terraform-path") {
            cmd.arg("--terraform-path").arg(terraform());
        }
        cmd.arg("--work-dir").arg(dir.join("work")).arg("--cache-dir").arg(dir.join("cache"));
        cmd.args(extra);
        if !psk.is_empty() {
            cmd.env("PROVISIONERD_PSK", psk);
        }
        cmd.env("NO_COLOR", "1").envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn provisionerd start");
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[daemon] {line}");
                    log.lock().expect("log lock").push_str(&line);
                    log.lock().expect("log lock").push('\n');
                }
            });
        }
        Self { child, log }
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// How often the daemon's log says `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log.lock().expect("log lock").matches(needle).count()
    }

    /// Waits until the daemon's log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        wait_for(&format!("the daemon to log {needle:?}"), Duration::from_secs(30), || async {
            self.log.lock().expect("log lock").contains(needle).then_some(())
        })
        .await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("daemon is running")
    }

    /// Sends SIGTERM, as systemd or Kubernetes would.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Waits for the daemon to exit on its own.
    pub async fn exit_status(&mut self, timeout: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!("daemon did not exit within {timeout:?}"),
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    fn kill(mut self) {
        self.child.start_kill().expect("kill daemon");
    }

    /// Asks the daemon to drain and waits for it to exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        assert!(
            matches!(status, Ok(Ok(s)) if s.success()),
            "daemon exits 0 after SIGTERM: {status:?}"
        );
    }
}

/// A daemon killed mid-job: the server notices the missing heartbeats,
/// fails the job naming the daemon, keeps the state, and the workspace
/// builds again on another daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_daemon_fails_its_job_and_another_daemon_takes_over() {
    let psk = "dead-daemon-psk-0123456789";
    let opts = Opts {
        builtin_daemons: 0,
        psk: Some(psk.into()),
        heartbeat_timeout: Duration::from_secs(2),
        ..Opts::default()
    };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let first = DaemonProcess::spawn(&server.url, psk, &[], server.path());
    let script = json!({"state": "state-1", "transitions": {"stop": {"delay_ms": 600000}}});
    let echo = echo_template(&script);
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;
    assert_eq!(b1.status, "running", "{b1:?}");

    let stop = build(&c, ws_id, "stop").await;
    let stop_id = stop.id;
    // A log line proves the daemon acknowledged the job (before that, a
    // dead daemon's job goes back to the queue instead of failing).
    wait_for("the daemon to run the stop build", Duration::from_secs(30), || async {
        let logs = c.build_logs(stop_id, Default::default()).await.ok()?;
        (!logs.is_empty()).then_some(())
    })
    .await;
    first.kill();
    let failed = wait_build(&c, stop_id, Duration::from_secs(30)).await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    let error = failed.job.error.as_deref().unwrap_or_default();
    assert!(error.contains("external-test"), "the error names the daemon: {error}");

    let second = DaemonProcess::spawn(&server.url, psk, &[], server.path());
    let retry = build(&c, ws_id, "start").await;
    let retry = wait_build(&c, retry.id, Duration::from_secs(30)).await;
    assert_eq!(retry.status, "running", "the workspace builds again: {retry:?}");
    let state = build_state(&c, stop_id).await;
    assert_eq!(state, "state-1", "the failed build kept the previous state");
    second.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_daemon_runs_builds_and_tags_keep_jobs_pending() {
    let psk = "external-test-psk-0123456789";
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.into()), ..Opts::default() })
            .await;
    let c = server.client().await;
    let daemon = DaemonProcess::spawn(&server.url, psk, &["pool=ext"], server.path());

    let ext = tagged(&[("pool", "ext")]);
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", ext).await;
    let ws = create_workspace(&c, template).await;
    let b = wait_build(&c, ws.latest_build.id, Duration::from_secs(180)).await;
    assert_eq!(b.status, "running", "{b:?}");
    assert!(b.job.worker_id.is_some(), "the external daemon ran it: {b:?}");

    // A job for a pool nobody serves stays pending while the daemon takes
    // the next job it can run.
    let echo = echo_template(&json!({"logs": [{"output": "hi"}]}));
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(echo.path()).expect("tar")).await.expect("upload");
    let req = CreateTemplateVersionRequest {
        tags: tags(&[("pool", "nowhere")]),
        ..CreateTemplateVersionRequest::new(file, "echo")
    };
    let stranded = c.create_template_version("coder", &req).await.expect("version");
    let later = push_version(&c, echo.path(), "echo", tagged(&[("pool", "ext")])).await;
    assert_eq!(later.job.status, "succeeded", "{later:?}");
    let stranded = c.template_version(stranded.id).await.expect("get");
    assert_eq!(stranded.job.status, "pending", "{stranded:?}");
    assert_eq!(stranded.job.queue_position, 1, "{stranded:?}");

    daemon.stop().await;
    server.stop().await;
}

/// The API lists connected daemons; a pending build says how many could
/// take it; a job nobody can take fails after the pending timeout, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_list_matched_provisioners_and_pending_timeout() {
    let psk = "pending-test-psk-0123456789";
    let opts = Opts {
        builtin_daemons: 0,
        psk: Some(psk.into()),
        pending_timeout: Duration::from_secs(3),
        ..Opts::default()
    };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let daemon = DaemonProcess::spawn(&server.url, psk, &["pool=ext"], server.path());
    let echo = echo_template(&json!({}));
    let (template, _) = create_template(&c, echo.path(), "echo", tagged(&[("pool", "ext")])).await;
    let listed = c.daemons("coder").await.expect("daemons");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "external-test");
    assert_eq!(listed[0].tags["pool"], "ext");
    // The daemon logs the id the list (and its jobs) show for it.
    let id = listed[0].id;
    daemon.wait_for_log(&format!("daemon_id={id}")).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;

    daemon.stop().await;
    wait_for("the daemon to leave the list", Duration::from_secs(30), || async {
        let listed = c.daemons("coder").await.ok()?;
        listed.is_empty().then_some(())
    })
    .await;
    let pending = build(&c, ws_id, "stop").await;
    assert_eq!(pending.status, "pending");
    let matched = pending.matched_provisioners.expect("a pending build says who could take it");
    assert_eq!(matched.count, 0, "{pending:?}");
    let failed = wait_build(&c, pending.id, Duration::from_secs(30)).await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert_eq!(failed.job.error_code.as_deref(), Some("PENDING_TIMEOUT"));
    let error = failed.job.error.as_deref().unwrap_or_default();
    assert!(error.contains("no connected provisioner daemon has the tags"), "{error}");
    server.stop().await;
}

/// Provisioner keys: the secret is shown once, the daemon gets the key's
/// tags, other users cannot manage keys, and revoking a key disconnects its
/// daemon for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioner_keys_tag_and_revoke_daemons() {
    let server = TestServer::start(Opts { builtin_daemons: 0, ..Opts::default() }).await;
    let c = server.client().await;
    let req = CreateProvisionerKeyRequest { name: "gpu".into(), tags: tags(&[("pool", "gpu")]) };
    let key = c.create_key("coder", &req).await.expect("create key").key;
    let secret = key.split_once('.').expect("id.secret").1.to_owned();
    let (status, listed) = c
        .raw(reqwest::Method::GET, "/api/v2/organizations/coder/provisionerkeys", None)
        .await
        .expect("list");
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(&secret), "the secret is never listed");
    let listed = c.keys("coder").await.expect("list");
    assert_eq!(listed[0].name, "gpu");

    let dev = CreateUserRequest {
        email: "dev@example.com".into(),
        username: "dev".into(),
        password: "a-long-password".into(),
        ..Default::default()
    };
    c.create_user(&dev).await.expect("user");
    let dev = provisionerd::sdk::Client::login(&server.url, "dev@example.com", "a-long-password")
        .await
        .expect("login");
    let (status, _) = raw(
        reqwest::Method::POST,
        format!("{}/api/v2/organizations/coder/provisionerkeys", server.url),
        Some(dev.token()),
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 403, "only owners manage keys");

    let daemon = DaemonProcess::spawn_with(&server.url, "", &[], server.path(), &["--key", &key]);
    let echo = echo_template(&json!({}));
    let (template, _) = create_template(&c, echo.path(), "echo", tagged(&[("pool", "gpu")])).await;
    let ws = create_workspace(&c, template).await;
    let b = wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "running", "the keyed daemon took the gpu job: {b:?}");
    let daemons = c.daemons("coder").await.expect("daemons");
    assert_eq!(daemons[0].tags["pool"], "gpu", "the daemon has the key's tags");

    let (status, _) = raw(
        reqwest::Method::DELETE,
        format!("{}/api/v2/organizations/coder/provisionerkeys/gpu", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 204);
    wait_for("the revoked daemon to be gone", Duration::from_secs(30), || async {
        let listed = c.daemons("coder").await.ok()?;
        listed.is_empty().then_some(())
    })
    .await;
    daemon.wait_for_log("rejected this daemon's credentials").await;
    server.stop().await;
}
