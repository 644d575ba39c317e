//! A TCP proxy between a daemon and the server, for network faults on
//! demand: pass bytes through, delay them, blackhole the link (hold every
//! byte and every close, forward nothing, keep the sockets open, as a
//! partition does), or kill every connection at once. The mode switches at
//! run time; a blackholed link that passes again delivers what it held, as
//! TCP would after a partition heals.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the proxy does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Each chunk waits this long before it is forwarded.
    Delay(Duration),
    /// Nothing is forwarded, no connection is closed, new connections are
    /// accepted but not connected through, until the mode changes.
    Blackhole,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Cancelled to drop every open connection; replaced by a fresh one.
    connections: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on a fresh loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Pass);
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (modes, conns, stopped) = (mode.clone(), connections.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = stopped.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let killed = conns.lock().expect("proxy lock").clone();
                let done = stopped.clone();
                let mode = modes.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = killed.cancelled() => {}
                        _ = done.cancelled() => {}
                        _ = connection(client, target, mode) => {}
                    }
                });
            }
        });
        Self { addr, mode, connections, stop }
    }

    /// The proxy's address as a daemon URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Drops every open connection (both sides see a reset or EOF); new
    /// connections are accepted as the mode says.
    pub fn kill(&self) {
        let mut current = self.connections.lock().expect("proxy lock");
        current.cancel();
        *current = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Waits until the link is not blackholed.
async fn passable(mode: &mut watch::Receiver<Mode>) {
    let _ = mode.wait_for(|m| *m != Mode::Blackhole).await;
}

async fn connection(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // A partition answers no new connection either.
    passable(&mut mode).await;
    let Ok(upstream) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    // Both directions to the end: a half-closed side is held like data.
    tokio::join!(
        pump(client_read, upstream_write, mode.clone()),
        pump(upstream_read, client_write, mode),
    );
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        // Held while blackholed, then delayed or passed on.
        passable(&mut mode).await;
        let current = *mode.borrow();
        if let Mode::Delay(d) = current {
            tokio::time::sleep(d).await;
        }
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
