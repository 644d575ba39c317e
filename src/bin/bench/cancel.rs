//! Scenario 5, cancel latency: a build on the fake terraform that ignores
//! SIGINT (it records when SIGINT arrives), canceled through the API; from
//! the cancel request to SIGINT in terraform and to the build showing
//! `canceled`, with a short `--cancel-grace` so SIGKILL follows quickly.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use provisionerd::sdk::{Client, LogQuery};
use uuid::Uuid;

use crate::env::{self, Paths, ServerOpts};
use crate::report::{fmt_num, Section};

pub const GRACE: &str = "100ms";

async fn apply_started(c: &Client, build: Uuid) -> anyhow::Result<()> {
    for _ in 0..6000 {
        let logs = c.build_logs(build, LogQuery::default()).await?;
        let started = logs.iter().any(|l| l.output.contains("fake apply started"));
        if started {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("the fake apply of build {build} never started")
}

/// One cancel: a build created through `create` is canceled through
/// `cancel` once its fake apply runs; returns the milliseconds from the
/// cancel request to SIGINT in terraform (recorded in `tmp`, its daemon's
/// `$TMPDIR`) and to the build showing `canceled`.
pub async fn one(
    create: &Client,
    cancel: &Client,
    tmp: &Path,
    template: Uuid,
) -> anyhow::Result<(f64, f64)> {
    let ws = env::create_workspace(create, template).await?;
    let build = ws.latest_build.id;
    let marker = tmp.join(format!("fake-terraform-sigint-{}", ws.id));
    apply_started(cancel, build).await?;
    let asked = env::now_nanos();
    cancel.cancel_build(build).await.context("cancel")?;
    let b = env::wait_build(cancel, build, Duration::from_millis(2)).await?;
    let canceled = (env::now_nanos() - asked) as f64 / 1e6;
    if b.job.status != "canceled" {
        bail!("build ended {} instead of canceled", b.job.status);
    }
    let got: i64 = std::fs::read_to_string(&marker)
        .with_context(|| format!("the fake did not record SIGINT in {}", marker.display()))?
        .trim()
        .parse()?;
    Ok(((got - asked) as f64 / 1e6, canceled))
}

pub async fn run(p: &Paths, cancels: usize) -> anyhow::Result<Section> {
    let opts = ServerOpts { builtin: 1, terraform: p.fake_terraform(), cancel_grace: GRACE };
    let server = env::start_server(p, opts).await?;
    let c = server.client().await?;
    let template =
        env::create_template(&c, env::dir_with("main.tf", "# fake\n")?.path(), "terraform").await?;
    let (mut sigint, mut canceled) = (Vec::new(), Vec::new());
    for _ in 0..cancels {
        let (s, d) = one(&c, &c, &server.tmp(), template).await?;
        sigint.push(s);
        canceled.push(d);
    }
    let mut sec = Section::new(format!(
        "5. Cancel latency ({cancels} cancels, fake terraform ignoring SIGINT, --cancel-grace {GRACE})"
    ));
    sec.info(
        "cancel request → SIGINT in terraform, p50",
        format!("{} ms", fmt_num(env::pct(&mut sigint, 50.0))),
    );
    sec.check(
        "cancel request → SIGINT in terraform, p99",
        env::pct(&mut sigint, 99.0),
        "ms",
        200.0,
        true,
    );
    sec.info(
        "cancel request → build `canceled` in API, p50 / p99",
        format!(
            "{} / {} ms",
            fmt_num(env::pct(&mut canceled, 50.0)),
            fmt_num(env::pct(&mut canceled, 99.0))
        ),
    );
    sec.note(format!(
        "The fake ignores SIGINT, so `canceled` follows SIGKILL after the {GRACE} grace; that \
         grace is a floor of the second row. SIGINT arrival is `date +%s%N` in the fake's trap \
         (includes forking `date`); the build is polled every 2 ms."
    ));
    Ok(sec)
}
