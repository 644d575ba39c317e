//! The `echo` provisioner: runs no terraform. It replays the log lines and
//! resources described in `echo.json` in the template archive, optionally
//! after a delay and optionally failing, so tests and queue benchmarks run
//! fast without terraform. It implements the same contract as terraform
//! ([`crate::provisioner::Provision`]); its log lines go out in batches of
//! at most [`MAX_BATCH_LINES`].
//!
//! `echo.json` (every field optional):
//! ```json
//! { "delay_ms": 100, "error": "boom", "state": "opaque state text",
//!   "logs": [{ "level": "info", "stage": "Starting workspace", "output": "hi" }],
//!   "resources": [{ "name": "vm", "type": "echo_instance" }],
//!   "transitions": { "stop": { "resources": [] } },
//!   "parameters": [{ "name": "region", "type": "string", "default_value": "eu",
//!                    "mutable": true, "required": false }] }
//! ```
//! `parameters` are the `coder_parameter`s an import reports, so builds of
//! an echo template get their values checked as terraform ones do.
//! An entry under `transitions` (`start`, `stop`, `delete`, `import`)
//! replaces the top-level fields it names for that kind of job.

use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::domain::{ImportResult, LogLevel, LogLine, LogSource, Resource, TemplateParameter};
use crate::provisioner::{
    LogSink, Provision, ProvisionError, ProvisionKind, ProvisionOutcome, ProvisionRequest,
    MAX_BATCH_LINES,
};

/// Name of the script file inside the archive.
pub const SCRIPT: &str = "echo.json";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    delay_ms: Option<u64>,
    error: Option<String>,
    state: Option<String>,
    logs: Option<Vec<EchoLog>>,
    resources: Option<Vec<Resource>>,
    #[serde(default)]
    transitions: std::collections::HashMap<String, Script>,
    parameters: Option<Vec<EchoParameter>>,
}

/// The part of a `coder_parameter` an echo template can declare.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoParameter {
    name: String,
    #[serde(default = "string", rename = "type")]
    kind: String,
    #[serde(default)]
    default_value: String,
    #[serde(default)]
    mutable: bool,
    #[serde(default)]
    required: bool,
}

fn string() -> String {
    "string".to_owned()
}

