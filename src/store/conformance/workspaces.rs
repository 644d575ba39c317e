//! Cases for workspaces and their builds: lookups, unique live names, one
//! active build per workspace, and paging of both lists.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::fixture::{build, fixture, new_workspace, resource, take, user, workspace, Fixture};
use crate::domain::{
    build_status, AutomaticUpdates, BuildStatus, JobOutcome, JobStatus, JobType, NameValue,
    Transition, WorkspaceBuild,
};
use crate::store::{BuildPage, CompleteResult, Store, StoreError, Workspace, WorkspaceFilter};

/// Runs a queued job to success as a new daemon (it must be next in line).
async fn succeed(store: &dyn Store, job_id: Uuid) {
    let worker = take(store, job_id).await;
    let done = store.complete_job(job_id, worker, &JobOutcome::default()).await.expect("complete");
    assert_eq!(done, CompleteResult::Completed);
}

/// A workspace is stored with its first build and that build's job, and
/// each is found by every lookup the trait has.
pub async fn workspace_with_its_first_build(store: &dyn Store) {
    let f = fixture(store).await;
    let ws = Workspace {
        autostart_schedule: Some("CRON_TZ=UTC 0 9 * * 1-5".into()),
        ttl_ms: Some(3_600_000),
        ..workspace(&f, "Dev")
    };
    let (mut b1, j1) = build(&f, ws.id, 1, Transition::Start);
    b1.rich_parameters = vec![NameValue { name: "cpu".into(), value: "2".into() }];
    store.insert_workspace(&ws, &b1, &j1).await.expect("workspace");

    let got = store.workspace(ws.id).await.expect("by id");
    assert_eq!(
        (got.name.as_str(), got.owner_id, got.template_id, got.deleted),
        ("Dev", f.user.id, f.template.id, false)
    );
    assert_eq!((got.autostart_schedule, got.ttl_ms), (ws.autostart_schedule.clone(), ws.ttl_ms));
    let by_name = store.workspace_by_owner_and_name(f.user.id, "dEV").await.expect("any case");
    assert_eq!(by_name.id, ws.id);
    let same = |b: WorkspaceBuild| (b.id, b.job_id, b.build_number, b.transition);
    let expected = (b1.id, j1.id, 1, Transition::Start);
    assert_eq!(same(store.build(b1.id).await.expect("build")), expected);
    assert_eq!(same(store.build_by_job(j1.id).await.expect("by job")), expected);
    assert_eq!(same(store.build_by_number(ws.id, 1).await.expect("by number")), expected);
    let latest = store.latest_build(ws.id).await.expect("latest");
    assert_eq!(same(latest.clone()), expected);
    assert_eq!(latest.provisioner_state, b"old-state", "the state it starts from");
    assert_eq!(latest.rich_parameters, b1.rich_parameters);
    assert_eq!(latest.reason, b1.reason);
    let job = store.job(j1.id).await.expect("job");
    assert_eq!((job.job_type, job.status()), (JobType::WorkspaceBuild, JobStatus::Pending));

    let nobody = Uuid::new_v4();
    for missing in [
        store.workspace(nobody).await.map(|_| ()),
        store.workspace_by_owner_and_name(nobody, "Dev").await.map(|_| ()),
        store.workspace_by_owner_and_name(f.user.id, "prod").await.map(|_| ()),
        store.build(nobody).await.map(|_| ()),
        store.build_by_job(nobody).await.map(|_| ()),
        store.build_by_number(ws.id, 2).await.map(|_| ()),
        store.latest_build(nobody).await.map(|_| ()),
        store.job(nobody).await.map(|_| ()),
    ] {
        assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    }
}

