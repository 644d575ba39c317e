//! One handle owns one terraform process: its own process group, stdin
//! closed, stdout and stderr read in batches of lines into a channel (or
//! stdout captured whole, for `show -json` and `graph`, whose output is one
//! document and not log lines), SIGINT to the group on cancel and SIGKILL
//! after the grace period, and SIGKILL to the group when the handle goes
//! away, so no child (a local-exec's background job included) outlives the
//! job. A watchdog ([`super::watchdog`]) kills the group when the daemon
//! itself dies. No other code touches the child.

use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::provisioner::MAX_BATCH_LINES;

/// Longest line kept; longer ones are cut (a runaway line must not eat memory).
const MAX_LINE: usize = 64 * 1024;

/// Bytes asked of the pipe per read: more than one longest line.
const READ_CHUNK: usize = 2 * MAX_LINE;

/// While a pipe's reads come less than twice this apart (the process keeps
/// writing), it is read at most once per `READ_PACE`: the lines gather in
/// the pipe (1 MiB, see [`grow_pipe`]) and are taken in one read instead of
/// one read, one wake-up and one channel message each. A quiet process's
/// line is read at once.
const READ_PACE: Duration = Duration::from_millis(10);

/// Most stdout kept when it is captured whole. `terraform show -json` of a
/// plan holds the prior state, the planned values and every change's before
/// and after, so it runs to about four times the state: 512 MiB fits the
/// plan of a state of 100 MiB and still bounds a runaway process.
pub const MAX_CAPTURE: usize = 512 << 20;

/// Lines read from one of the process's pipes in one go (at most
/// [`MAX_BATCH_LINES`]; a read with more goes out as several batches).
pub type Lines = (Stream, Vec<String>);

/// A process's whole stdout, or why it could not be kept.
pub type Captured = Result<Vec<u8>, CaptureError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CaptureError {
    #[error("it printed more than {} MiB", MAX_CAPTURE >> 20)]
    TooLarge,
    #[error("reading its output failed: {0}")]
    Read(String),
}

/// What becomes of the process's stdout.
pub enum Stdout {
    /// Cut into lines and sent with stderr's on the lines channel.
    Lines,
    /// Kept whole, byte for byte, and handed over once the pipe closes.
    Capture(tokio::sync::oneshot::Sender<Captured>),
}

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
    /// Dropped when the process exits, so the readers stop pacing and read
    /// what is left at once.
    exited: Vec<std_mpsc::Sender<()>>,
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
    pub fn spawn(inv: &Invocation<'_>, lines: mpsc::Sender<Lines>) -> Result<Self, ExecError> {
        Self::spawn_with(inv, lines, Stdout::Lines)
    }

    /// Like [`Self::spawn`], with stdout handled as `stdout` says.
    pub fn spawn_with(
        inv: &Invocation<'_>,
        lines: mpsc::Sender<Lines>,
        stdout: Stdout,
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
        super::watchdog::install(&mut cmd)
            .map_err(|source| ExecError::Spawn { path: inv.path.to_owned(), source })?;
        let child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ExecError::NotFound { path: inv.path.to_owned() },
            _ => ExecError::Spawn { path: inv.path.to_owned(), source },
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        groups().insert(pid);
        let mut this = Self { child, pgid: Pid::from_raw(pid), exited: Vec::new() };
        let pipes = [
            (this.child.stdout.take().map(|p| p.into_owned_fd()), Stream::Stdout),
            (this.child.stderr.take().map(|p| p.into_owned_fd()), Stream::Stderr),
        ];
        let mut stdout = Some(stdout);
        for (pipe, stream) in pipes {
            let Some(pipe) = pipe else { continue };
            // On failure `this` goes away and takes the process group along.
            let pipe =
                pipe.map_err(|source| ExecError::Spawn { path: inv.path.to_owned(), source })?;
            if stream == Stream::Stdout {
                grow_pipe(&pipe);
                if let Some(Stdout::Capture(done)) = stdout.take() {
                    std::thread::Builder::new()
                        .name("terraform-capture".into())
                        .spawn(move || {
                            let _ = done.send(capture(pipe));
                        })
                        .map_err(|source| ExecError::Spawn { path: inv.path.to_owned(), source })?;
                    continue;
                }
            }
            let (exited, pacing) = std_mpsc::channel();
            this.exited.push(exited);
            let lines = lines.clone();
            std::thread::Builder::new()
                .name("terraform-output".into())
                .spawn(move || pump(pipe, stream, &lines, &pacing))
                .map_err(|source| ExecError::Spawn { path: inv.path.to_owned(), source })?;
        }
        Ok(this)
    }

    /// Waits for the process; on cancel sends SIGINT to the group, then
    /// SIGKILL after `grace`. The group is killed once the process exits.
    pub async fn wait(
        mut self,
        cancel: &CancellationToken,
        grace: Duration,
    ) -> Result<Exit, ExecError> {
        let status = tokio::select! {
            status = self.child.wait() => {
                self.exited.clear();
                status.map_err(ExecError::Wait)?
            }
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

/// Reads a pipe whole until it closes. Past [`MAX_CAPTURE`] it goes on
/// reading, so the process is not blocked on a full pipe, but keeps nothing.
fn capture(pipe: OwnedFd) -> Captured {
    let mut pipe = std::fs::File::from(pipe);
    let mut out = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut too_large = false;
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CaptureError::Read(e.to_string())),
        };
        if out.len() + n > MAX_CAPTURE {
            too_large = true;
            out = Vec::new();
        }
        if !too_large {
            out.extend_from_slice(&buf[..n]);
        }
    }
    if too_large {
        return Err(CaptureError::TooLarge);
    }
    Ok(out)
}