impl EchoParameter {
    fn declared(self) -> TemplateParameter {
        TemplateParameter {
            name: self.name,
            kind: self.kind,
            default_value: self.default_value,
            mutable: self.mutable,
            required: self.required,
            ..TemplateParameter::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct EchoLog {
    #[serde(default = "info")]
    level: LogLevel,
    #[serde(default)]
    stage: String,
    output: String,
}

fn info() -> LogLevel {
    LogLevel::Info
}

impl Script {
    /// The top-level script with the overrides for `kind` applied.
    fn for_kind(mut self, kind: &str) -> Script {
        let Some(o) = self.transitions.remove(kind) else { return self };
        Script {
            delay_ms: o.delay_ms.or(self.delay_ms),
            error: o.error.or(self.error),
            state: o.state.or(self.state),
            logs: o.logs.or(self.logs),
            resources: o.resources.or(self.resources),
            transitions: Default::default(),
            parameters: o.parameters.or(self.parameters),
        }
    }
}

fn fail(message: String) -> ProvisionError {
    ProvisionError::failed(message)
}

/// Reads `echo.json` from the (optionally gzipped) tar archive.
fn read_script(archive: &[u8]) -> Result<Script, ProvisionError> {
    let reader: Box<dyn Read> = if archive.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(archive))
    } else {
        Box::new(archive)
    };
    let mut tar = tar::Archive::new(reader);
    let entries =
        tar.entries().map_err(|e| fail(format!("failed to read template archive: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("failed to read template archive: {e}")))?;
        let is_script = entry.path().ok().is_some_and(|p| p.file_name() == Some(SCRIPT.as_ref()));
        if is_script {
            let mut text = String::new();
            entry
                .take(16 << 20)
                .read_to_string(&mut text)
                .map_err(|e| fail(format!("failed to read {SCRIPT}: {e}")))?;
            return serde_json::from_str(&text).map_err(|e| fail(format!("invalid {SCRIPT}: {e}")));
        }
    }
    Ok(Script::default())
}

/// The echo provisioner.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

#[async_trait]
impl Provision for Echo {
    async fn provision(
        &self,
        request: ProvisionRequest,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> Result<ProvisionOutcome, ProvisionError> {
        provision(request, logs, cancel).await
    }
}

/// Runs an echo job.
async fn provision(
    request: ProvisionRequest,
    logs: &dyn LogSink,
    cancel: CancellationToken,
) -> Result<ProvisionOutcome, ProvisionError> {
    let (kind, previous_state) = match &request.kind {
        ProvisionKind::Build { transition, state, .. } => (transition.as_str(), state.clone()),
        ProvisionKind::Import => ("import", Vec::new()),
    };
    let script = read_script(&request.archive)?.for_kind(kind);
    if let Some(ms) = script.delay_ms {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = cancel.cancelled() => {
                return Err(ProvisionError {
                    message: "job canceled: the echo provisioner stopped before finishing".into(),
                    code: None,
                    state: Some(previous_state),
                    canceled: true,
                    timings: Vec::new(),
                });
            }
        }
    }
    let mut lines = script.logs.unwrap_or_default().into_iter().map(|l| LogLine {
        source: LogSource::Provisioner,
        level: l.level,
        stage: l.stage,
        output: l.output,
        created_at: Utc::now(),
    });
    loop {
        let batch: Vec<LogLine> = lines.by_ref().take(MAX_BATCH_LINES).collect();
        if batch.is_empty() || !logs.send(batch).await {
            break;
        }
    }
    let state = script.state.map(String::into_bytes).unwrap_or(previous_state);
    if let Some(message) = script.error {
        return Err(ProvisionError { message, state: Some(state), ..Default::default() });
    }
    let import = match (&request.kind, script.parameters) {
        (ProvisionKind::Import, Some(declared)) => Some(ImportResult {
            parameters: declared.into_iter().map(EchoParameter::declared).collect(),
            ..ImportResult::default()
        }),
        _ => None,
    };
    Ok(ProvisionOutcome {
        state,
        resources: script.resources.unwrap_or_default(),
        import,
        timings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Transition;
    use tokio::sync::mpsc;

    fn archive(script: &str) -> bytes::Bytes {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(script.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, SCRIPT, script.as_bytes()).expect("append");
        b.into_inner().expect("tar").into()
    }

    fn sink() -> (mpsc::Sender<Vec<LogLine>>, mpsc::Receiver<Vec<LogLine>>) {
        mpsc::channel(16)
    }

    fn request(script: &str, transition: Transition) -> ProvisionRequest {
        ProvisionRequest {
            archive: archive(script),
            kind: ProvisionKind::Build { transition, state: b"old".to_vec(), dry_run: false },
            workspace: None,
            parameters: vec![],
            variables: vec![],
            debug: false,
        }
    }

    #[tokio::test]
    async fn replays_logs_and_resources_with_overrides() {
        let script = r#"{"logs":[{"output":"hello","stage":"Starting workspace"}],
            "resources":[{"name":"vm","type":"echo_instance"}],
            "transitions":{"stop":{"resources":[],"logs":[{"output":"bye","level":"warn"}]}}}"#;
        let (tx, mut rx) = sink();
        let out = Echo
            .provision(request(script, Transition::Start), &tx, CancellationToken::new())
            .await
            .expect("start");
        assert_eq!(out.resources.len(), 1);
        assert_eq!(out.state, b"old");
        let batch = rx.recv().await.expect("a batch");
        assert_eq!(batch.iter().map(|l| l.output.as_str()).collect::<Vec<_>>(), ["hello"]);

        let (tx, mut rx) = sink();
        let out = Echo
            .provision(request(script, Transition::Stop), &tx, CancellationToken::new())
            .await
            .expect("stop");
        assert!(out.resources.is_empty());
        let batch = rx.recv().await.expect("a batch");
        assert_eq!(batch.len(), 1);
        assert_eq!((batch[0].output.as_str(), batch[0].level), ("bye", LogLevel::Warn));
    }

    #[tokio::test]
    async fn an_import_reports_declared_parameters() {
        let script = r#"{"parameters":[{"name":"region","mutable":true}]}"#;
        let mut req = request(script, Transition::Start);
        req.kind = ProvisionKind::Import;
        let (tx, _rx) = sink();
        let out = Echo.provision(req, &tx, CancellationToken::new()).await.expect("import");
        let declared = out.import.expect("import result").parameters;
        assert_eq!(declared.len(), 1);
        assert_eq!((declared[0].name.as_str(), declared[0].kind.as_str()), ("region", "string"));
        assert!(declared[0].mutable && !declared[0].required);
        let (tx, _rx) = sink();
        let out = Echo
            .provision(request(script, Transition::Start), &tx, CancellationToken::new())
            .await
            .expect("build");
        assert!(out.import.is_none(), "only imports report parameters");
    }

    #[tokio::test]
    async fn fails_and_cancels() {
        let (tx, _rx) = sink();
        let err = Echo
            .provision(
                request(r#"{"error":"boom","state":"partial"}"#, Transition::Start),
                &tx,
                CancellationToken::new(),
            )
            .await
            .expect_err("fails");
        assert_eq!(err.message, "boom");
        assert_eq!(err.state.as_deref(), Some(&b"partial"[..]));

        let cancel = CancellationToken::new();
        cancel.cancel();
        let (tx, _rx) = sink();
        let err = Echo
            .provision(request(r#"{"delay_ms":60000}"#, Transition::Start), &tx, cancel)
            .await
            .expect_err("canceled");
        assert!(err.canceled);
    }

    #[tokio::test]
    async fn rejects_malformed_script() {
        let (tx, _rx) = sink();
        let err = Echo
            .provision(request("{not json", Transition::Start), &tx, CancellationToken::new())
            .await
            .expect_err("bad script");
        assert!(err.message.contains("invalid echo.json"), "{}", err.message);
    }

    #[tokio::test]
    async fn many_lines_go_in_few_full_batches_in_order() {
        let logs: Vec<serde_json::Value> =
            (0..1200).map(|i| serde_json::json!({"output": i.to_string()})).collect();
        let script = serde_json::json!({ "logs": logs }).to_string();
        let (tx, mut rx) = sink();
        Echo.provision(request(&script, Transition::Start), &tx, CancellationToken::new())
            .await
            .expect("start");
        drop(tx);
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while let Some(batch) = rx.recv().await {
            sizes.push(batch.len());
            got.extend(batch.into_iter().map(|l| l.output));
        }
        assert_eq!(sizes, [MAX_BATCH_LINES, MAX_BATCH_LINES, 1200 - 2 * MAX_BATCH_LINES]);
        assert_eq!(got, (0..1200).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
