//! Scenario 7, followers: many WebSocket clients follow one build that
//! prints N lines (100 followers by default), while the bench polls
//! `GET /api/v2/workspaces`. Checks that every follower got every stored line
//! once and in order, and reports the server's peak RSS and the slowest API
//! answer during the run. Followers share the server's store pool with the
//! REST API, so this is the scenario that shows whether they starve it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use provisionerd::sdk::LogQuery;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::env::{self, Paths, ServerOpts};
use crate::report::{fmt_num, Section};

const FOLLOWERS: usize = 100;

fn main_tf(lines: usize) -> String {
    format!(
        r#"resource "terraform_data" "logs" {{
  provisioner "local-exec" {{
    command = "seq -f 'bench follower line %06g of a workspace build' 1 {lines}"
  }}
}}
"#
    )
}

/// What one follower saw: a digest of the ids in the order received, so
/// a hundred followers of a long log are compared without keeping it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    lines: usize,
    digest: u64,
    ascending: bool,
}

impl Seen {
    fn new() -> Self {
        Self { ascending: true, ..Self::default() }
    }

    fn add(&mut self, id: i64, last: &mut Option<i64>) {
        self.ascending &= last.is_none_or(|l| l < id);
        *last = Some(id);
        self.lines += 1;
        self.digest = self.digest.wrapping_mul(1_000_003).wrapping_add(id as u64);
    }
}

#[derive(serde::Deserialize)]
struct LineId {
    id: i64,
}

/// Follows the build until the server closes the socket.
async fn follow(url: String, token: String) -> anyhow::Result<(Seen, Option<CloseCode>)> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Coder-Session-Token", token.parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.context("follow")?;
    let (mut seen, mut last) = (Seen::new(), None);
    while let Some(msg) = socket.next().await {
        match msg? {
            Message::Text(t) => {
                // Only the id: the bench's side of the socket should cost
                // as little CPU as it can, as it shares the machine.
                let l: LineId = serde_json::from_str(&t).context("log without id")?;
                seen.add(l.id, &mut last);
            }
            Message::Close(frame) => return Ok((seen, frame.map(|f| f.code))),
            _ => {}
        }
    }
    Ok((seen, None))
}

pub async fn run(p: &Paths, lines: usize) -> anyhow::Result<Section> {
    let opts = ServerOpts { builtin: 1, terraform: p.terraform.clone(), cancel_grace: "60s" };
    let server = env::start_server(p, opts).await?;
    let c = server.client().await?;
    let src = env::dir_with("main.tf", &main_tf(lines))?;
    let template = env::create_template(&c, src.path(), "terraform").await?;
    let rss_before = env::status_kib(server.proc.pid, "VmRSS:") as f64 / 1024.0;
    // The same polls with nobody following, for the machine's own noise.
    let mut idle = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        c.workspaces(None, None).await?;
        idle.push(env::ms(t.elapsed()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t0 = Instant::now();
    let ws = env::create_workspace(&c, template).await?;
    let id = ws.latest_build.id;
    let url = format!(
        "{}/api/v2/workspacebuilds/{id}/logs?follow=true",
        server.url.replacen("http", "ws", 1)
    );
    // The clients run on a low-priority thread of their own (the server's
    // `background` runtime, in this process): on this 2-core machine they
    // stand for clients on other machines, and the poll measures the
    // server, not how the CPU is shared with the bench's 100 sockets.
    let clients = provisionerd::server::background::handle();
    let followers: Vec<_> =
        (0..FOLLOWERS).map(|_| clients.spawn(follow(url.clone(), c.token().to_owned()))).collect();

    // Poll the API every 50 ms until every follower is done, on a runtime
    // of its own: the bench's followers parse a million messages a second,
    // and on their runtime the poll would time their queue, not the server.
    let done = Arc::new(Notify::new());
    let poller = {
        let (c, done) = (server.client().await?, done.clone());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::spawn(move || {
            rt.block_on(async move {
                let mut took = Vec::new();
                loop {
                    let t = Instant::now();
                    c.workspaces(None, None).await?;
                    took.push(env::ms(t.elapsed()));
                    tokio::select! {
                        _ = done.notified() => return Ok::<_, anyhow::Error>(took),
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            })
        })
    };
    let mut results = Vec::new();
    for f in followers {
        let r = tokio::time::timeout(Duration::from_secs(1200), f)
            .await
            .context("a follower did not finish within 1200 s")??;
        results.push(r?);
    }
    let wall = t0.elapsed();
    done.notify_one();
    let mut took = poller.join().map_err(|_| anyhow::anyhow!("the poller panicked"))??;
    let peak = env::status_kib(server.proc.pid, "VmHWM:") as f64 / 1024.0;

    let b = env::wait_build(&c, id, Duration::from_millis(100)).await?;
    if b.job.status != "succeeded" {
        bail!("followed build failed: {:?}", b.job);
    }
    let stored = c.build_logs(id, LogQuery::default()).await?;
    let (mut want, mut last) = (Seen::new(), None);
    for l in &stored {
        want.add(l.id, &mut last);
    }
    let complete = results.iter().filter(|(s, _)| *s == want).count();
    let normal = results.iter().filter(|(_, code)| *code == Some(CloseCode::Normal)).count();

    let mut sec = Section::new(format!(
        "7. Followers ({FOLLOWERS} WebSocket followers of one {lines}-line build, `GET /api/v2/workspaces` every 50 ms meanwhile)"
    ));
    sec.check(
        "followers that got every stored line once, in order",
        (FOLLOWERS - complete) as f64,
        "missing",
        0.0,
        false,
    );
    sec.info("followers closed normally (1000)", format!("{normal} of {FOLLOWERS}"));
    sec.info("log lines stored", want.lines.to_string());
    sec.check("server peak RSS (VmHWM)", peak, "MiB", 256.0, true);
    sec.info("server RSS before the build", format!("{} MiB", fmt_num(rss_before)));
    let slowest = env::pct(&mut took, 100.0);
    sec.check("slowest `GET /api/v2/workspaces` during the run", slowest, "ms", 100.0, true);
    sec.info(
        "`GET /api/v2/workspaces` p50 / p99 (polls)",
        format!(
            "{} / {} ms ({})",
            fmt_num(env::pct(&mut took, 50.0)),
            fmt_num(env::pct(&mut took, 99.0)),
            took.len()
        ),
    );
    sec.info(
        "baseline: the same polls before the build, p50 / p99 / max (100 polls)",
        format!(
            "{} / {} / {} ms",
            fmt_num(env::pct(&mut idle, 50.0)),
            fmt_num(env::pct(&mut idle, 99.0)),
            fmt_num(env::pct(&mut idle, 100.0))
        ),
    );
    sec.info("load average (1 min) at the end", load_average());
    sec.info("create → last follower closed", format!("{} s", fmt_num(wall.as_secs_f64())));
    sec.note(
        "Each follower keeps only a digest of the log ids in the order it received them; it \
         counts as complete when that digest and the count equal the listing's. Followers \
         read the store a page (1000 lines) at a time under two permits (the pool has 8), \
         and hold no store connection while writing to their socket.",
    );
    Ok(sec)
}

/// The 1-minute load average, for reading latencies on a shared machine.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}
