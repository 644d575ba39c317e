//! Runs one acquired job: fetch the template archive (cached by sha256),
//! run the job's provisioner, and report the result.
//!
//! A job task never talks to the server except to download the archive; its
//! logs and result go to the connection manager, which owns delivery. Each
//! batch of log lines the provisioner sends goes on to the manager as one
//! [`JobEvent::Logs`], straight from the provisioner's task.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use super::cache::ArchiveCache;
use super::echo::Echo;
use super::session::JobEvent;
use crate::domain::{JobOutcome, LogLevel, LogLine, LogSource, Provisioner};
use crate::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use crate::protocol::{self, proto, BuildInput, JobOffer, OfferInput};
use crate::provisioner::{
    LogSink, Provision, ProvisionError, ProvisionKind, ProvisionOutcome, ProvisionRequest,
    WorkspaceMeta,
};
use crate::terraform::{self, Terraform};

/// What a job task needs from its daemon.
pub struct JobContext {
    /// The id this daemon says hello with (archives are served per daemon).
    pub daemon_id: Uuid,
    /// The daemon's servers, the one that offered the job first.
    pub clients: Vec<ProvisionerDaemonClient<Channel>>,
    pub credentials: super::credentials::Credentials,
    pub cache: ArchiveCache,
    pub terraform: terraform::TerraformConfig,
    pub events: mpsc::Sender<JobEvent>,
    pub cancel: CancellationToken,
}

/// How a job ended, ready to report.
#[derive(Debug)]
pub struct JobReport {
    result: Result<ProvisionOutcome, ProvisionError>,
    /// Whether the outcome's state replaces the build's state.
    keeps_state: bool,
}

impl JobReport {
    /// The completion to send (cut down to fit one message if need be).
    pub fn into_proto(self, job_id: Uuid, last_log_seq: i64) -> proto::Complete {
        protocol::complete_to_proto(job_id, last_log_seq, self.into_outcome())
    }

    /// What the server records: a dry run's or an import's state is not the
    /// build's, and a canceled job carries no error.
    fn into_outcome(self) -> JobOutcome {
        match self.result {
            Ok(outcome) => JobOutcome {
                state: self.keeps_state.then_some(outcome.state),
                resources: outcome.resources,
                import: outcome.import,
                timings: outcome.timings,
                ..Default::default()
            },
            Err(e) => JobOutcome {
                state: if self.keeps_state { e.state } else { None },
                canceled: e.canceled,
                error: (!e.canceled).then_some(e.message),
                error_code: if e.canceled { None } else { e.code },
                timings: e.timings,
                ..Default::default()
            },
        }
    }
}

/// A job's log sink: each batch goes to the connection manager as one
/// event, in the order sent (one task sends them all).
struct JobLogs {
    job_id: Uuid,
    events: mpsc::Sender<JobEvent>,
}

#[async_trait]
impl LogSink for JobLogs {
    async fn send(&self, lines: Vec<LogLine>) -> bool {
        self.events.send(JobEvent::Logs(self.job_id, lines)).await.is_ok()
    }
}

/// The provisioner that runs a job of `kind`.
fn provisioner(kind: Provisioner, ctx: &JobContext) -> Box<dyn Provision> {
    match kind {
        Provisioner::Terraform => Box::new(Terraform(ctx.terraform.clone())),
        Provisioner::Echo => Box::new(Echo),
    }
}

/// Runs the job and reports it to the connection manager.
pub async fn run(job_id: Uuid, offer: proto::JobOffer, ctx: JobContext) {
    let logs = JobLogs { job_id, events: ctx.events.clone() };
    let report = execute(job_id, offer, &ctx, &logs).await;
    if let Err(e) = &report.result {
        tracing::info!(job = %job_id, canceled = e.canceled, error = %e.message, "job did not succeed");
    }
    let _ = ctx.events.send(JobEvent::Done(job_id, report)).await;
}

async fn execute(
    job_id: Uuid,
    offer: proto::JobOffer,
    ctx: &JobContext,
    logs: &dyn LogSink,
) -> JobReport {
    let offer = protocol::offer_from_proto(offer);
    let keeps_state =
        matches!(&offer, Ok(JobOffer { input: OfferInput::WorkspaceBuild(b), .. }) if !b.dry_run);
    let result = async {
        let offer = offer.map_err(|e| failure(format!("the server's offer is unreadable: {e}")))?;
        let kind = offer.provisioner;
        let request = request_from_offer(&offer, Bytes::new());
        daemon_log(logs, LogLevel::Info, "Setting up", "Downloading template archive").await;
        let file = protocol::Download { file_id: offer.file.id, daemon_id: ctx.daemon_id, job_id };
        let archive = ctx
            .cache
            .fetch(&ctx.clients, &ctx.credentials, &file, &offer.file.hash)
            .await
            .map_err(|e| failure(format!("failed to fetch the template archive: {e}")))?;
        let request = ProvisionRequest { archive, ..request };
        provisioner(kind, ctx).provision(request, logs, ctx.cancel.clone()).await
    }
    .await;
    if let Err(e) = &result {
        let (level, text) = if e.canceled {
            (LogLevel::Warn, e.message.clone())
        } else {
            (LogLevel::Error, format!("Job failed: {}", e.message))
        };
        daemon_log(logs, level, "Cleaning up", &text).await;
    }
    JobReport { result, keeps_state }
}

