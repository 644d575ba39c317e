//! Templates and their versions: importing a version (its job runs
//! terraform init and plan, no apply, so a broken template fails before
//! anyone builds it), creating a template on an imported version, promoting
//! a version, and the one "import succeeded" gate (`domain::check_imported`)
//! every use of a version goes through.

use chrono::Utc;
use uuid::Uuid;

use super::access::{Action, Resource, Subject};
use super::{referenced, validate, App, Error, Result};
use crate::domain::{
    check_imported, with_default_scope, Job, JobInput, JobOrigin, JobType, NameValue, NotImported,
    Provisioner, Tags,
};
use crate::server::Event;
use crate::store::{StoreError, Template, TemplateVersion};

/// A template version to import, as the request gives it.
pub struct NewVersion {
    pub file_id: Uuid,
    pub storage_method: String,
    pub provisioner: String,
    pub tags: Tags,
    pub name: Option<String>,
    pub template_id: Option<Uuid>,
    pub message: Option<String>,
    pub user_variable_values: Vec<NameValue>,
}

/// A template to create on an imported version.
pub struct NewTemplate {
    pub name: String,
    pub template_version_id: Uuid,
    pub display_name: String,
    pub description: String,
}

/// A new job in the queue; its input cannot fail to serialize in practice.
pub(super) fn queued_job(
    job_type: JobType,
    provisioner: Provisioner,
    origin: JobOrigin,
    input: &JobInput,
    tags: Tags,
) -> Result<Job> {
    Job::queued(job_type, provisioner, origin, input, tags).map_err(Error::internal)
}

