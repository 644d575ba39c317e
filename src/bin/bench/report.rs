//! Results of a bench run: one section per scenario with rows of metric,
//! value, target and verdict, plus notes; printed as a table and written as
//! BENCHMARKS.md with the machine and the exact command. It formats only.

use std::fmt::Write as _;

pub struct Row {
    pub metric: String,
    pub value: String,
    pub target: String,
    pub verdict: String,
}

pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Section {
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), rows: Vec::new(), notes: Vec::new() }
    }

    /// A row without a target.
    pub fn info(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            verdict: String::new(),
        });
    }

    /// A row with a target `value <= limit` (or `<` when `strict`); the
    /// verdict says by how much a miss misses.
    pub fn check(&mut self, metric: &str, value: f64, unit: &str, limit: f64, strict: bool) {
        let met = if strict { value < limit } else { value <= limit };
        let op = if strict { "<" } else { "≤" };
        let verdict = if met {
            "met".to_owned()
        } else {
            format!("MISSED by {:.0}%", (value / limit - 1.0) * 100.0)
        };
        self.rows.push(Row {
            metric: metric.into(),
            value: format!("{} {unit}", fmt_num(value)),
            target: format!("{op} {} {unit}", fmt_num(limit)),
            verdict,
        });
    }

    /// A row with a target `value >= limit` (more is better).
    pub fn check_at_least(&mut self, metric: &str, value: f64, unit: &str, limit: f64) {
        let verdict = if value >= limit {
            "met".to_owned()
        } else {
            format!("MISSED by {:.0}%", (1.0 - value / limit) * 100.0)
        };
        self.rows.push(Row {
            metric: metric.into(),
            value: format!("{} {unit}", fmt_num(value)),
            target: format!("≥ {} {unit}", fmt_num(limit)),
            verdict,
        });
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }
}

/// Three significant-ish digits without noise.
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn table(s: &Section) -> String {
    let mut out =
        format!("### {}\n\n| metric | value | target | verdict |\n|---|---|---|---|\n", s.title);
    for r in &s.rows {
        let _ = writeln!(out, "| {} | {} | {} | {} |", r.metric, r.value, r.target, r.verdict);
    }
    if !s.notes.is_empty() {
        out.push('\n');
        for n in &s.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// The machine the numbers come from.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "nproc {nproc}, memory {:.1} GiB, CPU {model}, kernel {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()
    )
}

pub fn document(command: &str, commit: &str, sections: &[Section], elapsed_s: f64) -> String {
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str(
        "Produced by `scripts/bench` (release build of `src/bin/bench`); regenerate with the \
         command below. Every scenario runs our system and its baseline in the same run, \
         alternating where there is a baseline. This is not a test: nothing fails on a number.\n\n",
    );
    let _ = writeln!(out, "- command: `{command}`");
    let _ = writeln!(out, "- date: {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    let _ = writeln!(out, "- commit: {commit}");
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(out, "- whole run: {elapsed_s:.0} s\n");
    for s in sections {
        out.push_str(&table(s));
        out.push('\n');
    }
    out
}
