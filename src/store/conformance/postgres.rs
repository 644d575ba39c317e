//! The conformance suite against PostgreSQL: each case on a database of its
//! own, copied from a migrated template on the test server (see
//! `store::postgres::testdb`), as one `#[tokio::test]` named after the case.

use std::sync::Arc;

use crate::store::conformance::{for_each_case, tests_per_case};
use crate::store::postgres::testdb::{fresh_database, Scratch};
use crate::store::{open, Store};

/// A new migrated database, opened through `store::open` as the server does.
async fn fresh() -> (Arc<dyn Store>, Scratch) {
    let (url, scratch) = fresh_database().await;
    (open(&url).await.expect("open a fresh postgres store"), scratch)
}

for_each_case!(tests_per_case, fresh);

/// Opening runs the migrations again without harm, and replicas opening
/// an empty database at the same moment both come up (the advisory lock
/// lets one migrate while the other waits).
#[tokio::test]
async fn concurrent_opens_migrate_once() {
    let (admin, scratch) = fresh_database().await;
    // An empty database, not a copy of the migrated template.
    let empty = format!("{}_empty", scratch_name(&admin));
    let admin_url = admin.clone();
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {empty}")))
            .execute(&mut conn)
            .await
            .expect("create");
    }
    let url = crate::store::postgres::testdb::with_database(&admin, &empty);
    let opens: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { open(&url).await.map(|_| ()) }
            })
        })
        .collect();
    for o in opens {
        o.await.expect("join").expect("every replica comes up");
    }
    let store = open(&url).await.expect("reopen");
    crate::store::conformance::accounts::first_user_is_unique_under_a_race(store.as_ref()).await;
    drop(store);
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {empty} WITH (FORCE)")))
            .execute(&mut conn)
            .await
            .expect("drop");
    }
    drop(scratch);
}

/// The database name of a URL (its last path segment).
fn scratch_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Batches of one job sent at the same moment on several connections (a
/// daemon resending after a reconnect while its old stream still writes)
/// store each sequence number once, and a job's ids rise with its seqs, as
/// followers reading "after id N" need: the key row's lock orders them.
#[tokio::test]
async fn concurrent_batches_of_a_job_store_each_line_once_in_order() {
    use crate::store::conformance::fixture::{fixture, line, new_workspace, take};
    use crate::store::{LogBatch, LogRange};
    let (store, scratch) = fresh().await;
    let f = fixture(store.as_ref()).await;
    let (_, _, job) = new_workspace(store.as_ref(), &f, "dev").await;
    take(store.as_ref(), job.id).await;
    let writers: Vec<_> = (0..8i64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for end in (10..=200).step_by(10) {
                    // Each writer resends from a different point: overlaps.
                    let from = (end - 10 - w).max(1);
                    let lines = (from..=end).map(|s| (s, line(&format!("line {s}")))).collect();
                    store.append_logs(LogBatch { job_id: job.id, lines }).await.expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let logs = store.logs(job.id, LogRange::default()).await.expect("logs");
    let seqs: Vec<i64> = logs.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "every seq once, in id order");
    drop(store);
    drop(scratch);
}
