//! Notifications between the REST API, the gRPC service and followers of a
//! job's logs, within a server and, on PostgreSQL, across replicas.
//!
//! Writers publish after their store write commits; readers treat every
//! event, and a lagged receiver, as "look again in the store". The store
//! stays the source of truth, so a missed event can delay a reader but never
//! mislead it. The one exception carries data: stored log lines go to
//! followers on their own channel, and a follower uses a batch only when it
//! continues the sequence it already sent, reading the store otherwise.
//!
//! Two backends behind one handle, chosen at start: in-process only
//! ([`Events::new`], SQLite: one server per database), or in-process plus
//! the store's broadcast channel ([`Events::shared`], PostgreSQL's
//! LISTEN/NOTIFY, `remote.rs`), which carries each event's kind and id to
//! the other replicas, never data. There a stored log batch becomes
//! [`Event::LogsStored`] (followers read the lines from the store), and a
//! dropped listener connection becomes [`Event::Missed`]. Publishers cannot
//! tell the backends apart.

use std::sync::{Arc, OnceLock};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::StoredLog;
use crate::store::Broadcast;

mod remote;

/// Log batches a follower may be behind before it falls back to the store
/// (at most 500 lines each).
const LOG_BATCHES_KEPT: usize = 128;

/// Something changed that a waiter may care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A job was queued or put back to pending: idle daemons try to acquire.
    JobQueued,
    /// A job was started or completed by its daemon.
    JobUpdated(Uuid),
    /// A job's cancel was requested, or the server ended it (failed it)
    /// while a daemon may still run it: the session of the daemon that runs
    /// it looks at it and tells the daemon to stop. Followers and watchers
    /// look as at [`Event::JobUpdated`]. (Sessions ignore `JobUpdated`, which
    /// their own daemons cause, so it costs them no read.)
    JobCanceled(Uuid),
    /// A provisioner key was deleted: daemons using it must go.
    KeyRevoked(Uuid),
    /// A workspace's settings changed (schedule, ttl, deadline, dormancy,
    /// name, favorite, last use): its watchers look again.
    WorkspaceUpdated(Uuid),
    /// Another replica stored log lines of this job: its followers read
    /// them from the store. (Lines stored here go to the log channel.)
    LogsStored(Uuid),
    /// The connection to the other replicas was lost: anything may have
    /// happened meanwhile, so every waiter looks again, as after a lag.
    Missed,
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
    /// Events for the other replicas (`remote.rs`), when there are any.
    remote: Option<mpsc::UnboundedSender<Event>>,
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
        Self { tx, logs, remote: None }
    }

    /// A bus that also reaches the other server processes on the store's
    /// database, through `channel`, until `stop`. `replica` names this
    /// process, so it ignores its own events coming back.
    pub fn shared(channel: Arc<dyn Broadcast>, replica: Uuid, stop: CancellationToken) -> Self {
        let mut events = Self::new();
        let (tx, rx) = mpsc::unbounded_channel();
        events.remote = Some(tx);
        remote::start(channel, replica, events.tx.clone(), rx, stop);
        events
    }

    pub fn publish(&self, event: Event) {
        // No receiver is fine: nobody is waiting.
        let _ = self.tx.send(event);
        if let Some(remote) = &self.remote {
            // Closed only once the server stops: nobody is waiting either.
            let _ = remote.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Whether any log follower may listen, here or on another replica (so
    /// writers can skip building a message nobody reads).
    pub fn has_log_followers(&self) -> bool {
        self.logs.receiver_count() > 0 || self.remote.is_some()
    }

    /// Hands stored lines to this server's followers, and tells the other
    /// replicas' followers that lines of the job were stored.
    pub fn publish_logs(&self, logs: StoredLogs) {
        if let Some(remote) = &self.remote {
            let _ = remote.send(Event::LogsStored(logs.job_id));
        }
        if self.logs.receiver_count() > 0 {
            let _ = self.logs.send(Arc::new(LogBatch { logs, rendered: OnceLock::new() }));
        }
    }

    pub fn subscribe_logs(&self) -> broadcast::Receiver<Arc<LogBatch>> {
        self.logs.subscribe()
    }
}
