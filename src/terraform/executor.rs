//! One handle owns one terraform process: its own process group, stdin
//! closed, stdout and stderr read line by line into a channel, SIGINT to the
//! group on cancel and SIGKILL after the grace period, and SIGKILL to the
//! group when the handle goes away, so no child (a local-exec's background
//! job included) outlives the job. No other code touches the child.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest line kept; longer ones are cut (a runaway line must not eat memory).
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("terraform not found at {path}: install it (scripts/setup-terraform) or pass --terraform-path")]
    NotFound { path: PathBuf },
    #[error("failed to start {path}: {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("failed to wait for terraform: {0}")]
    Wait(std::io::Error),
    #[error("`{path} version -json` did not answer as terraform does: {detail}")]
    BadVersion { path: PathBuf, detail: String },
    #[error("terraform {found} at {path} is too old: provisionerd needs 1.1 or newer")]
    TooOld { path: PathBuf, found: Version },
}

/// A terraform version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let core = s.split(['-', '+']).next().unwrap_or(s);
        let mut parts =
            core.split('.').map(|p| p.parse::<u64>().map_err(|_| format!("bad version {s:?}")));
        let mut next = || parts.next().unwrap_or(Ok(0));
        Ok(Version { major: next()?, minor: next()?, patch: next()? })
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failed(i32),
    /// Died from a signal nobody on our side sent (a crash, the OOM killer).
    Signaled(i32),
    /// Canceled: `graceful` when it exited after SIGINT, before the grace ran out.
    Canceled {
        graceful: bool,
    },
}

/// The daemon's environment minus its own settings and secrets: nothing
/// named `PROVISIONERD_*` ever reaches terraform, nor inherited `CODER_*`
/// variables (an agent token when the host is itself a workspace; the job's
/// own `CODER_WORKSPACE_*` are added afterwards), nor database credentials a
/// server's built-in daemons would otherwise pass on.
pub fn inherited_env() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| !is_private(k)).collect()
}

fn is_private(name: &str) -> bool {
    const EXACT: [&str; 3] = ["DATABASE_URL", "PGPASSWORD", "PGPASSFILE"];
    name.starts_with("PROVISIONERD_") || name.starts_with("CODER_") || EXACT.contains(&name)
}

/// Runs `terraform version -json` and checks the version is at least 1.1.
pub async fn version(path: &Path) -> Result<Version, ExecError> {
    let out = Command::new(path)
        .args(["version", "-json"])
        .stdin(Stdio::null())
        .env("CHECKPOINT_DISABLE", "1")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(60), out).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ExecError::NotFound { path: path.to_owned() })
        }
        Ok(Err(source)) => return Err(ExecError::Spawn { path: path.to_owned(), source }),
        Err(_) => {
            return Err(ExecError::BadVersion {
                path: path.to_owned(),
                detail: "no answer in 60s".into(),
            })
        }
    };
    let bad = |detail: String| ExecError::BadVersion { path: path.to_owned(), detail };
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| bad(e.to_string()))?;
    let found: Version = v["terraform_version"]
        .as_str()
        .ok_or_else(|| bad("no terraform_version".into()))?
        .parse()
        .map_err(bad)?;
    if found < (Version { major: 1, minor: 1, patch: 0 }) {
        return Err(ExecError::TooOld { path: path.to_owned(), found });
    }
    Ok(found)
}

/// Process groups of running terraforms, so an immediate exit can still
/// take them down (`process::exit` runs no destructors).
static GROUPS: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn groups() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    GROUPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGKILLs every terraform process group this process started and that is
/// still running. For a daemon that must exit at once.
pub fn kill_all() -> usize {
    let all = groups();
    for pgid in all.iter() {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    all.len()
}

/// A spawned terraform and its process group.
pub struct TerraformProcess {
    child: Child,
    pgid: Pid,
}

impl Drop for TerraformProcess {
    fn drop(&mut self) {
        // Whatever is left of the group (the process or its children) dies now.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        groups().remove(&self.pgid.as_raw());
    }
}

/// What to run.
pub struct Invocation<'a> {
    pub path: &'a Path,
    pub args: &'a [String],
    pub dir: &'a Path,
    pub env: &'a [(String, String)],
}

