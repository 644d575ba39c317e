//! Scenario 1, overhead over raw terraform: a start build of a small
//! `terraform_data` template through the whole system (create the workspace,
//! a built-in daemon acquires the job, runs init/plan/apply/show, the API
//! shows it completed) against the same terraform commands run by a plain
//! shell script in a fresh directory. Runs alternate system, raw, system...

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::env::{self, Paths, ServerOpts};
use crate::report::{fmt_num, Section};

/// The template both sides run: one `terraform_data` with a `local-exec`.
pub const MAIN_TF: &str = r#"resource "terraform_data" "vm" {
  input = "bench"
  provisioner "local-exec" {
    command = "echo booting vm"
  }
}
"#;

/// The raw baseline: the commands our daemon runs, with the environment it
/// gives terraform (no checkpoint call, automation mode, an empty CLI
/// config), output thrown away.
pub const RAW_SH: &str = r#"set -eu -o pipefail
d=$(mktemp -d)
cp "$SRC/main.tf" "$d/"
cd "$d"
: > cli.tfrc
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0 TF_CLI_CONFIG_FILE="$d/cli.tfrc"
# Output to /dev/null, or through a pipe to a reader that drops it.
out() { if [ -n "${PIPE:-}" ]; then "$@" | cat >/dev/null; else "$@" >/dev/null; fi; }
out "$TF" init -input=false -no-color
out "$TF" plan -input=false -json -out=plan.tfplan
out "$TF" apply -input=false -json -auto-approve plan.tfplan
out "$TF" show -json
out "$TF" graph -type=plan
cd / && rm -rf "$d"
"#;

/// Runs the raw script once; returns its wall time.
pub async fn raw_run(p: &Paths, src: &std::path::Path) -> anyhow::Result<Duration> {
    raw_run_to(p, src, false).await
}

/// The raw script with terraform's output sent through a pipe (`| cat`)
/// instead of to /dev/null when `pipe`.
pub async fn raw_run_to(p: &Paths, src: &std::path::Path, pipe: bool) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let st = tokio::process::Command::new("bash")
        .args(["-c", RAW_SH])
        .env("SRC", src)
        .env("TF", &p.terraform)
        .env("PIPE", if pipe { "1" } else { "" })
        .status()
        .await?;
    if !st.success() {
        bail!("raw terraform script failed: {st}");
    }
    Ok(t0.elapsed())
}

pub async fn run(p: &Paths, runs: usize) -> anyhow::Result<Section> {
    let opts = ServerOpts { builtin: 1, terraform: p.terraform.clone(), cancel_grace: "60s" };
    let server = env::start_server(p, opts).await?;
    let c = server.client().await?;
    let src = env::dir_with("main.tf", MAIN_TF)?;
    let template = env::create_template(&c, src.path(), "terraform").await?;
    let (mut sys, mut raw) = (Vec::new(), Vec::new());
    // One warm-up of each (page cache, plugin discovery), then alternate.
    for i in 0..=runs {
        let t0 = Instant::now();
        let ws = env::create_workspace(&c, template).await?;
        let b = env::wait_build(&c, ws.latest_build.id, Duration::from_millis(5)).await?;
        let s = t0.elapsed();
        if b.job.status != "succeeded" {
            bail!("system build failed: {:?}", b.job);
        }
        let r = raw_run(p, src.path()).await?;
        if i > 0 {
            sys.push(env::ms(s));
            raw.push(env::ms(r));
        }
    }
    let ratios: Vec<f64> = sys.iter().zip(&raw).map(|(s, r)| s / r).collect();
    let (ms, mr) = (env::pct(&mut sys, 50.0), env::pct(&mut raw, 50.0));
    let mut sec =
        Section::new(format!("1. Overhead over raw terraform ({runs} alternating runs each)"));
    sec.info(
        "system: create workspace → build succeeded in API, median",
        format!("{} ms", fmt_num(ms)),
    );
    sec.info(
        "raw: shell script init/plan -out/apply plan/show -json/graph, median",
        format!("{} ms", fmt_num(mr)),
    );
    sec.info(
        "system min / max",
        format!("{} / {} ms", fmt_num(sys[0]), fmt_num(sys[sys.len() - 1])),
    );
    sec.info("raw min / max", format!("{} / {} ms", fmt_num(raw[0]), fmt_num(raw[raw.len() - 1])));
    sec.check("ratio of medians system/raw", ms / mr, "×", 1.05, false);
    let mut r = ratios;
    sec.info("pairwise ratio median", format!("{} ×", fmt_num(env::pct(&mut r, 50.0))));
    sec.note(format!(
        "The system side is polled every 5 ms, so up to 5 ms of each system figure is the \
         poll interval; it includes the HTTP create, job hand-over over gRPC, archive \
         download and unpack, init/plan/apply/show, log and state \
         upload. Both sides run the same terraform ({}) with the same \
         `CHECKPOINT_DISABLE`, `TF_IN_AUTOMATION`, `TF_INPUT` and empty CLI config.",
        p.terraform.display()
    ));
    Ok(sec)
}
