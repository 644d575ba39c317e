//! `GET /workspaces/{id}/watch`: a Server-Sent Events stream of the
//! workspace. The first `data` event is the workspace as it is; each later
//! one follows an event-bus notice (a job queued, started or completed, a
//! setting changed) after which the workspace's JSON differs from the last
//! one sent. `ping` events keep idle connections open. The bus is only a
//! wake-up: the JSON is always read from the store, so a change written by
//! another replica reaches a watcher once that replica's notice arrives
//! (through the bus's cross-replica backend, where one is configured).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::auth::Caller;
use super::error::ApiResult;
use super::{json, uuid_param};
use crate::app::Subject;
use crate::server::{AppState, Event};

/// How often an idle stream sends a `ping` event (Coder's cadence).
const PING_EVERY: Duration = Duration::from_secs(15);

type Events = Sse<ReceiverStream<Result<SseEvent, Infallible>>>;

pub async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id = uuid_param("workspace", &id)?;
    // Subscribe before the first read, so no change falls between them.
    let bus = state.events.subscribe();
    let ws = state.app().workspace(caller.subject(), id, false).await?;
    let first = serde_json::to_string(&json::workspace(&state, &ws).await?)
        .map_err(crate::app::Error::internal)?;
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(follow(state, caller, id, first, bus, tx));
    let stream: Events = Sse::new(ReceiverStream::new(rx));
    Ok(stream
        .keep_alive(KeepAlive::new().interval(PING_EVERY).event(SseEvent::default().event("ping"))))
}

/// Sends `first`, then the workspace again whenever a notice changed it,
/// until the client goes away or the server stops serving.
async fn follow(
    state: AppState,
    caller: Caller,
    id: Uuid,
    first: String,
    mut bus: tokio::sync::broadcast::Receiver<Event>,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    let mut last = first;
    if tx.send(Ok(SseEvent::default().event("data").data(&last))).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = state.closing.cancelled() => return,
            ev = bus.recv() => match ev {
                Ok(Event::KeyRevoked(_) | Event::LogsStored(_)) => continue,
                Ok(Event::WorkspaceUpdated(w)) if w != id => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
        let Some(now) = render(&state, caller.subject(), id).await else { return };
        if now != last {
            last = now;
            if tx.send(Ok(SseEvent::default().event("data").data(&last))).await.is_err() {
                return;
            }
        }
    }
}

/// The workspace's JSON as the caller may see it (deleted too, so the end
/// of a delete build is sent); `None` once it cannot be read.
async fn render(state: &AppState, who: Subject<'_>, id: Uuid) -> Option<String> {
    let ws = state.app().workspace(who, id, true).await.ok()?;
    let out = json::workspace(state, &ws).await.ok()?;
    serde_json::to_string(&out).ok()
}
