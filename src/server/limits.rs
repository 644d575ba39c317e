//! Load limits that keep one kind of client from starving the others: a
//! limiter of failed logins per account and per source address, and the
//! permits log followers take to read the store.
//!
//! This module decides and counts; it does no I/O. The login handler asks it
//! before spending a password hash, and the WebSocket follower takes a read
//! permit around each store read only (never while writing to its socket).
//!
//! The login limiter counts *failures*, not requests: a successful login gives
//! its slot back, and an attempt that was refused spends nothing. Rate-limit
//! crates such as `governor` count every request (GCRA cells cannot be given
//! back, and have no way to look without spending), so a user who logs in
//! often, or everyone behind one NAT address, would be locked out by their own
//! successes; a small fixed window per key does exactly what is needed here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How many failed logins are allowed, per account and per source address,
/// within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub per_account: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        // Ten tries at one password per minute stops guessing without
        // locking out someone who mistypes; an address gets more, as several
        // users may share it behind a NAT or proxy.
        Self { per_account: 10, per_address: 50, window: Duration::from_secs(60) }
    }
}

/// Keys kept before expired windows are swept, so a flood of made-up emails
/// cannot grow the map without bound.
const SWEEP_AT: usize = 10_000;

/// Failures of one key in the current window. `failures` also counts attempts
/// still being checked, so a burst of concurrent attempts cannot all slip in
/// before the first one fails.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
struct Counts {
    accounts: HashMap<String, Window>,
    addresses: HashMap<String, Window>,
}

/// Counts failed logins per account (email, lower-cased) and per source
/// address, over fixed windows.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    counts: Arc<Mutex<Counts>>,
}

/// A login attempt that may go ahead. It counts as a failure unless
/// [`Attempt::succeeded`] is called, so an attempt that errors out or is
/// dropped half-way still counts.
#[derive(Debug)]
pub struct Attempt {
    counts: Arc<Mutex<Counts>>,
    account: String,
    address: Option<String>,
}

impl Attempt {
    /// The password was right: give the reserved slots back.
    pub fn succeeded(self) {
        let mut counts = lock(&self.counts);
        give_back(&mut counts.accounts, &self.account);
        if let Some(a) = &self.address {
            give_back(&mut counts.addresses, a);
        }
    }
}

fn give_back(map: &mut HashMap<String, Window>, key: &str) {
    if let Some(w) = map.get_mut(key) {
        w.failures = w.failures.saturating_sub(1);
    }
}

fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    // The counters stay consistent even if a holder panicked: each update is
    // a single field write.
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self { limits, counts: Default::default() }
    }

    /// Reserves a failure slot for `account` and `address` (when known), or
    /// says how long to wait. An account that is over its limit is refused
    /// without counting against the address, so an attack on one account
    /// does not lock its neighbours out.
    pub fn begin(&self, account: &str, address: Option<&str>) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let window = self.limits.window;
        let mut counts = lock(&self.counts);
        let counts = &mut *counts;
        if counts.accounts.len() + counts.addresses.len() > SWEEP_AT {
            counts.accounts.retain(|_, w| now.duration_since(w.started) < window);
            counts.addresses.retain(|_, w| now.duration_since(w.started) < window);
        }
        let account = account.trim().to_lowercase();
        let acc = current(&mut counts.accounts, &account, now, window);
        if acc.failures >= self.limits.per_account {
            return Err(window.saturating_sub(now.duration_since(acc.started)));
        }
        if let Some(a) = address {
            let addr = current(&mut counts.addresses, a, now, window);
            if addr.failures >= self.limits.per_address {
                return Err(window.saturating_sub(now.duration_since(addr.started)));
            }
            addr.failures += 1;
        }
        current(&mut counts.accounts, &account, now, window).failures += 1;
        Ok(Attempt { counts: self.counts.clone(), account, address: address.map(str::to_owned) })
    }
}

