//! The control plane: REST API, gRPC daemon service, and the built-in daemons,
//! all over one [`crate::store::Store`].
//!
//! The server does not know terraform; it hands jobs to daemons and records
//! what they report.

use std::sync::Arc;

use crate::store::DynStore;

/// Who may do what; it lives with the use cases that ask it.
pub use crate::app::access;
pub mod api;
pub mod autobuild;
pub mod background;
pub mod daemon_keys;
pub mod daemons;
pub mod events;
pub mod grpc;
pub mod limits;
mod offer;
mod reaper;
mod run;

pub use events::{Event, Events, LogBatch, StoredLogs};
pub use run::{run, ServerConfig, TlsFiles};

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub events: Events,
    pub settings: Arc<ServerSettings>,
    /// Daemons connected to any server process on this store.
    pub daemons: daemons::Registry,
    /// Failed-login limiter and the log followers' store read permits.
    pub limits: Arc<limits::Limits>,
    /// Cancelled when the server stops serving: long-lived streams (watch)
    /// end so connections can close.
    pub closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// The use cases over this server's store and event bus.
    pub fn app(&self) -> crate::app::App<'_> {
        crate::app::App::new(self.store.as_ref(), &self.events)
    }
}

/// Server behaviour the handlers and the daemon service need to know about.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long a session token stays valid.
    pub session_lifetime: chrono::Duration,
    /// How often daemons send heartbeats for their running jobs.
    pub heartbeat_interval: std::time::Duration,
    /// A running job whose daemon was silent this long is failed.
    pub heartbeat_timeout: std::time::Duration,
    /// A job no daemon took within this long is failed.
    pub pending_timeout: std::time::Duration,
    /// An offer the daemon has not acknowledged within this long goes back
    /// to the queue for another daemon.
    pub offer_ack_timeout: std::time::Duration,
    /// How often the server pings each HTTP/2 connection (daemon sessions),
    /// and how long it waits for the answer before closing the connection:
    /// a silently dead daemon connection ends its session within the sum.
    pub keepalive_interval: std::time::Duration,
    pub keepalive_timeout: std::time::Duration,
    /// A WebSocket log follower whose socket takes no page of lines for this
    /// long is closed with a close frame telling it to resume with `after`.
    pub follow_stall_timeout: std::time::Duration,
    /// Failed logins allowed per account and per source address.
    pub login_limits: limits::LoginLimits,
    /// How often the scheduler looks for autostarts and autostops due.
    pub autobuild_poll_interval: std::time::Duration,
    /// The scheduler's clock (tests move it ahead).
    pub clock: autobuild::Clock,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            session_lifetime: chrono::Duration::hours(24),
            heartbeat_interval: std::time::Duration::from_secs(5),
            heartbeat_timeout: std::time::Duration::from_secs(30),
            pending_timeout: std::time::Duration::from_secs(30 * 60),
            offer_ack_timeout: std::time::Duration::from_secs(10),
            keepalive_interval: std::time::Duration::from_secs(5),
            keepalive_timeout: std::time::Duration::from_secs(5),
            follow_stall_timeout: std::time::Duration::from_secs(10),
            login_limits: limits::LoginLimits::default(),
            autobuild_poll_interval: std::time::Duration::from_secs(60),
            clock: autobuild::Clock::system(),
        }
    }
}
