//! The connected daemons: who they are, what tags they offer, when they
//! were last heard from, which jobs they run, and which replica serves
//! them. Sessions keep it current; the API reads it for
//! `matched_provisioners` and the daemon list, the reaper for
//! pending-timeout messages.
//!
//! The store holds one row per daemon (`store/daemons.rs`), written by the
//! session that serves it: at connect, when its jobs change (at most every
//! [`JOBS_EVERY`]: a daemon of short jobs changes them hundreds of times a
//! second), and every [`TOUCH_EVERY`] while it lives, so every replica reads
//! the same list. A
//! replica that dies leaves rows that stop counting after [`STALE_AFTER`]
//! and are then deleted. Readers that must answer at once (rendering a
//! pending job) use a snapshot of the store, refreshed every
//! [`REFRESH_EVERY`] and updated at once by this replica's own sessions;
//! the daemon list and the pending-timeout sweep read the store first.
//!
//! Which ended builds a daemon still runs (holding back other builds of
//! their workspace) stays in memory, with the session that holds it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{tags_satisfy, Tags};
use crate::store::{DaemonRow, DynStore, Result};

/// How often a session writes that its daemon is still connected.
pub const TOUCH_EVERY: Duration = Duration::from_secs(5);
/// How often at most a session writes that its daemon's jobs changed. A
/// change not written yet is written by the session's next message or
/// re-check (every second), so other replicas' lists lag by about this.
pub const JOBS_EVERY: Duration = Duration::from_secs(1);
/// A row not written for this long belongs to a replica that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// How often the snapshot of every replica's daemons is read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// One connected daemon.
#[derive(Debug, Clone)]
pub struct Connected {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub tags: Tags,
    pub provisioners: Vec<String>,
    pub connected_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub jobs: BTreeSet<Uuid>,
    /// The server process that serves its session.
    pub replica: Uuid,
}

impl From<DaemonRow> for Connected {
    fn from(r: DaemonRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            version: r.version,
            tags: r.tags,
            provisioners: r.provisioners,
            connected_at: r.connected_at,
            last_seen: r.last_seen_at,
            jobs: r.jobs.into_iter().collect(),
            replica: r.replica_id,
        }
    }
}

/// `matched_provisioners` of seed 002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Matched {
    pub count: usize,
    pub available: usize,
    pub most_recently_seen: Option<DateTime<Utc>>,
}

/// A session on this replica.
#[derive(Debug)]
struct Local {
    session: Uuid,
    daemon: Connected,
    /// When the store last got its row, and with which jobs.
    written: Instant,
    written_jobs: BTreeSet<Uuid>,
    /// When a change of its jobs was last written (none yet: at once).
    jobs_written: Option<Instant>,
    /// Builds the server already ended (it gave up on the daemon) that the
    /// daemon still runs: job id to workspace id. No other build of those
    /// workspaces is handed out until the daemon reports them.
    ended: HashMap<Uuid, Uuid>,
}

#[derive(Debug, Default)]
struct Inner {
    local: HashMap<Uuid, Local>,
    /// Every replica's daemons as the store listed them last.
    snapshot: Vec<Connected>,
    expired: Option<Instant>,
}

#[derive(Clone)]
pub struct Registry {
    store: DynStore,
    replica: Uuid,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("replica", &self.replica).finish_non_exhaustive()
    }
}

