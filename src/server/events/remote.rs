//! The cross-replica half of the event bus: two tasks per server process
//! over the store's [`Broadcast`] channel (PostgreSQL's LISTEN/NOTIFY).
//!
//! The sender takes the events this process publishes, drops repeats
//! queued together, and sends them as short texts
//! (`<replica> <kind> [<id>]`, ids only: NOTIFY payloads are limited to
//! 8000 bytes, and the store holds the data) in one round trip. The
//! listener publishes what other replicas sent on this process's
//! in-process bus and ignores its own texts. It reconnects when its
//! connection drops (with a backoff while the database is unreachable) and
//! then publishes [`Event::Missed`], since texts sent meanwhile are gone. A
//! lost text only delays a reader: daemon sessions and log followers look
//! at the store again on a short timer anyway.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Event;
use crate::store::Broadcast;

/// Events sent in one round trip at most.
const MAX_BATCH: usize = 256;

/// The listener's first and longest wait before connecting again.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Starts the sender and the listener; both stop with `stop`.
pub(super) fn start(
    channel: Arc<dyn Broadcast>,
    replica: Uuid,
    local: broadcast::Sender<Event>,
    outgoing: mpsc::UnboundedReceiver<Event>,
    stop: CancellationToken,
) {
    tokio::spawn(send_loop(channel.clone(), replica, outgoing, stop.clone()));
    tokio::spawn(listen_loop(channel, replica, local, stop));
}

/// The text of an event for the other replicas; `None` for what only
/// concerns this process.
fn encode(replica: Uuid, event: Event) -> Option<String> {
    let (kind, id) = match event {
        Event::JobQueued => ("q", None),
        Event::JobUpdated(id) => ("u", Some(id)),
        Event::JobCanceled(id) => ("c", Some(id)),
        Event::KeyRevoked(id) => ("k", Some(id)),
        Event::WorkspaceUpdated(id) => ("w", Some(id)),
        Event::LogsStored(id) => ("l", Some(id)),
        Event::Missed => return None,
    };
    Some(match id {
        Some(id) => format!("{} {kind} {}", replica.simple(), id.simple()),
        None => format!("{} {kind}", replica.simple()),
    })
}

/// The sending replica and the event of a text; `None` for a text this
/// version does not know (a newer replica's), which is ignored.
fn decode(text: &str) -> Option<(Uuid, Event)> {
    let mut parts = text.split(' ');
    let origin = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let id = parts.next().map(str::parse::<Uuid>);
    let event = match (kind, id) {
        ("q", None) => Event::JobQueued,
        ("u", Some(Ok(id))) => Event::JobUpdated(id),
        ("c", Some(Ok(id))) => Event::JobCanceled(id),
        ("k", Some(Ok(id))) => Event::KeyRevoked(id),
        ("w", Some(Ok(id))) => Event::WorkspaceUpdated(id),
        ("l", Some(Ok(id))) => Event::LogsStored(id),
        _ => return None,
    };
    parts.next().is_none().then_some((origin, event))
}

/// Texts of a batch of events, each event once, in first-seen order: a
/// reader looks at the store when woken, so a repeat adds nothing.
fn texts(replica: Uuid, batch: &[Event]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    batch.iter().filter(|e| seen.insert(**e)).filter_map(|e| encode(replica, *e)).collect()
}

async fn send_loop(
    channel: Arc<dyn Broadcast>,
    replica: Uuid,
    mut outgoing: mpsc::UnboundedReceiver<Event>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => None,
            e = outgoing.recv() => e,
        };
        let mut batch: Vec<Event> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match outgoing.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            // Stopped (or every publisher is gone), with nothing left to send.
            return;
        }
        let texts = texts(replica, &batch);
        if texts.is_empty() {
            continue;
        }
        match channel.send(&texts).await {
            Ok(()) if failing => {
                tracing::info!("notifying the other replicas again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                // Logged once per outage: the other replicas' timers pick
                // the changes up meanwhile.
                tracing::warn!(error = %e, "could not notify the other replicas; they see the changes on their next re-check");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

async fn listen_loop(
    channel: Arc<dyn Broadcast>,
    replica: Uuid,
    local: broadcast::Sender<Event>,
    stop: CancellationToken,
) {
    let mut retry = RETRY_FIRST;
    let mut connected_before = false;
    loop {
        let listener = tokio::select! {
            _ = stop.cancelled() => return,
            l = channel.listen() => l,
        };
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, ?retry, "cannot listen to the other replicas' notifications; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        if connected_before {
            tracing::info!("listening to the other replicas' notifications again");
            let _ = local.send(Event::Missed);
        }
        connected_before = true;
        retry = RETRY_FIRST;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.recv() => n,
            };
            match next {
                Ok(Some(text)) => match decode(&text) {
                    Some((origin, _)) if origin == replica => {}
                    Some((_, event)) => {
                        let _ = local.send(event);
                    }
                    None => tracing::debug!(%text, "ignoring an unknown notification"),
                },
                Ok(None) => {
                    tracing::info!(
                        "lost the connection for the other replicas' notifications; reconnecting"
                    );
                    let _ = local.send(Event::Missed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the other replicas' notifications failed; listening again");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_repeats_go_once() {
        let (me, id) = (Uuid::new_v4(), Uuid::new_v4());
        let events = [
            Event::JobQueued,
            Event::JobUpdated(id),
            Event::JobCanceled(id),
            Event::KeyRevoked(id),
            Event::WorkspaceUpdated(id),
            Event::LogsStored(id),
        ];
        for e in events {
            let text = encode(me, e).expect("sent");
            assert!(text.len() < 80, "ids only: {text}");
            assert_eq!(decode(&text), Some((me, e)));
        }
        assert_eq!(encode(me, Event::Missed), None, "local only");
        let batch =
            [Event::JobQueued, Event::LogsStored(id), Event::JobQueued, Event::LogsStored(id)];
        assert_eq!(texts(me, &batch).len(), 2);
        assert_eq!(decode("nonsense"), None);
        assert_eq!(decode(&format!("{} z {}", me.simple(), id.simple())), None, "unknown kind");
        assert_eq!(decode(&format!("{} q {}", me.simple(), id.simple())), None, "extra field");
    }
}
