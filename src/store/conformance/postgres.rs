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
