//! A runtime for bulk work that must not starve the REST API: WebSocket log
//! followers run here, on one thread of their own whose scheduling priority
//! is lowered (nice 10), so while they frame and write millions of lines the
//! API's tasks on the main runtime win the CPU. It owns no work of its own
//! and knows nothing of HTTP; callers spawn onto it and await the handle.
//!
//! The runtime lives for the whole process (a static): a tokio runtime may
//! not be dropped from inside another one, and every server in the process
//! (tests start many) shares it. The sockets followers write to stay
//! registered with the main runtime's I/O driver, which wakes them here.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// How much lower the follower thread's priority is than the server's.
const NICENESS: i32 = 10;

/// The handle to spawn background work on; the caller's own runtime when
/// the background one could not be started (logged once).
pub fn handle() -> Handle {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("provisionerd-followers")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "could not start the followers' runtime; they share the API's")
            })
            .ok()
    });
    runtime.as_ref().map_or_else(Handle::current, |rt| rt.handle().clone())
}

/// Lowers this thread's priority only (on Linux, a thread id names one
/// thread to `setpriority`).
fn lower_priority() {
    let tid = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), current + NICENESS) {
        tracing::debug!(error = %e, "could not lower the followers' thread priority");
    }
}
