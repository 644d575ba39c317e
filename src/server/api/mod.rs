//! The REST API of the seeds under `/api/v2`: users and sessions, files,
//! templates, workspaces, builds and logs. Handlers parse a request, call a
//! use case (`crate::app`), which decides and authorises, and render its
//! result (`json.rs`); every error goes out through [`error::ApiError`].
//!
//! The API does not talk to daemons: it queues jobs in the store and
//! publishes events; the gRPC service hands the jobs out.

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use error::{ApiError, ApiResult};

mod agents;
mod auth;
mod builds;
mod compat;
mod daemons;
mod error;
mod files;
mod json;
mod keys;
mod logs;
mod outer;
pub mod resources;
mod templates;
mod timings;
mod users;
mod watch;
mod workspace_settings;
mod workspaces;

use crate::app::validate;

pub use outer::{MAX_JSON_BYTES, MAX_URI_BYTES};
pub use validate::name as validate_name;

/// A JSON request body whose rejections are answered in the API's error
/// shape. Text with NUL anywhere in it is refused before the handler runs.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        validate::reject_nul(&value)?;
        let typed = serde_json::from_value(value).map_err(|e| {
            ApiError::bad_request("Request body does not match the expected fields.")
                .detail(e.to_string())
        })?;
        Ok(Body(typed))
    }
}

/// A query string whose rejections are answered in the API's error shape
/// (axum's own `Query` answers `text/plain`).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// Parses a UUID path parameter, answering 400 for anything else.
pub fn uuid_param(name: &str, value: &str) -> ApiResult<Uuid> {
    value.parse().map_err(|_| ApiError::invalid(name, format!("{value:?} is not a valid UUID")))
}

async fn buildinfo() -> Json<serde_json::Value> {
    Json(
        serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "external_url": "https://github.com/provisionerd"}),
    )
}

/// Ready when the database answers and can store writes: after a write
/// was refused for lack of space, the store probes until one succeeds.
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, String) {
    let unavailable = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    if let Err(e) = state.store.count_users().await {
        tracing::warn!(error = %e, "readiness check: database unavailable");
        return (unavailable, "database unavailable\n".into());
    }
    match state.store.check_writable().await {
        Ok(()) => (axum::http::StatusCode::OK, "ready\n".into()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database cannot store writes");
            (unavailable, format!("{e}: free disk space on the server's data volume\n"))
        }
    }
}

/// `GET /metrics`: sets the gauges of the server's current state (pending
/// jobs, which of them no daemon can take, connected daemons), then writes
/// every metric in Prometheus' text format.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let m = crate::metrics::get();
    match state.store.pending_jobs_before(chrono::Utc::now()).await {
        Ok(pending) => {
            let unmatched = pending
                .iter()
                .filter(|j| state.daemons.matching(&j.tags, j.provisioner.as_str()).count == 0)
                .count();
            m.jobs_pending.set(pending.len() as i64);
            m.jobs_pending_unmatched.set(unmatched as i64);
        }
        // The other metrics are still worth a scrape; these keep their last values.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count pending jobs"),
    }
    m.daemons_connected.set(state.daemons.list().len() as i64);
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], m.encode()).into_response()
}