/// The key's window, started afresh when the last one ended.
fn current<'a>(
    map: &'a mut HashMap<String, Window>,
    key: &str,
    now: Instant,
    window: Duration,
) -> &'a mut Window {
    let w = map.entry(key.to_owned()).or_insert(Window { started: now, failures: 0 });
    if now.duration_since(w.started) >= window {
        *w = Window { started: now, failures: 0 };
    }
    w
}

/// Store reads that WebSocket log followers may run at once: fewer than the
/// store's pool (8 connections), so the REST API always finds connections
/// free however many followers catch up at the same time.
const FOLLOW_READS: usize = 2;

/// Followers framing lines at once: as many as a small machine has cores,
/// so however many followers are busy, a REST request waits behind at most
/// this many chunks in the runtime's queue instead of one per follower.
const FOLLOW_TURNS: usize = 2;

/// Full pages kept for followers: enough for a hundred followers of a few
/// builds, spread over a few pages each (about 0.5 MB a page).
const PAGES_KEPT: usize = 32;

/// Recently read full pages of a log, shared by the followers of one build
/// so that each page is read and rendered once. Only full pages are kept:
/// lines are only ever added after a job's last line, so a full page (every
/// line of the job with an id in `(after, last id]`) never changes, while a
/// short one may grow.
#[derive(Debug, Default)]
pub struct PageCache {
    pages: Mutex<std::collections::VecDeque<CachedPage>>,
}

/// A cached page: its job, the `after` it was read with, and the page.
type CachedPage = (uuid::Uuid, Option<i64>, Arc<FollowPage>);

impl PageCache {
    /// A cached page holding the lines right after `after`, and the index of
    /// the first of them. Followers that fell behind at different lines
    /// still meet on the same pages: a page read after id K serves every
    /// `after` from K up to its last line.
    pub fn get(&self, job: uuid::Uuid, after: Option<i64>) -> Option<(Arc<FollowPage>, usize)> {
        let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        pages.iter().rev().find_map(|(j, key, page)| {
            let last = page.lines.last()?.id;
            let covers = *j == job && *key <= after && after.is_none_or(|a| a < last);
            covers.then(|| {
                let start = after.map_or(0, |a| page.lines.partition_point(|l| l.id <= a));
                (page.clone(), start)
            })
        })
    }

    pub fn put(&self, job: uuid::Uuid, after: Option<i64>, page: Arc<FollowPage>) {
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if pages.iter().any(|(j, key, _)| *j == job && *key == after) {
            return;
        }
        if pages.len() >= PAGES_KEPT {
            pages.pop_front();
        }
        pages.push_back((job, after, page));
    }
}

/// A full page of a log as followers send it: the lines and their JSON.
#[derive(Debug)]
pub struct FollowPage {
    pub lines: Vec<crate::domain::StoredLog>,
    pub texts: Vec<String>,
}

/// Per-server limits shared by the request handlers.
#[derive(Debug)]
pub struct Limits {
    pub logins: LoginLimiter,
    follow_reads: Arc<Semaphore>,
    follow_turns: Semaphore,
    /// Full log pages recently read by followers.
    pub follow_pages: PageCache,
}

impl Limits {
    pub fn new(logins: LoginLimits) -> Self {
        Self {
            logins: LoginLimiter::new(logins),
            follow_reads: Arc::new(Semaphore::new(FOLLOW_READS)),
            follow_turns: Semaphore::new(FOLLOW_TURNS),
            follow_pages: PageCache::default(),
        }
    }

    /// Waits for a turn to read the store for a log follower. Hold the
    /// permit only around the read.
    pub async fn follow_read(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; were it ever, followers would read
        // unthrottled rather than hang.
        self.follow_reads.clone().acquire_owned().await.ok()
    }
}

impl Limits {
    /// Waits for a turn to frame a chunk of lines for a follower's socket.
    /// Hold it only while framing, never while waiting on the socket.
    pub async fn follow_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // Never closed; were it ever, followers would go unthrottled.
        self.follow_turns.acquire().await.ok()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(LoginLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_account: u32, per_address: u32) -> LoginLimiter {
        LoginLimiter::new(LoginLimits { per_account, per_address, window: Duration::from_secs(60) })
    }

