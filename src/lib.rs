//! provisionerd runs Terraform workspace builds.
//!
//! Module map:
//! - [`domain`]: jobs, builds, logs, resources and their derived statuses.
//! - [`store`]: the only place with SQL; a trait with a backend per database.
//! - [`server`]: REST API (axum), gRPC daemon service (tonic), built-in daemons.
//! - [`worker`]: the provisioner daemon: connect, acquire, run, report.
//! - [`terraform`]: the only place that spawns terraform.
//! - [`proto`]: generated protocol types, used only at the gRPC edges.
//! - [`config`]: command line and environment.

pub mod config;
pub mod demo;
pub mod domain;
pub mod health;
pub mod server;
pub mod store;
pub mod terraform;
pub mod worker;

/// Generated daemon protocol. Only the gRPC edges (server service, worker
/// client) use these types; everything else works on [`domain`] types.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("provisionerd.v1");
}
