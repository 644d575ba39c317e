//! The watchdog between the daemon and each terraform it runs, so that no
//! process of a job outlives the daemon, even one killed with SIGKILL.
//!
//! `PR_SET_PDEATHSIG` alone is not enough: it reaches terraform but not the
//! `sh -c` and `sleep` its provisioners start, and it fires when the spawning
//! *thread* ends, not the process. Instead the spawned child (the leader of
//! the job's process group) forks once more: the grandchild goes on to exec
//! terraform, and the child stays behind as a watchdog that
//!
//! - holds the read end of a pipe whose only write end lives in the daemon
//!   (close-on-exec, and closed in every watchdog), so the pipe reads end of
//!   file exactly when the daemon process is gone, however it died; then the
//!   watchdog SIGKILLs its whole process group: terraform, providers and
//!   every provisioner child that stayed in the group;
//! - waits for terraform and exits the way it did (same code, same signal),
//!   so the daemon sees terraform's exit status as before;
//! - ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT, which the daemon (cancel)
//!   or an operator send to the group for terraform; SIGKILL to the group
//!   still takes it down with everything else.
//!
//! Between `fork` and `exec`, in a copy of a multi-threaded process, the
//! watchdog only makes raw system calls (no allocation, no locks), and it
//! closes every inherited descriptor but its pipe, so it holds no socket,
//! database or output pipe of the daemon. It then execs the provisionerd
//! binary (`main` calls [`use_exe`] and, first thing, [`run_if_asked`]),
//! keeping its pipe on fd 3 and terraform as its child, so it does not keep
//! a copy-on-write snapshot of the daemon's memory (measured: up to the
//! daemon's whole heap, 90 MiB while a 20 MiB state went through) for as
//! long as terraform runs. Where no provisionerd binary is known (a daemon
//! inside a test binary) it watches in the forked copy instead.
//!
//! A process that leaves the group on purpose (`setsid`, `setpgid`) is out
//! of reach; running the units with a cgroup (systemd) covers that case.
//!
//! This is the one module allowed `unsafe` (Cargo.toml denies it elsewhere).

#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// The argument that makes the provisionerd binary a watchdog.
const ARG: &str = "__provisionerd-watchdog";

/// Where the exec'd watchdog finds the death pipe.
const PIPE_FD: RawFd = 3;

/// The provisionerd binary and the argument vectors to exec it as a
/// watchdog, built before any fork (nothing may allocate after it).
struct Exe {
    path: CString,
    _arg: CString,
    argv: [*const libc::c_char; 3],
    envp: [*const libc::c_char; 1],
}

// SAFETY: the pointers point into the CStrings' heap buffers, which the
// struct owns and never changes; they are only read, by `execve`.
unsafe impl Send for Exe {}
unsafe impl Sync for Exe {}

static EXE: OnceLock<Exe> = OnceLock::new();

/// Makes watchdogs exec `path` (the running provisionerd binary) instead of
/// staying a copy of the daemon. Called once by `main`.
pub fn use_exe(path: &Path) {
    let (Ok(path), Ok(arg)) = (CString::new(path.as_os_str().as_bytes()), CString::new(ARG)) else {
        return;
    };
    let argv = [path.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let _ = EXE.set(Exe { argv, envp: [std::ptr::null()], path, _arg: arg });
}

/// When this process was exec'd as a watchdog, watches and never returns.
/// `main` calls it before anything else (threads, runtime, arguments).
pub fn run_if_asked() {
    if std::env::args_os().nth(1).as_deref() != Some(OsStr::new(ARG)) {
        return;
    }
    // SAFETY: single-threaded here; raw system calls only.
    unsafe {
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &chld, std::ptr::null_mut());
        set_handler(libc::SIGCHLD, on_sigchld as extern "C" fn(libc::c_int) as libc::sighandler_t);
        // Terraform, forked before the exec, is this process's only child.
        wait_loop(-1, PIPE_FD)
    }
}

/// The daemon's ends of the death pipe: (read, write), both close-on-exec.
static DEATH_PIPE: OnceLock<Result<(OwnedFd, OwnedFd), i32>> = OnceLock::new();

fn death_pipe() -> io::Result<(RawFd, RawFd)> {
    let pipe = DEATH_PIPE
        .get_or_init(|| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e as i32));
    match pipe {
        Ok((r, w)) => Ok((r.as_raw_fd(), w.as_raw_fd())),
        Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
    }
}

/// Makes `cmd`'s child a watchdog that runs the real program as its child
/// (see the module doc). `cmd` must not set its own `pre_exec`.
pub fn install(cmd: &mut tokio::process::Command) -> io::Result<()> {
    let (read, write) = death_pipe()?;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (see `split`).
    unsafe {
        cmd.pre_exec(move || split(read, write));
    }
    Ok(())
}

extern "C" fn on_sigchld(_: libc::c_int) {}