/// Reads a pipe until it closes (or nobody takes lines any more), on a
/// thread of its own: blocking reads cost a chatty process no wake-up per
/// write while the reader waits out [`READ_PACE`]. Lines go out as one batch
/// per read (of at most [`MAX_BATCH_LINES`]: a read of many short lines
/// makes several), without their newline, cut at [`MAX_LINE`] bytes.
fn pump(
    pipe: OwnedFd,
    stream: Stream,
    lines: &mpsc::Sender<Lines>,
    exited: &std_mpsc::Receiver<()>,
) {
    let mut pipe = std::fs::File::from(pipe);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut split = LineSplitter::default();
    let mut last_read: Option<Instant> = None;
    let mut pacing = true;
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut batch = split.push(&buf[..n]);
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(MAX_BATCH_LINES));
            if lines.blocking_send((stream, batch)).is_err() {
                return;
            }
            batch = rest;
        }
        // A full read means more is waiting: take it now. Otherwise, when
        // the previous read was recent, the process is chatty: let lines
        // gather, unless it has exited (then read the rest at once).
        let now = Instant::now();
        let chatty = last_read.is_some_and(|t| now.duration_since(t) < 2 * READ_PACE);
        last_read = Some(now);
        if pacing && chatty && n < buf.len() {
            pacing =
                matches!(exited.recv_timeout(READ_PACE), Err(std_mpsc::RecvTimeoutError::Timeout));
        }
    }
    if let Some(last) = split.finish() {
        let _ = lines.blocking_send((stream, vec![last]));
    }
}

/// Cuts a byte stream into lines, each at most [`MAX_LINE`] bytes (the rest
/// of a longer line is dropped), invalid UTF-8 replaced.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
    /// The current line was already cut and sent.
    cut: bool,
}

