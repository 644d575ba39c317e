//! Prometheus metrics of the server and the daemon, in one registry per
//! process (a server with built-in daemons reports both sides). Counters and
//! histograms are updated where things happen, at the cost of an atomic add
//! or a short map lookup; gauges that describe current state (pending jobs,
//! connected daemons, running jobs) are set just before each scrape by
//! whoever serves `/metrics` (`server::api`, `probes`), so nothing polls.
//!
//! Names and units follow Prometheus' conventions: a `provisionerd_` prefix,
//! base units (`_seconds`, `_bytes`), `_total` on counters. The label
//! `job_type` is used instead of `type`/`job`, which Prometheus' own target
//! labels would clash with.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::Job;

/// The content type of the text exposition format the registry writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job_type: String,
    pub provisioner: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub job_type: String,
    /// `start`, `stop` or `delete` for builds; empty for template imports.
    pub transition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route pattern (`/api/v2/workspaces/{id}`), never the raw
    /// path, so ids do not make a series each; `other` for unmatched paths.
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpStatusLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Jobs last seconds to an hour: 0.1 s .. ~1.8 h.
fn job_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 3.0, 11))
}

/// HTTP requests take milliseconds; long polls and log follows are
/// streamed and end when the client leaves: 1 ms .. ~65 s.
fn http_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub jobs_completed: Family<JobLabels, Counter>,
    pub job_duration: HistogramFamily<TransitionLabels>,
    pub job_queue: HistogramFamily<TransitionLabels>,
    pub terraform_command: HistogramFamily<CommandLabels>,
    pub jobs_pending: Gauge,
    pub jobs_pending_unmatched: Gauge,
    pub daemons_connected: Gauge,
    pub log_lines_stored: Counter,
    pub log_bytes_stored: Counter,
    pub http_requests: Family<HttpStatusLabels, Counter>,
    pub http_duration: HistogramFamily<HttpLabels>,
    pub daemon_running_jobs: Gauge,
    pub daemon_buffered_log_lines: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            // Replaced below by the registry the metrics are registered in.
            registry: Registry::default(),
            jobs_completed: Family::default(),
            job_duration: Family::new_with_constructor(job_buckets),
            job_queue: Family::new_with_constructor(job_buckets),
            terraform_command: Family::new_with_constructor(job_buckets),
            jobs_pending: Gauge::default(),
            jobs_pending_unmatched: Gauge::default(),
            daemons_connected: Gauge::default(),
            log_lines_stored: Counter::default(),
            log_bytes_stored: Counter::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_buckets),
            daemon_running_jobs: Gauge::default(),
            daemon_buffered_log_lines: Gauge::default(),
        };
        let mut reg = Registry::with_prefix("provisionerd");
        reg.register(
            "jobs_completed",
            "Provisioner jobs ended, by job type, provisioner and result (succeeded, failed, canceled).",
            m.jobs_completed.clone(),
        );
        reg.register_with_unit(
            "job_duration",
            "Time from a job's start on a daemon to its end.",
            Unit::Seconds,
            m.job_duration.clone(),
        );
        reg.register_with_unit(
            "job_queue",
            "Time a job waited in the queue before a daemon started it.",
            Unit::Seconds,
            m.job_queue.clone(),
        );
        reg.register_with_unit(
            "terraform_command_duration",
            "Duration of each terraform command a daemon ran (init, plan, apply, show, graph).",
            Unit::Seconds,
            m.terraform_command.clone(),
        );
        reg.register("jobs_pending", "Jobs waiting in the queue.", m.jobs_pending.clone());
        reg.register(
            "jobs_pending_unmatched",
            "Pending jobs whose tags no connected daemon offers.",
            m.jobs_pending_unmatched.clone(),
        );
        reg.register(
            "daemons_connected",
            "Provisioner daemons connected to this server.",
            m.daemons_connected.clone(),
        );
        reg.register("log_lines_stored", "Job log lines stored.", m.log_lines_stored.clone());
        reg.register_with_unit(
            "log_stored",
            "Bytes of job log output stored.",
            Unit::Bytes,
            m.log_bytes_stored.clone(),
        );
        reg.register(
            "http_requests",
            "HTTP requests answered, by method, route and status.",
            m.http_requests.clone(),
        );
        reg.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (until the response starts).",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        reg.register(
            "daemon_running_jobs",
            "Jobs this process's daemons are running.",
            m.daemon_running_jobs.clone(),
        );
        reg.register(
            "daemon_buffered_log_lines",
            "Log lines a daemon holds until the server acknowledges them.",
            m.daemon_buffered_log_lines.clone(),
        );
        Metrics { registry: reg, ..m }
    }

    /// Every metric in Prometheus' text format (0.0.4), which every
    /// scraper and `promtool check metrics` read.
    pub fn encode(&self) -> String {
        let mut open = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut open, &self.registry);
        openmetrics_to_text(&open)
    }

    /// Counts a job that ended and observes how long it waited and ran.
    /// `transition` is the build's (`start`, `stop`, `delete`) or empty.
    pub fn job_ended(&self, job: &Job, transition: &str) {
        let result = match job.status() {
            crate::domain::JobStatus::Succeeded => "succeeded",
            crate::domain::JobStatus::Canceled => "canceled",
            _ => "failed",
        };
        self.jobs_completed
            .get_or_create(&JobLabels {
                job_type: job.job_type.as_str().to_owned(),
                provisioner: job.provisioner.as_str().to_owned(),
                result: result.to_owned(),
            })
            .inc();
        let labels = TransitionLabels {
            job_type: job.job_type.as_str().to_owned(),
            transition: transition.to_owned(),
        };
        let secs = |d: chrono::TimeDelta| d.to_std().unwrap_or_default().as_secs_f64();
        if let Some(started) = job.started_at {
            self.job_queue.get_or_create(&labels).observe(secs(started - job.created_at));
            if let Some(ended) = job.completed_at.or(job.canceled_at) {
                self.job_duration.get_or_create(&labels).observe(secs(ended - started));
            }
        }
    }

    /// Observes one terraform command's run time.
    pub fn terraform_command(&self, command: &str, took: Duration) {
        self.terraform_command
            .get_or_create(&CommandLabels { command: command.to_owned() })
            .observe(took.as_secs_f64());
    }

    /// Counts log lines the store kept and their output's bytes.
    pub fn logs_stored(&self, lines: u64, bytes: u64) {
        self.log_lines_stored.inc_by(lines);
        self.log_bytes_stored.inc_by(bytes);
    }
}

