//! Integration tests: the real server on a loopback port, real SQLite in a
//! temp dir, real daemons (built-in and `provisionerd start` processes) and
//! real terraform (see `scripts/setup-terraform`).

mod harness;

mod api_errors;
mod coder;
mod daemons;
mod drain;
mod faults;
mod handover;
mod lifecycle;
mod load;
mod logs;
mod restart;
mod tls;