impl TerraformProcess {
    /// Starts terraform in its own process group with exactly `env`.
    pub fn spawn(
        inv: &Invocation<'_>,
        lines: mpsc::Sender<(Stream, String)>,
    ) -> Result<Self, ExecError> {
        let mut cmd = Command::new(inv.path);
        cmd.args(inv.args)
            .current_dir(inv.dir)
            .env_clear()
            .envs(inv.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ExecError::NotFound { path: inv.path.to_owned() },
            _ => ExecError::Spawn { path: inv.path.to_owned(), source },
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        if let Some(out) = child.stdout.take() {
            grow_pipe(&out);
            tokio::spawn(pump(out, Stream::Stdout, lines.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(err, Stream::Stderr, lines));
        }
        groups().insert(pid);
        Ok(Self { child, pgid: Pid::from_raw(pid) })
    }

    /// Waits for the process; on cancel sends SIGINT to the group, then
    /// SIGKILL after `grace`. The group is killed once the process exits.
    pub async fn wait(
        mut self,
        cancel: &CancellationToken,
        grace: Duration,
    ) -> Result<Exit, ExecError> {
        let status = tokio::select! {
            status = self.child.wait() => status.map_err(ExecError::Wait)?,
            _ = cancel.cancelled() => {
                tracing::info!(pgid = %self.pgid, "interrupting terraform");
                let _ = killpg(self.pgid, Signal::SIGINT);
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(status) => {
                        status.map_err(ExecError::Wait)?;
                        return Ok(Exit::Canceled { graceful: true });
                    }
                    Err(_) => {
                        tracing::warn!(pgid = %self.pgid, ?grace, "terraform ignored SIGINT; killing its process group");
                        let _ = killpg(self.pgid, Signal::SIGKILL);
                        self.child.wait().await.map_err(ExecError::Wait)?;
                        return Ok(Exit::Canceled { graceful: false });
                    }
                }
            }
        };
        use std::os::unix::process::ExitStatusExt;
        Ok(match (status.code(), status.signal()) {
            (Some(0), _) => Exit::Success,
            (Some(code), _) => Exit::Failed(code),
            (None, Some(signal)) => Exit::Signaled(signal),
            (None, None) => Exit::Failed(-1),
        })
    }
}

/// Widens terraform's output pipe from 64 KiB to 1 MiB (the unprivileged
/// maximum by default), so a chatty terraform keeps running through short
/// stalls of the reader instead of blocking on a full pipe. Best effort.
fn grow_pipe(fd: &impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
}

/// Forwards lines until the pipe closes or the receiver goes away.
async fn pump(
    reader: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::Sender<(Stream, String)>,
) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.ends_with(b"\n") {
                    buf.pop();
                }
                buf.truncate(MAX_LINE);
                let line = String::from_utf8_lossy(&buf).into_owned();
                if lines.send((stream, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_variables_are_filtered() {
        assert!(is_private("PROVISIONERD_PSK"));
        assert!(is_private("CODER_AGENT_TOKEN"));
        assert!(is_private("PGPASSWORD") && is_private("DATABASE_URL"));
        assert!(!is_private("AWS_SESSION_TOKEN"), "provider credentials pass through");
        assert!(!is_private("PATH"));
    }

    #[test]
    fn versions_compare() {
        assert_eq!("1.15.5".parse::<Version>(), Ok(Version { major: 1, minor: 15, patch: 5 }));
        assert_eq!("1.1.0-beta1".parse::<Version>(), Ok(Version { major: 1, minor: 1, patch: 0 }));
        assert!("1.0.11".parse::<Version>().expect("v") < Version { major: 1, minor: 1, patch: 0 });
    }

    #[tokio::test]
    async fn missing_terraform_says_what_to_do() {
        let err = version(Path::new("/nonexistent/terraform")).await.expect_err("missing");
        assert!(err.to_string().contains("--terraform-path"), "{err}");
    }

    /// Processes of the group that are not zombies, from /proc.
    fn live_members(pgid: Pid) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // Fields after the command name: state, ppid, pgrp, ...
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                let mut fields = rest.split_whitespace();
                let state = fields.next();
                let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
                pgrp == Some(pgid.as_raw()) && state != Some("Z")
            })
            .count()
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("dir");
        let marker = dir.path().join("pid");
        // A shell that ignores SIGINT and leaves a background grandchild.
        let script = format!(
            "trap '' INT; (sleep 300 & echo $! > {}); echo ready; sleep 300",
            marker.display()
        );
        let args = vec!["-c".to_owned(), script];
        let inv = Invocation { path: Path::new("/bin/sh"), args: &args, dir: dir.path(), env: &[] };
        let (tx, mut rx) = mpsc::channel(16);
        let proc = TerraformProcess::spawn(&inv, tx).expect("spawn");
        let pgid = proc.pgid;
        assert_eq!(rx.recv().await.map(|l| l.1), Some("ready".to_owned()));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let exit = proc.wait(&cancel, Duration::from_millis(200)).await.expect("wait");
        assert_eq!(exit, Exit::Canceled { graceful: false });
        // After the handle is gone, nothing of the group is left alive
        // (killed members may linger as zombies until init reaps them).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let gone = loop {
            if live_members(pgid) == 0 {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(gone, "process group {pgid} still has members");
    }
}
