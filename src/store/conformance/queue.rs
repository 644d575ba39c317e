//! Cases for the job queue: acquire (oldest first, tags and provisioner,
//! jobs no daemon takes never hiding one it can, racing daemons), release
//! and queue positions.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::fixture::{
    acquire_req, fixture, new_workspace, queue_import, queue_import_at, tags, Fixture,
};
use crate::domain::{
    default_tags, tags_satisfy, with_default_scope, Job, JobOutcome, JobStatus, Provisioner,
};
use crate::store::{AcquireRequest, CancelResult, Store, StoreError};

/// Queues an untagged echo import created `age` seconds after `base`.
async fn queue_at(store: &dyn Store, f: &Fixture, base: DateTime<Utc>, age: i64) -> Job {
    queue_import_at(store, f, default_tags(), base + Duration::seconds(age)).await
}

/// Jobs go out oldest first (by creation, not by insertion), each marked
/// started by the daemon that took it; an empty queue gives `None`.
pub async fn acquire_takes_the_oldest_job_first(store: &dyn Store) {
    let f = fixture(store).await;
    let base = Utc::now() - Duration::minutes(5);
    let young = queue_at(store, &f, base, 30).await;
    let old = queue_at(store, &f, base, 10).await;
    let middle = queue_at(store, &f, base, 20).await;
    let worker = Uuid::new_v4();
    let req = AcquireRequest { worker_name: "daemon-1".into(), ..acquire_req(worker) };
    for expected in [&old, &middle, &young] {
        let got = store.acquire_job(&req).await.expect("acquire").expect("a job");
        assert_eq!(got.id, expected.id, "oldest first");
        assert_eq!(got.status(), JobStatus::Running);
        assert_eq!((got.worker_id, got.worker_name.as_deref()), (Some(worker), Some("daemon-1")));
        assert!(got.started_at.is_some());
        assert_eq!(store.job(got.id).await.expect("job"), got, "what acquire returns is stored");
    }
    assert!(store.acquire_job(&req).await.expect("acquire").is_none(), "the queue is empty");
}

/// Acquire follows `domain::tags_satisfy` and the daemon's provisioners,
/// case by case, with nothing else pending: a job's tags must all be among
/// the daemon's; a job with no tags beyond its scope goes only to a daemon
/// with none either; a provisioner the daemon does not offer never matches.
pub async fn acquire_follows_tags_and_provisioner(store: &dyn Store) {
    let f = fixture(store).await;
    let org = [("scope", "organization")];
    let pool_a = [("scope", "organization"), ("pool", "a")];
    // (job tags, job provisioner, daemon tags, whether the daemon takes it)
    type Case<'a> = (&'a [(&'a str, &'a str)], Provisioner, &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 11] = [
        (&org, Provisioner::Echo, &org, true),
        (&org, Provisioner::Echo, &pool_a, false),
        (&[], Provisioner::Echo, &org, true),
        (&[], Provisioner::Echo, &pool_a, false),
        (&pool_a, Provisioner::Echo, &pool_a, true),
        (
            &pool_a,
            Provisioner::Echo,
            &[("scope", "organization"), ("pool", "a"), ("os", "l")],
            true,
        ),
        (&pool_a, Provisioner::Echo, &[("scope", "organization"), ("pool", "b")], false),
        (&pool_a, Provisioner::Echo, &org, false),
        (
            &[("scope", "user"), ("owner", "u1")],
            Provisioner::Echo,
            &[("scope", "user"), ("owner", "u1")],
            true,
        ),
        (
            &[("scope", "user"), ("owner", "u1")],
            Provisioner::Echo,
            &[("scope", "user"), ("owner", "u2")],
            false,
        ),
        (&org, Provisioner::Terraform, &org, false),
    ];
    for (job_tags, provisioner, daemon_tags, expected) in cases {
        let (job_tags, daemon_tags) = (tags(job_tags), tags(daemon_tags));
        let same_provisioner = provisioner == Provisioner::Echo;
        assert_eq!(
            expected,
            same_provisioner && tags_satisfy(&daemon_tags, &job_tags),
            "the case table follows domain::tags_satisfy"
        );
        let j = queue_import(store, &f, job_tags.clone(), provisioner).await;
        let req = AcquireRequest { tags: daemon_tags.clone(), ..acquire_req(Uuid::new_v4()) };
        let got = store.acquire_job(&req).await.expect("acquire").map(|j| j.id);
        let case = format!("job {job_tags:?} ({provisioner}), daemon {daemon_tags:?}");
        assert_eq!(got, expected.then_some(j.id), "{case}");
        // Clear the queue for the next case.
        store.cancel_job(j.id).await.expect("cancel");
        store.release_job(j.id, req.worker_id).await.expect("release");
        assert!(store.job(j.id).await.expect("job").completed_at.is_some(), "{case}");
    }
    // A daemon offering both provisioners takes either.
    let tf = queue_import(store, &f, default_tags(), Provisioner::Terraform).await;
    let both = AcquireRequest {
        provisioners: vec![Provisioner::Echo, Provisioner::Terraform],
        ..acquire_req(Uuid::new_v4())
    };
    let got = store.acquire_job(&both).await.expect("acquire").map(|j| j.id);
    assert_eq!(got, Some(tf.id));
}

