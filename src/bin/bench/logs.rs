//! Scenario 4, log throughput: a template whose `local-exec` prints N lines,
//! built through the server and one external `provisionerd start` daemon
//! while a WebSocket client follows the logs, against the same terraform run
//! by a shell script with its output thrown away (and, to show what a pipe
//! alone costs terraform, through a pipe to `cat`). Reports lines/s stored,
//! creation-to-follower delay, added time and both processes' peak RSS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use provisionerd::sdk::LogQuery;
use uuid::Uuid;

use crate::env::{self, Paths, ServerOpts};
use crate::overhead::{raw_run, raw_run_to};
use crate::report::{fmt_num, Section};

fn main_tf(lines: usize) -> String {
    format!(
        r#"resource "terraform_data" "logs" {{
  provisioner "local-exec" {{
    command = "seq -f 'bench log line %06g of a workspace build' 1 {lines}"
  }}
}}
"#
    )
}

struct SysRun {
    /// From the create request to the build's `completed_at`.
    wall: Duration,
    /// Server CPU from the create request until the build was seen done.
    server_cpu: Duration,
    /// Wall and server CPU of the `GET …/logs` listing after the build.
    listing: (Duration, Duration),
    stored: usize,
    followed: usize,
    delays_ms: Vec<f64>,
}