/// `d` before now.
fn ago(d: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Registry {
    /// The registry of the server process `replica` over `store`.
    pub fn new(store: DynStore, replica: Uuid) -> Self {
        Self { store, replica, inner: Arc::default() }
    }

    /// This server process's id.
    pub fn replica(&self) -> Uuid {
        self.replica
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated
        // (every change is one insert or remove), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a daemon's session; returns the session id to pass to the
    /// other calls.
    pub async fn register(
        &self,
        id: Uuid,
        name: &str,
        version: &str,
        tags: &Tags,
        provisioners: Vec<String>,
    ) -> Result<Uuid> {
        let session = Uuid::new_v4();
        let now = Utc::now();
        let daemon = Connected {
            id,
            name: name.to_owned(),
            version: version.to_owned(),
            tags: tags.clone(),
            provisioners,
            connected_at: now,
            last_seen: now,
            jobs: BTreeSet::new(),
            replica: self.replica,
        };
        self.store.register_daemon(&self.row(session, &daemon)).await?;
        let local = Local {
            session,
            daemon,
            written: Instant::now(),
            written_jobs: BTreeSet::new(),
            jobs_written: None,
            ended: HashMap::new(),
        };
        self.lock().local.insert(id, local);
        Ok(session)
    }

    fn row(&self, session: Uuid, d: &Connected) -> DaemonRow {
        DaemonRow {
            id: d.id,
            session_id: session,
            replica_id: self.replica,
            name: d.name.clone(),
            version: d.version.clone(),
            tags: d.tags.clone(),
            provisioners: d.provisioners.clone(),
            connected_at: d.connected_at,
            last_seen_at: d.last_seen,
            jobs: d.jobs.iter().copied().collect(),
        }
    }

    /// Removes the daemon unless a newer session of it has registered since.
    pub async fn unregister(&self, id: Uuid, session: Uuid) {
        {
            let mut inner = self.lock();
            if inner.local.get(&id).is_some_and(|l| l.session == session) {
                inner.local.remove(&id);
            }
            inner.snapshot.retain(|c| c.id != id || c.replica != self.replica);
        }
        if let Err(e) = self.store.unregister_daemon(id, session).await {
            // The row expires by itself.
            tracing::warn!(daemon = %id, error = %e, "could not remove the daemon from the store");
        }
    }

    /// The daemon was heard from and runs `jobs`. Written to the store when
    /// its jobs changed and [`JOBS_EVERY`] has passed, or [`TOUCH_EVERY`]
    /// has.
    pub async fn seen(&self, id: Uuid, session: Uuid, jobs: &BTreeSet<Uuid>) -> Result<()> {
        let row = {
            let mut inner = self.lock();
            let Some(l) = inner.local.get_mut(&id).filter(|l| l.session == session) else {
                return Ok(());
            };
            l.daemon.last_seen = Utc::now();
            l.daemon.jobs.clone_from(jobs);
            let changed = l.written_jobs != *jobs;
            let due = if changed {
                l.jobs_written.is_none_or(|t| t.elapsed() >= JOBS_EVERY)
            } else {
                l.written.elapsed() >= TOUCH_EVERY
            };
            if !due {
                return Ok(());
            }
            if changed {
                l.jobs_written = Some(Instant::now());
            }
            l.written = Instant::now();
            l.written_jobs.clone_from(jobs);
            self.row(session, &l.daemon)
        };
        let ids: Vec<Uuid> = row.jobs.clone();
        if self.store.daemon_seen(id, session, row.last_seen_at, &ids).await? {
            return Ok(());
        }
        // The row expired (this replica could not write for a while), or a
        // newer session of the daemon took it: write it again only if no
        // row is there, so two sessions never take it from each other.
        let rows = self.store.daemons_seen_since(ago(STALE_AFTER * 10)).await?;
        if !rows.iter().any(|r| r.id == id && r.session_id != session) {
            self.store.register_daemon(&row).await?;
        }
        Ok(())
    }

    /// Reads every replica's daemons from the store into the snapshot, and
    /// deletes rows gone stale now and then.
    pub async fn refresh(&self) -> Result<()> {
        let rows = self.store.daemons_seen_since(ago(STALE_AFTER)).await?;
        let expire = {
            let mut inner = self.lock();
            inner.snapshot = rows.into_iter().map(Connected::from).collect();
            let due = inner.expired.is_none_or(|t| t.elapsed() >= STALE_AFTER);
            if due {
                inner.expired = Some(Instant::now());
            }
            due
        };
        if expire {
            let gone = self.store.expire_daemons(ago(STALE_AFTER)).await?;
            if gone > 0 {
                tracing::info!(rows = gone, "expired daemons of replicas that stopped");
            }
        }
        Ok(())
    }

    /// Refreshes the snapshot every [`REFRESH_EVERY`] until `stop`.
    pub async fn keep_fresh(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not read the connected daemons");
            }
        }
    }

    /// The daemons as the store lists them now (the snapshot when the store
    /// cannot be read).
    pub async fn current(&self) -> Vec<Connected> {
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "could not read the connected daemons; using the last list");
        }
        self.list()
    }

    /// Notes that the daemon still runs `job`, a build of `workspace` the
    /// server has ended. Dropped by [`Self::finished_ended`] or when the
    /// daemon's session ends.
    pub fn running_ended(&self, id: Uuid, job: Uuid, workspace: Uuid) {
        if let Some(l) = self.lock().local.get_mut(&id) {
            l.ended.insert(job, workspace);
        }
    }

    /// The daemon reported `job`; true when it was an ended build it ran.
    pub fn finished_ended(&self, id: Uuid, job: Uuid) -> bool {
        self.lock().local.get_mut(&id).is_some_and(|l| l.ended.remove(&job).is_some())
    }

    /// Whether any daemon connected here still runs an ended build (a cheap
    /// check before looking a job's workspace up).
    pub fn any_running_ended(&self) -> bool {
        self.lock().local.values().any(|l| !l.ended.is_empty())
    }

    /// The daemon name and job of an ended build of `workspace` that a
    /// daemon connected here still runs, if any.
    pub fn running_ended_of(&self, workspace: Uuid) -> Option<(String, Uuid)> {
        self.lock().local.values().find_map(|l| {
            let name = &l.daemon.name;
            l.ended.iter().find(|(_, w)| **w == workspace).map(|(j, _)| (name.clone(), *j))
        })
    }

    /// Every replica's daemons as of the last refresh, with this replica's
    /// own as they are now.
    pub fn list(&self) -> Vec<Connected> {
        let inner = self.lock();
        // This replica's sessions are known first-hand (and a daemon that
        // moved here from another replica is listed once).
        let mut all: Vec<Connected> = inner
            .snapshot
            .iter()
            .filter(|c| c.replica != self.replica && !inner.local.contains_key(&c.id))
            .cloned()
            .collect();
        all.extend(inner.local.values().map(|l| l.daemon.clone()));
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        all
    }

    /// Connected daemons that could take a job with these tags and this
    /// provisioner type (a daemon without terraform cannot run a terraform
    /// job, whatever its tags).
    pub fn matching(&self, job_tags: &Tags, provisioner: &str) -> Matched {
        let all = self.list();
        let fit: Vec<&Connected> = all
            .iter()
            .filter(|c| tags_satisfy(&c.tags, job_tags))
            .filter(|c| c.provisioners.iter().any(|p| p == provisioner))
            .collect();
        Matched {
            count: fit.len(),
            available: fit.iter().filter(|c| c.jobs.is_empty()).count(),
            most_recently_seen: fit.iter().map(|c| c.last_seen).max(),
        }
    }

    /// The ids of the daemons [`Registry::matching`] counts, sorted: a
    /// pending job's `available_workers`.
    pub fn matching_ids(&self, job_tags: &Tags, provisioner: &str) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .list()
            .iter()
            .filter(|c| tags_satisfy(&c.tags, job_tags))
            .filter(|c| c.provisioners.iter().any(|p| p == provisioner))
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn registry() -> (Registry, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store = crate::store::open(&url).await.expect("store");
        (Registry::new(store, Uuid::new_v4()), dir)
    }

    #[tokio::test]
    async fn matching_and_reconnects() {
        let (r, _dir) = registry().await;
        let gpu: Tags =
            crate::domain::with_default_scope(Tags::from([("pool".into(), "gpu".into())]));
        let plain = crate::domain::default_tags();
        let a = Uuid::new_v4();
        let first = r.register(a, "a", "1", &gpu, vec!["echo".into()]).await.expect("register");
        let b = Uuid::new_v4();
        let second = r.register(b, "b", "1", &plain, vec!["echo".into()]).await.expect("register");
        assert_eq!(r.matching(&gpu, "echo").count, 1);
        assert_eq!(
            r.matching(&plain, "echo").count,
            1,
            "untagged jobs only match untagged daemons"
        );
        assert_eq!(r.matching(&plain, "terraform").count, 0, "nor a provisioner it lacks");
        r.seen(b, second, &BTreeSet::from([Uuid::new_v4()])).await.expect("seen");
        assert_eq!(r.matching(&plain, "echo").available, 0, "a busy daemon is not available");
        // A reconnect registers again before the old session ends.
        r.register(a, "a", "1", &gpu, vec!["echo".into()]).await.expect("register");
        r.unregister(a, first).await;
        assert_eq!(r.list().len(), 2, "the old session's end keeps the new registration");
        assert_eq!(r.current().await.len(), 2, "and so does the store");
    }

    /// Another replica on the same store sees this one's daemons and jobs
    /// once it refreshes, and not after they are gone.
    #[tokio::test]
    async fn replicas_share_the_list() {
        let (here, _dir) = registry().await;
        let there = Registry::new(here.store.clone(), Uuid::new_v4());
        let plain = crate::domain::default_tags();
        let a = Uuid::new_v4();
        let s = here.register(a, "a", "1", &plain, vec!["echo".into()]).await.expect("register");
        let job = Uuid::new_v4();
        here.seen(a, s, &BTreeSet::from([job])).await.expect("seen");
        let listed = there.current().await;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].replica, listed[0].jobs.clone()),
            (here.replica, BTreeSet::from([job]))
        );
        assert_eq!(there.matching(&plain, "echo").available, 0, "busy on the other replica");
        // A daemon of short jobs changes them hundreds of times a second:
        // the next change within `JOBS_EVERY` waits, and is written by a
        // later message or re-check (the session calls `seen` every second).
        let next = Uuid::new_v4();
        here.seen(a, s, &BTreeSet::from([next])).await.expect("seen");
        assert_eq!(there.current().await[0].jobs, BTreeSet::from([job]), "not written at once");
        let deadline = Instant::now() + JOBS_EVERY * 5;
        loop {
            here.seen(a, s, &BTreeSet::from([next])).await.expect("seen");
            if there.current().await[0].jobs == BTreeSet::from([next]) {
                break;
            }
            assert!(Instant::now() < deadline, "the later change was never written");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        here.unregister(a, s).await;
        assert!(there.current().await.is_empty());
    }

    #[tokio::test]
    async fn ended_builds_hold_their_workspace_until_reported_or_gone() {
        let (r, _dir) = registry().await;
        let (a, job, ws) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let plain = crate::domain::default_tags();
        let first = r.register(a, "a", "1", &plain, vec!["echo".into()]).await.expect("register");
        assert!(!r.any_running_ended());
        r.running_ended(a, job, ws);
        assert!(r.any_running_ended());
        assert_eq!(r.running_ended_of(ws), Some(("a".to_owned(), job)));
        assert_eq!(r.running_ended_of(Uuid::new_v4()), None);
        assert!(r.finished_ended(a, job));
        assert!(!r.finished_ended(a, job), "reported once");
        assert_eq!(r.running_ended_of(ws), None);
        r.running_ended(a, job, ws);
        r.unregister(a, first).await;
        assert!(!r.any_running_ended(), "a session that ends takes its holds with it");
    }
}
