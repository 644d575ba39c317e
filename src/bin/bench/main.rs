//! `bench`: the benchmark harness behind `scripts/bench`. It starts the
//! release `provisionerd` as real server and daemon processes, runs each
//! scenario against its baseline in the same run, prints a table and writes
//! BENCHMARKS.md. It is not a test: no number makes it fail.
//!
//! Usage: `bench [--quick] [--scenario NAME]... [--size N] [--out FILE]`,
//! scenarios `overhead`, `acquire`, `throughput`, `list`, `logs`, `cancel`,
//! `footprint`, `followers`, `replicas`, `cancel-replicas` (all by default;
//! the last two need PostgreSQL). `--size` replaces the
//! scenario's main count (runs, jobs, lines or cancels).

mod cancel;
mod env;
mod followers;
mod footprint;
mod lists;
mod logs;
mod overhead;
mod queue;
mod replicas;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;

const ALL: [&str; 10] = [
    "overhead",
    "acquire",
    "throughput",
    "list",
    "logs",
    "cancel",
    "footprint",
    "followers",
    "replicas",
    "cancel-replicas",
];

#[derive(Parser)]
#[command(about = "Benchmarks provisionerd against its baselines and writes BENCHMARKS.md")]
struct Args {
    /// Small sizes: the whole suite in about a minute.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (repeatable).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ALL))]
    scenario: Vec<String>,
    /// The scenario's main count instead of the default.
    #[arg(long)]
    size: Option<usize>,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Terraform to benchmark with.
    #[arg(long, default_value = ".tools/bin/terraform")]
    terraform: PathBuf,
    /// A PostgreSQL server whose user may create databases: the queue and
    /// list scenarios then run on PostgreSQL too, and the replica scenarios
    /// run at all (`scripts/bench` starts a throwaway cluster and passes it).
    #[arg(long, env = "BENCH_POSTGRES_URL")]
    postgres: Option<String>,
}

fn paths(args: &Args) -> anyhow::Result<env::Paths> {
    let me = std::env::current_exe()?;
    let provisionerd = me.with_file_name("provisionerd");
    if !provisionerd.exists() {
        bail!("{} not found: build it with `cargo build --release`", provisionerd.display());
    }
    let root = std::env::current_dir()?;
    let terraform = std::fs::canonicalize(&args.terraform).with_context(|| {
        format!("no terraform at {}: run scripts/setup-terraform", args.terraform.display())
    })?;
    Ok(env::Paths { provisionerd, terraform, root, postgres: args.postgres.clone() })
}

async fn scenario(p: &env::Paths, name: &str, a: &Args) -> anyhow::Result<report::Section> {
    let n = |quick: usize, full: usize| a.size.unwrap_or(if a.quick { quick } else { full });
    match name {
        "overhead" => overhead::run(p, n(3, 10)).await,
        "acquire" => queue::acquire(p, n(100, 1000)).await,
        "throughput" => queue::throughput(p, n(500, 5000)).await,
        "list" => lists::run(p, n(1000, 10_000)).await,
        "logs" => logs::run(p, n(20_000, 200_000), if a.quick { 1 } else { 3 }).await,
        "cancel" => cancel::run(p, n(10, 50)).await,
        "followers" => followers::run(p, n(10_000, 100_000)).await,
        "replicas" => replicas::throughput(p, n(300, 5000)).await,
        "cancel-replicas" => replicas::cancel(p, n(10, 50)).await,
        _ => footprint::run(p, n(3, 5)).await,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let p = paths(&args)?;
    let names: Vec<&str> = if args.scenario.is_empty() {
        ALL.to_vec()
    } else {
        ALL.iter().copied().filter(|n| args.scenario.iter().any(|s| s == n)).collect()
    };
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "))
        .trim()
        .to_owned();
    let t0 = Instant::now();
    let mut sections = Vec::new();
    for name in names {
        eprintln!("bench: running {name}...");
        let started = Instant::now();
        let mut s = scenario(&p, name, &args).await.with_context(|| format!("scenario {name}"))?;
        s.note(format!("Scenario wall time {:.0} s.", started.elapsed().as_secs_f64()));
        println!("{}", report::table(&s));
        sections.push(s);
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let doc = report::document(&command, &commit, &sections, t0.elapsed().as_secs_f64());
    std::fs::write(&args.out, doc)?;
    eprintln!("bench: wrote {}", args.out.display());
    Ok(())
}
