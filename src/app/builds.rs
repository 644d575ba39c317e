//! Workspace builds: the one path that queues a build, whoever asks (a user
//! through the REST API, a new workspace's first build, a scheduler with a
//! reason such as `autostart`), with seed 000's rules; cancelling a build;
//! and reading builds the subject may see.
//!
//! Coder's wsbuilder is the model: the handler and the autobuild executor
//! call the same builder, which owns the rules.

use chrono::Utc;
use uuid::Uuid;

use super::access::{Action, Resource, Subject};
use super::templates::queued_job;
use super::{referenced, validate, App, Error, Result};
use crate::domain::job_state;
use crate::domain::{
    check_transition, resolve_parameters, BuildReason, Job, JobInput, JobOrigin, JobType,
    NameValue, Transition, WorkspaceBuild,
};
use crate::server::Event;
use crate::store::{BuildPage, CancelResult, Store, StoreError, TemplateVersion, Workspace};

/// What a build should do, beyond the workspace it is for.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub transition: Transition,
    /// Why the build runs: `initiator` when a user asks, `autostart`,
    /// `autostop`, ... when the server does.
    pub reason: BuildReason,
    /// The version to build; the latest build's when `None`.
    pub template_version_id: Option<Uuid>,
    /// `rich_parameter_values`; the rest are inherited or defaulted.
    pub parameters: Vec<NameValue>,
    /// A hand-written state instead of the latest build's (template managers).
    pub state: Option<Vec<u8>>,
    /// Delete without running the template's destroy (template managers).
    pub orphan: bool,
    pub dry_run: bool,
    /// Only `debug`, for owners.
    pub log_level: Option<String>,
}

impl BuildRequest {
    /// A plain build of the latest version with the previous values.
    pub fn new(transition: Transition, reason: BuildReason) -> Self {
        Self {
            transition,
            reason,
            template_version_id: None,
            parameters: Vec::new(),
            state: None,
            orphan: false,
            dry_run: false,
            log_level: None,
        }
    }
}

/// What a new build needs once the rules have passed.
pub(super) struct NewBuild<'a> {
    pub workspace: &'a Workspace,
    pub build_number: i32,
    pub transition: Transition,
    pub reason: BuildReason,
    pub version: &'a TemplateVersion,
    pub initiator: Uuid,
    pub state: Vec<u8>,
    /// The `rich_parameter_values` of the request.
    pub parameters: Vec<NameValue>,
    /// The values of the workspace's previous build (empty for the first).
    pub previous_parameters: &'a [NameValue],
    pub dry_run: bool,
    pub log_level: Option<String>,
}

/// The user a build is recorded as initiated by: the caller, or for builds
/// the server starts by itself, the workspace's owner (Coder's autobuild).
pub(super) fn initiator(who: Subject<'_>, ws: &Workspace) -> Uuid {
    who.user_id().unwrap_or(ws.owner_id)
}

/// The request's own consistency, before anything is read.
fn check_request(req: &BuildRequest) -> Result<()> {
    if req.orphan && req.transition != Transition::Delete {
        return Err(Error::invalid("orphan", "orphan is only allowed with the delete transition"));
    }
    if req.orphan && req.state.is_some() {
        return Err(Error::invalid("orphan", "orphan and state cannot be combined"));
    }
    if req.log_level.as_deref().is_some_and(|level| level != "debug") {
        return Err(Error::invalid("log_level", "only \"debug\" is supported"));
    }
    Ok(())
}

/// Coder's wsbuilder checks: the subject may change the workspace (a delete
/// build deletes it); only template managers may hand a build its state or
/// orphan a workspace, since a hand-written state is run by the template's
/// destroy provisioners; a debug log level is for owners.
fn authorize_build(who: Subject<'_>, ws: &Workspace, req: &BuildRequest) -> Result<()> {
    let action = if req.transition == Transition::Delete { Action::Delete } else { Action::Update };
    who.may(action, Resource::Workspace { owner: ws.owner_id })?;
    if req.state.is_some() || req.orphan {
        who.may(Action::Update, Resource::ProvisionerState)?;
    }
    if req.log_level.is_some() && who.may(Action::Read, Resource::DeploymentConfig).is_err() {
        return Err(Error::bad_request(
            "Workspace builds with a custom log level are restricted to administrators only.",
        )
        .detail("leave out log_level, or ask an owner to run the build"));
    }
    Ok(())
}

/// One active build per workspace (the rule is `job_state`'s; the store
/// applies it again for builds racing past this check).
fn check_no_active_build(last: &WorkspaceBuild, last_job: &Job) -> Result<()> {
    job_state::ensure_no_active_build(last.build_number, last_job).map_err(|active| {
        active_build(format!("{active} ({}); wait for it or cancel it first", last_job.status()))
    })
}

fn active_build(detail: String) -> Error {
    Error::conflict("A workspace build is already active.").detail(detail)
}

