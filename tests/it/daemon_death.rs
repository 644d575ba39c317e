//! A `provisionerd start` process SIGKILLed in the middle of an apply, with
//! real terraform: nothing of its job may go on running (terraform, its
//! provider, the provisioner's `sh -c` and `sleep`), so no side effect comes
//! after the server fails the job; and the next daemon on the same work root
//! removes the dead job's work directory.

use std::time::Duration;

use crate::daemons::DaemonProcess;
use crate::harness::*;

const TEMPLATE: &str = r#"variable "marker" {
  type = string
}

resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "echo apply-started; sleep 8; touch ${var.marker}"
  }
}
"#;

/// Pids of processes whose working directory is under `dir` (terraform and
/// its watchdog run in the job's work directory, and its children too unless
/// they move).
fn processes_in(dir: &std::path::Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

fn cmdline(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ")
}

fn job_dirs(work: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(work) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("provisionerd-job-"))
        .map(|e| e.path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_job_outlives_a_sigkilled_daemon() {
    let psk = "daemon-death-psk-0123456789";
    let opts = Opts {
        builtin_daemons: 0,
        psk: Some(psk.into()),
        heartbeat_timeout: Duration::from_secs(3),
        ..Opts::default()
    };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let home = server.path().join("daemon");
    let daemon = DaemonProcess::spawn(&server.url, psk, &[], &home);
    let marker = server.path().join("marker");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("main.tf"), TEMPLATE).expect("write");
    let marker_path = marker.display().to_string();
    let vars = with_vars(&[("marker", &marker_path)]);
    let (template, _) = create_template(&c, dir.path(), "terraform", vars).await;
    let ws = create_workspace(&c, template).await;
    let needle = format!("CODER_WORKSPACE_ID={}", ws.id);
    let build_id = ws.latest_build.id;
    wait_for("the provisioner to start", Duration::from_secs(60), || async {
        let logs = c.build_logs(build_id, Default::default()).await.ok()?;
        logs.iter().any(|l| l.output.contains("apply-started")).then_some(())
    })
    .await;
    let running = processes_with_env(&needle);
    assert!(running.len() >= 3, "terraform, sh and sleep run: {running:?}");
    let work = home.join("work");
    let watchdogs: Vec<String> = processes_in(&work)
        .into_iter()
        .map(cmdline)
        .filter(|c| c.contains("__provisionerd-watchdog"))
        .collect();
    assert_eq!(watchdogs.len(), 1, "apply runs under the re-exec'd watchdog: {watchdogs:?}");
    assert_eq!(job_dirs(&work).len(), 1, "the job has its work directory");

    let pid = nix::unistd::Pid::from_raw(daemon.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL the daemon");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = processes_with_env(&needle);
        left.extend(processes_in(&work));
        if left.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let cmdlines: Vec<String> = left.into_iter().map(cmdline).collect();
            panic!("processes of the job outlived the daemon: {cmdlines:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = wait_build(&c, build_id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "failed", "{b:?}");
    // Every process that could have touched the marker is gone, so it
    // cannot appear later.
    assert!(!marker.exists(), "the provisioner's side effect happened after the daemon died");
    assert_eq!(job_dirs(&work).len(), 1, "a SIGKILLed daemon leaves its directory");

    // The next daemon on the same work root removes it before its first job.
    drop(daemon);
    let next = DaemonProcess::spawn(&server.url, psk, &[], &home);
    let stop = build(&c, ws.id, "stop").await;
    let stop = wait_build(&c, stop.id, Duration::from_secs(60)).await;
    assert_eq!(stop.status, "stopped", "{stop:?}");
    // (That build created the resource, so its provisioner ran now.)
    assert!(job_dirs(&work).is_empty(), "the dead job's directory was removed");
    next.stop().await;
    server.stop().await;
}