/// All routes, plus `/healthz` and `/readyz` at the root; requests that
/// match none go to `grpc` when they are gRPC and get a JSON 404 otherwise.
pub fn router(state: AppState, grpc: Router) -> Router {
    let api = Router::new()
        .route("/buildinfo", get(buildinfo))
        .route("/users/first", post(users::create_first))
        .route("/users/login", post(users::login))
        .route("/users/logout", post(users::logout))
        .route("/users", post(users::create))
        .route("/users/{user}", get(users::get))
        .route("/users/{user}/roles", put(users::put_roles))
        .route("/users/{user}/organizations", get(users::organizations))
        .route("/organizations/{organization}", get(users::organization))
        .route("/organizations/{organization}/provisionerdaemons", get(daemons::list))
        .route("/organizations/{organization}/provisionerkeys", post(keys::create).get(keys::list))
        .route(
            "/organizations/{organization}/provisionerkeys/{name}",
            axum::routing::delete(keys::delete),
        )
        .route("/files", post(files::upload).layer(DefaultBodyLimit::max(files::MAX_FILE_BYTES)))
        .route("/files/{id}", get(files::download))
        .route("/organizations/{organization}/templateversions", post(templates::create_version))
        .route(
            "/organizations/{organization}/templates",
            post(templates::create_template).get(templates::list_templates),
        )
        .route("/organizations/{organization}/templates/{name}", get(templates::template_by_name))
        .route("/templateversions/{id}", get(templates::get_version))
        .route("/templateversions/{id}/logs", get(logs::version_logs))
        .route("/templateversions/{id}/resources", get(resources::version_resources))
        .route("/templateversions/{id}/rich-parameters", get(resources::version_parameters))
        .route("/templateversions/{id}/variables", get(resources::version_variables))
        .route("/templates/{id}", get(templates::get_template))
        .route("/templates/{id}/versions", get(templates::list_versions).patch(templates::promote))
        .route(
            "/organizations/{organization}/members/{user}/workspaces",
            post(workspaces::create_for_member),
        )
        .route("/users/{user}/workspaces", post(workspaces::create_for_user))
        .route("/users/{user}/workspace/{name}", get(workspaces::by_owner_and_name))
        .route("/users/{user}/workspace/{name}/builds/{number}", get(builds::by_number))
        .route("/workspaces", get(workspaces::list))
        .route("/workspaces/{id}", get(workspaces::get).patch(workspace_settings::rename))
        .route("/workspaces/{id}/autostart", put(workspace_settings::autostart))
        .route("/workspaces/{id}/ttl", put(workspace_settings::ttl))
        .route("/workspaces/{id}/extend", put(workspace_settings::extend))
        .route("/workspaces/{id}/dormant", put(workspace_settings::dormant))
        .route("/workspaces/{id}/autoupdates", put(workspace_settings::autoupdates))
        .route("/workspaces/{id}/resolve-autostart", get(workspace_settings::resolve_autostart))
        .route(
            "/workspaces/{id}/favorite",
            put(workspaces::put_favorite).delete(workspaces::delete_favorite),
        )
        .route("/workspaces/{id}/usage", post(workspaces::usage))
        .route("/workspaces/{id}/watch", get(watch::watch))
        .route("/workspaces/{id}/builds", post(builds::create).get(builds::list))
        .route("/workspacebuilds/{id}", get(builds::get))
        .route("/workspacebuilds/{id}/logs", get(logs::build_logs))
        .route("/workspacebuilds/{id}/resources", get(builds::resources))
        .route("/workspacebuilds/{id}/state", get(builds::raw_state))
        .route("/workspacebuilds/{id}/parameters", get(builds::parameters))
        .route("/workspacebuilds/{id}/cancel", patch(builds::cancel))
        .route("/workspacebuilds/{id}/timings", get(timings::build))
        .route("/workspaces/{id}/timings", get(timings::workspace))
        // Coder compatibility (compat.rs).
        .route("/organizations", get(compat::organizations))
        .route("/templates", get(compat::templates))
        .route("/templates/{id}/versions/{name}", get(compat::version_by_name))
        .route("/organizations/{organization}/templates/examples", get(compat::examples))
        .route("/templateversions/{id}/external-auth", get(compat::version_external_auth))
        .route("/templateversions/{id}/presets", get(compat::version_presets))
        // Workspace agents as their build reported them (agents.rs).
        .route("/workspaceagents/{id}", get(agents::get))
        .route("/workspaceagents/{id}/logs", get(agents::logs))
        .route("/workspaceagents/{id}/startup-logs", get(agents::logs))
        .route("/workspaceagents/{id}/listening-ports", get(agents::needs_connection))
        .route("/workspaceagents/{id}/pty", get(agents::needs_connection))
        .route("/workspaceagents/{id}/containers", get(agents::needs_connection))
        .fallback(outer::not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn(outer::request_span));
    let app = Router::new()
        .nest("/api/v2", api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    // The slash is trimmed before the routes are matched: an outer router
    // whose only service is the whole app.
    Router::new()
        .fallback_service(outer::wrap(app, grpc))
        .layer(axum::middleware::map_request(compat::trim_trailing_slash))
}
