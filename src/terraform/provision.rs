//! One job's terraform run from archive to result (interface; to be implemented).

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::{LogLine, NameValue, Resource, Transition};

/// How the daemon runs terraform.
#[derive(Debug, Clone)]
pub struct TerraformConfig {
    /// The terraform executable.
    pub path: PathBuf,
    /// Time between SIGINT and SIGKILL when a job is canceled.
    pub cancel_grace: Duration,
    /// Plugin cache for this job slot (never shared between concurrent jobs).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Parent of the per-job work directories.
    pub work_root: PathBuf,
    /// Limits for unpacking the template archive.
    pub limits: super::archive::Limits,
}

/// What to do with the template.
#[derive(Debug, Clone)]
pub enum ProvisionKind {
    /// Apply a transition (plan only when `dry_run`).
    Build { transition: Transition, state: Vec<u8>, dry_run: bool },
    /// Template version import: init and plan, never apply.
    Import,
}

/// One job's input.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    pub archive: bytes::Bytes,
    pub kind: ProvisionKind,
    /// Extra environment for terraform (`CODER_WORKSPACE_*` and the like).
    pub env: Vec<(String, String)>,
    pub parameters: Vec<NameValue>,
    /// Terraform input variables (`-var name=value`).
    pub variables: Vec<NameValue>,
}

/// What a successful run produced.
#[derive(Debug, Clone, Default)]
pub struct ProvisionOutcome {
    /// The state file's bytes after apply (the unchanged state for plans).
    pub state: Vec<u8>,
    pub resources: Vec<Resource>,
}

/// A run that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProvisionError {
    /// What went wrong, with terraform's own message where it has one.
    pub message: String,
    pub code: Option<String>,
    /// Whatever state terraform wrote before it stopped.
    pub state: Option<Vec<u8>>,
    /// The run stopped because it was canceled.
    pub canceled: bool,
}

/// Runs one job. Log lines go to `logs` as they happen.
pub async fn provision(
    _config: &TerraformConfig,
    _request: ProvisionRequest,
    _logs: mpsc::Sender<LogLine>,
    _cancel: CancellationToken,
) -> Result<ProvisionOutcome, ProvisionError> {
    Err(ProvisionError {
        message: "terraform provisioner not implemented yet".into(),
        code: None,
        state: None,
        canceled: false,
    })
}
