//! Workspaces: creating one (its first build, a start, goes through the same
//! preparation as every other build), and reading them. Users see their own
//! workspaces; owners and template admins see everyone's (`access`).
//! Anything else is not found, so existence never leaks.

use chrono::Utc;
use uuid::Uuid;

use super::access::{self, Action, Resource, Subject};
use super::builds::{initiator, NewBuild};
use super::{referenced, validate, App, Error, Result};
use crate::domain::{BuildReason, NameValue, Transition, WorkspaceBuild};
use crate::server::Event;
use crate::store::{StoreError, Template, TemplateVersion, User, Workspace, WorkspaceFilter};

/// A workspace to create, as the request gives it.
pub struct NewWorkspace {
    pub name: String,
    pub template_id: Option<Uuid>,
    /// Wins over `template_id` when both are given.
    pub template_version_id: Option<Uuid>,
    pub rich_parameter_values: Vec<NameValue>,
    pub autostart_schedule: Option<String>,
    pub ttl_ms: Option<i64>,
}

impl App<'_> {
    /// The workspace if the subject may see it (deleted ones only when asked).
    pub async fn workspace(
        &self,
        who: Subject<'_>,
        id: Uuid,
        include_deleted: bool,
    ) -> Result<Workspace> {
        let ws = self.store.workspace(id).await?;
        who.may(Action::Read, Resource::Workspace { owner: ws.owner_id })?;
        if ws.deleted && !include_deleted {
            return Err(Error::NotFound);
        }
        Ok(ws)
    }

    /// The owner's live workspace of that name, if the subject may see it.
    pub async fn workspace_by_name(
        &self,
        who: Subject<'_>,
        owner: Uuid,
        name: &str,
    ) -> Result<Workspace> {
        let ws = self.store.workspace_by_owner_and_name(owner, name).await?;
        self.workspace(who, ws.id, false).await
    }

    /// A page of the live workspaces the subject may see, and their count.
    pub async fn workspaces(
        &self,
        who: Subject<'_>,
        limit: Option<i64>,
        offset: i64,
    ) -> Result<(Vec<Workspace>, i64)> {
        if limit.is_some_and(|l| l < 0) || offset < 0 {
            return Err(Error::bad_request("limit and offset must not be negative"));
        }
        let owner_id = match who {
            Subject::User(actor) => (!access::reads_all_workspaces(actor)).then_some(actor.id),
            Subject::System => None,
        };
        let filter = WorkspaceFilter {
            owner_id,
            include_deleted: false,
            limit: limit.filter(|l| *l > 0),
            offset,
        };
        Ok(self.store.workspaces(&filter).await?)
    }

    /// Creates a workspace for `owner` and queues its first build (a start
    /// of the template's active version, or of the version asked for).
    /// `organization` is the organization named in the request, or `None`
    /// for the template's own.
    pub async fn create_workspace(
        &self,
        who: Subject<'_>,
        owner: &User,
        organization: Option<&str>,
        req: NewWorkspace,
    ) -> Result<(Workspace, WorkspaceBuild)> {
        who.may(Action::Create, Resource::Workspace { owner: owner.id })?;
        validate::name("name", &req.name)?;
        let names: Vec<&str> = req.rich_parameter_values.iter().map(|v| v.name.as_str()).collect();
        validate::values("rich_parameter_values", &names)?;
        let (template, version) = self.workspace_template(&req).await?;
        let org = match organization {
            None => self.store.organization_by_id(template.organization_id).await?,
            Some(param) => self.organization_by_ref(param).await?,
        };
        if org.id != template.organization_id {
            return Err(Error::invalid("template_id", "template belongs to another organization"));
        }
        self.ensure_imported(&version).await?;
        let now = Utc::now();
        let ws = Workspace {
            id: Uuid::new_v4(),
            organization_id: org.id,
            owner_id: owner.id,
            template_id: template.id,
            name: req.name,
            deleted: false,
            autostart_schedule: req.autostart_schedule,
            ttl_ms: req.ttl_ms,
            created_at: now,
            updated_at: now,
        };
        let reason = match who {
            Subject::User(_) => BuildReason::Initiator,
            Subject::System => BuildReason::Autostart,
        };
        let new = NewBuild {
            workspace: &ws,
            build_number: 1,
            transition: Transition::Start,
            reason,
            version: &version,
            initiator: initiator(who, &ws),
            state: Vec::new(),
            parameters: req.rich_parameter_values,
            previous_parameters: &[],
            dry_run: false,
            log_level: None,
        };
        let (build, job) = self.prepare(new).await?;
        match self.store.insert_workspace(&ws, &build, &job).await {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::conflict("A workspace with that name already exists.")
                    .field("name", "already in use"))
            }
            other => other?,
        }
        self.events.publish(Event::JobQueued);
        Ok((ws, build))
    }

    /// The template and version a new workspace is built from.
    async fn workspace_template(&self, req: &NewWorkspace) -> Result<(Template, TemplateVersion)> {
        match (req.template_id, req.template_version_id) {
            // Seed 002: one or the other, not both.
            (Some(_), Some(_)) => Err(Error::invalid(
                "template_version_id",
                "give template_id or template_version_id, not both",
            )),
            (None, Some(v)) => {
                let field = "template_version_id";
                let version = referenced(
                    self.store.template_version(v).await,
                    field,
                    "no such template version",
                )?;
                let t = version
                    .template_id
                    .ok_or_else(|| Error::invalid(field, "version belongs to no template"))?;
                Ok((self.store.template(t).await?, version))
            }
            (Some(t), None) => {
                let template =
                    referenced(self.store.template(t).await, "template_id", "no such template")?;
                let version = self.store.template_version(template.active_version_id).await?;
                Ok((template, version))
            }
            (None, None) => {
                Err(Error::invalid("template_id", "template_id or template_version_id is required"))
            }
        }
    }
}
