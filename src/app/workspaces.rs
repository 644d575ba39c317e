//! Workspaces: creating one (its first build, a start, goes through the same
//! preparation as every other build), and reading them. Users see their own
//! workspaces; owners and template admins see everyone's (`access`).
//! Anything else is not found, so existence never leaks.

use chrono::Utc;
use uuid::Uuid;

use super::access::{self, Action, Resource, Subject};
use super::builds::{initiator, NewBuild};
use super::{referenced, schedules, validate, App, Error, Result};
use crate::domain::workspace_query::WorkspaceQuery;
use crate::domain::{AutomaticUpdates, BuildReason, NameValue, Transition, WorkspaceBuild};
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
    /// `always` or `never`; `never` when not given.
    pub automatic_updates: Option<String>,
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
            return Err(Error::gone(format!(
                "Workspace {:?} was deleted, you can view this workspace by specifying \
                 '?include_deleted=true' and trying again.",
                ws.id.to_string()
            )));
        }
        Ok(ws)
    }

    /// The owner's live workspace of that name, if the subject may see it;
    /// with `include_deleted`, the most recent deleted one when no live
    /// one has the name.
    pub async fn workspace_by_name(
        &self,
        who: Subject<'_>,
        owner: Uuid,
        name: &str,
        include_deleted: bool,
    ) -> Result<Workspace> {
        let ws = match self.store.workspace_by_owner_and_name(owner, name).await {
            Err(StoreError::NotFound) if include_deleted => {
                self.deleted_by_name(owner, name).await?.ok_or(Error::NotFound)?
            }
            other => other?,
        };
        self.workspace(who, ws.id, include_deleted).await
    }

    /// The owner's most recently created deleted workspace of that name.
    async fn deleted_by_name(&self, owner: Uuid, name: &str) -> Result<Option<Workspace>> {
        let filter = WorkspaceFilter {
            owner_id: Some(owner),
            only_deleted: true,
            name_contains: Some(name.to_owned()),
            ..WorkspaceFilter::default()
        };
        let (list, _) = self.store.workspaces(&filter).await?;
        Ok(list
            .into_iter()
            .filter(|w| w.name.eq_ignore_ascii_case(name))
            .max_by_key(|w| w.created_at))
    }

    /// A page of the workspaces the subject may see that match `q`
    /// (Coder's search grammar) and the separate query parameters
    /// (`owner`, `template`, `name`, `status`), and their count. Every
    /// refused term is one validation.
    pub async fn workspaces(
        &self,
        who: Subject<'_>,
        q: &str,
        params: Vec<(&str, String)>,
        limit: Option<i64>,
        offset: i64,
    ) -> Result<(Vec<Workspace>, i64)> {
        if limit.is_some_and(|l| l < 0) || offset < 0 {
            return Err(Error::bad_request("limit and offset must not be negative"));
        }
        let query = parse_query(q, params)?;
        let visible = match who {
            Subject::User(actor) => (!access::reads_all_workspaces(actor)).then_some(actor.id),
            Subject::System => None,
        };
        let mut filter = WorkspaceFilter {
            owner_id: visible,
            name_contains: query.name,
            template_name: query.template,
            status: query.status,
            dormant: query.dormant,
            outdated: query.outdated,
            only_deleted: query.deleted,
            requester: who.user_id(),
            limit: limit.filter(|l| *l > 0),
            offset,
            ..WorkspaceFilter::default()
        };
        match (query.owner.as_deref(), who.user_id()) {
            (Some("me"), Some(me)) if visible.is_none_or(|v| v == me) => filter.owner_id = Some(me),
            (Some("me"), _) => return Ok((Vec::new(), 0)),
            (Some(name), _) => filter.owner_username = Some(name.to_owned()),
            (None, _) => {}
        }
        Ok(self.store.workspaces(&filter).await?)
    }

    /// Marks or unmarks the owner's favorite; only the owner may, as in Coder.
    pub async fn set_favorite(&self, who: Subject<'_>, id: Uuid, favorite: bool) -> Result<()> {
        let mut ws = self.workspace(who, id, false).await?;
        if who.user_id() != Some(ws.owner_id) {
            let verb = if favorite { "favorite" } else { "un-favorite" };
            return Err(Error::forbidden(format!("You can only {verb} workspaces that you own.")));
        }
        ws.favorite = favorite;
        self.store.update_workspace(&ws).await?;
        self.events.publish(Event::WorkspaceUpdated(ws.id));
        Ok(())
    }

    /// Records a use of the workspace (`last_used_at`).
    pub async fn workspace_used(&self, who: Subject<'_>, id: Uuid) -> Result<()> {
        let mut ws = self.workspace(who, id, false).await?;
        who.may(Action::Update, Resource::Workspace { owner: ws.owner_id })?;
        ws.last_used_at = Some(Utc::now());
        self.store.update_workspace(&ws).await?;
        self.events.publish(Event::WorkspaceUpdated(ws.id));
        Ok(())
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
        let autostart_schedule = schedules::autostart_schedule(req.autostart_schedule.as_deref())?;
        let ttl_ms = schedules::ttl_ms(req.ttl_ms)?;
        let automatic_updates = match req.automatic_updates.as_deref() {
            None | Some("") => AutomaticUpdates::Never,
            Some(raw) => schedules::automatic_updates(raw)?,
        };
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
            autostart_schedule,
            ttl_ms,
            dormant_at: None,
            automatic_updates,
            favorite: false,
            last_used_at: None,
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

/// The search query and the separate parameters as one query; every
/// refused term is a validation of the 400.
fn parse_query(q: &str, params: Vec<(&str, String)>) -> Result<WorkspaceQuery> {
    let (mut query, mut issues) = match WorkspaceQuery::parse(q) {
        Ok(query) => (query, Vec::new()),
        Err(issues) => (WorkspaceQuery::default(), issues),
    };
    for (key, value) in params {
        if let Err(issue) = query.set(key, value) {
            issues.push(issue);
        }
    }
    if issues.is_empty() {
        return Ok(query);
    }
    let detail = issues.iter().map(|i| i.detail.as_str()).collect::<Vec<_>>().join("; ");
    let refusal = Error::bad_request("Invalid workspace search query.").detail(detail);
    Err(issues.into_iter().fold(refusal, |e, i| e.field(&i.field, i.detail)))
}
