//! One job's terraform run, from archive to result: a fresh 0700 work
//! directory, safe unpack, previous state, `init`, `plan -json -out`
//! (`-destroy` for delete), `apply -json` of that plan unless it is an import
//! or a dry run, then the state and resources read back, and the directory
//! removed. What terraform prints between two reads of its pipe becomes one
//! batch of staged log lines, sent on as one message as it happens. Process
//! control lives in [`super::executor`]. The environment terraform runs with
//! (the daemon's minus its secrets, `TF_VAR_*`, `CODER_WORKSPACE_*`,
//! `CODER_PARAMETER_*`) is assembled here and nowhere else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::executor::{self, Exit, Invocation, Lines, Stream, TerraformProcess};
use super::hclconfig::{self, TemplateConfig};
use super::timings::{self, Recorder};
use super::{archive, convert, jsonlog, workdir};
use crate::domain::{
    ImportResult, LogLevel, LogLine, LogSource, ProvisionerTiming, Resource, TimingStage,
    Transition,
};
use crate::provisioner::{
    LogSink, Provision, ProvisionError, ProvisionKind, ProvisionOutcome, ProvisionRequest,
    WorkspaceMeta,
};

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

const SETTING_UP: &str = "Setting up";
const PLANNING: &str = "Planning infrastructure";
const DETECTING_PERSISTENT: &str = "Detecting persistent resources";
const DETECTING_EPHEMERAL: &str = "Detecting ephemeral resources";
const CLEANING_UP: &str = "Cleaning up";
/// Batches of output lines held between terraform's pipe readers and the
/// job: few, as each holds up to a read (128 KiB) of lines.
const OUTPUT_BATCHES: usize = 16;
const PLAN_FILE: &str = "provisionerd.tfplan";
const STATE_FILE: &str = "terraform.tfstate";

fn failure(message: String) -> ProvisionError {
    ProvisionError::failed(message)
}

fn coded(message: String, code: &str) -> ProvisionError {
    ProvisionError { code: Some(code.to_owned()), ..failure(message) }
}

fn apply_stage(t: Transition) -> &'static str {
    match t {
        Transition::Start => "Starting workspace",
        Transition::Stop => "Stopping workspace",
        Transition::Delete => "Destroying workspace",
    }
}

/// The terraform provisioner.
#[derive(Debug, Clone)]
pub struct Terraform(pub TerraformConfig);

