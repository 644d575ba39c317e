//! The daemons connected to this server right now: who they are, what tags
//! they offer, when they were last heard from, and which jobs they run.
//! Sessions keep it current; the API reads it for `matched_provisioners`
//! and the daemon list, the reaper for pending-timeout messages.
//!
//! In memory and per server process: with several replicas on one
//! PostgreSQL database this moves into the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{tags_satisfy, Tags};

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
    /// Builds the server already ended (it gave up on the daemon) that the
    /// daemon still runs: job id to workspace id. No other build of those
    /// workspaces is handed out until the daemon reports them.
    ended: HashMap<Uuid, Uuid>,
    /// Which session registered it (a reconnect replaces the entry).
    session: u64,
}

/// `matched_provisioners` of seed 002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Matched {
    pub count: usize,
    pub available: usize,
    pub most_recently_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<Uuid, Connected>>>,
    next_session: Arc<std::sync::atomic::AtomicU64>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Connected>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every change is one insert or remove), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a daemon's session; returns the session number to pass to
    /// `unregister`.
    pub fn register(
        &self,
        id: Uuid,
        name: &str,
        version: &str,
        tags: &Tags,
        provisioners: Vec<String>,
    ) -> u64 {
        let session = self.next_session.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Utc::now();
        let entry = Connected {
            id,
            name: name.to_owned(),
            version: version.to_owned(),
            tags: tags.clone(),
            provisioners,
            connected_at: now,
            last_seen: now,
            jobs: BTreeSet::new(),
            ended: HashMap::new(),
            session,
        };
        self.lock().insert(id, entry);
        session
    }

    /// Removes the daemon unless a newer session of it has registered since.
    pub fn unregister(&self, id: Uuid, session: u64) {
        let mut map = self.lock();
        if map.get(&id).is_some_and(|c| c.session == session) {
            map.remove(&id);
        }
    }

    pub fn seen(&self, id: Uuid, jobs: &BTreeSet<Uuid>) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.last_seen = Utc::now();
            c.jobs.clone_from(jobs);
        }
    }

    /// Notes that the daemon still runs `job`, a build of `workspace` the
    /// server has ended. Dropped by [`Self::finished_ended`] or when the
    /// daemon's session ends.
    pub fn running_ended(&self, id: Uuid, job: Uuid, workspace: Uuid) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.ended.insert(job, workspace);
        }
    }

    /// The daemon reported `job`; true when it was an ended build it ran.
    pub fn finished_ended(&self, id: Uuid, job: Uuid) -> bool {
        self.lock().get_mut(&id).is_some_and(|c| c.ended.remove(&job).is_some())
    }

    /// Whether any connected daemon still runs an ended build (a cheap check
    /// before looking a job's workspace up).
    pub fn any_running_ended(&self) -> bool {
        self.lock().values().any(|c| !c.ended.is_empty())
    }

    /// The daemon name and job of an ended build of `workspace` that a
    /// connected daemon still runs, if any.
    pub fn running_ended_of(&self, workspace: Uuid) -> Option<(String, Uuid)> {
        self.lock().values().find_map(|c| {
            c.ended.iter().find(|(_, w)| **w == workspace).map(|(j, _)| (c.name.clone(), *j))
        })
    }

    pub fn list(&self) -> Vec<Connected> {
        let mut all: Vec<Connected> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        all
    }

    /// Connected daemons that could take a job with these tags and this
    /// provisioner type (a daemon without terraform cannot run a terraform
    /// job, whatever its tags).
    pub fn matching(&self, job_tags: &Tags, provisioner: &str) -> Matched {
        let map = self.lock();
        let fit: Vec<&Connected> = map
            .values()
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
        let map = self.lock();
        let mut ids: Vec<Uuid> = map
            .values()
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

    #[test]
    fn matching_and_reconnects() {
        let r = Registry::default();
        let gpu: Tags =
            crate::domain::with_default_scope(Tags::from([("pool".into(), "gpu".into())]));
        let plain = crate::domain::default_tags();
        let a = Uuid::new_v4();
        let first = r.register(a, "a", "1", &gpu, vec!["echo".into()]);
        let b = Uuid::new_v4();
        r.register(b, "b", "1", &plain, vec!["echo".into()]);
        assert_eq!(r.matching(&gpu, "echo").count, 1);
        assert_eq!(
            r.matching(&plain, "echo").count,
            1,
            "untagged jobs only match untagged daemons"
        );
        assert_eq!(r.matching(&plain, "terraform").count, 0, "nor a provisioner it lacks");
        r.seen(b, &BTreeSet::from([Uuid::new_v4()]));
        assert_eq!(r.matching(&plain, "echo").available, 0, "a busy daemon is not available");
        // A reconnect registers again before the old session ends.
        r.register(a, "a", "1", &gpu, vec!["echo".into()]);
        r.unregister(a, first);
        assert_eq!(r.list().len(), 2, "the old session's end keeps the new registration");
    }

    #[test]
    fn ended_builds_hold_their_workspace_until_reported_or_gone() {
        let r = Registry::default();
        let (a, job, ws) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let plain = crate::domain::default_tags();
        let first = r.register(a, "a", "1", &plain, vec!["echo".into()]);
        assert!(!r.any_running_ended());
        r.running_ended(a, job, ws);
        assert!(r.any_running_ended());
        assert_eq!(r.running_ended_of(ws), Some(("a".to_owned(), job)));
        assert_eq!(r.running_ended_of(Uuid::new_v4()), None);
        assert!(r.finished_ended(a, job));
        assert!(!r.finished_ended(a, job), "reported once");
        assert_eq!(r.running_ended_of(ws), None);
        r.running_ended(a, job, ws);
        r.unregister(a, first);
        assert!(!r.any_running_ended(), "a session that ends takes its holds with it");
    }
}
