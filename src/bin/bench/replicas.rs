//! Scenarios 9 and 10, two `provisionerd server` replicas on one PostgreSQL
//! database (issue 14 point 9): echo-job throughput with the jobs queued
//! through both replicas and the daemons split across them, next to one
//! replica in the same run, plus acquire latency of a job created on the
//! replica without the daemon; and cancel latency when the cancel is sent
//! to the replica the daemon is not connected to, next to cancels sent to
//! its own replica. Both need `--postgres`; without it they say so and
//! measure nothing.

use anyhow::Context;

use crate::cancel::{self, GRACE};
use crate::env::{self, Paths, ServerOpts, Store};
use crate::queue::{self, Drain};
use crate::report::{fmt_num, Section};

const NO_POSTGRES: &str =
    "Left out: no PostgreSQL server (run it through `scripts/bench`, or pass --postgres URL).";

const ONE: &str = "PostgreSQL, 1 replica";
const TWO: &str = "PostgreSQL, 2 replicas";

pub async fn throughput(p: &Paths, jobs: usize) -> anyhow::Result<Section> {
    let mut sec = Section::new(format!(
        "9. Replicas: queue throughput ({jobs} echo imports queued, then drained by N \
         `provisionerd start` daemons; PostgreSQL with one server and with two)"
    ));
    if p.postgres.is_none() {
        sec.note(NO_POSTGRES);
        return Ok(sec);
    }
    // One replica and two alternate at each daemon count, so that a noisy
    // moment on the shared machine hits both sides alike.
    let (mut one, mut two): (Vec<Drain>, Vec<Drain>) = (Vec::new(), Vec::new());
    for n in queue::DAEMONS {
        one.push(queue::drain_with(p, n, jobs, Store::Postgres, 1).await?);
        two.push(queue::drain_with(p, n, jobs, Store::Postgres, 2).await?);
    }
    for d in &one {
        queue::drain_row(&mut sec, ONE, jobs, d);
    }
    for d in &two {
        queue::drain_row(&mut sec, TWO, jobs, d);
    }
    let fastest = |v: Vec<Drain>| {
        v.into_iter().min_by(|a, b| a.jobs_per_s(jobs).total_cmp(&b.jobs_per_s(jobs)).reverse())
    };
    let (one, two) = (fastest(one).context("no drain")?, fastest(two).context("no drain")?);
    sec.info(
        format!("{ONE}: fastest, jobs/s"),
        format!("{} ({} daemons)", fmt_num(one.jobs_per_s(jobs)), one.daemons()),
    );
    sec.check_at_least(
        &format!("{TWO}: fastest of 1/2/4/8 daemons ({}), jobs/s", two.daemons()),
        two.jobs_per_s(jobs),
        "jobs/s",
        500.0,
    );
    let acquires = (jobs / 5).max(20);
    queue::acquire_on(
        p,
        acquires,
        Store::Postgres,
        2,
        &format!("{TWO}, {acquires} imports created on B, daemon on A"),
        &mut sec,
    )
    .await?;
    sec.note(
        "Both replicas are API-only servers (`--builtin-daemons 0`) on one fresh database; \
         the jobs are queued through them in turn (8 requests in flight), and daemon i is \
         given both URLs with replica i mod 2 first, so the daemons are split across the \
         replicas and each acquires jobs queued through the other as well. Server CPU is \
         both replicas' together. One replica and two alternate at each daemon count.",
    );
    sec.note(format!("{ONE}: {}", queue::breakdown(&one, jobs)));
    sec.note(format!("{TWO}: {}", queue::breakdown(&two, jobs)));
    sec.note(
        "Acquire rows: replica A runs one built-in daemon, replica B none; each import is \
         created through B, so the daemon learns of it through PostgreSQL LISTEN/NOTIFY \
         (or its periodic re-check). Same method as section 2, 5 ms pause after each job.",
    );
    Ok(sec)
}

pub async fn cancel(p: &Paths, cancels: usize) -> anyhow::Result<Section> {
    let mut sec = Section::new(format!(
        "10. Replicas: cancel latency ({cancels} cancels sent to replica B of builds run by a \
         daemon connected to replica A, {cancels} sent to A, alternating; PostgreSQL, fake \
         terraform ignoring SIGINT, --cancel-grace {GRACE})"
    ));
    if p.postgres.is_none() {
        sec.note(NO_POSTGRES);
        return Ok(sec);
    }
    let servers = env::start_replicas(p, Store::Postgres, 2, |_| ServerOpts {
        builtin: 0,
        terraform: p.fake_terraform(),
        cancel_grace: GRACE,
    })
    .await?;
    let (a, b) = (&servers[0], &servers[1]);
    let (daemon, _) = env::start_daemon_with(
        p,
        a,
        &[a.url.as_str(), b.url.as_str()],
        &p.fake_terraform(),
        "d0",
        &["--cancel-grace", GRACE],
    )
    .await?;
    let (ca, cb) = (a.client().await?, b.client().await?);
    let tf = env::dir_with("main.tf", "# fake\n")?;
    let template = env::create_template(&ca, tf.path(), "terraform").await?;
    let (mut across, mut across_done, mut same, mut same_done) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cancels {
        let (s, d) = cancel::one(&ca, &cb, &a.tmp(), template).await?;
        across.push(s);
        across_done.push(d);
        let (s, d) = cancel::one(&ca, &ca, &a.tmp(), template).await?;
        same.push(s);
        same_done.push(d);
    }
    drop(daemon);
    let p50_99 = |v: &mut Vec<f64>| {
        format!("{} / {} ms", fmt_num(env::pct(v, 50.0)), fmt_num(env::pct(v, 99.0)))
    };
    let p50 = env::pct(&mut across, 50.0);
    sec.info("cancel sent to B → SIGINT in terraform, p50", format!("{} ms", fmt_num(p50)));
    sec.check(
        "cancel sent to B → SIGINT in terraform, p99",
        env::pct(&mut across, 99.0),
        "ms",
        200.0,
        true,
    );
    let max = env::pct(&mut across, 100.0);
    sec.info("cancel sent to B → SIGINT, max", format!("{} ms", fmt_num(max)));
    sec.info("cancel sent to B → build `canceled` through B, p50 / p99", p50_99(&mut across_done));
    sec.info("same replica: cancel sent to A → SIGINT in terraform, p50 / p99", p50_99(&mut same));
    sec.info(
        "same replica: cancel sent to A → build `canceled`, p50 / p99",
        p50_99(&mut same_done),
    );
    sec.note(
        "Two API-only replicas (`--builtin-daemons 0`) on one fresh database and one external \
         `provisionerd start` given both URLs, A first, so it runs every build from A. Each \
         workspace is created through A; once the fake apply runs, the bench sends the cancel \
         to B (or to A, alternately) and polls the build through the same replica every 2 ms. \
         On B the cancel reaches A's daemon session through PostgreSQL NOTIFY. SIGINT arrival \
         is `date +%s%N` in the fake's trap (includes forking `date`); `canceled` follows \
         SIGKILL after the grace, which is a floor of those rows.",
    );
    Ok(sec)
}
