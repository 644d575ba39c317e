//! The provisioner contract: what a daemon hands a provisioner for one job
//! and what it gets back, whichever provisioner runs it (`terraform`, or
//! `echo` for tests and benchmarks). A provisioner implements [`Provision`]:
//! it takes a [`ProvisionRequest`], sends its log lines in batches to a
//! [`LogSink`] as they happen, honours a cancellation token, and returns a
//! [`ProvisionOutcome`] or a [`ProvisionError`].
//!
//! Log lines travel as batches, not one by one: what terraform printed
//! between two reads of its pipe goes to the sink as one `Vec`, and the sink
//! (the worker's job task) hands it to the connection manager as one
//! message. This module knows no gRPC, HTTP, store or terraform.

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::{ImportResult, LogLine, NameValue, ProvisionerTiming, Resource, Transition};

/// Most lines in one batch a provisioner sends: the same as the most lines
/// the daemon puts in one protocol message, so a batch never needs more
/// than one. A provisioner with more lines at hand sends several batches.
pub const MAX_BATCH_LINES: usize = 500;

/// What to do with the template.
#[derive(Debug, Clone)]
pub enum ProvisionKind {
    /// Apply a transition (plan only when `dry_run`).
    Build { transition: Transition, state: Vec<u8>, dry_run: bool },
    /// Template version import: plan, never apply.
    Import,
}

/// The workspace a build runs for, as templates may read it (terraform
/// passes it on as `CODER_WORKSPACE_*` and `TF_VAR_coder_workspace_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceMeta {
    pub workspace_id: String,
    pub workspace_name: String,
    pub owner_id: String,
    pub owner_name: String,
    pub owner_email: String,
    pub template_id: String,
    pub template_name: String,
    pub template_version_name: String,
    pub build_id: String,
}

/// One job's input.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The template: a (possibly gzipped) tar archive.
    pub archive: bytes::Bytes,
    pub kind: ProvisionKind,
    /// The workspace of a build; `None` for a template import.
    pub workspace: Option<WorkspaceMeta>,
    pub parameters: Vec<NameValue>,
    /// Template input variables.
    pub variables: Vec<NameValue>,
    /// The build asked for `log_level: debug`: terraform logs at debug level.
    pub debug: bool,
}

/// What a successful run produced.
#[derive(Debug, Clone, Default)]
pub struct ProvisionOutcome {
    /// The state after the run (the unchanged state for plans).
    pub state: Vec<u8>,
    pub resources: Vec<Resource>,
    /// What a template import found out about the template.
    pub import: Option<ImportResult>,
    /// How long each stage and resource took.
    pub timings: Vec<ProvisionerTiming>,
}

/// A run that did not succeed.
#[derive(Debug, Clone, Default, thiserror::Error)]
#[error("{message}")]
pub struct ProvisionError {
    /// What went wrong, with the provisioner's own words where it has them.
    pub message: String,
    pub code: Option<String>,
    /// Whatever state the run wrote before it stopped.
    pub state: Option<Vec<u8>>,
    /// The run stopped because it was canceled.
    pub canceled: bool,
    /// How long the stages and resources that ran took.
    pub timings: Vec<ProvisionerTiming>,
}

impl ProvisionError {
    /// A failure with a message only: no code, no state, not canceled.
    pub fn failed(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::default() }
    }
}

/// Where a provisioner's log lines go, a batch at a time, in order.
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Hands on one batch (at most [`MAX_BATCH_LINES`] lines); waits while
    /// the receiver is full. `false` once nobody listens any more: the run
    /// goes on, its lines are dropped.
    async fn send(&self, lines: Vec<LogLine>) -> bool;
}

/// A channel of batches is a sink (tests and simple callers read it).
#[async_trait]
impl LogSink for mpsc::Sender<Vec<LogLine>> {
    async fn send(&self, lines: Vec<LogLine>) -> bool {
        mpsc::Sender::send(self, lines).await.is_ok()
    }
}

/// A provisioner: runs one job from request to outcome.
#[async_trait]
pub trait Provision: Send + Sync {
    async fn provision(
        &self,
        request: ProvisionRequest,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> Result<ProvisionOutcome, ProvisionError>;
}
