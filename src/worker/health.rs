//! What the daemon knows about its own health, as plain atomics the
//! connection manager updates and anyone may read: when it last heard from
//! the server, whether a session is open (and with which of its servers),
//! whether it is draining. Serving
//! it over HTTP is `crate::probes`' job; the worker does not know HTTP.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
struct Inner {
    /// Milliseconds since the epoch of the last message from the server.
    last_contact_ms: AtomicU64,
    connected: AtomicBool,
    /// The URL of the server of the open session, or of the last one.
    server: Mutex<String>,
    draining: AtomicBool,
    /// Log lines waiting for the server's acknowledgement.
    buffered_lines: AtomicU64,
    /// Jobs running now.
    running_jobs: AtomicU64,
}

impl Drop for Inner {
    /// A daemon that is gone takes its share out of the process's gauges.
    fn drop(&mut self) {
        let m = crate::metrics::get();
        m.daemon_buffered_log_lines.dec_by(*self.buffered_lines.get_mut() as i64);
        m.daemon_running_jobs.dec_by(*self.running_jobs.get_mut() as i64);
    }
}

/// A cheap, cloneable view of the daemon's health.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Inner>);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Health {
    pub fn contact(&self) {
        self.0.last_contact_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn set_connected(&self, connected: bool) {
        self.0.connected.store(connected, Ordering::Relaxed);
        if connected {
            self.contact();
        }
    }

    /// The server the daemon connected to (of several, the one it uses).
    pub fn set_server(&self, url: &str) {
        if let Ok(mut server) = self.0.server.lock() {
            url.clone_into(&mut server);
        }
    }

    /// The server the daemon is connected to; `None` while it is not.
    pub fn server(&self) -> Option<String> {
        if !self.0.connected.load(Ordering::Relaxed) {
            return None;
        }
        self.0.server.lock().ok().map(|s| s.clone())
    }

    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::Relaxed);
    }

    pub fn set_buffered_lines(&self, n: usize) {
        let old = self.0.buffered_lines.swap(n as u64, Ordering::Relaxed);
        // The gauge sums every daemon of the process (a server runs several
        // built-in ones): each adds its change.
        crate::metrics::get().daemon_buffered_log_lines.inc_by(n as i64 - old as i64);
    }

    /// The number of jobs this daemon runs now.
    pub fn set_running_jobs(&self, n: usize) {
        let old = self.0.running_jobs.swap(n as u64, Ordering::Relaxed);
        crate::metrics::get().daemon_running_jobs.inc_by(n as i64 - old as i64);
    }

    pub fn buffered_lines(&self) -> u64 {
        self.0.buffered_lines.load(Ordering::Relaxed)
    }

    /// Time since the server was last heard from; `None` if never.
    pub fn silence(&self) -> Option<Duration> {
        match self.0.last_contact_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// Alive: heard from the server within `timeout`.
    pub fn healthy(&self, timeout: Duration) -> bool {
        self.silence().is_some_and(|s| s <= timeout)
    }

    /// Ready for work: connected and not draining.
    pub fn ready(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed) && !self.0.draining.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let h = Health::default();
        assert!(!h.healthy(Duration::from_secs(30)) && !h.ready(), "never connected");
        h.set_server("http://server-1:3000");
        h.set_connected(true);
        assert!(h.healthy(Duration::from_secs(30)) && h.ready());
        assert_eq!(h.server().as_deref(), Some("http://server-1:3000"));
        h.set_draining();
        assert!(h.healthy(Duration::from_secs(30)) && !h.ready());
        h.set_connected(false);
        assert!(h.healthy(Duration::from_secs(30)), "recent contact still counts");
        assert_eq!(h.server(), None, "not connected to any server");
    }
}
