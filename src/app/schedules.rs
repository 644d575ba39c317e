//! A workspace's settings and its schedule: autostart, ttl, extending the
//! running build's deadline, dormancy, automatic updates and renaming; and
//! the scheduler's tick, which queues the builds the schedules owe through the one build path
//! (`queue_build`, as the system). The rules themselves are
//! `domain::schedule`'s; this file reads, asks them, and writes. (The
//! deadline a successful start build gets is written by the store with the
//! job's completion, as `domain::job_state::complete_build` decides.)

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::access::{Action, Resource, Subject};
use super::{validate, App, BuildRequest, Error, Result};
use crate::domain::schedule::{self, LatestBuild, Weekly};
use crate::domain::{
    resolve_parameters, AutomaticUpdates, BuildReason, Transition, WorkspaceBuild,
};
use crate::server::Event;
use crate::store::{StoreError, Workspace};

/// A change to a workspace's settings; `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct WorkspaceChange {
    pub name: Option<String>,
    /// `Some(None)` clears the schedule.
    pub autostart_schedule: Option<Option<String>>,
    /// `Some(None)` clears the ttl.
    pub ttl_ms: Option<Option<i64>>,
    pub dormant: Option<bool>,
    pub automatic_updates: Option<String>,
}

/// A validated autostart schedule (for creation and `PUT autostart`).
pub fn autostart_schedule(raw: Option<&str>) -> Result<Option<String>> {
    schedule::autostart(raw).map_err(|why| {
        Error::bad_request("Invalid autostart schedule.").detail(why.clone()).field("schedule", why)
    })
}

/// A validated ttl (for creation and `PUT ttl`).
pub fn ttl_ms(ms: Option<i64>) -> Result<Option<i64>> {
    schedule::ttl(ms).map_err(|why| {
        Error::bad_request("Invalid workspace time to shutdown.").detail(why).field("ttl_ms", why)
    })
}

/// A validated `automatic_updates` value.
pub fn automatic_updates(raw: &str) -> Result<AutomaticUpdates> {
    raw.parse().map_err(|_| Error::invalid("automatic_updates", "must be always or never"))
}

