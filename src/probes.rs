//! The daemon's health probes over HTTP: `GET /healthz` answers 200 while
//! the daemon has heard from its server within the timeout (503 after), and
//! `GET /readyz` answers 200 while it is connected (to any of its servers,
//! named in the body) and taking work. Meant for Kubernetes probes and load
//! checks on a local address. What they report is kept by `worker::health`,
//! which knows no HTTP. `GET /metrics` serves the process's Prometheus
//! metrics (`crate::metrics`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::worker::health::Health;

#[derive(Clone)]
struct Probe {
    health: Health,
    timeout: Duration,
}

async fn healthz(State(p): State<Probe>) -> (StatusCode, String) {
    let buffered = p.health.buffered_lines();
    match p.health.silence() {
        Some(s) if s <= p.timeout => (StatusCode::OK, format!("ok\nbuffered_lines {buffered}\n")),
        Some(s) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no contact with the server for {}s\nbuffered_lines {buffered}\n", s.as_secs()),
        ),
        None => (StatusCode::SERVICE_UNAVAILABLE, "never connected to the server\n".into()),
    }
}

async fn readyz(State(p): State<Probe>) -> (StatusCode, String) {
    if p.health.ready() {
        // Of several servers, the one the daemon is connected to.
        let server = p.health.server().unwrap_or_default();
        (StatusCode::OK, format!("ready\nserver {server}\n"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not connected, or draining\n".into())
    }
}

async fn metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::get().encode(),
    )
}

/// Serves the probes on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    timeout: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Probe { health, timeout });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