/// An owner has one live workspace of a name (any case); another owner may
/// use it, and so may the owner again once that workspace is deleted. A
/// refused workspace leaves neither its build nor its job behind.
pub async fn workspace_names_are_unique_while_live(store: &dyn Store) {
    let f = fixture(store).await;
    let (ws, _, j1) = new_workspace(store, &f, "dev").await;
    let twin = workspace(&f, "DEV");
    let (tb, tj) = build(&f, twin.id, 1, Transition::Start);
    assert!(matches!(store.insert_workspace(&twin, &tb, &tj).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.workspace(twin.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.build(tb.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.job(tj.id).await, Err(StoreError::NotFound)));

    let bob = user("bob", vec![]);
    store.insert_user(&bob).await.expect("bob");
    let theirs = Workspace { owner_id: bob.id, ..workspace(&f, "dev") };
    let (b, j) = build(&f, theirs.id, 1, Transition::Start);
    store.insert_workspace(&theirs, &b, &j).await.expect("another owner's dev");

    // Delete the first one; its name is free again.
    succeed(store, j1.id).await;
    let (del, dj) = build(&f, ws.id, 2, Transition::Delete);
    store.insert_build(&del, &dj).await.expect("delete build");
    store.cancel_job(j.id).await.expect("out of the way");
    succeed(store, dj.id).await;
    assert!(store.workspace(ws.id).await.expect("ws").deleted);
    let again = workspace(&f, "dev");
    let (b, j) = build(&f, again.id, 1, Transition::Start);
    store.insert_workspace(&again, &b, &j).await.expect("the name is free again");
    let found = store.workspace_by_owner_and_name(f.user.id, "dev").await.expect("live one");
    assert_eq!(found.id, again.id);
}

/// A build is refused while the workspace's latest one has not completed
/// (pending or running), and a build number is taken once.
pub async fn one_active_build_per_workspace(store: &dyn Store) {
    let f = fixture(store).await;
    let (ws, b1, j1) = new_workspace(store, &f, "dev").await;
    let (b2, j2) = build(&f, ws.id, 2, Transition::Stop);
    assert!(
        matches!(store.insert_build(&b2, &j2).await, Err(StoreError::Conflict(_))),
        "one active build per workspace"
    );
    assert!(matches!(store.job(j2.id).await, Err(StoreError::NotFound)), "nothing half-stored");
    let worker = take(store, j1.id).await;
    assert!(
        matches!(store.insert_build(&b2, &j2).await, Err(StoreError::Conflict(_))),
        "nor while it runs"
    );
    store.complete_job(j1.id, worker, &JobOutcome::default()).await.expect("complete");
    store.insert_build(&b2, &j2).await.expect("after it completed");
    assert_eq!(store.latest_build(ws.id).await.expect("latest").id, b2.id);
    store.cancel_job(j2.id).await.expect("cancel");
    let (twin, tj) = build(&f, ws.id, 2, Transition::Start);
    assert!(
        matches!(store.insert_build(&twin, &tj).await, Err(StoreError::Conflict(_))),
        "build #2 exists"
    );
    assert_eq!(store.build_by_number(ws.id, 2).await.expect("#2").id, b2.id);
    assert_eq!(store.build_by_number(ws.id, 1).await.expect("#1").id, b1.id);
}

/// Workspaces list oldest first; the count is of all that match the
/// filter, whatever the page; deleted ones only when asked for.
pub async fn workspaces_are_paged_and_filtered(store: &dyn Store) {
    let f = fixture(store).await;
    let base = Utc::now() - Duration::hours(1);
    let at = |seconds: i64| base + Duration::seconds(seconds);
    // A deleted workspace of alice's, made first so its jobs are next in
    // line, and created between her second and third live ones.
    let gone = insert_at(store, &f, "gone", f.user.id, at(150)).await;
    succeed(store, store.latest_build(gone).await.expect("b1").job_id).await;
    let (del, dj) = build(&f, gone, 2, Transition::Delete);
    store.insert_build(&del, &dj).await.expect("delete");
    succeed(store, dj.id).await;
    let bob = user("bob", vec![]);
    store.insert_user(&bob).await.expect("bob");
    let mut alice = Vec::new();
    for (i, seconds) in [180, 60, 240, 120].into_iter().enumerate() {
        alice.push((seconds, insert_at(store, &f, &format!("a{i}"), f.user.id, at(seconds)).await));
    }
    alice.sort();
    let alice: Vec<Uuid> = alice.into_iter().map(|(_, id)| id).collect();
    let theirs = insert_at(store, &f, "b0", bob.id, at(600)).await;

    let list = |filter: WorkspaceFilter| async move {
        let (page, count) = store.workspaces(&filter).await.expect("list");
        (page.into_iter().map(|w| w.id).collect::<Vec<_>>(), count)
    };
    let live = [alice.clone(), vec![theirs]].concat();
    assert_eq!(list(WorkspaceFilter::default()).await, (live.clone(), 5), "oldest first");
    let page = |limit, offset| WorkspaceFilter { limit, offset, ..WorkspaceFilter::default() };
    assert_eq!(list(page(Some(2), 0)).await, (live[..2].to_vec(), 5));
    assert_eq!(list(page(Some(2), 2)).await, (live[2..4].to_vec(), 5));
    assert_eq!(list(page(Some(2), 4)).await, (live[4..].to_vec(), 5));
    assert_eq!(list(page(None, 3)).await, (live[3..].to_vec(), 5), "offset without a limit");
    assert_eq!(list(page(Some(2), 10)).await, (vec![], 5), "past the end");
    let mine = WorkspaceFilter { owner_id: Some(f.user.id), ..WorkspaceFilter::default() };
    assert_eq!(list(mine.clone()).await, (alice.clone(), 4));
    let everything = WorkspaceFilter { include_deleted: true, ..mine.clone() };
    let with_gone = [alice[..2].to_vec(), vec![gone], alice[2..].to_vec()].concat();
    assert_eq!(list(everything.clone()).await, (with_gone.clone(), 5), "deleted when asked");
    let second = WorkspaceFilter { limit: Some(1), offset: 2, ..everything };
    assert_eq!(list(second).await, (vec![gone], 5));
    let nobody = WorkspaceFilter { owner_id: Some(Uuid::new_v4()), ..WorkspaceFilter::default() };
    assert_eq!(list(nobody).await, (vec![], 0));
}

/// Inserts a workspace of `owner` created at `at` (its first build pending)
/// and returns its id.
async fn insert_at(
    store: &dyn Store,
    f: &Fixture,
    name: &str,
    owner: Uuid,
    at: DateTime<Utc>,
) -> Uuid {
    let ws = Workspace { owner_id: owner, created_at: at, updated_at: at, ..workspace(f, name) };
    let (b, j) = build(f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b, &j).await.expect("workspace");
    ws.id
}

/// A workspace's builds list newest first, paged by limit and offset;
/// `since` keeps those created after it and `after_number` those numbered
/// above it (both exclusive, as Coder's).
pub async fn builds_are_paged_newest_first(store: &dyn Store) {
    let f = fixture(store).await;
    let base = Utc::now() - Duration::hours(1);
    let ws = workspace(&f, "dev");
    let mut created = Vec::new();
    for number in 1..=5 {
        let transition = if number % 2 == 1 { Transition::Start } else { Transition::Stop };
        let (mut b, j) = build(&f, ws.id, number, transition);
        b.created_at = base + Duration::minutes(i64::from(number));
        if number == 1 {
            store.insert_workspace(&ws, &b, &j).await.expect("workspace");
        } else {
            store.insert_build(&b, &j).await.expect("build");
        }
        succeed(store, j.id).await;
        created.push(b.created_at);
    }
    let _other = new_workspace(store, &f, "other").await;
    let numbers = |page: BuildPage| async move {
        let builds = store.builds_of_workspace(ws.id, &page).await.expect("builds");
        builds.into_iter().map(|b| b.build_number).collect::<Vec<_>>()
    };
    assert_eq!(numbers(BuildPage::default()).await, [5, 4, 3, 2, 1], "newest first");
    let page = |limit, offset| BuildPage { limit, offset, ..BuildPage::default() };
    assert_eq!(numbers(page(Some(2), 0)).await, [5, 4]);
    assert_eq!(numbers(page(Some(2), 2)).await, [3, 2]);
    assert_eq!(numbers(page(None, 3)).await, [2, 1], "offset without a limit");
    assert_eq!(numbers(page(Some(2), 5)).await, [0; 0], "past the end");
    let since = BuildPage { since: Some(created[2]), ..BuildPage::default() };
    assert_eq!(numbers(since.clone()).await, [5, 4], "since is exclusive");
    let paged = BuildPage { limit: Some(1), offset: 1, ..since };
    assert_eq!(numbers(paged).await, [4]);
    let after = BuildPage { after_number: Some(2), ..BuildPage::default() };
    assert_eq!(numbers(after.clone()).await, [5, 4, 3], "after_number is exclusive");
    assert_eq!(numbers(BuildPage { limit: Some(2), ..after }).await, [5, 4]);
    let past = BuildPage { after_number: Some(5), ..BuildPage::default() };
    assert_eq!(numbers(past).await, [0; 0]);
    let later = BuildPage { since: Some(Utc::now() + Duration::hours(1)), ..BuildPage::default() };
    assert_eq!(numbers(later).await, [0; 0]);
    let other = store.builds_of_workspace(Uuid::new_v4(), &BuildPage::default()).await;
    assert!(other.expect("an unknown workspace has no builds").is_empty());
}

/// A live workspace's settings are written and read back; a rename to a
/// name the owner uses is a conflict; a deleted workspace is not updated.
/// The scheduler's candidates are the live, not dormant workspaces with a
/// schedule or a build with a deadline, and a build's deadline is set and
/// cleared.
pub async fn settings_deadlines_and_scheduler_candidates(store: &dyn Store) {
    let f = fixture(store).await;
    let (plain, plain_build, _) = new_workspace(store, &f, "plain").await;
    let (sched, _, _) = new_workspace(store, &f, "sched").await;
    assert!(store.autobuild_candidates().await.expect("none").is_empty());

    let at = Utc::now() + Duration::hours(1);
    let changed = Workspace {
        name: "scheduled".into(),
        autostart_schedule: Some("CRON_TZ=UTC 0 9 * * *".into()),
        ttl_ms: Some(60_000),
        automatic_updates: AutomaticUpdates::Always,
        ..sched.clone()
    };
    store.update_workspace(&changed).await.expect("update");
    let got = store.workspace(sched.id).await.expect("read back");
    assert_eq!(
        (got.name.as_str(), got.autostart_schedule.as_deref(), got.ttl_ms, got.automatic_updates),
        ("scheduled", Some("CRON_TZ=UTC 0 9 * * *"), Some(60_000), AutomaticUpdates::Always)
    );
    let clash = Workspace { name: "PLAIN".into(), ..changed.clone() };
    assert!(matches!(store.update_workspace(&clash).await, Err(StoreError::Conflict(_))));
    let missing = Workspace { id: Uuid::new_v4(), ..changed.clone() };
    assert!(matches!(store.update_workspace(&missing).await, Err(StoreError::NotFound)));

    let ids = |l: Vec<Workspace>| l.into_iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(ids(store.autobuild_candidates().await.expect("one")), vec![sched.id]);
    store.set_build_deadline(plain_build.id, Some(at), None).await.expect("deadline");
    let b = store.build(plain_build.id).await.expect("build");
    assert_eq!(b.deadline.map(|d| d.timestamp_micros()), Some(at.timestamp_micros()));
    assert_eq!(ids(store.autobuild_candidates().await.expect("two")), vec![plain.id, sched.id]);
    let dormant = Workspace { dormant_at: Some(Utc::now()), ..changed };
    store.update_workspace(&dormant).await.expect("dormant");
    assert!(store.workspace(sched.id).await.expect("ws").dormant_at.is_some());
    assert_eq!(ids(store.autobuild_candidates().await.expect("not dormant")), vec![plain.id]);
    store.set_build_deadline(plain_build.id, None, None).await.expect("cleared");
    assert_eq!(store.build(plain_build.id).await.expect("build").deadline, None);
    assert!(store.autobuild_candidates().await.expect("none again").is_empty());
    let nobody = Uuid::new_v4();
    assert!(matches!(
        store.set_build_deadline(nobody, None, None).await,
        Err(StoreError::NotFound)
    ));
}

/// Lists filter by owner name, a part of the name, template, the latest
/// build's status (as `domain::build_status` derives it), dormancy,
/// outdatedness and deletion, and the requester's favorites come first.
pub async fn workspaces_are_filtered_by_query(store: &dyn Store) {
    let f = fixture(store).await;
    let base = Utc::now() - Duration::hours(1);
    let beta = insert_at(store, &f, "beta", f.user.id, base).await;
    let beta_job = store.latest_build(beta).await.expect("b").job_id;
    succeed(store, beta_job).await;
    let alpha = insert_at(store, &f, "alpha-DEV", f.user.id, base + Duration::seconds(1)).await;
    let bob = user("bob", vec![]);
    store.insert_user(&bob).await.expect("bob");
    let gamma = insert_at(store, &f, "gamma", bob.id, base + Duration::seconds(2)).await;
    let mut sleepy = store.workspace(gamma).await.expect("gamma");
    sleepy.dormant_at = Some(Utc::now());
    store.update_workspace(&sleepy).await.expect("dormant");

    let ids = |filter: WorkspaceFilter| async move {
        let (page, count) = store.workspaces(&filter).await.expect("list");
        let ids: Vec<Uuid> = page.into_iter().map(|w| w.id).collect();
        assert_eq!(ids.len() as i64, count, "no paging here: {filter:?}");
        ids
    };
    let all = WorkspaceFilter::default;
    assert_eq!(ids(all()).await, vec![beta, alpha, gamma]);
    let named = WorkspaceFilter { name_contains: Some("dev".into()), ..all() };
    assert_eq!(ids(named).await, vec![alpha]);
    let bobs = WorkspaceFilter { owner_username: Some("BOB".into()), ..all() };
    assert_eq!(ids(bobs).await, vec![gamma]);
    let tpl = WorkspaceFilter { template_name: Some(f.template.name.to_uppercase()), ..all() };
    assert_eq!(ids(tpl).await, vec![beta, alpha, gamma]);
    let other_tpl = WorkspaceFilter { template_name: Some("nope".into()), ..all() };
    assert_eq!(ids(other_tpl).await, Vec::<Uuid>::new());
    for (status, expected) in [
        (BuildStatus::Running, vec![beta]),
        (BuildStatus::Pending, vec![alpha, gamma]),
        (BuildStatus::Failed, vec![]),
    ] {
        let by_status = WorkspaceFilter { status: Some(status), ..all() };
        assert_eq!(ids(by_status).await, expected, "{status}");
    }
    let job = store.job(beta_job).await.expect("job");
    assert_eq!(
        build_status(job.status(), Transition::Start),
        BuildStatus::Running,
        "the domain agrees"
    );
    let dormant = WorkspaceFilter { dormant: Some(true), ..all() };
    assert_eq!(ids(dormant).await, vec![gamma]);
    let awake = WorkspaceFilter { dormant: Some(false), ..all() };
    assert_eq!(ids(awake).await, vec![beta, alpha]);
    let outdated = WorkspaceFilter { outdated: Some(true), ..all() };
    assert_eq!(ids(outdated).await, Vec::<Uuid>::new());
    let current = WorkspaceFilter { outdated: Some(false), ..all() };
    assert_eq!(ids(current).await.len(), 3);
    let deleted = WorkspaceFilter { only_deleted: true, ..all() };
    assert_eq!(ids(deleted).await, Vec::<Uuid>::new());

    let mut fav = store.workspace(alpha).await.expect("alpha");
    fav.favorite = true;
    fav.last_used_at = Some(Utc::now());
    store.update_workspace(&fav).await.expect("favorite");
    let got = store.workspace(alpha).await.expect("alpha");
    assert!(got.favorite && got.last_used_at.is_some());
    let mine_first = WorkspaceFilter { requester: Some(f.user.id), ..all() };
    assert_eq!(ids(mine_first).await, vec![alpha, beta, gamma], "the requester's favorite first");
    let bobs_view = WorkspaceFilter { requester: Some(bob.id), ..all() };
    assert_eq!(ids(bobs_view).await, vec![beta, alpha, gamma], "another's favorite is not theirs");
}

/// A page of workspaces and of builds reads as the one-row lookups do, in
/// the order asked, unknown ids left out: the names joined, the latest
/// build's id, each build's job, resources in order and queue position
/// (what `queue_position` says, for many jobs at once); a build's state is
/// not read.
pub async fn views_agree_with_the_one_row_lookups(store: &dyn Store) {
    let f = fixture(store).await;
    let bob = user("bob", vec![]);
    store.insert_user(&bob).await.expect("bob");
    let (a, a1, j1) = new_workspace(store, &f, "a").await;
    let worker = take(store, j1.id).await;
    let ok = JobOutcome {
        state: Some(b"a-state".to_vec()),
        resources: vec![resource("vm", "echo"), resource("disk", "echo")],
        ..JobOutcome::default()
    };
    store.complete_job(j1.id, worker, &ok).await.expect("complete");
    let (mut a2, j2) = build(&f, a.id, 2, Transition::Stop);
    a2.initiator_id = bob.id;
    store.insert_build(&a2, &j2).await.expect("stop");
    let b = Workspace { owner_id: bob.id, ..workspace(&f, "b") };
    let (b1, bj1) = build(&f, b.id, 1, Transition::Start);
    store.insert_workspace(&b, &b1, &bj1).await.expect("b");

    let unknown = Uuid::new_v4();
    let views = store.workspace_views(&[b.id, unknown, a.id]).await.expect("workspace views");
    let got: Vec<_> = views
        .iter()
        .map(|v| {
            (
                v.workspace.id,
                v.owner_username.as_str(),
                v.organization_name.as_str(),
                v.latest_build_id,
            )
        })
        .collect();
    let org = f.org.name.as_str();
    assert_eq!(got, [(b.id, "bob", org, b1.id), (a.id, "alice", org, a2.id)]);
    assert_eq!(views[1].workspace, store.workspace(a.id).await.expect("a"));
    assert_eq!(
        (views[1].template_name.as_str(), views[1].template_active_version_id),
        (f.template.name.as_str(), f.template.active_version_id)
    );

    let builds = store.build_views(&[a2.id, unknown, b1.id, a1.id]).await.expect("build views");
    let ids: Vec<Uuid> = builds.iter().map(|v| v.build.id).collect();
    assert_eq!(ids, [a2.id, b1.id, a1.id], "in the order asked, the unknown one left out");
    for v in &builds {
        let stored = store.build(v.build.id).await.expect("build");
        let expected = WorkspaceBuild { provisioner_state: Vec::new(), ..stored };
        assert_eq!(v.build, expected, "the build as stored, without its state");
        assert_eq!(v.job, store.job(v.build.job_id).await.expect("job"));
        let queue = store.queue_position(v.build.job_id).await.expect("queue");
        assert_eq!(v.queue, queue, "queue position of build {}", v.build.build_number);
        assert_eq!(v.resources, store.resources_of_job(v.build.job_id).await.expect("resources"));
        assert_eq!(v.template_version_name, f.version.name);
    }
    let names = |v: &crate::store::BuildView| {
        (v.workspace_name.clone(), v.owner_username.clone(), v.initiator_username.clone())
    };
    assert_eq!(names(&builds[0]), ("a".into(), "alice".into(), "bob".into()));
    assert_eq!(names(&builds[1]), ("b".into(), "bob".into(), "alice".into()));
    assert_eq!((builds[0].queue, builds[1].queue, builds[2].queue), ((1, 2), (2, 2), (0, 2)));
    assert_eq!(builds[2].resources.len(), 2);

    let positions = store.queue_positions(&[bj1.id, unknown, j1.id, j2.id]).await.expect("queue");
    let expected = [(bj1.id, (2, 2)), (j1.id, (0, 2)), (j2.id, (1, 2))].into_iter().collect();
    assert_eq!(positions, expected);
    assert!(store.queue_positions(&[]).await.expect("none").is_empty());
    assert!(store.build_views(&[]).await.expect("none").is_empty());
}