#[async_trait]
impl Provision for Terraform {
    async fn provision(
        &self,
        request: ProvisionRequest,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> Result<ProvisionOutcome, ProvisionError> {
        provision(&self.0, request, logs, cancel).await
    }
}

/// Runs one job. Log lines go to `logs` in batches as they happen.
pub async fn provision(
    config: &TerraformConfig,
    request: ProvisionRequest,
    logs: &dyn LogSink,
    cancel: CancellationToken,
) -> Result<ProvisionOutcome, ProvisionError> {
    let root = config.work_root.clone();
    if let Ok(swept) = tokio::task::spawn_blocking(move || workdir::sweep(&root)).await {
        for (path, e) in swept.failed {
            tracing::warn!(path = %path.display(), error = %e, "failed to remove a dead job's work directory");
        }
        if swept.removed > 0 {
            tracing::info!(removed = swept.removed, "removed work directories of dead jobs");
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(workdir::PREFIX)
        .tempdir_in(&config.work_root)
        .map_err(|e| {
            failure(format!(
                "failed to create a work directory in {}: {e}",
                config.work_root.display()
            ))
        })?;
    // Held until the directory is gone: while it is, no sweep takes the
    // directory for a dead job's.
    let _lock = workdir::lock(dir.path()).map_err(|e| {
        failure(format!("failed to lock the work directory {}: {e}", dir.path().display()))
    })?;
    let mut job = Job {
        config,
        dir: dir.path(),
        logs,
        cancel: &cancel,
        env: Vec::new(),
        graph: tokio::sync::OnceCell::new(),
        timings: std::sync::Mutex::default(),
    };
    let result = job.run(&request).await;
    job.say(CLEANING_UP, LogLevel::Info, "Removing the work directory").await;
    // What ran is timed whether the run succeeded or not.
    let timings = job.take_timings();
    drop(job);
    if let Err(e) = dir.close() {
        tracing::warn!(error = %e, "failed to remove a job work directory");
    }
    match result {
        Ok(outcome) => Ok(ProvisionOutcome { timings, ..outcome }),
        Err(e) => Err(ProvisionError { timings, ..e }),
    }
}

/// One job's run in its work directory.
struct Job<'a> {
    config: &'a TerraformConfig,
    /// The job directory: the template goes into `template/`, the plan and
    /// the CLI config beside it.
    dir: &'a Path,
    logs: &'a dyn LogSink,
    cancel: &'a CancellationToken,
    env: Vec<(String, String)>,
    /// `terraform graph -type=plan` depends only on the configuration: one
    /// run serves both plans of an import.
    graph: tokio::sync::OnceCell<String>,
    /// Each timed command's timings, added as it ends (a lock, not a
    /// `&mut`: `show` and `graph` run side by side).
    timings: std::sync::Mutex<Vec<ProvisionerTiming>>,
}

impl Job<'_> {
    fn module(&self) -> PathBuf {
        self.dir.join("template")
    }

    fn record(&self, timings: Vec<ProvisionerTiming>) {
        self.timings.lock().unwrap_or_else(|p| p.into_inner()).extend(timings);
    }

    /// Every timing so far, oldest first.
    fn take_timings(&self) -> Vec<ProvisionerTiming> {
        let mut all = std::mem::take(&mut *self.timings.lock().unwrap_or_else(|p| p.into_inner()));
        all.sort_by_key(|a| a.started_at);
        all
    }

    /// A line of the daemon's own, as a batch of one.
    async fn say(&self, stage: &str, level: LogLevel, output: &str) {
        let line = LogLine {
            source: LogSource::ProvisionerDaemon,
            level,
            stage: stage.to_owned(),
            output: output.to_owned(),
            created_at: Utc::now(),
        };
        // A closed receiver means nobody listens any more; the run goes on.
        let _ = self.logs.send(vec![line]).await;
    }

    async fn run(
        &mut self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ProvisionError> {
        let (transition, state, apply) = match &request.kind {
            ProvisionKind::Build { transition, state, dry_run } => (*transition, state, !dry_run),
            ProvisionKind::Import => return self.import(request).await,
        };
        let config = self.set_up(request, state).await?;
        let missing = config.missing_parameters(&request.parameters);
        if !missing.is_empty() {
            let message = format!("required parameters have no value: {}", quoted(&missing));
            return Err(coded(message, "MISSING_TEMPLATE_PARAMETER"));
        }
        self.plan(PLANNING, transition).await?;
        if !apply {
            let (_, resources) = self.planned().await?;
            return Ok(ProvisionOutcome { state: state.clone(), resources, ..Default::default() });
        }
        let args =
            ["apply", "-input=false", "-no-color", "-json", "-auto-approve"].map(String::from);
        let mut args = args.to_vec();
        args.push(format!("../{PLAN_FILE}"));
        self.terraform(apply_stage(transition), &args).await?;
        // From here on terraform has changed the world: whatever fails, the
        // new state goes back with the error.
        let read_back = async {
            // Both only read: run side by side, one terraform start less.
            let show = ["show", "-json"].map(String::from);
            let (show, graph) = tokio::try_join!(self.capture_json(&show), self.graph())?;
            convert::convert(&show, &graph).map_err(|e| failure(e.to_string()))
        };
        match read_back.await {
            Ok(resources) => Ok(ProvisionOutcome {
                state: self.state().unwrap_or_default(),
                resources,
                ..Default::default()
            }),
            Err(e) => Err(ProvisionError { state: e.state.or_else(|| self.state()), ..e }),
        }
    }

    /// A template import: the stop plan (what a stopped workspace keeps),
    /// then the start plan, their resources, and the template's parameters
    /// and variables. Never applies.
    async fn import(
        &mut self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ProvisionError> {
        let config = self.set_up(request, &[]).await?;
        let missing = config.missing_variables(&request.variables);
        if !missing.is_empty() {
            let message = format!("required template variables need values: {}", quoted(&missing));
            return Err(coded(message, "REQUIRED_TEMPLATE_VARIABLES"));
        }
        self.plan(DETECTING_PERSISTENT, Transition::Stop).await?;
        let (_, stop_resources) = self.planned().await?;
        self.plan(DETECTING_EPHEMERAL, Transition::Start).await?;
        let (show, resources) = self.planned().await?;
        let parameters = convert::parameters(&show).map_err(|e| failure(e.to_string()))?;
        let presets = convert::presets(&show).map_err(|e| failure(e.to_string()))?;
        let external_auth = convert::external_auth(&show).map_err(|e| failure(e.to_string()))?;
        Ok(ProvisionOutcome {
            state: Vec::new(),
            resources,
            import: Some(ImportResult {
                parameters,
                variables: config.variables,
                external_auth,
                presets,
                stop_resources,
            }),
            timings: Vec::new(),
        })
    }

    /// `terraform plan` for `transition`, saved for apply or inspection.
    async fn plan(&mut self, stage: &str, transition: Transition) -> Result<(), ProvisionError> {
        for key in ["CODER_WORKSPACE_TRANSITION", "TF_VAR_coder_workspace_transition"] {
            self.env.retain(|(k, _)| k != key);
            self.env.push((key.into(), transition.to_string()));
        }
        let mut plan = vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-json".into(),
            format!("-out=../{PLAN_FILE}"),
        ];
        if transition == Transition::Delete {
            plan.push("-destroy".into());
        }
        self.terraform(stage, &plan).await
    }

    /// The saved plan as JSON, and the resources it would leave.
    async fn planned(&self) -> Result<(serde_json::Value, Vec<Resource>), ProvisionError> {
        let show = ["show".into(), "-json".into(), format!("../{PLAN_FILE}")];
        // Both only read: run side by side, one terraform start less.
        let (show, graph) = tokio::try_join!(self.capture_json(&show), self.graph())?;
        let resources = convert::convert(&show, &graph).map_err(|e| failure(e.to_string()))?;
        Ok((show, resources))
    }

    /// The dependency graph agents are attached with.
    async fn graph(&self) -> Result<String, ProvisionError> {
        let graph = self.graph.get_or_try_init(|| async {
            let started = Utc::now();
            let dot = self.capture(&["graph".into(), "-type=plan".into()]).await?;
            self.record(Recorder::new(TimingStage::Graph, started).finish(Utc::now()));
            Ok::<_, ProvisionError>(String::from_utf8_lossy(&dot).into_owned())
        });
        graph.await.cloned()
    }

    /// Unpacks the template, writes the previous state, reads the root
    /// module's declarations and runs `terraform init`.
    async fn set_up(
        &mut self,
        request: &ProvisionRequest,
        previous: &[u8],
    ) -> Result<TemplateConfig, ProvisionError> {
        self.say(
            SETTING_UP,
            LogLevel::Info,
            &format!("Unpacking the template ({} bytes)", request.archive.len()),
        )
        .await;
        let module = self.module();
        let (archive, limits) = (request.archive.clone(), self.config.limits);
        let unpacked = tokio::task::spawn_blocking(move || {
            std::fs::create_dir(&module).map_err(|e| e.to_string())?;
            archive::unpack(&archive, &module, &limits).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| failure(format!("failed to unpack the template: {e}")))?
        .map_err(|e| failure(format!("failed to unpack the template: {e}")))?;
        self.say(
            SETTING_UP,
            LogLevel::Debug,
            &format!("Unpacked {} entries, {} bytes", unpacked.entries, unpacked.bytes),
        )
        .await;
        if !previous.is_empty() {
            std::fs::write(self.module().join(STATE_FILE), previous)
                .map_err(|e| failure(format!("failed to write the previous state: {e}")))?;
        }
        let config = hclconfig::read_dir(&self.module());
        for why in &config.unreadable {
            self.say(
                SETTING_UP,
                LogLevel::Warn,
                &format!("could not read {why}; terraform will check the file itself"),
            )
            .await;
        }
        self.env = self.environment(request)?;
        self.terraform(SETTING_UP, &["init".into(), "-input=false".into(), "-no-color".into()])
            .await?;
        Ok(config)
    }

    /// The daemon's environment without its secrets, plus what terraform and
    /// Coder-style templates need.
    fn environment(
        &self,
        request: &ProvisionRequest,
    ) -> Result<Vec<(String, String)>, ProvisionError> {
        let mut env = executor::inherited_env();
        env.push(("TF_IN_AUTOMATION".into(), "1".into()));
        env.push(("CHECKPOINT_DISABLE".into(), "1".into()));
        env.push(("TF_INPUT".into(), "0".into()));
        // An operator's CLI config (provider mirrors, credentials) is kept when
        // it exists; otherwise an empty one silences terraform's warning.
        let has_config =
            env.iter().any(|(k, v)| k == "TF_CLI_CONFIG_FILE" && Path::new(v).is_file());
        if !has_config {
            env.retain(|(k, _)| k != "TF_CLI_CONFIG_FILE");
            let rc = self.dir.join("cli.tfrc");
            std::fs::write(&rc, "")
                .map_err(|e| failure(format!("failed to write {}: {e}", rc.display())))?;
            env.push(("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()));
        }
        if let Some(cache) = &self.config.plugin_cache_dir {
            std::fs::create_dir_all(cache).map_err(|e| {
                failure(format!("failed to create plugin cache {}: {e}", cache.display()))
            })?;
            env.push(("TF_PLUGIN_CACHE_DIR".into(), cache.display().to_string()));
        }
        // `log_level: debug` on the build: terraform's own debug log goes to
        // its stderr, which the job log shows, as in Coder.
        env.retain(|(k, _)| k != "TF_LOG");
        if request.debug {
            env.push(("TF_LOG".into(), "debug".into()));
        }
        if let Some(workspace) = &request.workspace {
            let transition = match &request.kind {
                ProvisionKind::Build { transition, .. } => Some(*transition),
                ProvisionKind::Import => None,
            };
            env.extend(workspace_env(transition, workspace));
        }
        // Variables travel in the environment, never on the command line,
        // where `ps` and the job log would show their values.
        for v in &request.variables {
            env.push((format!("TF_VAR_{}", v.name), v.value.clone()));
        }
        for p in &request.parameters {
            env.push((
                format!("CODER_PARAMETER_{}", hex::encode(Sha256::digest(p.name.as_bytes()))),
                p.value.clone(),
            ));
        }
        Ok(env)
    }

    fn state(&self) -> Option<Vec<u8>> {
        std::fs::read(self.module().join(STATE_FILE)).ok()
    }

    fn check_cancel(&self) -> Result<(), ProvisionError> {
        if self.cancel.is_cancelled() {
            return Err(ProvisionError {
                message: "job canceled before terraform started its next step".into(),
                code: None,
                state: self.state(),
                canceled: true,
                timings: Vec::new(),
            });
        }
        Ok(())
    }

    fn spawn(
        &self,
        args: &[String],
        tx: mpsc::Sender<Lines>,
    ) -> Result<TerraformProcess, ProvisionError> {
        let module = self.module();
        let inv = Invocation { path: &self.config.path, args, dir: &module, env: &self.env };
        TerraformProcess::spawn(&inv, tx).map_err(|e| failure(e.to_string()))
    }

    /// Runs a terraform command, streaming its output as log lines.
    async fn terraform(&self, stage: &str, args: &[String]) -> Result<(), ProvisionError> {
        self.check_cancel()?;
        self.say(stage, LogLevel::Debug, &format!("terraform {}", args.join(" "))).await;
        let (tx, mut rx) = mpsc::channel(OUTPUT_BATCHES);
        let process = self.spawn(args, tx)?;
        let mut errors: Vec<String> = Vec::new();
        let mut recorder = timings::stage_of(&args[0]).map(|s| Recorder::new(s, Utc::now()));
        let consume = async {
            // One read of the pipe, one batch on to the sink: its lines were
            // printed together, so they share a time.
            while let Some((stream, lines)) = rx.recv().await {
                let created_at = Utc::now();
                let batch = lines
                    .iter()
                    .map(|line| {
                        let parsed = jsonlog::parse_line(line, stream == Stream::Stderr);
                        errors.extend(parsed.error);
                        if let (Some(r), Some(hook)) = (recorder.as_mut(), &parsed.hook) {
                            r.observe(hook, created_at);
                        }
                        LogLine {
                            source: LogSource::Provisioner,
                            level: parsed.level,
                            stage: stage.to_owned(),
                            output: parsed.output,
                            created_at,
                        }
                    })
                    .collect();
                let _ = self.logs.send(batch).await;
            }
        };
        let started = std::time::Instant::now();
        let (exit, ()) = tokio::join!(process.wait(self.cancel, self.config.cancel_grace), consume);
        crate::metrics::get().terraform_command(&args[0], started.elapsed());
        if let Some(r) = recorder {
            self.record(r.finish(Utc::now()));
        }
        let exit = exit.map_err(|e| failure(e.to_string()))?;
        self.outcome(&args[0], exit, errors).await
    }

    async fn outcome(
        &self,
        command: &str,
        exit: Exit,
        errors: Vec<String>,
    ) -> Result<(), ProvisionError> {
        match exit {
            Exit::Success => Ok(()),
            Exit::Failed(_) | Exit::Signaled(_) => {
                let why = match exit {
                    _ if !errors.is_empty() => errors.join("; "),
                    Exit::Signaled(signal) => format!("terraform was killed by signal {signal}"),
                    Exit::Failed(code) => format!("exit code {code}"),
                    _ => "unknown".to_owned(),
                };
                Err(ProvisionError {
                    message: format!("terraform {command} failed: {why}"),
                    state: self.state(),
                    ..Default::default()
                })
            }
            Exit::Canceled { graceful } => {
                let how = if graceful {
                    "terraform stopped gracefully after SIGINT".to_owned()
                } else {
                    format!(
                        "terraform was killed after ignoring SIGINT for {:?}",
                        self.config.cancel_grace
                    )
                };
                let message = format!("job canceled: {how}");
                self.say(CLEANING_UP, LogLevel::Warn, &message).await;
                Err(ProvisionError {
                    message,
                    state: self.state(),
                    canceled: true,
                    ..Default::default()
                })
            }
        }
    }

    /// Runs a terraform command and returns its stdout, whole: `show -json`
    /// prints one line as long as the plan or state, which must not be cut
    /// as log lines are.
    async fn capture(&self, args: &[String]) -> Result<Vec<u8>, ProvisionError> {
        self.check_cancel()?;
        let (tx, mut rx) = mpsc::channel(OUTPUT_BATCHES);
        let (done, captured) = tokio::sync::oneshot::channel();
        let module = self.module();
        let inv = Invocation { path: &self.config.path, args, dir: &module, env: &self.env };
        let process = TerraformProcess::spawn_with(&inv, tx, executor::Stdout::Capture(done))
            .map_err(|e| failure(e.to_string()))?;
        let mut errors = Vec::new();
        let consume = async {
            while let Some((_, lines)) = rx.recv().await {
                errors.extend(lines);
            }
        };
        let started = std::time::Instant::now();
        let (exit, ()) = tokio::join!(process.wait(self.cancel, self.config.cancel_grace), consume);
        crate::metrics::get().terraform_command(&args[0], started.elapsed());
        self.outcome(&args[0], exit.map_err(|e| failure(e.to_string()))?, errors).await?;
        let command = args.join(" ");
        match captured.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(failure(format!("terraform {command} failed: {e}"))),
            Err(_) => Err(failure(format!("terraform {command}: its output was lost"))),
        }
    }

    /// Runs a terraform command that prints JSON (`show -json`).
    async fn capture_json(&self, args: &[String]) -> Result<serde_json::Value, ProvisionError> {
        let out = self.capture(args).await?;
        serde_json::from_slice(&out).map_err(|e| {
            failure(format!(
                "terraform {} printed invalid JSON ({} bytes): {e}",
                args.join(" "),
                out.len()
            ))
        })
    }
}

/// The `CODER_WORKSPACE_*` variables Coder-style templates read, and the
/// same values as `TF_VAR_coder_workspace_*` for templates without the
/// provider. The transition is set again for each plan (an import plans
/// both `stop` and `start`).
fn workspace_env(transition: Option<Transition>, w: &WorkspaceMeta) -> Vec<(String, String)> {
    let transition = transition.map(|t| t.to_string());
    let pairs = [
        ("TRANSITION", transition.as_ref()),
        ("NAME", Some(&w.workspace_name)),
        ("ID", Some(&w.workspace_id)),
        ("OWNER", Some(&w.owner_name)),
        ("OWNER_ID", Some(&w.owner_id)),
        ("OWNER_EMAIL", Some(&w.owner_email)),
        ("TEMPLATE_ID", Some(&w.template_id)),
        ("TEMPLATE_NAME", Some(&w.template_name)),
        ("TEMPLATE_VERSION", Some(&w.template_version_name)),
        ("BUILD_ID", Some(&w.build_id)),
    ];
    pairs
        .iter()
        .filter_map(|(k, v)| Some((*k, (*v)?)))
        .flat_map(|(k, v)| {
            [
                (format!("CODER_WORKSPACE_{k}"), v.clone()),
                (format!("TF_VAR_coder_workspace_{}", k.to_lowercase()), v.clone()),
            ]
        })
        .collect()
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioner::MAX_BATCH_LINES;

    #[test]
    fn workspace_env_has_both_spellings() {
        let w = WorkspaceMeta { workspace_name: "dev".into(), ..Default::default() };
        let env = workspace_env(Some(Transition::Stop), &w);
        assert!(env.contains(&("CODER_WORKSPACE_TRANSITION".into(), "stop".into())));
        assert!(env.contains(&("TF_VAR_coder_workspace_transition".into(), "stop".into())));
        assert!(env.contains(&("CODER_WORKSPACE_NAME".into(), "dev".into())));
        assert!(env.contains(&("TF_VAR_coder_workspace_name".into(), "dev".into())));
        assert_eq!(env.len(), 20);
        let env = workspace_env(None, &w);
        assert!(!env.iter().any(|(k, _)| k.ends_with("TRANSITION") || k.ends_with("transition")));
    }

    /// A burst of lines from a child process reaches the job's sink as a few
    /// batches (one per read of the pipe, at most `MAX_BATCH_LINES` each),
    /// every line once and in order, parsed as terraform's lines are.
    #[tokio::test]
    async fn a_burst_of_output_reaches_the_sink_as_few_batches_in_order() {
        const N: usize = 5000;
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("template")).expect("template dir");
        let config = TerraformConfig {
            path: PathBuf::from("/bin/sh"),
            cancel_grace: Duration::from_secs(1),
            plugin_cache_dir: None,
            work_root: dir.path().to_owned(),
            limits: Default::default(),
        };
        let (tx, mut rx) = mpsc::channel::<Vec<LogLine>>(4);
        let reader = tokio::spawn(async move {
            let mut batches = Vec::new();
            while let Some(batch) = rx.recv().await {
                batches.push(batch);
            }
            batches
        });
        // One write per line (the shell's echo does not buffer), then one
        // line in terraform's JSON.
        let script = format!(
            "i=1; while [ $i -le {N} ]; do echo line $i; i=$((i+1)); done; \
             echo '{{\"@level\":\"warn\",\"@message\":\"done\"}}'"
        );
        let cancel = CancellationToken::new();
        let job = Job {
            config: &config,
            dir: dir.path(),
            logs: &tx,
            cancel: &cancel,
            env: Vec::new(),
            graph: tokio::sync::OnceCell::new(),
            timings: std::sync::Mutex::default(),
        };
        job.terraform("Burst", &["-c".to_owned(), script]).await.expect("ran");
        drop(job);
        drop(tx);
        let batches = reader.await.expect("reader");
        let printed: Vec<&Vec<LogLine>> =
            batches.iter().filter(|b| b[0].source == LogSource::Provisioner).collect();
        let lines: Vec<&LogLine> = printed.iter().flat_map(|b| b.iter()).collect();
        let want: Vec<String> =
            (1..=N).map(|i| format!("line {i}")).chain(["done".into()]).collect();
        let got: Vec<&str> = lines.iter().map(|l| l.output.as_str()).collect();
        assert_eq!(got, want, "every line once, in order");
        assert!(lines.iter().all(|l| l.stage == "Burst" && l.source == LogSource::Provisioner));
        assert_eq!(lines.last().map(|l| l.level), Some(LogLevel::Warn), "JSON lines are parsed");
        assert!(printed.iter().all(|b| !b.is_empty() && b.len() <= MAX_BATCH_LINES));
        assert!(printed.len() < N / 10, "{} messages for {} lines", printed.len(), N + 1);
    }
}
