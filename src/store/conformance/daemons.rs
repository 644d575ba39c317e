//! Cases for the connected-daemons registry (`store/daemons.rs`): a row per
//! daemon, owned by the session that wrote it, listed while it is fresh and
//! expired once its replica stopped refreshing it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use crate::domain::{default_tags, with_default_scope, Tags};
use crate::store::{DaemonRow, Store};

/// Now, at the precision every backend keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn row(name: &str, tags: Tags, at: DateTime<Utc>) -> DaemonRow {
    DaemonRow {
        id: Uuid::new_v4(),
        session_id: Uuid::new_v4(),
        replica_id: Uuid::new_v4(),
        name: name.into(),
        version: "v1.2.3".into(),
        tags,
        provisioners: vec!["terraform".into(), "echo".into()],
        connected_at: at,
        last_seen_at: at,
        jobs: vec![],
    }
}

/// A registered daemon reads back whole; its session marks it seen with
/// its jobs; a reconnect's session takes the row over, after which the old
/// session can neither update nor remove it.
pub async fn daemons_belong_to_their_latest_session(store: &dyn Store) {
    let t0 = now();
    let gpu = with_default_scope(Tags::from([("pool".into(), "gpu".into())]));
    let a = row("alpha", gpu, t0);
    let b = row("beta", default_tags(), t0);
    store.register_daemon(&b).await.expect("register b");
    store.register_daemon(&a).await.expect("register a");
    let listed = store.daemons_seen_since(t0).await.expect("list");
    assert_eq!(listed, vec![a.clone(), b.clone()], "whole rows, by name");

    let (job1, job2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut jobs = vec![job1, job2];
    jobs.sort();
    let t1 = t0 + Duration::seconds(1);
    assert!(store.daemon_seen(a.id, a.session_id, t1, &jobs).await.expect("seen"));
    let got = store.daemons_seen_since(t1).await.expect("list");
    assert_eq!(got.len(), 1, "only a was seen since t1: {got:?}");
    assert_eq!((got[0].last_seen_at, got[0].jobs.clone()), (t1, jobs));

    // The daemon reconnects, through another replica.
    let again = DaemonRow { session_id: Uuid::new_v4(), replica_id: Uuid::new_v4(), ..a.clone() };
    store.register_daemon(&again).await.expect("re-register");
    assert!(
        !store.daemon_seen(a.id, a.session_id, t1, &[]).await.expect("seen"),
        "the old session no longer owns the row"
    );
    store.unregister_daemon(a.id, a.session_id).await.expect("old session ends");
    let listed = store.daemons_seen_since(t0).await.expect("list");
    assert_eq!(listed, vec![again.clone(), b.clone()], "the old session's end keeps the new row");
    store.unregister_daemon(again.id, again.session_id).await.expect("unregister");
    assert_eq!(store.daemons_seen_since(t0).await.expect("list"), vec![b]);
    assert!(
        !store.daemon_seen(a.id, again.session_id, t1, &[]).await.expect("seen"),
        "an unregistered daemon is not marked seen"
    );
}

/// Rows not refreshed since a cutoff stop counting and are expired; fresh
/// ones stay.
pub async fn stale_daemons_expire(store: &dyn Store) {
    let t0 = now();
    let old = row("old", default_tags(), t0 - Duration::minutes(5));
    let fresh = row("fresh", default_tags(), t0);
    store.register_daemon(&old).await.expect("register");
    store.register_daemon(&fresh).await.expect("register");
    let cutoff = t0 - Duration::minutes(1);
    assert_eq!(store.daemons_seen_since(cutoff).await.expect("list"), vec![fresh.clone()]);
    assert_eq!(store.expire_daemons(cutoff).await.expect("expire"), 1);
    assert_eq!(store.expire_daemons(cutoff).await.expect("expire"), 0, "once");
    let all = store.daemons_seen_since(t0 - Duration::days(365)).await.expect("list");
    assert_eq!(all, vec![fresh]);
}
