//! The provisioner daemon: connect to a server (one of several replicas,
//! failing over between them), acquire jobs whose tags this daemon
//! satisfies, run them, report back. Built-in daemons in the server
//! and `provisionerd start` run this same code over the same protocol.
//!
//! The worker does not know HTTP or the store; it speaks the gRPC protocol
//! through [`crate::protocol`] (from [`session`], [`job`] and [`cache`]) and
//! hands terraform work to [`crate::terraform`].

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{Provisioner, Tags};
use crate::terraform::{archive::Limits, TerraformConfig};

mod cache;
pub mod credentials;
mod echo;
pub mod health;
mod job;
pub mod lifecycle;
mod servers;
mod session;

/// What a daemon needs to know.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The server to connect to first.
    pub url: String,
    /// Other servers of the same control plane (replicas on one database):
    /// when the connection to one is lost the daemon connects to the next
    /// in turn and resumes its running jobs there.
    pub fallback_urls: Vec<String>,
    pub credentials: credentials::Credentials,
    pub name: String,
    pub tags: Tags,
    pub concurrency: u32,
    pub provisioners: Vec<Provisioner>,
    pub terraform_path: PathBuf,
    pub cancel_grace: Duration,
    pub work_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub archive_limits: Limits,
    /// When to stop: max jobs, idle and drain timeouts (its cancel grace is
    /// taken from `cancel_grace`).
    pub stop: lifecycle::StopPolicy,
    /// CA certificate (PEM) trusted for an https:// server URL.
    pub ca_pem: Option<Vec<u8>>,
    /// Updated as the daemon talks to its server; read by health probes.
    pub health: health::Health,
}

impl WorkerSettings {
    /// Settings with defaults for everything but the server's address.
    pub fn new(url: impl Into<String>) -> Self {
        let tmp = std::env::temp_dir();
        Self {
            url: url.into(),
            fallback_urls: Vec::new(),
            credentials: credentials::Credentials::default(),
            name: hostname(),
            tags: crate::domain::default_tags(),
            concurrency: 1,
            provisioners: vec![Provisioner::Terraform, Provisioner::Echo],
            terraform_path: PathBuf::from("terraform"),
            cancel_grace: Duration::from_secs(60),
            work_dir: tmp.clone(),
            cache_dir: tmp.join("provisionerd-cache"),
            archive_limits: Limits::default(),
            stop: lifecycle::StopPolicy::default(),
            ca_pem: None,
            health: health::Health::default(),
        }
    }

    /// Terraform settings for one job slot (each slot has its own plugin cache).
    fn terraform(&self, slot: usize) -> TerraformConfig {
        TerraformConfig {
            path: self.terraform_path.clone(),
            cancel_grace: self.cancel_grace,
            plugin_cache_dir: Some(self.cache_dir.join("plugins").join(slot.to_string())),
            work_root: self.work_dir.clone(),
            limits: self.archive_limits,
        }
    }
}

/// The two ways a daemon is asked to stop.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop acquiring; exit once running jobs are done and reported.
    pub drain: CancellationToken,
    /// Cancel running jobs, report them, exit.
    pub abort: CancellationToken,
}

/// Why a daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot set up TLS for {url}: {source}")]
    Tls { url: String, source: tonic::transport::Error },
    #[error("invalid server url {url:?}: {source}")]
    Url { url: String, source: tonic::transport::Error },
    #[error("{0}")]
    Terraform(String),
    #[error("stopped with {0} job(s) not reported to the server")]
    Unreported(usize),
    /// The server does not speak this daemon's protocol version.
    #[error("{0}")]
    Incompatible(String),
    #[error("failed to create {what} {path}: {source}")]
    Dir { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// Runs a daemon until it is told to stop.
pub async fn run(settings: WorkerSettings, shutdown: Shutdown) -> Result<(), WorkerError> {
    for (what, path) in
        [("work directory", &settings.work_dir), ("cache directory", &settings.cache_dir)]
    {
        std::fs::create_dir_all(path).map_err(|source| WorkerError::Dir {
            what,
            path: path.clone(),
            source,
        })?;
    }
    session::ConnectionManager::new(settings)?.run(shutdown).await
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "provisionerd".to_owned())
}

/// Checks the terraform executable and returns its version; the error says
/// what to do about a missing or too old terraform.
pub async fn check_terraform(path: &std::path::Path) -> Result<String, WorkerError> {
    crate::terraform::executor::version(path)
        .await
        .map(|v| v.to_string())
        .map_err(|e| WorkerError::Terraform(e.to_string()))
}
