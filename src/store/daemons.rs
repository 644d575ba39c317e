//! The connected-daemons registry in the store, and the channel between the
//! server processes that share a database.
//!
//! Each daemon session writes a row for its daemon (who it is, which
//! replica holds its session, when the session last said it is alive, the
//! jobs it runs), so the daemon list, `matched_provisioners` and the
//! pending-timeout message read the same answer on every replica. A row
//! belongs to one session (`session_id`): a reconnect writes a new session
//! id over it, and the old session's late updates and removal then touch
//! nothing. A replica that dies leaves its rows behind; they stop counting
//! once their `last_seen_at` is older than the caller's cutoff, and
//! [`Replicas::expire_daemons`] deletes them.
//!
//! [`Broadcast`] is only a transport (PostgreSQL's LISTEN/NOTIFY): short
//! texts to every process listening on the database. What the texts mean is
//! the event bus's business (`server/events/`); the store still notifies
//! no one by itself.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::domain::Tags;

/// One connected daemon as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRow {
    /// The daemon's credential-scoped id (the worker id of its jobs).
    pub id: Uuid,
    /// The session that wrote the row; only it updates or removes it.
    pub session_id: Uuid,
    /// The server process that holds the session.
    pub replica_id: Uuid,
    pub name: String,
    pub version: String,
    pub tags: Tags,
    pub provisioners: Vec<String>,
    pub connected_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The jobs it runs, in id order.
    pub jobs: Vec<Uuid>,
}

/// What server processes on one database share beyond the tables of the
/// [`super::Store`] contract: the daemon registry and a broadcast channel.
#[async_trait::async_trait]
pub trait Replicas: Send + Sync {
    /// The channel to the other processes on this database; `None` where no
    /// other process can share it (SQLite: one server per file).
    fn broadcast(&self) -> Option<std::sync::Arc<dyn Broadcast>> {
        None
    }

    /// Writes the daemon's row for a new session, replacing any row of the
    /// same daemon (a reconnect, here or on another replica).
    async fn register_daemon(&self, daemon: &DaemonRow) -> Result<()>;
    /// Marks the session's daemon alive at `at` with the jobs it runs.
    /// `false` when the row is not this session's any more (a newer session
    /// took it, or it expired): the caller registers again if it still
    /// serves the daemon.
    async fn daemon_seen(
        &self,
        id: Uuid,
        session_id: Uuid,
        at: DateTime<Utc>,
        jobs: &[Uuid],
    ) -> Result<bool>;
    /// Removes the daemon's row if it still belongs to this session.
    async fn unregister_daemon(&self, id: Uuid, session_id: Uuid) -> Result<()>;
    /// Daemons seen at or after `since`, by name then id.
    async fn daemons_seen_since(&self, since: DateTime<Utc>) -> Result<Vec<DaemonRow>>;
    /// Deletes rows last seen before `before` (their replica is gone);
    /// returns how many.
    async fn expire_daemons(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Texts to every process listening on the same database, this one
/// included. At most [`MAX_TEXT`] bytes each.
#[async_trait::async_trait]
pub trait Broadcast: Send + Sync {
    /// Sends the texts, in order, in one round trip.
    async fn send(&self, texts: &[String]) -> Result<()>;
    /// A listener on a connection of its own.
    async fn listen(&self) -> Result<Box<dyn Listener>>;
}

/// Receives what [`Broadcast::send`] sent, from any process.
#[async_trait::async_trait]
pub trait Listener: Send {
    /// The next text. `Ok(None)` when the connection was lost: texts sent
    /// meanwhile are gone, and the next call connects again.
    async fn recv(&mut self) -> Result<Option<String>>;
}

/// The longest text [`Broadcast::send`] takes (PostgreSQL's NOTIFY payload
/// limit is 8000 bytes).
pub const MAX_TEXT: usize = 7900;

/// The JSON columns of a daemon row: lists of strings (provisioner names,
/// job ids), one JSON array each.
pub(crate) fn encode_list<T: ToString>(items: &[T]) -> String {
    let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
    // A list of strings always serializes.
    serde_json::to_string(&texts).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn decode_list<T: std::str::FromStr>(text: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let corrupt = |e: String| super::StoreError::Corrupt(format!("daemon row list: {e}"));
    let texts: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    texts.iter().map(|t| t.parse().map_err(|e: T::Err| corrupt(e.to_string()))).collect()
}
