//! provisionerd runs Terraform workspace builds.
//!
//! Module map:
//! - [`app`]: the use cases (queue a build, create a workspace, import a
//!   template, ...) with their rules and authorisation; no HTTP or gRPC.
//! - [`domain`]: jobs, builds, logs, resources and their derived statuses.
//! - [`store`]: the only place with SQL; a trait with a backend per database.
//! - [`server`]: REST API (axum), gRPC daemon service (tonic), built-in daemons.
//! - [`worker`]: the provisioner daemon: connect, acquire, run, report.
//! - [`provisioner`]: the contract every provisioner (terraform, echo) implements.
//! - [`terraform`]: the only place that spawns terraform.
//! - [`probes`]: the daemon's `/healthz` and `/readyz` over HTTP.
//! - [`protocol`]: the daemon protocol: generated types, version, and every
//!   proto ⇄ domain conversion, for both the server and the worker.
//! - [`sdk`]: the REST API's request and response types and a typed client.
//! - [`config`]: command line and environment.
//! - [`cli`]: the command-line client (`login`, `templates`, `workspaces`).

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod probes;
pub mod protocol;
pub mod provisioner;
pub mod sdk;
pub mod server;
pub mod store;
pub mod terraform;
pub mod worker;
// ops (issue 18)
pub mod metrics;
pub mod notify;

/// The generated protocol types, for raw clients (the integration tests
/// drive sessions by hand); the crate itself converts only in [`protocol`].
pub use protocol::proto;