impl LineSplitter {
    /// The lines `bytes` completes.
    fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = (&bytes[..end], &bytes[end + 1..]);
            bytes = rest;
            if std::mem::take(&mut self.cut) {
                continue;
            }
            if self.partial.is_empty() {
                out.push(text(&line[..line.len().min(MAX_LINE)]));
            } else {
                self.keep(line);
                out.push(text(&self.partial));
                self.partial.clear();
            }
        }
        if !self.cut {
            self.keep(bytes);
            if self.partial.len() >= MAX_LINE {
                out.push(text(&self.partial));
                self.partial.clear();
                self.cut = true;
            }
        }
        out
    }

    /// What is left after the last newline, if anything.
    fn finish(self) -> Option<String> {
        (!self.partial.is_empty()).then(|| text(&self.partial))
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

    #[test]
    fn lines_are_split_across_reads_and_cut_at_the_limit() {
        let mut split = LineSplitter::default();
        assert_eq!(split.push(b"one\ntw"), ["one"]);
        assert_eq!(split.push(b"o\n\nthr"), ["two", ""]);
        assert_eq!(split.push(b"ee\xff\nfour"), ["three\u{fffd}"]);
        assert_eq!(split.finish().as_deref(), Some("four"));

        // A runaway line is sent once, cut, whether it comes in one read or
        // in many; the line after it is whole.
        let long = vec![b'x'; MAX_LINE + 10];
        let mut split = LineSplitter::default();
        let mut got = split.push(&long[..100]);
        for piece in long[100..].chunks(MAX_LINE / 3) {
            got.extend(split.push(piece));
        }
        got.extend(split.push(b"\nnext\n"));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE);
        assert_eq!(got[1], "next");
        let mut whole = long.clone();
        whole.extend_from_slice(b"\nnext\n");
        let got = LineSplitter::default().push(&whole);
        assert_eq!(got.iter().map(String::len).collect::<Vec<_>>(), [MAX_LINE, 4]);
        assert_eq!(LineSplitter::default().finish(), None);
    }

    #[tokio::test]
    async fn a_chatty_process_is_read_in_batches_and_nothing_is_lost() {
        let dir = tempfile::tempdir().expect("dir");
        // One write per line (the shell's echo does not buffer).
        let script = "i=1; while [ $i -le 5000 ]; do echo $i; i=$((i+1)); done; printf tail";
        let args = vec!["-c".to_owned(), script.to_owned()];
        let inv = Invocation { path: Path::new("/bin/sh"), args: &args, dir: dir.path(), env: &[] };
        let (tx, mut rx) = mpsc::channel(16);
        let proc = TerraformProcess::spawn(&inv, tx).expect("spawn");
        let read = async {
            let (mut lines, mut batches) = (Vec::new(), 0);
            while let Some((stream, batch)) = rx.recv().await {
                assert_eq!(stream, Stream::Stdout);
                assert!(!batch.is_empty() && batch.len() <= MAX_BATCH_LINES, "{}", batch.len());
                lines.extend(batch);
                batches += 1;
            }
            (lines, batches)
        };
        let cancel = CancellationToken::new();
        let (exit, (lines, batches)) =
            tokio::join!(proc.wait(&cancel, Duration::from_secs(1)), read);
        assert_eq!(exit.expect("wait"), Exit::Success);
        let want: Vec<String> =
            (1..=5000).map(|i| i.to_string()).chain(["tail".to_owned()]).collect();
        assert_eq!(lines, want);
        assert!(batches < 5000 / 10, "{batches} batches for 5001 lines");
    }

    #[tokio::test]
    async fn captured_stdout_is_kept_whole_past_the_line_limit() {
        let dir = tempfile::tempdir().expect("dir");
        // One line of 5 MiB, as `show -json` prints, then a tail without a
        // newline; stderr still comes as lines.
        let script = "head -c 5242880 /dev/zero | tr '\\0' x; echo; printf 'a\\tb'; echo oops >&2";
        let args = vec!["-c".to_owned(), script.to_owned()];
        let inv = Invocation { path: Path::new("/bin/sh"), args: &args, dir: dir.path(), env: &[] };
        let (tx, mut rx) = mpsc::channel(16);
        let (done, captured) = tokio::sync::oneshot::channel();
        let proc = TerraformProcess::spawn_with(&inv, tx, Stdout::Capture(done)).expect("spawn");
        let exit = proc.wait(&CancellationToken::new(), Duration::from_secs(1)).await;
        assert_eq!(exit.expect("wait"), Exit::Success);
        let out = captured.await.expect("sent").expect("captured");
        assert_eq!(out.len(), (5 << 20) + 1 + 3);
        assert!(out[..5 << 20].iter().all(|b| *b == b'x'));
        assert_eq!(&out[5 << 20..], b"\na\tb");
        assert_eq!(rx.recv().await, Some((Stream::Stderr, vec!["oops".to_owned()])));
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
        assert_eq!(rx.recv().await.map(|l| l.1), Some(vec!["ready".to_owned()]));
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
