//! provisionerd runs Terraform workspace builds.
//!
//! Module map:
//! - [`domain`]: jobs, builds, logs, resources and their derived statuses.
//! - [`store`]: the only place with SQL; a trait with a backend per database.
//! - [`server`]: REST API (axum), gRPC daemon service (tonic), built-in daemons.
//! - [`worker`]: the provisioner daemon: connect, acquire, run, report.
//! - [`terraform`]: the only place that spawns terraform.
//! - [`protocol`]: the daemon protocol: generated types, version, and every
//!   proto ⇄ domain conversion, for both the server and the worker.
//! - [`config`]: command line and environment.

pub mod config;
pub mod demo;
pub mod domain;
pub mod health;
pub mod protocol;
pub mod server;
pub mod store;
pub mod terraform;
pub mod worker;

/// The generated protocol types, for raw clients (the integration tests
/// drive sessions by hand); the crate itself converts only in [`protocol`].
pub use protocol::proto;