fn failure(message: String) -> ProvisionError {
    ProvisionError::failed(message)
}

async fn daemon_log(logs: &dyn LogSink, level: LogLevel, stage: &str, output: &str) {
    let line = LogLine {
        source: LogSource::ProvisionerDaemon,
        level,
        stage: stage.to_owned(),
        output: output.to_owned(),
        created_at: Utc::now(),
    };
    let _ = logs.send(vec![line]).await;
}

/// Turns an offer into a provisioner request (the archive is filled in later).
fn request_from_offer(offer: &JobOffer, archive: Bytes) -> ProvisionRequest {
    match &offer.input {
        OfferInput::WorkspaceBuild(b) => ProvisionRequest {
            archive,
            kind: ProvisionKind::Build {
                transition: b.transition,
                state: b.state.clone(),
                dry_run: b.dry_run,
            },
            workspace: Some(workspace(b)),
            parameters: b.parameters.clone(),
            variables: b.variables.clone(),
            debug: matches!(
                b.log_level,
                Some(crate::domain::LogLevel::Debug | crate::domain::LogLevel::Trace)
            ),
        },
        OfferInput::TemplateImport(t) => ProvisionRequest {
            archive,
            kind: ProvisionKind::Import,
            workspace: None,
            parameters: Vec::new(),
            variables: t.user_variable_values.clone(),
            debug: false,
        },
    }
}

/// The workspace a build runs for, as the offer names it.
fn workspace(b: &BuildInput) -> WorkspaceMeta {
    WorkspaceMeta {
        workspace_id: b.workspace_id.to_string(),
        workspace_name: b.workspace_name.clone(),
        owner_id: b.owner_id.to_string(),
        owner_name: b.owner_name.clone(),
        owner_email: b.owner_email.clone(),
        template_id: b.template_id.to_string(),
        template_name: b.template_name.clone(),
        template_version_name: b.template_version_name.clone(),
        build_id: b.build_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Transition;

    /// A burst of lines from a child process (a terraform stand-in that
    /// prints them on `init`) reaches the connection manager's queue as far
    /// fewer events than lines: every line once and in order, no relay.
    #[tokio::test]
    async fn a_burst_from_terraform_reaches_the_manager_as_few_events() {
        use std::os::unix::fs::PermissionsExt;
        const N: usize = 5000;
        let dir = tempfile::tempdir().expect("dir");
        let fake = dir.path().join("terraform");
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n\
             init) i=1; while [ $i -le {N} ]; do echo line $i; i=$((i+1)); done ;;\n\
             show) echo '{{}}' ;;\n\
             graph) echo 'digraph {{}}' ;;\n\
             esac\n"
        );
        std::fs::write(&fake, script).expect("fake terraform");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("work dir");
        let config = terraform::TerraformConfig {
            path: fake,
            cancel_grace: std::time::Duration::from_secs(1),
            plugin_cache_dir: None,
            work_root: work,
            limits: Default::default(),
        };
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "main.tf", &b""[..]).expect("append");
        let request = ProvisionRequest {
            archive: tar.into_inner().expect("tar").into(),
            kind: ProvisionKind::Build {
                transition: Transition::Start,
                state: vec![],
                dry_run: true,
            },
            workspace: None,
            parameters: vec![],
            variables: vec![],
            debug: false,
        };
        let (events, mut rx) = mpsc::channel(16);
        let job_id = Uuid::new_v4();
        let reader = tokio::spawn(async move {
            let mut batches = Vec::new();
            while let Some(ev) = rx.recv().await {
                match ev {
                    JobEvent::Logs(id, lines) if id == job_id => batches.push(lines),
                    other => panic!("unexpected event {other:?}"),
                }
            }
            batches
        });
        let logs = JobLogs { job_id, events };
        Terraform(config)
            .provision(request, &logs, CancellationToken::new())
            .await
            .expect("planned");
        drop(logs);
        let batches = reader.await.expect("reader");
        let printed: Vec<&Vec<LogLine>> =
            batches.iter().filter(|b| b[0].source == LogSource::Provisioner).collect();
        let got: Vec<&str> =
            printed.iter().flat_map(|b| b.iter()).map(|l| l.output.as_str()).collect();
        let want: Vec<String> = (1..=N).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want, "every line once, in order");
        assert!(printed.len() < N / 10, "{} events for {N} lines", printed.len());
    }
}
