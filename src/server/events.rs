//! In-process notifications between the REST API, the gRPC service and
//! followers of a job's logs.
//!
//! Writers publish after their store write commits; readers treat every
//! event, and a lagged receiver, as "look again in the store". The store
//! stays the source of truth, so a missed event can delay a reader but never
//! mislead it. The one exception carries data: stored log lines go to
//! followers on their own channel, and a follower uses a batch only when it
//! continues the sequence it already sent, reading the store otherwise. With
//! several server replicas on one PostgreSQL database these events will also
//! travel over LISTEN/NOTIFY.

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::StoredLog;

/// Log batches a follower may be behind before it falls back to the store
/// (at most 500 lines each).
const LOG_BATCHES_KEPT: usize = 128;

/// Something changed that a waiter may care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A job was queued or put back to pending: idle daemons try to acquire.
    JobQueued,
    /// A job was started, canceled or completed.
    JobUpdated(Uuid),
    /// A provisioner key was deleted: daemons using it must go.
    KeyRevoked(Uuid),
    /// A workspace's settings changed (schedule, ttl, deadline, dormancy,
    /// name, favorite, last use): its watchers look again.
    WorkspaceUpdated(Uuid),
}

/// Log lines of one job as they were stored, in sequence order.
#[derive(Debug)]
pub struct StoredLogs {
    pub job_id: Uuid,
    pub lines: Vec<StoredLog>,
}

/// A stored batch as followers receive it: the lines, and their JSON text
/// rendered once by the first follower that needs it, so a hundred
/// followers of one build serialize each line once instead of a hundred
/// times.
#[derive(Debug)]
pub struct LogBatch {
    pub logs: StoredLogs,
    rendered: OnceLock<Vec<String>>,
}

impl LogBatch {
    /// One text per line (same order), rendered by `render` on first use.
    pub fn rendered(&self, render: impl FnOnce(&[StoredLog]) -> Vec<String>) -> &[String] {
        self.rendered.get_or_init(|| render(&self.logs.lines))
    }
}

/// A cloneable handle to the event bus.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    /// Stored log lines, for followers only: they send these without reading
    /// them back from the store. A separate channel, so daemon sessions never
    /// wake for logs, and a short one, since a slow follower that falls
    /// behind reads the store instead.
    logs: broadcast::Sender<Arc<LogBatch>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let (logs, _) = broadcast::channel(LOG_BATCHES_KEPT);
        Self { tx, logs }
    }

    pub fn publish(&self, event: Event) {
        // No receiver is fine: nobody is waiting.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Whether any log follower listens (so writers can skip building a
    /// message nobody reads).
    pub fn has_log_followers(&self) -> bool {
        self.logs.receiver_count() > 0
    }

    pub fn publish_logs(&self, logs: StoredLogs) {
        let _ = self.logs.send(Arc::new(LogBatch { logs, rendered: OnceLock::new() }));
    }

    pub fn subscribe_logs(&self) -> broadcast::Receiver<Arc<LogBatch>> {
        self.logs.subscribe()
    }
}
