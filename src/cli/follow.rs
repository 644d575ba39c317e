//! Build and import output: a header when a stage starts, its lines below
//! it (warnings and errors highlighted), the stage's elapsed time when it
//! ends, and a final line with the result and the total time. On a
//! terminal a spinner shows the running stage and its time; without one the
//! output is plain lines with no escape codes. Ctrl-C while following
//! detaches: the build goes on and the user is told how to get back to it.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{between, colors, duration, paint, stdout_terminal, Tone};
use super::Detached;
use crate::sdk::{Client, Log, LogQuery, ProvisionerJob, WorkspaceBuild};

/// Prints log lines grouped by stage.
pub struct Renderer {
    color: bool,
    spinner: bool,
    stage: Option<(String, DateTime<Utc>)>,
    bar: Option<ProgressBar>,
    last_id: Option<i64>,
}

impl Renderer {
    pub fn new() -> Self {
        Self { color: colors(), spinner: stdout_terminal(), stage: None, bar: None, last_id: None }
    }

    fn print(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => say!("{text}"),
        }
    }

    pub fn line(&mut self, l: &Log) {
        // Lines seen already (a reconnect replays from the start) are skipped.
        if self.last_id.is_some_and(|id| l.id <= id) {
            return;
        }
        self.last_id = Some(l.id);
        let stage = if l.stage.is_empty() { "Running" } else { &l.stage };
        if self.stage.as_ref().map(|s| s.0.as_str()) != Some(stage) {
            self.end_stage(l.created_at);
            self.begin_stage(stage, l.created_at);
        }
        let text = match l.log_level.as_ref() {
            "error" => paint(self.color, Tone::Bad, &format!("error: {}", l.output)),
            "warn" => paint(self.color, Tone::Warn, &format!("warning: {}", l.output)),
            "debug" | "trace" => paint(self.color, Tone::Dim, &l.output),
            _ => l.output.to_string(),
        };
        self.print(&format!("    {text}"));
    }

    fn begin_stage(&mut self, name: &str, at: DateTime<Utc>) {
        self.print(&paint(self.color, Tone::Bold, &format!("==> ⧗ {name}")));
        if self.spinner {
            // On stdout, where the lines go, so they print above it.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(bar);
        }
        self.stage = Some((name.to_owned(), at));
    }

    /// Ends the running stage at `at` (the next stage's first line, or the
    /// job's end).
    pub fn end_stage(&mut self, at: DateTime<Utc>) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some((name, start)) = self.stage.take() {
            let took = duration(between(start, at));
            say!("{}", paint(self.color, Tone::Good, &format!("=== ✔ {name} [{took}]")));
        }
    }

    /// Stops the spinner without closing the stage (detaching).
    pub fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// The final line: `what` succeeded in N, or failed/canceled with the
    /// job's error. Returns an error for anything but success.
    pub fn finish(&mut self, what: &str, job: &ProvisionerJob) -> anyhow::Result<()> {
        let end = job.completed_at.or(job.canceled_at).unwrap_or_else(Utc::now);
        self.end_stage(end);
        let took = duration(between(job.started_at.unwrap_or(job.created_at), end));
        if job.status == "succeeded" {
            say!("{}", paint(self.color, Tone::Good, &format!("✔ {what} succeeded in {took}")));
            return Ok(());
        }
        let error = job.error.as_deref().unwrap_or("").trim();
        let line = format!("✘ {what} {} after {took}", job.status);
        say!("{}", paint(self.color, Tone::Bad, &line));
        if error.is_empty() {
            anyhow::bail!("{what} {}", job.status)
        }
        anyhow::bail!("{what} {}: {error}", job.status)
    }
}

fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// What Ctrl-C prints: the build continues, and how to come back to it.
fn detach_hint(workspace: &str) {
    eprintln!(
        "\ndetached: the build continues on the server.\n  \
         follow it again: provisionerd ws logs -f {workspace}\n  \
         cancel it:       provisionerd ws cancel {workspace}"
    );
}

/// Follows a workspace build to its end; `workspace` names it for hints.
pub async fn build(c: &Client, b: &WorkspaceBuild, workspace: &str) -> anyhow::Result<()> {
    let what = format!("build #{} ({})", b.build_number, b.transition);
    say!("{}", paint(colors(), Tone::Bold, &format!("{workspace}: {what}")));
    let mut r = Renderer::new();
    if matches!(b.job.status.as_str(), "pending" | "running") {
        // Time in the queue (until the first line) is a stage of its own,
        // as in Coder's output; a daemon may have taken the job already.
        r.begin_stage("Queued", b.job.created_at);
        if b.matched_provisioners.is_some_and(|m| m.count == 0) {
            let warning = "warning: no connected provisioner daemon can take this build \
                           (none has its tags); it waits until one connects";
            r.print(&format!("    {}", paint(r.color, Tone::Warn, warning)));
        }
    }
    loop {
        let after = r.last_id;
        let followed = tokio::select! {
            res = c.follow_build_logs(b.id, after, |l| r.line(&l)) => Some(res),
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(res) = followed else {
            r.abandon();
            detach_hint(workspace);
            return Err(Detached.into());
        };
        res.with_context(|| format!("lost the logs of {what}"))?;
        // The socket closes when the job ends; if it closed for another
        // reason (a server restart), follow again from the last line seen.
        let now = c.build(b.id).await?;
        if is_final(&now.job.status) {
            return r.finish(&what, &now.job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints a finished or running build's logs without following.
pub async fn print_build_logs(c: &Client, b: &WorkspaceBuild) -> anyhow::Result<()> {
    let mut r = Renderer { spinner: false, ..Renderer::new() };
    for l in c.build_logs(b.id, LogQuery::default()).await? {
        r.line(&l);
    }
    if is_final(&b.job.status) {
        r.finish(&format!("build #{} ({})", b.build_number, b.transition), &b.job)?;
    } else {
        r.end_stage(Utc::now());
    }
    Ok(())
}

/// Follows a template version's import to its end.
pub async fn import(c: &Client, version: uuid::Uuid, what: &str) -> anyhow::Result<()> {
    let mut r = Renderer::new();
    let followed = tokio::select! {
        res = c.follow_template_version_logs(version, |l| r.line(&l)) => Some(res),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(res) = followed else {
        r.abandon();
        eprintln!("\ndetached: the import continues on the server");
        return Err(Detached.into());
    };
    res.with_context(|| format!("lost the logs of {what}"))?;
    let done = wait_final(
        || c.template_version(version),
        |v: &crate::sdk::TemplateVersion| v.job.status.clone(),
    )
    .await?;
    r.finish(what, &done.job)
}

/// Reads `get` until the job's status is final: the log socket closes
/// when the job ends, but the job's row may be written a moment later.
async fn wait_final<T, F, Fut>(mut get: F, status: impl Fn(&T) -> String) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, crate::sdk::Error>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = get().await?;
        if is_final(&status(&v)) || std::time::Instant::now() > deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
