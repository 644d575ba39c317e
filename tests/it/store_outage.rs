//! A database that fails for real (a table renamed away under the running
//! server, through a second connection to the same SQLite file) answers an
//! opaque 500 on the paths that look up an id the request refers to, never
//! the 400 "no such template" a missing row gets, and never with SQL in it.
//! Renamed back, the same requests get their 400 again.

use provisionerd::demo::tar_dir;
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

/// The ids a test refers to: a template with an imported version, a
/// workspace whose first build ended, and an uploaded archive.
struct Fixture {
    template: Uuid,
    workspace: Uuid,
    file: Uuid,
}

/// The requests whose referenced-id lookup reads `table`: method, the field
/// that refers to a missing id, URL and body.
fn requests(api: &str, table: &str, f: &Fixture) -> Vec<(Method, &'static str, String, Value)> {
    let missing = Uuid::new_v4();
    let (template, workspace) = (&f.template, &f.workspace);
    if table == "template_versions" {
        return vec![
            (
                Method::POST,
                "template_version_id",
                format!("{api}/organizations/coder/templates"),
                json!({"name": "t", "template_version_id": missing}),
            ),
            (
                Method::PATCH,
                "id",
                format!("{api}/templates/{template}/versions"),
                json!({"id": missing}),
            ),
            (
                Method::POST,
                "template_version_id",
                format!("{api}/workspaces/{workspace}/builds"),
                json!({"transition": "start", "template_version_id": missing}),
            ),
            (
                Method::POST,
                "template_version_id",
                format!("{api}/users/me/workspaces"),
                json!({"name": "ws", "template_version_id": missing}),
            ),
        ];
    }
    vec![
        (
            Method::POST,
            "template_id",
            format!("{api}/users/me/workspaces"),
            json!({"name": "ws", "template_id": missing}),
        ),
        (
            Method::POST,
            "template_id",
            format!("{api}/organizations/coder/templateversions"),
            json!({"file_id": f.file, "provisioner": "echo", "template_id": missing}),
        ),
    ]
}

/// The six handlers that answered any store error with a 400 "no such
/// ..." before the use cases translated store errors in one place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_500_not_a_missing_id() {
    if postgres_store() {
        eprintln!("skipped: breaks the SQLite file under the server");
        return;
    }
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_template(&json!({"resources": [{"name": "vm", "type": "echo_instance"}]}));
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    wait_build(&c, ws.latest_build.id, std::time::Duration::from_secs(60)).await;
    let file = c.upload_tar(tar_dir(dir.path()).expect("tar")).await.expect("upload");
    let f = Fixture { template, workspace: ws.id, file };
    let api = format!("{}/api/v2", server.url);
    for table in ["template_versions", "templates"] {
        for (method, field, url, body) in requests(&api, table, &f) {
            let what = format!("{method} {url} with {table}");
            let send = || raw(method.clone(), url.clone(), Some(c.token()), Some(body.clone()));
            let (status, got) = send().await;
            assert_eq!(status, 400, "{what}: a missing {field} is the caller's mistake: {got}");
            assert_eq!(got["validations"][0]["field"], field, "{what}: {got}");

            rename_table(&server, table, "gone_for_the_test").await;
            let (status, got) = send().await;
            assert_eq!(status, 500, "{what} unreadable: {got}");
            assert_eq!(got["message"], "An internal error occurred.", "{what}: {got}");
            let text = got.to_string().to_lowercase();
            for leak in ["no such table", "gone_for_the_test", "select", "sqlite", "validations"] {
                assert!(!text.contains(leak), "{what}: {leak} in {text}");
            }

            rename_table(&server, "gone_for_the_test", table).await;
            let (status, got) = send().await;
            assert_eq!(status, 400, "{what} back: {got}");
        }
    }
    server.stop().await;
}
