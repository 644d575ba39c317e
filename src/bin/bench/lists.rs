//! Scenario: listing workspaces. `N` workspaces (echo builds, run by two
//! built-in daemons) are created through the API on each store, then
//! `GET /api/v2/workspaces` is timed with limit 25 (the first page a client
//! shows) and limit 1000, with the server's CPU per request. The page is
//! read in a fixed number of statements (`Store::workspace_views` and
//! `build_views`), so the time grows with the rows returned, not with a
//! query per row.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{stream, StreamExt, TryStreamExt};
use provisionerd::sdk::Client;
use reqwest::Method;

use crate::env::{self, Paths, ServerOpts, Store};
use crate::report::{fmt_num, Section};

const ECHO: &str = r#"{"logs": [{"stage": "Echo", "output": "hello"}], "state": "s",
  "resources": [{"name": "vm", "type": "echo_instance"}]}"#;

pub async fn run(p: &Paths, n: usize) -> anyhow::Result<Section> {
    let mut sec = Section::new(format!(
        "8. Listing workspaces (`GET /api/v2/workspaces` with {n} workspaces, each with a finished echo build)"
    ));
    for store in Store::all(p) {
        run_on(p, n, store, &mut sec).await?;
    }
    sec.note(
        "Each page is requested again and again by one client (25: 100 times, 1000: 10 times) \
         after every build finished; wall time is the client's, from request to the whole \
         JSON body, over loopback HTTP. Server CPU is its /proc time over all requests of the \
         size divided by their number. Workspaces are created 16 requests at a time.",
    );
    Ok(sec)
}

/// `count` of the workspaces list with `query`.
async fn count(c: &Client, query: &str) -> anyhow::Result<i64> {
    let (status, body) = c.raw(Method::GET, &format!("/api/v2/workspaces?{query}"), None).await?;
    if status != 200 {
        bail!("list workspaces: {status} {body}");
    }
    body["count"].as_i64().context("count")
}

async fn run_on(p: &Paths, n: usize, store: Store, sec: &mut Section) -> anyhow::Result<()> {
    let opts = ServerOpts { builtin: 2, terraform: p.fake_terraform(), cancel_grace: "60s" };
    let server = env::start_server_on(p, opts, store).await?;
    let c = server.client().await?;
    let template =
        env::create_template(&c, env::dir_with("echo.json", ECHO)?.path(), "echo").await?;
    let t0 = Instant::now();
    let _: Vec<()> = stream::iter(0..n)
        .map(|_| async { env::create_workspace(&c, template).await.map(|_| ()) })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(900);
    while count(&c, "q=status:running&limit=1").await? < n as i64 {
        if Instant::now() > deadline {
            bail!("{n} workspace builds did not finish within 900 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let setup = t0.elapsed().as_secs_f64();
    let name = store.name();
    for (limit, times, target) in [(25usize, 100usize, Some(20.0)), (1000, 10, None)] {
        let path = format!("/api/v2/workspaces?limit={limit}");
        let mut walls = Vec::with_capacity(times);
        let cpu0 = env::cpu_time(server.proc.pid);
        for _ in 0..times {
            let t = Instant::now();
            let (status, body) = c.raw(Method::GET, &path, None).await?;
            walls.push(env::ms(t.elapsed()));
            let got = body["workspaces"].as_array().map_or(0, Vec::len);
            if status != 200 || got != limit.min(n) {
                bail!("{path}: {status}, {got} workspaces");
            }
        }
        let cpu = env::cpu_time(server.proc.pid) - cpu0;
        let p50 = env::pct(&mut walls, 50.0);
        let metric = format!("{name}: limit {limit}, p50");
        match target {
            Some(limit_ms) => sec.check(&metric, p50, "ms", limit_ms, true),
            None => sec.info(metric, format!("{} ms", fmt_num(p50))),
        }
        sec.info(
            format!("{name}: limit {limit}, p99 / server CPU per request"),
            format!(
                "{} ms / {} ms",
                fmt_num(env::pct(&mut walls, 99.0)),
                fmt_num(env::ms(cpu) / times as f64)
            ),
        );
    }
    sec.info(format!("{name}: setup ({n} workspaces created and built)"), format!("{setup:.0} s"));
    Ok(())
}
