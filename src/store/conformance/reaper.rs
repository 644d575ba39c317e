//! Cases for the reaper's contract: a heartbeat marks only the daemon's own
//! running jobs as heard of, `stale_jobs` finds started jobs not heard of
//! since a time, and `pending_jobs_before` finds jobs that waited too long.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixture::{acquire_req, fixture, queue_import, queue_import_at, tags, tick};
use crate::domain::{default_tags, with_default_scope, Job, JobOutcome, JobStatus, Provisioner};
use crate::store::{CancelResult, Store};

fn ids(jobs: Vec<Job>) -> BTreeSet<Uuid> {
    jobs.into_iter().map(|j| j.id).collect()
}

/// Acquires the next job as `worker`; it must be `expected`.
async fn take_as(store: &dyn Store, worker: Uuid, expected: &Job) {
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire").map(|j| j.id);
    assert_eq!(got, Some(expected.id));
}

/// A heartbeat refreshes the daemon's own running jobs only: another
/// daemon's job named in it, an ended one and an unknown id are left alone.
pub async fn heartbeat_marks_only_the_daemons_own_jobs(store: &dyn Store) {
    let f = fixture(store).await;
    let (w1, w2) = (Uuid::new_v4(), Uuid::new_v4());
    let a = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let b = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let done = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    take_as(store, w1, &a).await;
    take_as(store, w2, &b).await;
    take_as(store, w1, &done).await;
    store.complete_job(done.id, w1, &JobOutcome::default()).await.expect("complete");
    let mark = tick().await;
    assert_eq!(ids(store.stale_jobs(mark).await.expect("stale")), BTreeSet::from([a.id, b.id]));

    store.heartbeat(w1, &[a.id, b.id, done.id, Uuid::new_v4()]).await.expect("heartbeat");
    assert_eq!(
        ids(store.stale_jobs(mark).await.expect("stale")),
        BTreeSet::from([b.id]),
        "only w1's running job was heard of"
    );
    let b_now = store.job(b.id).await.expect("b");
    assert_eq!((b_now.status(), b_now.worker_id), (JobStatus::Running, Some(w2)), "untouched");
    assert_eq!(store.job(done.id).await.expect("done").status(), JobStatus::Succeeded);
    store.heartbeat(w2, &[]).await.expect("an empty heartbeat");
    assert_eq!(ids(store.stale_jobs(mark).await.expect("stale")), BTreeSet::from([b.id]));
    store.heartbeat(w2, &[b.id]).await.expect("heartbeat");
    assert!(store.stale_jobs(mark).await.expect("stale").is_empty());
}

/// Stale jobs are started, not completed (canceling ones included), and not
/// heard of (acquired or heartbeat) since the given time; pending and ended
/// jobs never are.
pub async fn stale_jobs_by_last_heard_of_time(store: &dyn Store) {
    let f = fixture(store).await;
    let (w1, w2, w3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let a = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let b = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let canceling = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let before_all = tick().await;
    take_as(store, w1, &a).await;
    take_as(store, w2, &b).await;
    take_as(store, w3, &canceling).await;
    assert_eq!(store.cancel_job(canceling.id).await.expect("cancel"), CancelResult::Canceling);
    let pending = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let mark = tick().await;
    let late = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    assert!(store.stale_jobs(before_all).await.expect("stale").is_empty(), "all heard of since");
    assert_eq!(
        ids(store.stale_jobs(mark).await.expect("stale")),
        BTreeSet::from([a.id, b.id, canceling.id]),
        "started, not completed, silent since the mark"
    );
    take_as(store, w1, &pending).await;
    assert!(
        !ids(store.stale_jobs(mark).await.expect("stale")).contains(&pending.id),
        "acquired after the mark: heard of"
    );
    store.heartbeat(w1, &[a.id]).await.expect("heartbeat");
    store.complete_job(b.id, w2, &JobOutcome::default()).await.expect("complete");
    assert_eq!(
        ids(store.stale_jobs(mark).await.expect("stale")),
        BTreeSet::from([canceling.id]),
        "a is heard of, b ended"
    );
    let later = tick().await;
    let stale = ids(store.stale_jobs(later).await.expect("stale"));
    assert_eq!(stale, BTreeSet::from([a.id, canceling.id, pending.id]), "all silent since");
    assert!(!stale.contains(&late.id), "a pending job is never stale");
}

/// Pending jobs created before a time, whatever their tags; started,
/// canceled and failed ones are not pending.
pub async fn pending_jobs_before_a_time(store: &dyn Store) {
    let f = fixture(store).await;
    let base = Utc::now() - Duration::hours(1);
    let at = |minutes: i64| base + Duration::minutes(minutes);
    let running = queue_import_at(store, &f, default_tags(), at(0)).await;
    take_as(store, Uuid::new_v4(), &running).await;
    let first = queue_import_at(store, &f, default_tags(), at(10)).await;
    let pool = with_default_scope(tags(&[("pool", "nobody")]));
    let tagged = queue_import_at(store, &f, pool, at(20)).await;
    let canceled = queue_import_at(store, &f, default_tags(), at(5)).await;
    assert_eq!(store.cancel_job(canceled.id).await.expect("cancel"), CancelResult::CanceledPending);
    let failed = queue_import_at(store, &f, default_tags(), at(6)).await;
    store.fail_job(failed.id, "gave up", None).await.expect("fail");
    let fresh = queue_import(store, &f, default_tags(), Provisioner::Echo).await;

    let before = |t| async move { ids(store.pending_jobs_before(t).await.expect("pending")) };
    assert!(before(at(1)).await.is_empty(), "the running job is not pending");
    assert_eq!(before(at(15)).await, BTreeSet::from([first.id]));
    assert_eq!(before(at(30)).await, BTreeSet::from([first.id, tagged.id]), "tagged too");
    assert_eq!(
        before(Utc::now() + Duration::hours(1)).await,
        BTreeSet::from([first.id, tagged.id, fresh.id])
    );
    assert!(before(at(10)).await.is_empty(), "strictly before");
}
