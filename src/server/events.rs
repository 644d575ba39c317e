//! In-process notifications between the REST API, the gRPC service and
//! followers of a job's logs.
//!
//! Writers publish after their store write commits; readers treat every
//! event, and a lagged receiver, as "look again in the store". The store
//! stays the source of truth, so a missed event can delay a reader but never
//! mislead it. With several server replicas on one PostgreSQL database these
//! events will also travel over LISTEN/NOTIFY.

use tokio::sync::broadcast;
use uuid::Uuid;

/// Something changed that a waiter may care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A job was queued or put back to pending: idle daemons try to acquire.
    JobQueued,
    /// A job was started, canceled or completed.
    JobUpdated(Uuid),
    /// New log lines for a job were stored.
    LogsAppended(Uuid),
    /// A provisioner key was deleted: daemons using it must go.
    KeyRevoked(Uuid),
}

/// A cloneable handle to the event bus.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self { tx }
    }

    pub fn publish(&self, event: Event) {
        // No receiver is fine: nobody is waiting.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
