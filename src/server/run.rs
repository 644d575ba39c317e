//! Starts the control plane on an already bound listener: the REST API and
//! the gRPC daemon service share one port (HTTP/1.1 and HTTP/2), and the
//! built-in daemons connect to it over loopback like any external daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::daemon_keys::{random_key, validate_psk, DaemonAuth};
use super::daemons::Registry;
use super::grpc::DaemonService;
use super::limits::Limits;
use super::{api, AppState, Events, ServerSettings};
use crate::store::DynStore;
use crate::worker::{self, WorkerSettings};

/// How long shutdown waits for open connections and built-in daemons.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Certificate and key (PEM files) for serving HTTPS and gRPC over TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the server needs besides its listener.
pub struct ServerConfig {
    pub store: DynStore,
    /// Pre-shared key for external daemons, if any.
    pub psk: Option<String>,
    pub builtin_daemons: u32,
    /// Template for the built-in daemons' settings (url and key are filled in).
    pub builtin: WorkerSettings,
    pub settings: ServerSettings,
    /// Serve TLS on the listener when set.
    pub tls: Option<TlsFiles>,
}

/// Serves until `shutdown` is cancelled, then stops the built-in daemons and
/// closes connections.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let keepalive = Keepalive {
        interval: config.settings.keepalive_interval,
        timeout: config.settings.keepalive_timeout,
    };
    // This process among the replicas on the store: its daemons' rows and
    // its events name it.
    let replica = uuid::Uuid::new_v4();
    // Stopped last, after the built-in daemons' final reports were published.
    let bus_stop = CancellationToken::new();
    let _bus_guard = bus_stop.clone().drop_guard();
    let events = match config.store.broadcast() {
        Some(channel) => Events::shared(channel, replica, bus_stop.clone()),
        None => Events::new(),
    };
    let daemons = Registry::new(config.store.clone(), replica);
    let state = AppState {
        store: config.store,
        events,
        limits: Arc::new(Limits::new(config.settings.login_limits)),
        settings: Arc::new(config.settings),
        daemons: daemons.clone(),
        closing: CancellationToken::new(),
    };
    if state.store.broadcast().is_none() {
        // One server per database without a broadcast channel (SQLite):
        // daemon rows an earlier process left are stale now, not in 30 s.
        if let Err(e) = state.store.expire_daemons(chrono::Utc::now()).await {
            tracing::warn!(error = %e, "could not clear the daemons of an earlier run");
        }
    }
    let registry = tokio::spawn(daemons.keep_fresh(bus_stop.clone()));
    if let Some(psk) = &config.psk {
        validate_psk(psk).map_err(anyhow::Error::msg)?;
    }
    let internal_key = random_key();
    let auth = DaemonAuth::new(&internal_key, config.psk.as_deref());
    let sessions = CancellationToken::new();
    let grpc = DaemonService::new(state.clone(), auth, sessions.clone()).into_server();
    // The daemon service is reached only by gRPC requests that match no API
    // route (`api::router` decides); everything else gets Coder's JSON errors.
    let app: Router =
        api::router(state.clone(), tonic::service::Routes::new(grpc).into_axum_router());

    // Stop accepting connections only after the built-in daemons are done,
    // so they can report their last jobs over their open sessions.
    let stop_serving = CancellationToken::new();
    let mut servers = vec![];
    let builtin_port = match &config.tls {
        None => {
            servers.push(serve_plain(listener, app.clone(), keepalive, stop_serving.clone())?);
            addr.port()
        }
        Some(tls) => {
            servers.push(
                serve_tls(listener, app.clone(), tls, keepalive, stop_serving.clone()).await?,
            );
            // Built-in daemons stay on loopback, in the clear, on a port of their own.
            let internal = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
            let port = internal.local_addr()?.port();
            servers.push(serve_plain(internal, app.clone(), keepalive, stop_serving.clone())?);
            port
        }
    };

    let daemons = TaskTracker::new();
    let daemon_drain = CancellationToken::new();
    let daemon_abort = CancellationToken::new();
    for i in 0..config.builtin_daemons {
        let mut settings = config.builtin.clone();
        settings.url = format!("http://127.0.0.1:{builtin_port}");
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
    let autobuild = tokio::spawn(super::autobuild::run(state.clone(), shutdown.clone()));
    let tls = config.tls.is_some();
    tracing::info!(%addr, tls, builtin_daemons = config.builtin_daemons, %replica, "provisionerd server listening");

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
    state.closing.cancel();
    stop_serving.cancel();
    let _ = reaper.await;
    let _ = autobuild.await;
    bus_stop.cancel();
    let _ = registry.await;
    for mut server in servers {
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(joined) => joined??,
            Err(_) => {
                tracing::warn!("connections still open after the shutdown grace; closing them");
                server.abort();
            }
        }
    }
    Ok(())
}

type Served = tokio::task::JoinHandle<std::io::Result<()>>;

/// HTTP/2 keepalive pings from the server: a daemon whose connection died
/// silently (a partition, a blackholing middlebox) is noticed within
/// `interval + timeout`, its connection closed and its session ended, so it
/// is no longer offered jobs. The daemon pings the server the same way.
#[derive(Debug, Clone, Copy)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
}

impl Keepalive {
    fn apply<A, Acc>(self, server: &mut axum_server::Server<A, Acc>)
    where
        A: axum_server::Address,
    {
        server
            .http_builder()
            .http2()
            .keep_alive_interval(self.interval)
            .keep_alive_timeout(self.timeout);
    }
}

/// Stops the server gracefully when `stop` fires, as the TLS one does.
fn shut_down_on(stop: CancellationToken, handle: axum_server::Handle<std::net::SocketAddr>) {
    tokio::spawn(async move {
        stop.cancelled().await;
        handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
}

/// TCP_NODELAY on every connection: the daemon protocol is many small
/// request/answer exchanges (offer, ack, log batch, log ack), and Nagle's
/// algorithm with delayed ACKs stalled each by about 40 ms (found by
/// `scripts/bench`).
fn serve_plain(
    listener: TcpListener,
    app: Router,
    keepalive: Keepalive,
    stop: CancellationToken,
) -> anyhow::Result<Served> {
    let handle = axum_server::Handle::new();
    let mut server = axum_server::from_tcp(listener.into_std()?)?
        .acceptor(axum_server::accept::NoDelayAcceptor::new())
        .handle(handle.clone());
    keepalive.apply(&mut server);
    shut_down_on(stop, handle);
    Ok(tokio::spawn(async move {
        server.serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    }))
}

/// HTTPS and gRPC over TLS (rustls with ring; ALPN h2 and http/1.1).
async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: &TlsFiles,
    keepalive: Keepalive,
    stop: CancellationToken,
) -> anyhow::Result<Served> {
    // Several servers in one process (tests) install it once; later calls
    // find it installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .with_context(|| {
            format!(
                "failed to load TLS certificate {} and key {}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    let handle = axum_server::Handle::new();
    let mut server = axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, config)?
        .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
        .handle(handle.clone());
    keepalive.apply(&mut server);
    shut_down_on(stop, handle);
    Ok(tokio::spawn(async move {
        server.serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    }))
}