impl App<'_> {
    /// Queues the import of a template version in the organization.
    pub async fn import_version(
        &self,
        who: Subject<'_>,
        organization: &str,
        req: NewVersion,
    ) -> Result<TemplateVersion> {
        if let Some(name) = &req.name {
            validate::version_name("name", name)?;
        }
        validate::max_len("message", req.message.as_deref().unwrap_or(""), validate::MAX_MESSAGE)?;
        validate::tags("tags", &req.tags)?;
        let names: Vec<&str> = req.user_variable_values.iter().map(|v| v.name.as_str()).collect();
        validate::values("user_variable_values", &names)?;
        let org = self.organization_by_ref(organization).await?;
        let has_template = req.template_id.is_some();
        who.may(Action::Create, Resource::TemplateVersion { has_template })?;
        if req.storage_method != "file" {
            return Err(Error::invalid("storage_method", "only \"file\" is supported"));
        }
        let provisioner: Provisioner = req
            .provisioner
            .parse()
            .map_err(|_| Error::invalid("provisioner", "must be \"terraform\" or \"echo\""))?;
        let no_file = "no file with that id: upload it with POST /api/v2/files";
        referenced(self.store.file(req.file_id).await, "file_id", no_file)?;
        if let Some(t) = req.template_id {
            let template =
                referenced(self.store.template(t).await, "template_id", "no such template")?;
            if template.organization_id != org.id {
                return Err(Error::invalid(
                    "template_id",
                    "template belongs to another organization",
                ));
            }
        }
        let initiator = acting_user(who)?;
        let id = Uuid::new_v4();
        let input = JobInput::TemplateVersionImport {
            template_version_id: id,
            user_variable_values: req.user_variable_values,
        };
        let job = queued_job(
            JobType::TemplateVersionImport,
            provisioner,
            JobOrigin { organization_id: org.id, initiator_id: initiator, file_id: req.file_id },
            &input,
            with_default_scope(req.tags),
        )?;
        let now = Utc::now();
        let version = TemplateVersion {
            id,
            template_id: req.template_id,
            organization_id: org.id,
            name: req.name.unwrap_or_else(|| format!("v-{}", &id.simple().to_string()[..8])),
            message: req.message.unwrap_or_default(),
            job_id: job.id,
            created_by: initiator,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_template_version(&version, &job).await?;
        self.events.publish(Event::JobQueued);
        Ok(version)
    }

    /// A template (everyone may read templates).
    pub async fn template(&self, who: Subject<'_>, id: Uuid) -> Result<Template> {
        who.may(Action::Read, Resource::Template)?;
        Ok(self.store.template(id).await?)
    }

    /// The organization's template of that name.
    pub async fn template_by_name(
        &self,
        who: Subject<'_>,
        organization: &str,
        name: &str,
    ) -> Result<Template> {
        who.may(Action::Read, Resource::Template)?;
        let org = self.organization_by_ref(organization).await?;
        Ok(self.store.template_by_name(org.id, name).await?)
    }

    /// The organization's templates.
    pub async fn templates(&self, who: Subject<'_>, organization: &str) -> Result<Vec<Template>> {
        who.may(Action::Read, Resource::Template)?;
        let org = self.organization_by_ref(organization).await?;
        Ok(self.store.templates_of_organization(org.id).await?)
    }

    /// The versions of a template.
    pub async fn versions_of(
        &self,
        who: Subject<'_>,
        template: Uuid,
    ) -> Result<Vec<TemplateVersion>> {
        let t = self.template(who, template).await?;
        Ok(self.store.template_versions_of_template(t.id).await?)
    }

    /// A template version the subject may read.
    pub async fn template_version(&self, who: Subject<'_>, id: Uuid) -> Result<TemplateVersion> {
        let v = self.store.template_version(id).await?;
        who.may(Action::Read, Resource::TemplateVersion { has_template: v.template_id.is_some() })?;
        Ok(v)
    }

    /// The import job of a version the subject may read, once it succeeded
    /// (for what the import found: resources, parameters, variables).
    pub async fn imported_version(&self, who: Subject<'_>, id: Uuid) -> Result<Job> {
        let version = self.template_version(who, id).await?;
        let job = self.store.job(version.job_id).await?;
        match check_imported(&job) {
            Ok(()) => Ok(job),
            Err(NotImported::Failed { error, .. }) => {
                Err(Error::bad_request("The template version's import did not succeed.")
                    .detail(error.unwrap_or_default()))
            }
            Err(NotImported::Unfinished { .. }) => {
                Err(Error::bad_request("The template version's import has not completed.")
                    .detail("wait for the version's job to succeed, then ask again"))
            }
        }
    }

    /// A version can back a template or build only once its import succeeded.
    pub(super) async fn ensure_imported(&self, version: &TemplateVersion) -> Result<()> {
        let job = self.store.job(version.job_id).await?;
        let (status, error) = match check_imported(&job) {
            Ok(()) => return Ok(()),
            Err(NotImported::Failed { status, error }) => (status, error),
            Err(NotImported::Unfinished { status }) => (status, None),
        };
        Err(Error::invalid(
            "template_version_id",
            format!(
                "template version import is {status}, not succeeded{}",
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ))
    }

    /// Creates a template in the organization on an imported version that
    /// backs no template yet.
    pub async fn create_template(
        &self,
        who: Subject<'_>,
        organization: &str,
        req: NewTemplate,
    ) -> Result<Template> {
        let org = self.organization_by_ref(organization).await?;
        who.may(Action::Create, Resource::Template)?;
        validate::name("name", &req.name)?;
        validate::display_name("display_name", &req.display_name)?;
        validate::max_len("description", &req.description, validate::MAX_DESCRIPTION)?;
        let version = referenced(
            self.store.template_version(req.template_version_id).await,
            "template_version_id",
            "no such template version",
        )?;
        if version.organization_id != org.id {
            return Err(Error::invalid(
                "template_version_id",
                "the template version belongs to another organization",
            ));
        }
        if let Some(owner) = version.template_id {
            return Err(owned_version(owner));
        }
        self.ensure_imported(&version).await?;
        let creator = acting_user(who)?;
        let now = Utc::now();
        let template = Template {
            id: Uuid::new_v4(),
            organization_id: org.id,
            name: req.name,
            display_name: req.display_name,
            description: req.description,
            active_version_id: version.id,
            created_by: creator,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_template(&template).await {
            Err(StoreError::Conflict(_)) => {
                // The store refuses both a taken name and a version another
                // template claimed since we read it; the version tells which.
                let now = self.store.template_version(version.id).await?;
                if let Some(owner) = now.template_id.filter(|o| *o != template.id) {
                    return Err(owned_version(owner));
                }
                Err(Error::conflict(format!(
                    "A template named {:?} already exists.",
                    template.name
                )))
            }
            other => Ok(other.map(|()| template)?),
        }
    }

    /// Makes an imported version of the template (or of none yet) its
    /// active version.
    pub async fn promote(
        &self,
        who: Subject<'_>,
        template_id: Uuid,
        version_id: Uuid,
    ) -> Result<()> {
        let t = self.store.template(template_id).await?;
        who.may(Action::Update, Resource::Template)?;
        let version = referenced(
            self.store.template_version(version_id).await,
            "id",
            "no such template version",
        )?;
        if version.template_id.is_some_and(|owner| owner != t.id)
            || version.organization_id != t.organization_id
        {
            return Err(Error::invalid("id", "template version belongs to another template"));
        }
        self.ensure_imported(&version).await?;
        self.store.set_active_version(t.id, version.id).await?;
        Ok(())
    }
}

/// The user a template or version is recorded as made by: templates are a
/// person's work, so the system makes none.
fn acting_user(who: Subject<'_>) -> Result<Uuid> {
    who.user_id().ok_or_else(|| Error::internal("templates are made by users, not by the system"))
}

/// A version backs at most one template: taking it over would leave its
/// template listing no versions.
fn owned_version(owner: Uuid) -> Error {
    Error::invalid(
        "template_version_id",
        format!(
            "the template version already belongs to template {owner}: push a new version \
             (POST /api/v2/organizations/{{organization}}/templateversions) for the new template"
        ),
    )
}