/// More jobs no daemon can take than any scan limit (some sharing one tag
/// set, some each with their own) sit ahead of one an untagged daemon can:
/// that daemon gets it at once, and a daemon of the pool gets the oldest
/// pool job.
pub async fn acquire_looks_past_jobs_no_daemon_takes(store: &dyn Store) {
    let f = fixture(store).await;
    let nobody = with_default_scope(tags(&[("pool", "nobody")]));
    let mut blocked = Vec::new();
    for i in 0..1200 {
        let t = if i % 2 == 0 {
            nobody.clone()
        } else {
            with_default_scope(tags(&[("pool", &format!("nobody-{i}"))]))
        };
        blocked.push(queue_import(store, &f, t, Provisioner::Echo).await);
    }
    // Same tags, another provisioner: a run of its own.
    let tf = queue_import(store, &f, default_tags(), Provisioner::Terraform).await;
    let mine = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    assert_eq!(store.queue_position(mine.id).await.expect("position"), (1202, 1202));
    let worker = Uuid::new_v4();
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire");
    assert_eq!(got.map(|j| j.id), Some(mine.id), "the untagged job behind 1200 others");
    assert!(store.acquire_job(&acquire_req(worker)).await.expect("acquire").is_none());
    let terraform =
        AcquireRequest { provisioners: vec![Provisioner::Terraform], ..acquire_req(worker) };
    let got = store.acquire_job(&terraform).await.expect("acquire");
    assert_eq!(got.map(|j| j.id), Some(tf.id), "the terraform run next to the echo run");
    let pool = AcquireRequest { tags: nobody.clone(), ..acquire_req(Uuid::new_v4()) };
    let got = store.acquire_job(&pool).await.expect("acquire").expect("a pool job");
    assert_eq!(got.id, blocked[0].id, "the oldest job of the pool first");
    let got = store.acquire_job(&pool).await.expect("acquire").expect("a pool job");
    assert_eq!(got.id, blocked[2].id, "then the next one of the pool");
    let odd = AcquireRequest {
        tags: with_default_scope(tags(&[("pool", "nobody-1199")])),
        ..acquire_req(Uuid::new_v4())
    };
    let got = store.acquire_job(&odd).await.expect("acquire").expect("its own job");
    assert_eq!(got.id, blocked[1199].id, "a tag set of one job, last among the runs");
    for j in &blocked {
        store.cancel_job(j.id).await.expect("cancel");
    }
    assert_eq!(store.queue_position(blocked[4].id).await.expect("position"), (0, 0));
}