/// The crate writes OpenMetrics, whose counter families are named without
/// `_total` and which has `# UNIT` and `# EOF` lines; the older text format
/// names a counter's family as its samples and has neither.
fn openmetrics_to_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let counter = rest.strip_suffix(" counter");
            if let Some(h) = help.take() {
                match counter {
                    Some(name) => {
                        let text = h.strip_prefix("# HELP ").and_then(|t| t.strip_prefix(name));
                        out.push_str(&format!("# HELP {name}_total{}\n", text.unwrap_or("")));
                    }
                    None => {
                        out.push_str(h);
                        out.push('\n');
                    }
                }
            }
            match counter {
                Some(name) => out.push_str(&format!("# TYPE {name}_total counter\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_as_their_samples_in_the_text_format() {
        let open = "# HELP x_jobs Jobs.\n# TYPE x_jobs counter\nx_jobs_total 3\n\
                    # HELP x_d Time.\n# TYPE x_d_seconds histogram\n# UNIT x_d_seconds seconds\n\
                    x_d_seconds_count 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(open),
            "# HELP x_jobs_total Jobs.\n# TYPE x_jobs_total counter\nx_jobs_total 3\n\
             # HELP x_d Time.\n# TYPE x_d_seconds histogram\nx_d_seconds_count 1\n"
        );
    }
}
