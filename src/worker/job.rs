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

use super::cache::{ArchiveCache, FileRef};
use super::echo::Echo;
use super::session::JobEvent;
use crate::domain::{LogLevel, LogLine, LogSource, NameValue, Provisioner, Resource, Transition};
use crate::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use crate::proto::{self, job_offer::Input};
use crate::provisioner::{
    LogSink, Provision, ProvisionError, ProvisionKind, ProvisionOutcome, ProvisionRequest,
    WorkspaceMeta,
};
use crate::terraform::{self, Terraform};

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
    pub fn into_proto(self, job_id: Uuid, last_log_seq: i64) -> proto::Complete {
        let mut c =
            proto::Complete { job_id: job_id.to_string(), last_log_seq, ..Default::default() };
        match self.result {
            Ok(outcome) => {
                c.state = self.keeps_state.then_some(outcome.state);
                c.resources = outcome.resources.into_iter().map(resource_to_proto).collect();
                if let Some(mut import) = outcome.import {
                    let stop = std::mem::take(&mut import.stop_resources);
                    c.stop_resources = stop.into_iter().map(resource_to_proto).collect();
                    c.import_json = serde_json::to_string(&import).ok();
                }
            }
            Err(e) => {
                c.state = if self.keeps_state { e.state } else { None };
                c.canceled = e.canceled;
                if !e.canceled {
                    c.error = Some(e.message);
                    c.error_code = e.code;
                }
            }
        }
        fit(&mut c, proto::MAX_MESSAGE_BYTES);
        c
    }
}

/// Makes a completion fit in one message of `max` bytes, so it is not sent
/// only to be refused on every reconnect. Resource attributes go first (the
/// state holds them too); if the state itself is too big, the job fails
/// with an error that says so, and the build keeps its previous state.
fn fit(c: &mut proto::Complete, max: usize) {
    use prost::Message;
    let size = c.encoded_len();
    if size <= max {
        return;
    }
    for r in c.resources.iter_mut().chain(c.stop_resources.iter_mut()) {
        r.attributes_json.clear();
    }
    if c.encoded_len() <= max {
        tracing::warn!(job = %c.job_id, size, max, "result too large: resource attributes dropped");
        return;
    }
    let state = c.state.take().map_or(0, |s| s.len());
    tracing::warn!(job = %c.job_id, size, state, max, "result too large: reporting a failure");
    *c = proto::Complete {
        job_id: std::mem::take(&mut c.job_id),
        last_log_seq: c.last_log_seq,
        error: Some(format!(
            "the job's result is {} MiB (state {} MiB), more than the {} MiB a daemon can \
             send to the server: the build keeps its previous state, so resources this \
             build created or changed are not recorded; make the state smaller (fewer or \
             smaller resource attributes) and run the build again",
            size >> 20,
            state >> 20,
            max >> 20
        )),
        ..Default::default()
    };
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
    let keeps_state = matches!(&offer.input, Some(Input::WorkspaceBuild(b)) if !b.dry_run);
    let result = async {
        let kind: Provisioner = offer.provisioner.parse().map_err(|e| failure(format!("{e}")))?;
        let request = request_from_offer(&offer, Bytes::new())?;
        daemon_log(logs, LogLevel::Info, "Setting up", "Downloading template archive").await;
        let file = FileRef { file_id: &offer.file_id, daemon_id: ctx.daemon_id, job_id };
        let archive = ctx
            .cache
            .fetch(&ctx.client, &ctx.credentials, &file, &offer.file_hash)
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

fn name_values(params: &[proto::Parameter]) -> Vec<NameValue> {
    params.iter().map(|p| NameValue { name: p.name.clone(), value: p.value.clone() }).collect()
}

/// Turns an offer into a provisioner request (the archive is filled in later).
fn request_from_offer(
    offer: &proto::JobOffer,
    archive: Bytes,
) -> Result<ProvisionRequest, ProvisionError> {
    match &offer.input {
        Some(Input::WorkspaceBuild(b)) => {
            let transition: Transition =
                b.transition.parse().map_err(|e| failure(format!("{e}")))?;
            Ok(ProvisionRequest {
                archive,
                kind: ProvisionKind::Build {
                    transition,
                    state: b.state.clone(),
                    dry_run: b.dry_run,
                },
                workspace: Some(workspace(b)),
                parameters: name_values(&b.parameters),
                variables: name_values(&b.variables),
            })
        }
        Some(Input::TemplateImport(t)) => Ok(ProvisionRequest {
            archive,
            kind: ProvisionKind::Import,
            workspace: None,
            parameters: Vec::new(),
            variables: name_values(&t.user_variable_values),
        }),
        None => Err(failure("the server sent a job without input".to_owned())),
    }
}

/// The workspace a build runs for, as the offer names it.
fn workspace(b: &proto::WorkspaceBuildInput) -> WorkspaceMeta {
    WorkspaceMeta {
        workspace_id: b.workspace_id.clone(),
        workspace_name: b.workspace_name.clone(),
        owner_id: b.owner_id.clone(),
        owner_name: b.owner_name.clone(),
        owner_email: b.owner_email.clone(),
        template_id: b.template_id.clone(),
        template_name: b.template_name.clone(),
        template_version_name: b.template_version_name.clone(),
        build_id: b.build_id.clone(),
    }
}

fn resource_to_proto(r: Resource) -> proto::Resource {
    proto::Resource {
        name: r.name,
        r#type: r.resource_type,
        module_path: r.module_path,
        hide: r.hide,
        icon: r.icon,
        daily_cost: r.daily_cost,
        instance_type: r.instance_type,
        metadata: r
            .metadata
            .into_iter()
            .map(|m| proto::Metadata { key: m.key, value: m.value, sensitive: m.sensitive })
            .collect(),
        attributes_json: if r.attributes.is_null() {
            String::new()
        } else {
            r.attributes.to_string()
        },
        agents_json: if r.agents.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.agents).unwrap_or_default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_too_big_for_one_message_is_cut_down_then_failed() {
        let resource = |attrs: usize| -> Resource {
            let input = "x".repeat(attrs);
            let r = serde_json::json!({"name": "big", "type": "t", "attributes": {"input": input}});
            serde_json::from_value(r).expect("resource")
        };
        let report = |state: usize, attrs: usize| JobReport {
            result: Ok(ProvisionOutcome {
                state: vec![b's'; state],
                resources: vec![resource(attrs)],
                import: None,
            }),
            keeps_state: true,
        };
        let mut c = report(1000, 10).into_proto(Uuid::nil(), 1);
        fit(&mut c, 2000);
        assert!(c.error.is_none() && c.resources[0].attributes_json.contains("xxx"));

        let mut c = report(1000, 1500).into_proto(Uuid::nil(), 1);
        fit(&mut c, 2000);
        assert_eq!(c.state.as_ref().map(Vec::len), Some(1000), "the state is kept");
        assert_eq!(c.resources[0].name, "big");
        assert!(c.resources[0].attributes_json.is_empty() && c.error.is_none());

        let mut c = report(3000, 10).into_proto(Uuid::nil(), 7);
        fit(&mut c, 2000);
        assert_eq!((c.state, c.last_log_seq, c.job_id.is_empty()), (None, 7, false));
        let error = c.error.unwrap_or_default();
        assert!(error.contains("keeps its previous state"), "{error}");
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