/// Eight daemons race over 50 jobs, all asking at once: each job goes to
/// exactly one of them.
pub async fn racing_acquirers_get_each_job_once(store: &dyn Store) {
    let f = fixture(store).await;
    let mut ids = HashSet::new();
    for _ in 0..50 {
        ids.insert(queue_import(store, &f, default_tags(), Provisioner::Echo).await.id);
    }
    let daemon = |worker: Uuid| async move {
        let mut mine = Vec::new();
        while let Some(j) = store.acquire_job(&acquire_req(worker)).await.expect("acquire") {
            assert_eq!(j.worker_id, Some(worker));
            mine.push(j.id);
        }
        mine
    };
    let daemons = (0..8).map(|_| daemon(Uuid::new_v4()));
    let seen: Vec<Uuid> = futures::future::join_all(daemons).await.concat();
    assert_eq!(seen.len(), 50, "every job handed out once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

/// Only the daemon that holds a running job releases it, back to pending;
/// a completed job stays completed, and a canceling one completes canceled.
/// (Whether the daemon acknowledged the job is the caller's to know: it
/// releases only unacknowledged jobs.)
pub async fn release_only_by_the_owner_of_a_running_job(store: &dyn Store) {
    let f = fixture(store).await;
    let j = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let (owner, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    store.release_job(j.id, owner).await.expect("releasing a pending job");
    assert_eq!(store.job(j.id).await.expect("job").status(), JobStatus::Pending, "no change");
    store.acquire_job(&acquire_req(owner)).await.expect("acquire").expect("job");
    store.release_job(j.id, stranger).await.expect("a stranger's release");
    let held = store.job(j.id).await.expect("job");
    assert_eq!((held.status(), held.worker_id), (JobStatus::Running, Some(owner)), "ignored");
    store.release_job(j.id, owner).await.expect("release");
    let back = store.job(j.id).await.expect("job");
    assert!(back.started_at.is_none(), "released jobs are pending again");
    assert_eq!((back.status(), back.worker_id, back.worker_name), (JobStatus::Pending, None, None));
    assert_eq!(store.queue_position(j.id).await.expect("position"), (1, 1));

    // Taken again by another daemon, completed: a release changes nothing.
    let second = Uuid::new_v4();
    let got = store.acquire_job(&acquire_req(second)).await.expect("acquire").expect("again");
    assert_eq!((got.id, got.worker_id), (j.id, Some(second)));
    store.complete_job(j.id, second, &JobOutcome::default()).await.expect("complete");
    store.release_job(j.id, second).await.expect("release a completed job");
    assert_eq!(store.job(j.id).await.expect("job").status(), JobStatus::Succeeded);

    // A build canceled while its daemon held it: released, it is canceled.
    let (_, _, bj) = new_workspace(store, &f, "dev").await;
    store.acquire_job(&acquire_req(owner)).await.expect("acquire").expect("build job");
    assert_eq!(store.cancel_job(bj.id).await.expect("cancel"), CancelResult::Canceling);
    store.release_job(bj.id, owner).await.expect("release a canceled job");
    assert_eq!(store.job(bj.id).await.expect("job").status(), JobStatus::Canceled);
    assert!(store.acquire_job(&acquire_req(owner)).await.expect("acquire").is_none());
    assert!(matches!(store.release_job(Uuid::new_v4(), owner).await, Err(StoreError::NotFound)));
}

/// A pending job's place in the whole queue (whatever its tags) and the
/// queue's size; (0, size) for a job that is not pending.
pub async fn queue_position_counts_pending_jobs(store: &dyn Store) {
    let f = fixture(store).await;
    let (_, _, build) = new_workspace(store, &f, "dev").await;
    assert_eq!(store.queue_position(build.id).await.expect("queue"), (1, 1));
    let base = Utc::now();
    let a = queue_at(store, &f, base, 1).await;
    let pool_x = with_default_scope(tags(&[("pool", "x")]));
    let tagged = queue_import_at(store, &f, pool_x, base + Duration::seconds(2)).await;
    let c = queue_at(store, &f, base, 3).await;
    let positions = || async {
        let mut out = Vec::new();
        for id in [build.id, a.id, tagged.id, c.id] {
            out.push(store.queue_position(id).await.expect("position"));
        }
        out
    };
    assert_eq!(positions().await, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    store.acquire_job(&acquire_req(Uuid::new_v4())).await.expect("acquire").expect("build");
    assert_eq!(positions().await, [(0, 3), (1, 3), (2, 3), (3, 3)], "a started job is out");
    store.cancel_job(a.id).await.expect("cancel");
    assert_eq!(positions().await, [(0, 2), (0, 2), (1, 2), (2, 2)], "so is a canceled one");
    assert!(matches!(store.queue_position(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}
