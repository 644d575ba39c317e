//! Job logs for builds and template versions: pages by log id (`after`,
//! `before`, exclusive), and `follow=true` as a WebSocket that sends one
//! JSON log per text frame and closes once the job has completed and every
//! line was sent.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::SinkExt;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::auth::Caller;
use super::builds::visible_build;
use super::error::{ApiError, ApiResult};
use super::{json, uuid_param};
use crate::server::{AppState, Event};
use crate::store::LogRange;

/// Safety net for a follower: look again this often even without events.
const FOLLOW_RECHECK: Duration = Duration::from_secs(1);

#[derive(Deserialize, Default)]
pub struct LogQuery {
    after: Option<i64>,
    before: Option<i64>,
    #[serde(default)]
    follow: bool,
}

pub async fn build_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> ApiResult<Response> {
    let build = visible_build(&state, &caller, &id).await?;
    respond(state, build.job_id, q, req).await
}

pub async fn version_logs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> ApiResult<Response> {
    let version = state.store.template_version(uuid_param("templateversion", &id)?).await?;
    respond(state, version.job_id, q, req).await
}

async fn respond(state: AppState, job_id: Uuid, q: LogQuery, req: Request) -> ApiResult<Response> {
    let range = LogRange { after: q.after, before: q.before };
    if !q.follow {
        let logs = state.store.logs(job_id, range).await?;
        return Ok(Json(logs.iter().map(json::log).collect::<Vec<_>>()).into_response());
    }
    let (mut parts, _) = req.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state).await.map_err(|e| {
        ApiError::bad_request("follow=true needs a WebSocket connection.").detail(e.body_text())
    })?;
    // Subscribe before the first read, so nothing stored in between is missed.
    let events = state.events.subscribe();
    Ok(upgrade.on_upgrade(move |socket| follow(socket, state, job_id, q.after, events)))
}

async fn follow(
    mut socket: WebSocket,
    state: AppState,
    job_id: Uuid,
    mut after: Option<i64>,
    mut events: tokio::sync::broadcast::Receiver<Event>,
) {
    loop {
        // Read completion first: every line stored before completion is then
        // in the read that follows.
        let done = match state.store.job(job_id).await {
            Ok(job) => job.completed_at.is_some(),
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "log follower stopped");
                return;
            }
        };
        let logs = match state.store.logs(job_id, LogRange { after, before: None }).await {
            Ok(logs) => logs,
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "log follower stopped");
                return;
            }
        };
        // One message per line, written out together: a flush per line
        // cost a write per line on a chatty build.
        for l in &logs {
            let Ok(text) = serde_json::to_string(&json::log(l)) else { continue };
            if socket.feed(Message::Text(text.into())).await.is_err() {
                return;
            }
            after = Some(l.id);
        }
        if !logs.is_empty() && socket.flush().await.is_err() {
            return;
        }
        if done {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        if !wait_for_change(&mut socket, &mut events, job_id).await {
            return;
        }
    }
}

/// Waits until the job may have new lines or a new status. `false` when the
/// client went away.
async fn wait_for_change(
    socket: &mut WebSocket,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    job_id: Uuid,
) -> bool {
    let recheck = tokio::time::sleep(FOLLOW_RECHECK);
    tokio::pin!(recheck);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(Event::LogsAppended(j) | Event::JobUpdated(j)) if j == job_id => return true,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return false,
                Some(Ok(_)) => {}
            },
            _ = &mut recheck => return true,
        }
    }
}