/// One build through the system; with `follow`, a WebSocket client follows
/// its logs meanwhile.
async fn sys_run(server: &env::Server, template: Uuid, follow: bool) -> anyhow::Result<SysRun> {
    let c = server.client().await?;
    let follower = server.client().await?;
    let cpu0 = env::cpu_time(server.proc.pid);
    let t0 = env::now_nanos();
    let ws = env::create_workspace(&c, template).await?;
    let id = ws.latest_build.id;
    let delays = Arc::new(Mutex::new(Vec::new()));
    let sink = delays.clone();
    let follow = tokio::spawn(async move {
        if !follow {
            return Ok(());
        }
        follower
            .follow_build_logs(id, None, |l| {
                let now = env::now_nanos();
                if let (Some(created), Ok(mut d)) = (env::ts_nanos(Some(l.created_at)), sink.lock())
                {
                    d.push((now - created) as f64 / 1e6);
                }
            })
            .await
    });
    // The follower's stream ends with the build; without one, a slow poll.
    // Either way the build's time is taken from its `completed_at`, so how
    // often the bench looks neither delays it nor costs the server CPU that
    // would count as storing's (a 20 ms poll ran ~400 queries a second).
    tokio::time::timeout(Duration::from_secs(600), follow)
        .await
        .context("the followed build did not finish within 600 s")???;
    let b = env::wait_build(&c, id, Duration::from_millis(100)).await?;
    if b.job.status != "succeeded" {
        bail!("log build failed: {:?}", b.job);
    }
    let done = env::ts_nanos(b.job.completed_at).context("completed_at")?;
    let wall = Duration::from_nanos(u64::try_from(done - t0).context("completed before it began")?);
    let server_cpu = env::cpu_time(server.proc.pid) - cpu0;
    let (cpu1, t1) = (env::cpu_time(server.proc.pid), Instant::now());
    let stored = c.build_logs(id, LogQuery::default()).await?;
    let listing = (t1.elapsed(), env::cpu_time(server.proc.pid) - cpu1);
    let delays_ms = std::mem::take(&mut *delays.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok(SysRun {
        wall,
        server_cpu,
        listing,
        stored: stored.len(),
        followed: delays_ms.len(),
        delays_ms,
    })
}

pub async fn run(p: &Paths, lines: usize, runs: usize) -> anyhow::Result<Section> {
    let opts = ServerOpts { builtin: 0, terraform: p.terraform.clone(), cancel_grace: "60s" };
    let server = env::start_server(p, opts).await?;
    let (daemon, _) = env::start_daemon(p, &server, &p.terraform, "logs").await?;
    let c = server.client().await?;
    let src = env::dir_with("main.tf", &main_tf(lines))?;
    let template = env::create_template(&c, src.path(), "terraform").await?;
    let (mut sys, mut raw, mut piped, mut last) = (Vec::new(), Vec::new(), Vec::new(), None);
    let mut unfollowed = Vec::new();
    // CPU seconds of the last run of each side: [raw terraform, terraform
    // under the daemon, daemon, server].
    let mut cpu = [Duration::ZERO; 4];
    for _ in 0..runs {
        let before = env::cpu_split("self").1;
        raw.push(env::ms(raw_run(p, src.path()).await?));
        cpu[0] = env::cpu_split("self").1 - before;
        piped.push(env::ms(raw_run_to(p, src.path(), true).await?));
        let (d0, tf0) = env::cpu_split(&daemon.pid.to_string());
        let s = sys_run(&server, template, true).await?;
        let (d1, tf1) = env::cpu_split(&daemon.pid.to_string());
        cpu[1..].copy_from_slice(&[tf1 - tf0, d1 - d0, s.server_cpu]);
        sys.push(env::ms(s.wall));
        last = Some(s);
        unfollowed.push(env::ms(sys_run(&server, template, false).await?.wall));
    }
    let mut s = last.context("no runs")?;
    // Each pair's added time: the machine's speed drifts between pairs.
    let mut pairs: Vec<f64> = sys.iter().zip(&raw).map(|(s, r)| (s / r - 1.0) * 100.0).collect();
    pairs.sort_by(f64::total_cmp);
    let (ms, mr) = (env::pct(&mut sys, 50.0), env::pct(&mut raw, 50.0));
    let mp = env::pct(&mut piped, 50.0);
    let mu = env::pct(&mut unfollowed, 50.0);
    let mut sec = Section::new(format!(
        "4. Log throughput ({lines} lines from local-exec, {runs} alternating rounds of raw, piped, followed and unfollowed builds, 1 external daemon)"
    ));
    sec.info("system build wall, median", format!("{} ms", fmt_num(ms)));
    sec.info("raw terraform, output to /dev/null, median", format!("{} ms", fmt_num(mr)));
    sec.info(
        "raw terraform, output through a pipe to `cat`, median",
        format!("{} ms", fmt_num(mp)),
    );
    sec.info("system build wall without a follower, median", format!("{} ms", fmt_num(mu)));
    sec.check("added time (system/raw − 1)", (ms / mr - 1.0) * 100.0, "%", 10.0, false);
    sec.check(
        "added time without a follower, storing only (unfollowed/raw − 1)",
        (mu / mr - 1.0) * 100.0,
        "%",
        10.0,
        false,
    );
    sec.info(
        "added time per pair, sorted",
        pairs.iter().map(|p| format!("{p:.1} %")).collect::<Vec<_>>().join(" / "),
    );
    sec.info(
        "of which terraform writing into a pipe (piped/raw − 1) / the rest (system/piped − 1)",
        format!("{:.1} % / {:.1} %", (mp / mr - 1.0) * 100.0, (ms / mp - 1.0) * 100.0),
    );
    sec.info("log lines stored (last run)", s.stored.to_string());
    sec.info("log lines stored per second of build", fmt_num(s.stored as f64 / (ms / 1000.0)));
    sec.info("lines received by the follower", s.followed.to_string());
    sec.info(
        "line created_at → follower, p50 / p99 / max",
        format!(
            "{} / {} / {} ms",
            fmt_num(env::pct(&mut s.delays_ms, 50.0)),
            fmt_num(env::pct(&mut s.delays_ms, 99.0)),
            fmt_num(env::pct(&mut s.delays_ms, 100.0))
        ),
    );
    let per_line = |d: Duration| d.as_secs_f64() * 1e6 / s.stored.max(1) as f64;
    sec.info(
        "CPU, last run: raw terraform / terraform under the daemon / daemon / server",
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} s ({:.1} / {:.1} / {:.1} / {:.1} µs per stored line)",
            cpu[0].as_secs_f64(),
            cpu[1].as_secs_f64(),
            cpu[2].as_secs_f64(),
            cpu[3].as_secs_f64(),
            per_line(cpu[0]),
            per_line(cpu[1]),
            per_line(cpu[2]),
            per_line(cpu[3])
        ),
    );
    sec.info(
        "`GET …/logs` of the whole build afterwards: wall / server CPU",
        format!(
            "{} / {} ms",
            fmt_num(s.listing.0.as_secs_f64() * 1e3),
            fmt_num(s.listing.1.as_secs_f64() * 1e3)
        ),
    );
    let mib = |pid, f| env::status_kib(pid, f) as f64 / 1024.0;
    sec.check("daemon peak RSS (VmHWM)", mib(daemon.pid, "VmHWM:"), "MiB", 64.0, true);
    sec.info("server peak RSS (VmHWM)", format!("{} MiB", fmt_num(mib(server.proc.pid, "VmHWM:"))));
    sec.note(
        "Log created_at travels as milliseconds (`created_at_unix_ms`), so delays carry up \
         to 1 ms of rounding. A system build's wall runs from the create request to the \
         build's `completed_at`; the bench learns of the end from the follower's stream, or \
         by polling every 100 ms when nobody follows. The server's CPU runs from the create \
         request until the bench saw the build done (storing and following), the listing's \
         is apart. Stored lines include terraform's own JSON messages (plan, apply progress) \
         besides the local-exec output, so they can exceed N.",
    );
    Ok(sec)
}
