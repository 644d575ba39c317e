//! Scenarios 2 and 3, the job queue with echo jobs (no terraform): acquire
//! latency of an idle daemon, one template-version import at a time; and
//! queue throughput, a backlog drained by 1, 2, 4 and 8 external daemons,
//! with the CPU each process spent as the breakdown.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{stream, StreamExt, TryStreamExt};
use provisionerd::sdk::Client;
use uuid::Uuid;

use crate::env::{self, Paths, ServerOpts};
use crate::report::{fmt_num, Section};

const ECHO: &str = r#"{"logs": [{"stage": "Echo", "output": "hello"}]}"#;

pub async fn acquire(p: &Paths, jobs: usize) -> anyhow::Result<Section> {
    let mut sec = Section::new(format!(
        "2. Acquire latency ({jobs} echo template-version imports, one at a time, 1 idle built-in daemon)"
    ));
    for store in env::Store::all(p) {
        acquire_on(p, jobs, store, 1, store.name(), &mut sec).await?;
    }
    sec.note(
        "Jobs are template-version imports of an echo template (no workspace, so no 409 rule). \
         Both timestamps come from the API JSON (server clock); the second row uses the \
         bench's clock at the moment the creation response arrived, and is negative when the \
         daemon took the job before the HTTP response reached the client. A 5 ms pause after \
         each job lets the daemon return to waiting. PostgreSQL: one server (one replica) on \
         a local cluster over loopback TCP.",
    );
    Ok(sec)
}

