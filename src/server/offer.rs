//! Builds the job offer a daemon receives: the job plus everything it needs
//! to run it (transition, previous state, workspace metadata, parameters).
//!
//! Reads only; the handover bookkeeping lives in the gRPC session, and
//! the offer's wire form in [`crate::protocol`].

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::{Job, JobInput, LogLevel, NameValue, UnknownVariant};
use crate::protocol::{BuildInput, ImportInput, JobOffer, OfferInput, OfferedFile};
use crate::store::{Store, StoreError};

/// Why an offer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("job input is not valid: {0}")]
    Input(#[from] serde_json::Error),
    #[error("job input is not valid: {0}")]
    LogLevel(#[from] UnknownVariant),
    #[error("{what}: {source}")]
    Store { what: &'static str, source: StoreError },
}

trait Context<T> {
    fn context(self, what: &'static str) -> Result<T, OfferError>;
}

impl<T> Context<T> for Result<T, StoreError> {
    fn context(self, what: &'static str) -> Result<T, OfferError> {
        self.map_err(|source| OfferError::Store { what, source })
    }
}

/// The variable values a template version was imported with; its builds
/// use the same.
async fn version_variables(
    store: &dyn Store,
    import_job: Uuid,
) -> Result<Vec<NameValue>, OfferError> {
    let job = store.job(import_job).await.context("template version import job")?;
    Ok(match serde_json::from_value::<JobInput>(job.input)? {
        JobInput::TemplateVersionImport { user_variable_values, .. } => user_variable_values,
        JobInput::WorkspaceBuild { .. } => Vec::new(),
    })
}

/// Hash and size of template files by id, as a daemon session has read
/// them: a file never changes once uploaded, and a queue of builds of one
/// template names the same file each time, so each is read once.
#[derive(Debug, Default)]
pub struct FileInfos(HashMap<Uuid, (String, i64)>);

impl FileInfos {
    /// Files remembered at most; past that the memory starts over.
    const MAX: usize = 256;

    async fn get(&mut self, store: &dyn Store, id: Uuid) -> Result<(String, i64), OfferError> {
        if let Some(info) = self.0.get(&id) {
            return Ok(info.clone());
        }
        let info = store.file_info(id).await.context("template file")?;
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(id, info.clone());
        Ok(info)
    }
}

/// Describes `job` for a daemon.
pub async fn job_offer(
    store: &dyn Store,
    files: &mut FileInfos,
    job: &Job,
) -> Result<JobOffer, OfferError> {
    // Hash and size only: the daemon fetches the archive itself, once.
    let (file_hash, file_size) = files.get(store, job.file_id).await?;
    let input = match serde_json::from_value::<JobInput>(job.input.clone())? {
        JobInput::WorkspaceBuild { workspace_build_id, dry_run, log_level } => {
            let build = store.build(workspace_build_id).await.context("workspace build")?;
            let ws = store.workspace(build.workspace_id).await.context("workspace")?;
            let owner = store.user_by_id(ws.owner_id).await.context("workspace owner")?;
            let template = store.template(ws.template_id).await.context("template")?;
            let version = store
                .template_version(build.template_version_id)
                .await
                .context("template version")?;
            let variables = version_variables(store, version.job_id).await?;
            let log_level = log_level.map(|l| l.parse::<LogLevel>()).transpose()?;
            OfferInput::WorkspaceBuild(Box::new(BuildInput {
                build_id: build.id,
                build_number: build.build_number,
                transition: build.transition,
                state: build.provisioner_state,
                dry_run,
                log_level,
                workspace_id: ws.id,
                workspace_name: ws.name,
                owner_id: owner.id,
                owner_name: owner.username,
                owner_email: owner.email,
                template_id: template.id,
                template_name: template.name,
                template_version_id: version.id,
                template_version_name: version.name,
                parameters: build.rich_parameters,
                variables,
            }))
        }
        JobInput::TemplateVersionImport { template_version_id, user_variable_values } => {
            OfferInput::TemplateImport(ImportInput { template_version_id, user_variable_values })
        }
    };
    Ok(JobOffer {
        job_id: job.id,
        job_type: job.job_type,
        provisioner: job.provisioner,
        file: OfferedFile { id: job.file_id, hash: file_hash, size: file_size },
        input,
    })
}
