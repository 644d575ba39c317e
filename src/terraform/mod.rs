//! Terraform execution: the only module that spawns terraform.
//!
//! [`provision`] runs one job's terraform work from an archive to a result:
//! unpack into a fresh 0700 directory, write the previous state, `init`,
//! `plan`, `apply` (or plan only for imports and dry runs), read the state
//! back, convert it into resources, and remove the directory. It streams log
//! lines with stages as it goes, a batch per read of terraform's output, and
//! honours cancellation (SIGINT to the process group, SIGKILL after the
//! grace period). It times each stage and resource (`timings`) and hands
//! the timings back with the result. [`Terraform`] is this work behind the provisioner contract
//! ([`crate::provisioner::Provision`]).
//!
//! This module does not know gRPC, HTTP or the store: the worker hands it a
//! request and a log sink and reports what comes back.

pub mod archive;
pub mod convert;
pub mod executor;
pub mod hclconfig;
pub mod install;
pub mod jsonlog;
mod provision;
mod timings;
pub mod watchdog;
mod workdir;

pub use provision::{provision, Terraform, TerraformConfig};