/// Acquire latency on `replicas` servers of one database: the first runs
/// the one built-in daemon, the jobs are created through the last (the same
/// server when there is one).
pub async fn acquire_on(
    p: &Paths,
    jobs: usize,
    store: env::Store,
    replicas: usize,
    name: &str,
    sec: &mut Section,
) -> anyhow::Result<()> {
    let servers = env::start_replicas(p, store, replicas, |i| ServerOpts {
        builtin: u32::from(i == 0),
        terraform: p.fake_terraform(),
        cancel_grace: "60s",
    })
    .await?;
    let c = servers.last().context("no server")?.client().await?;
    let file = env::upload(&c, env::dir_with("echo.json", ECHO)?.path()).await?;
    let (mut from_created, mut from_response) = (Vec::new(), Vec::new());
    for _ in 0..jobs {
        let v = env::import(&c, file, "echo").await?;
        let answered = env::now_nanos();
        let done = env::wait_version(&c, v.id, Duration::from_millis(1)).await?;
        let started = env::ts_nanos(done.job.started_at).context("started_at")?;
        let created = env::ts_nanos(Some(v.job.created_at)).context("created_at")?;
        from_created.push((started - created) as f64 / 1e6);
        from_response.push((started - answered) as f64 / 1e6);
        // Let the daemon report and ask for work again: it waits idle.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let p50 = env::pct(&mut from_created, 50.0);
    sec.check(&format!("{name}: p50 job created_at → started_at"), p50, "ms", 5.0, true);
    let p99 = env::pct(&mut from_created, 99.0);
    sec.check(&format!("{name}: p99 job created_at → started_at"), p99, "ms", 25.0, true);
    sec.info(
        format!("{name}: max job created_at → started_at"),
        format!("{} ms", fmt_num(env::pct(&mut from_created, 100.0))),
    );
    sec.info(
        format!("{name}: p50 / p99 / max creation response received → started_at"),
        format!(
            "{} / {} / {} ms",
            fmt_num(env::pct(&mut from_response, 50.0)),
            fmt_num(env::pct(&mut from_response, 99.0)),
            fmt_num(env::pct(&mut from_response, 100.0))
        ),
    );
    Ok(())
}

/// Creates `n` imports, 8 requests in flight, through the clients in turn
/// (one per replica); returns the version ids.
async fn queue(cs: &[Client], file: Uuid, n: usize) -> anyhow::Result<Vec<Uuid>> {
    stream::iter(0..n)
        .map(|i| async move {
            Ok::<_, anyhow::Error>(env::import(&cs[i % cs.len()], file, "echo").await?.id)
        })
        .buffered(8)
        .try_collect()
        .await
}

/// How often the drain is polled: rarely, because every poll costs the
/// server a request (and a queue-position query) it would not otherwise do.
const POLL: Duration = Duration::from_millis(50);

/// Waits until every version's job is final and returns when that was
/// seen: polls the last one (the queue is first-in first-out, so the others
/// are final by then), then checks them all. The check is one request per
/// job, so it is not part of the time (nor of `sample`, the CPU counters
/// read when the end was seen) unless it found one still running.
async fn drained<T>(
    c: &Client,
    ids: &[Uuid],
    sample: impl Fn() -> T,
) -> anyhow::Result<(Instant, T)> {
    let last = ids.last().context("no jobs")?;
    env::wait_version(c, *last, POLL).await?;
    let seen = (Instant::now(), sample());
    let mut all_final = true;
    for id in ids {
        let v = c.template_version(*id).await?;
        if !env::is_final(&v.job.status) {
            all_final = false;
            env::wait_version(c, *id, POLL).await?;
        }
    }
    Ok(if all_final { seen } else { (Instant::now(), sample()) })
}

pub struct Drain {
    daemons: usize,
    secs: f64,
    server_cpu: Duration,
    daemons_cpu: Duration,
    /// Median started_at → completed_at of the last 50 jobs.
    job_ms: f64,
}

/// Queues `jobs` echo imports through `replicas` API-only servers of one
/// database (in turn), then drains them with `daemons` external daemons,
/// spread over the replicas in turn: each is given every URL, its own
/// replica's first.
pub async fn drain_with(
    p: &Paths,
    daemons: usize,
    jobs: usize,
    store: env::Store,
    replicas: usize,
) -> anyhow::Result<Drain> {
    let servers = env::start_replicas(p, store, replicas, |_| ServerOpts {
        builtin: 0,
        terraform: p.fake_terraform(),
        cancel_grace: "60s",
    })
    .await?;
    let mut cs = Vec::new();
    for s in &servers {
        cs.push(s.client().await?);
    }
    let c = &cs[0];
    let file = env::upload(c, env::dir_with("echo.json", ECHO)?.path()).await?;
    let ids = queue(&cs, file, jobs).await?;
    let server_cpu = || servers.iter().map(|s| env::cpu_time(s.proc.pid)).sum::<Duration>();
    let cpu0 = server_cpu();
    let t0 = Instant::now();
    let mut procs = Vec::new();
    for i in 0..daemons {
        let urls: Vec<&str> =
            (0..replicas).map(|k| servers[(i + k) % replicas].url.as_str()).collect();
        let name = format!("d{i}");
        let (d, _) =
            env::start_daemon_with(p, &servers[0], &urls, &p.fake_terraform(), &name, &[]).await?;
        procs.push(d);
    }
    let cpu = || (server_cpu(), procs.iter().map(|d| env::cpu_time(d.pid)).sum::<Duration>());
    let (end, (server_end, daemons_cpu)) = drained(c, &ids, cpu).await?;
    let secs = end.duration_since(t0).as_secs_f64();
    let server_cpu = server_end - cpu0;
    let mut run_ms = Vec::new();
    for id in ids.iter().rev().take(50) {
        let v = c.template_version(*id).await?;
        if v.job.status != "succeeded" {
            bail!("an echo job did not succeed: {:?}", v.job);
        }
        if let (Some(s), Some(e)) =
            (env::ts_nanos(v.job.started_at), env::ts_nanos(v.job.completed_at))
        {
            run_ms.push((e - s) as f64 / 1e6);
        }
    }
    let job_ms = env::pct(&mut run_ms, 50.0);
    Ok(Drain { daemons, secs, server_cpu, daemons_cpu, job_ms })
}

pub async fn throughput(p: &Paths, jobs: usize) -> anyhow::Result<Section> {
    let mut sec = Section::new(format!(
        "3. Queue throughput ({jobs} echo imports queued, then drained by N `provisionerd start` daemons)"
    ));
    for store in env::Store::all(p) {
        let best = throughput_on(p, jobs, store, 1, store.name(), &mut sec).await?;
        sec.note(format!("{}: {}", store.name(), breakdown(&best, jobs)));
    }
    Ok(sec)
}

/// Drains `jobs` with 1, 2, 4 and 8 daemons on `replicas` servers, a row
/// each; returns the fastest drain.
async fn throughput_on(
    p: &Paths,
    jobs: usize,
    store: env::Store,
    replicas: usize,
    name: &str,
    sec: &mut Section,
) -> anyhow::Result<Drain> {
    let mut best: Option<Drain> = None;
    for n in DAEMONS {
        let d = drain_with(p, n, jobs, store, replicas).await?;
        drain_row(sec, name, jobs, &d);
        if best.as_ref().is_none_or(|b| d.secs < b.secs) {
            best = Some(d);
        }
    }
    best.context("no drain")
}

/// The daemon counts of a throughput series.
pub const DAEMONS: [usize; 4] = [1, 2, 4, 8];

/// The row of one drain: jobs/s with its wall time, CPU and job time.
pub fn drain_row(sec: &mut Section, name: &str, jobs: usize, d: &Drain) {
    sec.info(
        format!("{name}: {} daemon(s): jobs/s", d.daemons),
        format!(
            "{} (wall {:.1} s; CPU server {:.1} s, daemons {:.1} s; job started → completed p50 {} ms)",
            fmt_num(d.jobs_per_s(jobs)),
            d.secs,
            d.server_cpu.as_secs_f64(),
            d.daemons_cpu.as_secs_f64(),
            fmt_num(d.job_ms),
        ),
    );
}

impl Drain {
    pub fn daemons(&self) -> usize {
        self.daemons
    }

    pub fn jobs_per_s(&self, jobs: usize) -> f64 {
        jobs as f64 / self.secs
    }
}

pub fn breakdown(b: &Drain, jobs: usize) -> String {
    let per_job = |d: Duration| d.as_secs_f64() * 1e6 / jobs as f64;
    let busy = (b.server_cpu + b.daemons_cpu).as_secs_f64() / (b.secs * 2.0) * 100.0;
    let cycle_ms = b.secs * 1000.0 * b.daemons as f64 / jobs as f64;
    format!(
        "Where the time goes at the fastest configuration ({} daemons): each daemon finishes \
         a job every {cycle_ms:.1} ms; {:.1} ms of that is the job as the server records it \
         (started_at → completed_at: offer, ack, archive fetch, echo, logs, completion) and \
         the rest is hand-over (completion ack, next acquire, offer). CPU per job: server \
         {:.0} µs, daemons together {:.0} µs; the two use {busy:.0}% of the 2 cores' wall \
         time, so the drain waits on latency more than on CPU. The clock starts when the \
         first daemon is spawned (they start one after another); the bench polls the last \
         job every {} ms.",
        b.daemons,
        b.job_ms,
        per_job(b.server_cpu),
        per_job(b.daemons_cpu),
        POLL.as_millis(),
    )
}