    #[tokio::test(start_paused = true)]
    async fn failures_per_account_are_limited_until_the_window_ends() {
        let l = limiter(3, 100);
        for _ in 0..3 {
            drop(l.begin("A@example.com", Some("10.0.0.1")).expect("allowed"));
        }
        let wait = l.begin("a@example.com ", Some("10.0.0.2")).expect_err("same account, any case");
        assert_eq!(wait, Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            l.begin("a@example.com", None).expect_err("still limited"),
            Duration::from_secs(40)
        );
        l.begin("b@example.com", Some("10.0.0.1")).expect("another account is not").succeeded();
        tokio::time::advance(Duration::from_secs(40)).await;
        l.begin("a@example.com", Some("10.0.0.1")).expect("a new window").succeeded();
    }

    #[tokio::test(start_paused = true)]
    async fn failures_per_address_are_limited_and_refusals_cost_nothing() {
        let l = limiter(2, 3);
        for i in 0..3 {
            drop(l.begin(&format!("user{i}@example.com"), Some("10.0.0.9")).expect("allowed"));
        }
        l.begin("fresh@example.com", Some("10.0.0.9")).expect_err("address spent");
        l.begin("fresh@example.com", Some("10.0.0.8")).expect("other address").succeeded();
        // A refused account does not count against its address.
        let l = limiter(1, 2);
        drop(l.begin("x@example.com", Some("10.0.0.1")).expect("allowed"));
        for _ in 0..10 {
            l.begin("x@example.com", Some("10.0.0.1")).expect_err("account spent");
        }
        l.begin("y@example.com", Some("10.0.0.1")).expect("address has room").succeeded();
    }

    fn page(ids: std::ops::RangeInclusive<i64>) -> Arc<FollowPage> {
        let line = crate::domain::LogLine {
            source: crate::domain::LogSource::Provisioner,
            level: crate::domain::LogLevel::Info,
            stage: String::new(),
            output: String::new(),
            created_at: chrono::Utc::now(),
        };
        let lines: Vec<_> = ids
            .map(|id| crate::domain::StoredLog {
                id,
                job_id: uuid::Uuid::nil(),
                seq: id,
                line: line.clone(),
            })
            .collect();
        Arc::new(FollowPage { texts: lines.iter().map(|l| l.id.to_string()).collect(), lines })
    }

    #[test]
    fn a_cached_page_serves_every_after_it_covers() {
        let cache = PageCache::default();
        let job = uuid::Uuid::new_v4();
        // Ids 11..=20 with gaps are fine: a page is every line after its key.
        cache.put(job, Some(10), page(11..=20));
        cache.put(job, None, page(1..=10));
        let start = |after| cache.get(job, after).map(|(p, i)| p.lines[i].id);
        assert_eq!(start(None), Some(1));
        assert_eq!(start(Some(4)), Some(5), "mid-page");
        assert_eq!(start(Some(10)), Some(11), "the next page");
        assert_eq!(start(Some(19)), Some(20));
        assert_eq!(start(Some(20)), None, "nothing cached after the last line");
        assert!(cache.get(uuid::Uuid::new_v4(), None).is_none(), "another job");
        for k in 0..PAGES_KEPT as i64 {
            cache.put(job, Some(100 + k * 10), page(101 + k * 10..=110 + k * 10));
        }
        assert_eq!(start(Some(4)), None, "the oldest pages were dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_count_and_successes_give_their_slot_back() {
        let l = limiter(2, 100);
        let a = l.begin("a@example.com", None).expect("first");
        let b = l.begin("a@example.com", None).expect("second");
        l.begin("a@example.com", None).expect_err("two are being checked");
        a.succeeded();
        b.succeeded();
        for _ in 0..5 {
            l.begin("a@example.com", None).expect("successes never lock out").succeeded();
        }
    }
}
