//! Runs one acquired job: fetch the template archive (cached by sha256),
//! run the job's provisioner, forward its log lines, and report the result.
//!
//! A job task never talks to the server except to download the archive; its
//! logs and result go to the connection manager, which owns delivery.

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use super::cache::ArchiveCache;
use super::echo;
use super::session::JobEvent;
use crate::domain::{JobOutcome, LogLevel, LogLine, LogSource, Provisioner};
use crate::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use crate::protocol::{self, proto, BuildInput, JobOffer, OfferInput};
use crate::terraform::{self, ProvisionError, ProvisionKind, ProvisionOutcome, ProvisionRequest};

/// What a job task needs from its daemon.
pub struct JobContext {
    /// The id this daemon says hello with (archives are served per daemon).
    pub daemon_id: Uuid,
    pub client: ProvisionerDaemonClient<Channel>,
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
                ..Default::default()
            },
            Err(e) => JobOutcome {
                state: if self.keeps_state { e.state } else { None },
                canceled: e.canceled,
                error: (!e.canceled).then_some(e.message),
                error_code: if e.canceled { None } else { e.code },
                ..Default::default()
            },
        }
    }
}

/// Runs the job and reports it to the connection manager.
pub async fn run(job_id: Uuid, offer: proto::JobOffer, ctx: JobContext) {
    let (log_tx, mut log_rx) = mpsc::channel::<LogLine>(1024);
    let events = ctx.events.clone();
    let forward = async {
        while let Some(line) = log_rx.recv().await {
            if events.send(JobEvent::Log(job_id, line)).await.is_err() {
                break;
            }
        }
    };
    let (report, ()) = tokio::join!(execute(job_id, offer, &ctx, log_tx), forward);
    if let Err(e) = &report.result {
        tracing::info!(job = %job_id, canceled = e.canceled, error = %e.message, "job did not succeed");
    }
    let _ = ctx.events.send(JobEvent::Done(job_id, report)).await;
}

async fn execute(
    job_id: Uuid,
    offer: proto::JobOffer,
    ctx: &JobContext,
    logs: mpsc::Sender<LogLine>,
) -> JobReport {
    let offer = protocol::offer_from_proto(offer);
    let keeps_state =
        matches!(&offer, Ok(JobOffer { input: OfferInput::WorkspaceBuild(b), .. }) if !b.dry_run);
    let result = async {
        let offer = offer.map_err(|e| failure(format!("the server's offer is unreadable: {e}")))?;
        let provisioner = offer.provisioner;
        let request = request_from_offer(&offer, Bytes::new());
        daemon_log(&logs, LogLevel::Info, "Setting up", "Downloading template archive").await;
        let file = protocol::Download { file_id: offer.file.id, daemon_id: ctx.daemon_id, job_id };
        let archive = ctx
            .cache
            .fetch(&ctx.client, &ctx.credentials, &file, &offer.file.hash)
            .await
            .map_err(|e| failure(format!("failed to fetch the template archive: {e}")))?;
        let request = ProvisionRequest { archive, ..request };
        match provisioner {
            Provisioner::Terraform => {
                terraform::provision(&ctx.terraform, request, logs.clone(), ctx.cancel.clone())
                    .await
            }
            Provisioner::Echo => echo::provision(request, logs.clone(), ctx.cancel.clone()).await,
        }
    }
    .await;
    if let Err(e) = &result {
        let (level, text) = if e.canceled {
            (LogLevel::Warn, e.message.clone())
        } else {
            (LogLevel::Error, format!("Job failed: {}", e.message))
        };
        daemon_log(&logs, level, "Cleaning up", &text).await;
    }
    JobReport { result, keeps_state }
}

fn failure(message: String) -> ProvisionError {
    ProvisionError { message, code: None, state: None, canceled: false }
}

async fn daemon_log(logs: &mpsc::Sender<LogLine>, level: LogLevel, stage: &str, output: &str) {
    let line = LogLine {
        source: LogSource::ProvisionerDaemon,
        level,
        stage: stage.to_owned(),
        output: output.to_owned(),
        created_at: Utc::now(),
    };
    let _ = logs.send(line).await;
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
            env: workspace_env(b),
            parameters: b.parameters.clone(),
            variables: b.variables.clone(),
        },
        OfferInput::TemplateImport(t) => ProvisionRequest {
            archive,
            kind: ProvisionKind::Import,
            env: Vec::new(),
            parameters: Vec::new(),
            variables: t.user_variable_values.clone(),
        },
    }
}

/// The `CODER_WORKSPACE_*` variables Coder-style templates read, and the same
/// values as `TF_VAR_coder_workspace_*` for templates without the provider.
fn workspace_env(b: &BuildInput) -> Vec<(String, String)> {
    let pairs = [
        ("TRANSITION", b.transition.to_string()),
        ("NAME", b.workspace_name.clone()),
        ("ID", b.workspace_id.to_string()),
        ("OWNER", b.owner_name.clone()),
        ("OWNER_ID", b.owner_id.to_string()),
        ("OWNER_EMAIL", b.owner_email.clone()),
        ("TEMPLATE_ID", b.template_id.to_string()),
        ("TEMPLATE_NAME", b.template_name.clone()),
        ("TEMPLATE_VERSION", b.template_version_name.clone()),
        ("BUILD_ID", b.build_id.to_string()),
    ];
    pairs
        .iter()
        .flat_map(|(k, v)| {
            [
                (format!("CODER_WORKSPACE_{k}"), v.clone()),
                (format!("TF_VAR_coder_workspace_{}", k.to_lowercase()), v.clone()),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Transition;

    #[test]
    fn workspace_env_has_both_spellings() {
        let b = BuildInput {
            build_id: Uuid::new_v4(),
            build_number: 1,
            transition: Transition::Stop,
            state: Vec::new(),
            dry_run: false,
            log_level: None,
            workspace_id: Uuid::new_v4(),
            workspace_name: "dev".into(),
            owner_id: Uuid::new_v4(),
            owner_name: "alice".into(),
            owner_email: String::new(),
            template_id: Uuid::new_v4(),
            template_name: String::new(),
            template_version_id: Uuid::new_v4(),
            template_version_name: String::new(),
            parameters: Vec::new(),
            variables: Vec::new(),
        };
        let env = workspace_env(&b);
        assert!(env.contains(&("CODER_WORKSPACE_TRANSITION".into(), "stop".into())));
        assert!(env.contains(&("TF_VAR_coder_workspace_transition".into(), "stop".into())));
        assert!(env.contains(&("TF_VAR_coder_workspace_name".into(), "dev".into())));
        assert!(env.contains(&("CODER_WORKSPACE_ID".into(), b.workspace_id.to_string())));
    }

    #[test]
    fn canceled_reports_carry_no_error_and_dry_runs_no_state() {
        let err = ProvisionError {
            message: "canceled".into(),
            code: None,
            state: Some(b"s".to_vec()),
            canceled: true,
        };
        let c =
            JobReport { result: Err(err.clone()), keeps_state: true }.into_proto(Uuid::nil(), 3);
        assert!(c.canceled && c.error.is_none());
        assert_eq!(c.state.as_deref(), Some(&b"s"[..]));
        let c = JobReport { result: Err(err), keeps_state: false }.into_proto(Uuid::nil(), 3);
        assert_eq!(c.state, None);
    }
}