/// Runs in the forked child. Returns in the grandchild, which then execs
/// the program; never returns in the child, which becomes the watchdog.
///
/// SAFETY (for callers): only between fork and exec.
unsafe fn split(read: RawFd, write: RawFd) -> io::Result<()> {
    // Lead a process group of our own whatever order std applies
    // `process_group` in; terraform and its children inherit it.
    if libc::setpgid(0, 0) != 0 {
        return Err(io::Error::last_os_error());
    }
    // SIGCHLD gets a handler (an ignored signal would be dropped) and stays
    // blocked except inside `ppoll`, so an exit between `waitpid` and
    // `ppoll` is not missed.
    let mut chld: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut chld);
    libc::sigaddset(&mut chld, libc::SIGCHLD);
    let mut old: libc::sigset_t = std::mem::zeroed();
    libc::sigprocmask(libc::SIG_BLOCK, &chld, &mut old);
    set_handler(libc::SIGCHLD, on_sigchld as extern "C" fn(libc::c_int) as libc::sighandler_t);
    let child = libc::fork();
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // The program: signals as the daemon's child would have them; exec
        // resets handlers, not the mask.
        set_handler(libc::SIGCHLD, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        // Should the watchdog itself be killed alone, terraform goes too.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        return Ok(());
    }
    watch(child, read, write)
}

unsafe fn set_handler(signal: libc::c_int, handler: libc::sighandler_t) {
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = handler;
    libc::sigemptyset(&mut action.sa_mask);
    libc::sigaction(signal, &action, std::ptr::null_mut());
}

/// The watchdog's life: wait for the program or for the daemon's death,
/// in a fresh provisionerd image if one is known, else in this copy.
unsafe fn watch(child: libc::pid_t, read: RawFd, write: RawFd) -> ! {
    // Ignored signals stay ignored across exec; SIGCHLD stays blocked.
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
        set_handler(signal, libc::SIG_IGN);
    }
    libc::close(write);
    if let Some(exe) = EXE.get() {
        // dup2 onto itself would keep close-on-exec: clear it by hand then.
        let moved = if read == PIPE_FD {
            libc::fcntl(PIPE_FD, libc::F_SETFD, 0) == 0
        } else {
            libc::dup2(read, PIPE_FD) == PIPE_FD
        };
        if moved {
            close_all_but(PIPE_FD);
            libc::execve(exe.path.as_ptr(), exe.argv.as_ptr(), exe.envp.as_ptr());
            // The binary is gone (replaced by an upgrade?): watch from here.
            wait_loop(child, PIPE_FD)
        }
    }
    close_all_but(read);
    wait_loop(child, read)
}

/// Waits for `child` (or any child for -1) to exit and exits the same way,
/// or for `read` to report the daemon's death and kills the group.
/// SIGCHLD must be blocked and have a handler.
unsafe fn wait_loop(child: libc::pid_t, read: RawFd) -> ! {
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    loop {
        let mut status = 0;
        match libc::waitpid(child, &mut status, libc::WNOHANG) {
            0 => {}
            pid if pid > 0 => exit_like(status),
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) => {
                libc::_exit(127)
            }
            _ => {}
        }
        let mut fds = libc::pollfd { fd: read, events: libc::POLLIN, revents: 0 };
        // Returns on SIGCHLD (EINTR) or when the pipe reads end of file:
        // nobody ever writes to it, so any event means the daemon is gone.
        if libc::ppoll(&mut fds, 1, std::ptr::null(), &empty) > 0 {
            libc::kill(0, libc::SIGKILL);
            libc::_exit(137);
        }
    }
}

/// Closes every descriptor but `keep`: the output pipes (so terraform's
/// readers see end of file when it is done), the daemon's sockets and files,
/// and std's exec-error pipe (its parent waits for that to close).
unsafe fn close_all_but(keep: RawFd) {
    let keep = keep as libc::c_uint;
    let ranges = [(0, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)];
    for (first, last) in ranges {
        if first > last || (first == 0 && keep == 0) {
            continue;
        }
        if libc::syscall(libc::SYS_close_range, first, last, 0) != 0 {
            // Kernels before 5.9: close one by one up to the limit.
            let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(0, 1 << 16) as libc::c_uint;
            for fd in first..=last.min(max) {
                libc::close(fd as RawFd);
            }
        }
    }
}

/// Exits as the program did: its exit code, or its signal.
unsafe fn exit_like(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        set_handler(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    fn sh(script: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(script).stdin(Stdio::null()).kill_on_drop(true);
        install(&mut cmd).expect("install");
        cmd
    }

    #[tokio::test]
    async fn the_program_runs_under_the_watchdog_and_its_exit_is_passed_on() {
        let out = sh("echo $PPID $$; exit 7").stdout(Stdio::piped()).output().await.expect("run");
        assert_eq!(out.status.code(), Some(7));
        let text = String::from_utf8_lossy(&out.stdout);
        let (parent, _) = text.trim().split_once(' ').expect("two pids");
        assert_ne!(parent, std::process::id().to_string(), "a watchdog stands in between");

        let status = sh("kill -TERM $$").status().await.expect("run");
        assert_eq!(status.signal(), Some(libc::SIGTERM), "the signal is passed on");
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_by_spawn() {
        let mut cmd = tokio::process::Command::new("/nonexistent/terraform");
        install(&mut cmd).expect("install");
        let err = cmd.spawn().expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn sigint_to_the_group_reaches_the_program_not_the_watchdog() {
        let mut cmd = sh("trap 'exit 3' INT; echo ready; while :; do sleep 0.05; done");
        let mut child = cmd.stdout(Stdio::piped()).process_group(0).spawn().expect("spawn");
        let pid = child.id().expect("pid") as i32;
        let mut out = child.stdout.take().expect("stdout");
        let mut buf = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf).await.expect("ready");
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGINT)
            .expect("killpg");
        assert_eq!(child.wait().await.expect("wait").code(), Some(3));
    }
}
