//! provisionerd runs Terraform workspace builds.
//!
//! Module map:
//! - [`domain`]: jobs, builds, logs, resources and their derived statuses.
//! - [`store`]: the only place with SQL; a trait with a backend per database.
//! - [`server`]: REST API (axum), gRPC daemon service (tonic), built-in daemons.
//! - [`worker`]: the provisioner daemon: connect, acquire, run, report.
//! - [`terraform`]: the only place that spawns terraform.
//! - [`proto`]: generated protocol types, used only at the gRPC edges.
//! - [`sdk`]: the REST API's request and response types and a typed client.
//! - [`config`]: command line and environment.

pub mod config;
pub mod demo;
pub mod domain;
pub mod health;
pub mod sdk;
pub mod server;
pub mod store;
pub mod terraform;
pub mod worker;

/// Generated daemon protocol. Only the gRPC edges (server service, worker
/// client) use these types; everything else works on [`domain`] types.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("provisionerd.v1");

    /// Largest message either side sends or accepts, the same for the
    /// server's service and the daemon's client (tonic's default of 4 MiB
    /// would refuse a state past 4 MiB). The largest messages are a job
    /// offer (the previous state) and a completion (the new state plus the
    /// resources, whose attributes repeat much of it): 64 MiB carries a
    /// completion of a state past 20 MiB, and still bounds what one message
    /// may make a peer allocate. A completion that does not fit is cut down
    /// by the daemon (`worker::job`), never sent to fail over and over.
    pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
}
