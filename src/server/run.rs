//! Starts the control plane on an already bound listener: the REST API and
//! the gRPC daemon service share one port (HTTP/1.1 and HTTP/2), and the
//! built-in daemons connect to it over loopback like any external daemon.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::{random_key, DaemonAuth};
use super::grpc::DaemonService;
use super::{api, AppState, Events, ServerSettings};
use crate::store::DynStore;
use crate::worker::{self, WorkerSettings};

/// How long shutdown waits for open connections and built-in daemons.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the server needs besides its listener.
pub struct ServerConfig {
    pub store: DynStore,
    /// Pre-shared key for external daemons, if any.
    pub psk: Option<String>,
    pub builtin_daemons: u32,
    /// Template for the built-in daemons' settings (url and key are filled in).
    pub builtin: WorkerSettings,
    pub settings: ServerSettings,
}

/// Serves until `shutdown` is cancelled, then stops the built-in daemons and
/// closes connections.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let state = AppState {
        store: config.store,
        events: Events::new(),
        settings: Arc::new(config.settings),
        daemons: Default::default(),
    };
    let internal_key = random_key();
    let keys = std::iter::once(internal_key.as_str()).chain(config.psk.as_deref());
    let auth = DaemonAuth::new(keys);
    let sessions = CancellationToken::new();
    let grpc = DaemonService::new(state.clone(), auth, sessions.clone()).into_server();
    let app =
        api::router(state.clone()).merge(tonic::service::Routes::new(grpc).into_axum_router());

    let daemons = TaskTracker::new();
    let daemon_drain = CancellationToken::new();
    let daemon_abort = CancellationToken::new();
    for i in 0..config.builtin_daemons {
        let mut settings = config.builtin.clone();
        settings.url = format!("http://127.0.0.1:{}", addr.port());
        settings.credentials.psk = Some(internal_key.clone());
        settings.name = format!("{}-builtin-{i}", settings.name);
        let stop = worker::Shutdown { drain: daemon_drain.clone(), abort: daemon_abort.clone() };
        daemons.spawn(async move {
            if let Err(e) = worker::run(settings, stop).await {
                tracing::error!(error = %e, "built-in daemon stopped");
            }
        });
    }
    daemons.close();
    let reaper = tokio::spawn(super::reaper::run(state.clone(), shutdown.clone()));
    tracing::info!(%addr, builtin_daemons = config.builtin_daemons, "provisionerd server listening");

    // Stop accepting connections only after the built-in daemons are done,
    // so they can report their last jobs over their open sessions.
    let stop_serving = CancellationToken::new();
    let serve_stop = stop_serving.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { serve_stop.cancelled().await });
    let server = tokio::spawn(async move { server.await });

    shutdown.cancelled().await;
    daemon_drain.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, daemons.wait()).await.is_err() {
        tracing::warn!(
            "built-in daemons still busy after the shutdown grace; canceling their jobs"
        );
        daemon_abort.cancel();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, daemons.wait()).await;
    }
    sessions.cancel();
    stop_serving.cancel();
    let _ = reaper.await;
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("connections still open after the shutdown grace; closing them"),
    }
    Ok(())
}
