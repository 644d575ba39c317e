//! systemd's readiness protocol: `READY=1` once the server listens or the
//! daemon is connected, `STOPPING=1` when shutdown begins, and `WATCHDOG=1`
//! at half the interval systemd asks for in `WATCHDOG_USEC`. Without
//! `NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every call
//! does nothing.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Sends states to systemd; a failure is logged, never fatal: the service
/// works the same, systemd just learns less.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// The service is up: systemd starts units ordered after it.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutdown has begun (draining may take up to the drain timeout).
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Pings systemd's watchdog at half its interval until `stop`, when
/// `WATCHDOG_USEC` asks for it. The pings come from the async runtime, so
/// a runtime that stops making progress stops them and systemd restarts
/// the service.
pub fn spawn_watchdog(stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    let every = (interval / 2).max(std::time::Duration::from_millis(10));
    tracing::info!(interval = ?interval, "pinging systemd's watchdog");
    tokio::spawn(async move {
        loop {
            send(&[NotifyState::Watchdog]);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}
