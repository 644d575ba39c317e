//! The typed SDK of the REST API (what codersdk is to Coder): the request
//! and response bodies in the seeds' shapes ([`types`]) and a typed client
//! ([`Client`]) over them. The server renders its answers into these types
//! and parses its requests from them, and every client (the demo, the
//! integration tests, the bench) reads answers through them, so renaming a
//! field is a compile error on both sides, never a silent `null`.
//!
//! This module knows HTTP and JSON only: no axum, no store, no domain
//! types. Enum-like fields (statuses, transitions) stay strings here, as
//! they are on the wire; the server turns its domain enums into them.

pub mod client;
pub mod types;

pub use client::{tar_dir, Client, Error, LogQuery};
pub use types::*;