impl App<'_> {
    /// Applies a change to a live workspace the subject may update; returns
    /// the workspace as stored. Clearing the ttl also clears the running
    /// build's deadline, as Coder does, so the workspace is not stopped.
    pub async fn change_workspace(
        &self,
        who: Subject<'_>,
        id: Uuid,
        change: WorkspaceChange,
    ) -> Result<Workspace> {
        let old = self.workspace(who, id, false).await?;
        who.may(Action::Update, Resource::Workspace { owner: old.owner_id })?;
        let mut ws = old.clone();
        if let Some(name) = change.name.filter(|n| *n != old.name) {
            validate::name("name", &name)?;
            ws.name = name;
        }
        if let Some(raw) = change.autostart_schedule {
            ws.autostart_schedule = autostart_schedule(raw.as_deref())?;
        }
        if let Some(ms) = change.ttl_ms {
            ws.ttl_ms = ttl_ms(ms)?;
        }
        if let Some(dormant) = change.dormant {
            ws.dormant_at = match (dormant, old.dormant_at) {
                (true, Some(at)) => Some(at),
                (true, None) => Some(Utc::now()),
                (false, _) => None,
            };
        }
        if let Some(raw) = change.automatic_updates {
            ws.automatic_updates = automatic_updates(&raw)?;
        }
        ws.updated_at = Utc::now();
        match self.store.update_workspace(&ws).await {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::conflict(format!("Workspace {:?} already exists.", ws.name))
                    .field("name", "This value is already in use and should be unique."))
            }
            other => other?,
        }
        if old.ttl_ms.is_some() && ws.ttl_ms.is_none() {
            let (last, _) = super::settled_build(self.store, ws.id).await?;
            if last.transition == Transition::Start && last.deadline.is_some() {
                self.store.set_build_deadline(last.id, None, last.max_deadline).await?;
            }
        }
        self.events.publish(Event::WorkspaceUpdated(ws.id));
        Ok(ws)
    }

    /// Moves the running build's deadline (`PUT extend`), Coder's rules:
    /// only a finished start build with a deadline, at least 30 minutes
    /// ahead, not past its max deadline. Returns the new deadline.
    pub async fn extend_deadline(
        &self,
        who: Subject<'_>,
        id: Uuid,
        new: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let ws = self.workspace(who, id, false).await?;
        who.may(Action::Update, Resource::Workspace { owner: ws.owner_id })?;
        let (build, job) = super::settled_build(self.store, ws.id).await?;
        if build.transition != Transition::Start {
            return Err(Error::conflict(format!(
                "Workspace must be started, current status: {}",
                build.transition
            )));
        }
        let Some(completed) = job.completed_at else {
            return Err(Error::conflict("Workspace is still building!"));
        };
        if build.deadline.is_none() {
            return Err(Error::conflict("Workspace shutdown is manual.")
                .detail("set a ttl (PUT /workspaces/{id}/ttl) to give it a deadline"));
        }
        schedule::check_new_deadline(Utc::now(), completed, new)
            .map_err(|why| Error::bad_request(format!("Cannot extend workspace: {why}")))?;
        if build.max_deadline.is_some_and(|max| new > max) {
            return Err(Error::bad_request("Cannot extend workspace beyond max deadline."));
        }
        self.store.set_build_deadline(build.id, Some(new), build.max_deadline).await?;
        self.events.publish(Event::WorkspaceUpdated(ws.id));
        Ok(new)
    }

    /// Whether the next autostart would fail for want of parameter values:
    /// it moves to the active version only with automatic updates `always`.
    pub async fn resolve_autostart(&self, who: Subject<'_>, id: Uuid) -> Result<bool> {
        let ws = self.workspace(who, id, false).await?;
        if ws.automatic_updates != AutomaticUpdates::Always {
            return Ok(false);
        }
        let template = self.store.template(ws.template_id).await?;
        let (last, _) = super::settled_build(self.store, ws.id).await?;
        if last.template_version_id == template.active_version_id {
            return Ok(false);
        }
        let version = self.store.template_version(template.active_version_id).await?;
        let declared = self
            .store
            .import_result(version.job_id)
            .await?
            .map(|i| i.parameters)
            .unwrap_or_default();
        Ok(resolve_parameters(&declared, &[], &last.rich_parameters).is_err())
    }

    /// One pass of the scheduler at `now`: queues the start or stop build
    /// each scheduled workspace is owed, as the system, and returns them.
    /// A workspace whose build cannot be queued is logged and skipped; a
    /// build another replica queued first is a conflict, skipped quietly.
    pub async fn autobuild_tick(&self, now: DateTime<Utc>) -> Result<Vec<WorkspaceBuild>> {
        let mut queued = Vec::new();
        for ws in self.store.autobuild_candidates().await? {
            match self.autobuild_one(&ws, now).await {
                Ok(Some(build)) => queued.push(build),
                Ok(None) | Err(Error::Conflict(_)) => {}
                Err(e) => {
                    tracing::warn!(workspace = %ws.id, error = %e, "the scheduler could not queue a build")
                }
            }
        }
        Ok(queued)
    }

    async fn autobuild_one(
        &self,
        ws: &Workspace,
        now: DateTime<Utc>,
    ) -> Result<Option<WorkspaceBuild>> {
        let (last, job) = super::settled_build(self.store, ws.id).await?;
        let weekly = match ws.autostart_schedule.as_deref().map(Weekly::parse) {
            Some(Err(why)) => {
                tracing::warn!(workspace = %ws.id, error = %why, "invalid autostart schedule, skipped");
                None
            }
            Some(Ok(w)) => Some(w),
            None => None,
        };
        let facts = LatestBuild {
            transition: last.transition,
            job: job.status(),
            created_at: last.created_at,
            deadline: last.deadline,
        };
        let Some(transition) = schedule::due(weekly.as_ref(), &facts, now) else {
            return Ok(None);
        };
        let reason = match transition {
            Transition::Start => BuildReason::Autostart,
            _ => BuildReason::Autostop,
        };
        let mut req = BuildRequest::new(transition, reason);
        if transition == Transition::Start && ws.automatic_updates == AutomaticUpdates::Always {
            req.template_version_id =
                Some(self.store.template(ws.template_id).await?.active_version_id);
        }
        let build = self.queue_build(Subject::System, ws.id, req).await?;
        tracing::info!(workspace = %ws.id, build = %build.id, %reason, "the scheduler queued a build");
        Ok(Some(build))
    }
}

/// The next time the workspace's schedule starts it, after `now`.
pub fn next_start_at(ws: &Workspace, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let weekly = Weekly::parse(ws.autostart_schedule.as_deref()?).ok()?;
    weekly.next_after(now)
}
