//! A database that fails for real (a table renamed away under the running
//! server, through a second connection to the same SQLite file) answers an
//! opaque 500 on the paths that look up an id the request refers to, never
//! the 400 "no such template" a missing row gets, and never with SQL in it.
//! Renamed back, the same requests get their 400 again.

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

use crate::harness::*;

/// Renames a table of the server's database from outside the server.
async fn rename_table(server: &TestServer, from: &str, to: &str) {
    let path = server.data_dir.join("provisionerd.db");
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("second connection");
    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut conn).await.expect("busy timeout");
    // The names are this file's own constants, not input.
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {from} RENAME TO {to}")))
        .execute(&mut conn)
        .await
        .expect("rename table");
    conn.close().await.expect("close");
}

/// The requests whose referenced-id lookup reads `table`.
fn requests(server: &TestServer, table: &str) -> Vec<(&'static str, String, Value)> {
    let missing = Uuid::new_v4();
    let api = format!("{}/api/v2", server.url);
    match table {
        "template_versions" => vec![(
            "template_version_id",
            format!("{api}/organizations/coder/templates"),
            json!({"name": "t", "template_version_id": missing}),
        )],
        _ => vec![(
            "template_id",
            format!("{api}/users/me/workspaces"),
            json!({"name": "ws", "template_id": missing}),
        )],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_500_not_a_missing_id() {
    let server = TestServer::start(Opts { builtin_daemons: 0, ..Opts::default() }).await;
    let c = server.client().await;
    for table in ["template_versions", "templates"] {
        for (field, url, body) in requests(&server, table) {
            let (status, got) =
                raw(Method::POST, url.clone(), Some(c.token()), Some(body.clone())).await;
            assert_eq!(status, 400, "{table}: a missing {field} is the caller's mistake: {got}");
            assert_eq!(got["validations"][0]["field"], field, "{got}");

            rename_table(&server, table, "gone_for_the_test").await;
            let (status, got) =
                raw(Method::POST, url.clone(), Some(c.token()), Some(body.clone())).await;
            assert_eq!(status, 500, "{table} unreadable: {got}");
            assert_eq!(got["message"], "An internal error occurred.", "{got}");
            let text = got.to_string();
            for leak in ["no such table", "gone_for_the_test", "SELECT", "sqlite", "validations"] {
                assert!(!text.to_lowercase().contains(&leak.to_lowercase()), "{leak}: {text}");
            }

            rename_table(&server, "gone_for_the_test", table).await;
            let (status, got) = raw(Method::POST, url, Some(c.token()), Some(body)).await;
            assert_eq!(status, 400, "{table} back: {got}");
        }
    }
    server.stop().await;
}
