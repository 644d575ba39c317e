//! The conformance suite against SQLite: each case on a database file of
//! its own in a temp dir, as one `#[tokio::test]` named after the case. It
//! reaches the suite by path, as another backend's tests would.

use std::sync::Arc;

use tempfile::TempDir;

use crate::store::conformance::{for_each_case, tests_per_case};
use crate::store::{open, Store};

/// A new database file in a temp dir, migrated, in a directory the store
/// creates itself (as `--data-dir` does).
async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("db/provisionerd.db").display());
    (open(&url).await.expect("open a fresh sqlite store"), dir)
}

for_each_case!(tests_per_case, fresh);

/// Opening is not part of the trait: reopening runs the migrations again
/// without harm, and other schemes are refused with a hint.
#[tokio::test]
async fn reopen_and_unsupported_urls() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("db/provisionerd.db").display());
    let store = open(&url).await.expect("open");
    crate::store::conformance::accounts::first_user_is_unique_under_a_race(store.as_ref()).await;
    drop(store);
    let again = open(&url).await.expect("reopen");
    assert_eq!(again.count_users().await.expect("count"), 2, "the data survived");
    let err = open("mysql://db.example/provisionerd").await.err().expect("unsupported");
    assert!(err.to_string().contains("not supported"), "{err}");
}
