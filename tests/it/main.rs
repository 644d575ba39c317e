//! Integration tests: the real server on a loopback port, real SQLite in a
//! temp dir, real daemons (built-in and `provisionerd start` processes) and
//! real terraform (see `scripts/setup-terraform`).

mod harness;

mod access;
mod agents;
mod api_errors;
mod big;
mod cli;
mod cli_tty;
mod coder;
mod compat;
mod daemon_death;
mod daemons;
mod drain;
mod faults;
mod handover;
mod identity;
mod lifecycle;
mod load;
mod logs;
mod partition;
mod protocol;
mod proxy;
mod queue;
mod restart;
mod schedules;
mod store_outage;
mod tls;
mod workspace_lists;

// ops (issue 18)
mod configfile;
mod logformat;
mod metrics;
mod notify;
mod tfinstall;

// failover (issue 14 point 5)
mod failover;

// replicas (issue 14)
mod pg;
mod replicas;

// timings (issue 15 point 7)
mod timings;

// store-perf (issue 14)
mod statements;
mod store_copy;