impl App<'_> {
    /// Queues a build of the workspace: the one path for every build.
    pub async fn queue_build(
        &self,
        who: Subject<'_>,
        workspace_id: Uuid,
        mut req: BuildRequest,
    ) -> Result<WorkspaceBuild> {
        // An empty state is no state, as Coder ignores it: a build told to
        // start from nothing would re-create every resource.
        req.state = req.state.filter(|s| !s.is_empty());
        check_request(&req)?;
        let ws = self.workspace(who, workspace_id, true).await?;
        authorize_build(who, &ws, &req)?;
        if ws.dormant_at.is_some() && req.transition == Transition::Start {
            return Err(Error::forbidden("Workspace is dormant and cannot be started.").detail(
                "activate it first: PUT /api/v2/workspaces/{id}/dormant with {\"dormant\": false}",
            ));
        }
        let latest = self.store.latest_build(ws.id).await?;
        let latest_job = self.store.job(latest.job_id).await?;
        check_no_active_build(&latest, &latest_job)?;
        // Past dry runs that ended: they changed nothing.
        let next_number = latest.build_number + 1;
        let (last, last_job) = settled_from(self.store, latest, latest_job).await?;
        check_transition(ws.deleted, last.transition, last_job.status(), req.transition).map_err(
            |why| {
                Error::bad_request(format!("Invalid transition: {why}.")).field("transition", why)
            },
        )?;
        let version = self.build_version(&ws, &last, req.template_version_id).await?;
        // A build inherits the latest build's state unless told otherwise.
        let state = if req.orphan {
            Vec::new()
        } else {
            req.state.unwrap_or_else(|| last.provisioner_state.clone())
        };
        let new = NewBuild {
            workspace: &ws,
            build_number: next_number,
            transition: req.transition,
            reason: req.reason,
            version: &version,
            initiator: initiator(who, &ws),
            state,
            parameters: req.parameters,
            previous_parameters: &last.rich_parameters,
            dry_run: req.dry_run,
            log_level: req.log_level,
        };
        let (build, job) = self.prepare(new).await?;
        match self.store.insert_build(&build, &job).await {
            Err(StoreError::Conflict(detail)) => return Err(active_build(detail)),
            other => other?,
        }
        self.events.publish(Event::JobQueued);
        Ok(build)
    }

    /// The version a build runs: the one asked for (of the workspace's
    /// template, imported), or the latest build's.
    async fn build_version(
        &self,
        ws: &Workspace,
        last: &WorkspaceBuild,
        asked: Option<Uuid>,
    ) -> Result<TemplateVersion> {
        let Some(id) = asked else {
            return Ok(self.store.template_version(last.template_version_id).await?);
        };
        let field = "template_version_id";
        let version =
            referenced(self.store.template_version(id).await, field, "no such template version")?;
        if version.template_id != Some(ws.template_id) {
            return Err(Error::invalid(field, "the version belongs to another template"));
        }
        self.ensure_imported(&version).await?;
        Ok(version)
    }

    /// Builds the build row and its job; the job takes the tags of the
    /// version's import job, so it runs where the template was imported.
    pub(super) async fn prepare(&self, n: NewBuild<'_>) -> Result<(WorkspaceBuild, Job)> {
        let import = self.store.job(n.version.job_id).await?;
        let parameters = self.build_parameters(&n).await?;
        let id = Uuid::new_v4();
        let input = JobInput::WorkspaceBuild {
            workspace_build_id: id,
            dry_run: n.dry_run,
            log_level: n.log_level,
        };
        let origin = JobOrigin {
            organization_id: n.workspace.organization_id,
            initiator_id: n.initiator,
            file_id: import.file_id,
        };
        let job =
            queued_job(JobType::WorkspaceBuild, import.provisioner, origin, &input, import.tags)?;
        let now = Utc::now();
        let build = WorkspaceBuild {
            id,
            workspace_id: n.workspace.id,
            build_number: n.build_number,
            transition: n.transition,
            template_version_id: n.version.id,
            initiator_id: n.initiator,
            reason: n.reason,
            provisioner_state: n.state,
            job_id: job.id,
            deadline: None,
            max_deadline: None,
            daily_cost: 0,
            rich_parameters: parameters,
            created_at: now,
            updated_at: now,
        };
        Ok((build, job))
    }

    /// The values the build runs with: every value given must be for a
    /// `coder_parameter` the template declares (a template that declares
    /// none, such as an echo template without `parameters`, takes none);
    /// each is checked against its rules, values are inherited from the
    /// previous build and defaults filled in. One validation per bad field.
    async fn build_parameters(&self, n: &NewBuild<'_>) -> Result<Vec<NameValue>> {
        let names: Vec<&str> = n.parameters.iter().map(|v| v.name.as_str()).collect();
        validate::values("rich_parameter_values", &names)?;
        let declared = self
            .store
            .import_result(n.version.job_id)
            .await?
            .map(|i| i.parameters)
            .unwrap_or_default();
        resolve_parameters(&declared, &n.parameters, n.previous_parameters).map_err(|issues| {
            let detail = issues
                .iter()
                .map(|i| format!("{}: {}", i.field, i.detail))
                .collect::<Vec<_>>()
                .join("; ");
            let invalid = Error::bad_request("Invalid rich parameter values.").detail(detail);
            issues.into_iter().fold(invalid, |e, i| e.field(&i.field, i.detail))
        })
    }

    /// Cancels the build's job: a pending one at once, a running one by
    /// telling its daemon. A job that already ended, or is being canceled,
    /// cannot be canceled again.
    pub async fn cancel_build(&self, who: Subject<'_>, build_id: Uuid) -> Result<()> {
        let build = self.build(who, build_id).await?;
        let ws = self.workspace(who, build.workspace_id, true).await?;
        who.may(Action::Update, Resource::Workspace { owner: ws.owner_id })?;
        match self.store.cancel_job(build.job_id).await? {
            CancelResult::AlreadyDone => {
                Err(Error::bad_request("Job has already completed or is being canceled."))
            }
            CancelResult::CanceledPending | CancelResult::Canceling => {
                self.events.publish(Event::JobCanceled(build.job_id));
                Ok(())
            }
        }
    }

    /// A build the subject may see (through its workspace, deleted or not).
    pub async fn build(&self, who: Subject<'_>, id: Uuid) -> Result<WorkspaceBuild> {
        let build = self.store.build(id).await?;
        self.workspace(who, build.workspace_id, true).await?;
        Ok(build)
    }

    /// A build by its number in the owner's live workspace of that name.
    pub async fn build_by_number(
        &self,
        who: Subject<'_>,
        owner: Uuid,
        workspace: &str,
        number: i32,
    ) -> Result<WorkspaceBuild> {
        let ws = self.store.workspace_by_owner_and_name(owner, workspace).await?;
        self.workspace(who, ws.id, false).await?;
        Ok(self.store.build_by_number(ws.id, number).await?)
    }

    /// A page of the workspace's builds, newest first.
    pub async fn builds_of_workspace(
        &self,
        who: Subject<'_>,
        workspace_id: Uuid,
        mut page: BuildPage,
        after_id: Option<Uuid>,
    ) -> Result<Vec<WorkspaceBuild>> {
        let ws = self.workspace(who, workspace_id, true).await?;
        // The cursor is a build of this workspace; Coder answers 400 for
        // one that does not exist rather than an empty page.
        if let Some(after) = after_id {
            let cursor = match self.store.build(after).await {
                Ok(b) if b.workspace_id == ws.id => b,
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(Error::bad_request(format!(
                        "Record at \"after_id\" ({after:?}) does not exist."
                    ))
                    .field("after_id", "no build of this workspace has this id"));
                }
                Err(e) => return Err(e.into()),
            };
            page.after_number = Some(i64::from(cursor.build_number));
        }
        Ok(self.store.builds_of_workspace(ws.id, &page).await?)
    }

    /// A build the subject may see, with its provisioner timings.
    pub async fn build_timings(
        &self,
        who: Subject<'_>,
        id: Uuid,
    ) -> Result<(WorkspaceBuild, Vec<crate::domain::ProvisionerTiming>)> {
        let build = self.build(who, id).await?;
        let timings = self.store.job_timings(build.job_id).await?;
        Ok((build, timings))
    }

    /// The timings of the latest build of a live workspace the subject may see.
    pub async fn workspace_timings(
        &self,
        who: Subject<'_>,
        workspace_id: Uuid,
    ) -> Result<(WorkspaceBuild, Vec<crate::domain::ProvisionerTiming>)> {
        let ws = self.workspace(who, workspace_id, false).await?;
        let build = self.store.latest_build(ws.id).await?;
        let timings = self.store.job_timings(build.job_id).await?;
        Ok((build, timings))
    }

    /// A build's raw terraform state. State can hold secrets: like Coder,
    /// only template managers read it raw, and to anyone else it does not
    /// exist.
    pub async fn raw_state(&self, who: Subject<'_>, build_id: Uuid) -> Result<Vec<u8>> {
        let build = self.build(who, build_id).await?;
        who.may(Action::Read, Resource::ProvisionerState)?;
        Ok(build.provisioner_state)
    }
}

/// The workspace's latest build that speaks for it, with its job: the
/// latest build, or the one before the dry runs that ended after it
/// ([`crate::domain::build_speaks_for_workspace`]).
pub async fn settled_build(
    store: &dyn Store,
    workspace_id: Uuid,
) -> std::result::Result<(WorkspaceBuild, Job), StoreError> {
    let build = store.latest_build(workspace_id).await?;
    let job = store.job(build.job_id).await?;
    settled_from(store, build, job).await
}

/// [`settled_build`] from a latest build already read.
async fn settled_from(
    store: &dyn Store,
    mut build: WorkspaceBuild,
    mut job: Job,
) -> std::result::Result<(WorkspaceBuild, Job), StoreError> {
    // Build numbers have no gaps and a workspace's first build is never a
    // dry run, so this ends at build 1 at the latest.
    while !crate::domain::build_speaks_for_workspace(&job) && build.build_number > 1 {
        build = store.build_by_number(build.workspace_id, build.build_number - 1).await?;
        job = store.job(build.job_id).await?;
    }
    Ok((build, job))
}
