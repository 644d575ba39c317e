//! systemd's notify protocol against the real binary: a unix datagram
//! socket stands in for systemd's `NOTIFY_SOCKET`; the server says
//! `READY=1` once it listens, the daemon once it is connected, both ping
//! `WATCHDOG=1` when `WATCHDOG_USEC` is set and say `STOPPING=1` on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixDatagram;

use crate::harness::*;

/// systemd's side: a bound datagram socket in a temp dir.
struct Systemd {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    seen: Vec<String>,
}

impl Systemd {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self { socket, path, _dir: dir, seen: Vec::new() }
    }

    /// Waits for a datagram with the line `want`; keeps all it read.
    async fn expect(&mut self, want: &str) {
        self.expect_n(want, 1).await;
    }

    fn count(&self, want: &str) -> usize {
        self.seen.iter().filter(|m| m.lines().any(|l| l == want)).count()
    }

    /// Waits until `n` datagrams had the line `want`.
    async fn expect_n(&mut self, want: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut buf = vec![0u8; 4096];
        while self.count(want) < n {
            let got = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {n} x {want} within 30s; got {:?}", self.seen))
                .expect("recv");
            self.seen.push(String::from_utf8_lossy(&buf[..got]).into_owned());
        }
    }
}

fn terminate(child: &tokio::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_notifies_ready_watchdog_and_stopping() {
    let mut systemd = Systemd::new();
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .args(["server", "--address", "127.0.0.1:0", "--builtin-daemons", "0"])
        .arg("--data-dir")
        .arg(data.path())
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    systemd.expect("READY=1").await;
    // Three pings prove it keeps pinging, not just once at start.
    systemd.expect_n("WATCHDOG=1", 3).await;
    terminate(&child);
    systemd.expect("STOPPING=1").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("server exits")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_is_ready_only_once_connected() {
    let mut systemd = Systemd::new();
    let psk = format!("notify-test-{}", uuid::Uuid::new_v4().simple());
    // A port nothing listens on yet: the daemon retries and is not ready.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .args(["start", "--url", &format!("http://{address}")])
        .arg("--terraform-path")
        .arg(terraform())
        .arg("--work-dir")
        .arg(dir.path())
        .env("PROVISIONERD_PSK", &psk)
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn daemon");
    systemd.expect("WATCHDOG=1").await;
    assert!(
        !systemd.seen.iter().any(|m| m.contains("READY=1")),
        "ready before any server answered: {:?}",
        systemd.seen
    );
    let server = TestServer::start(Opts {
        builtin_daemons: 0,
        psk: Some(psk),
        address: Some(address),
        ..Opts::default()
    })
    .await;
    systemd.expect("READY=1").await;
    terminate(&child);
    systemd.expect("STOPPING=1").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("daemon exits")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    drop(server);
}
