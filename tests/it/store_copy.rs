//! `provisionerd store copy`: a SQLite installation populated through the
//! API with real builds (echo and terraform; logs, states, resources,
//! several users, templates and workspaces, a deleted one) is copied by the
//! real binary into a fresh PostgreSQL database; a server on PostgreSQL
//! then answers every workspace, build, log line and state exactly as the
//! SQLite server did, takes new builds, and a second copy into the now
//! non-empty database is refused.

use std::time::Duration;

use provisionerd::sdk::{self, Client};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

/// GET `path` as JSON, which must answer 200.
async fn get(c: &Client, path: &str) -> Value {
    let (status, body) = c.raw(Method::GET, path, None).await.expect("get");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Everything the API shows of the installation's workspaces and builds:
/// the lists, each workspace, each build with its logs, state and
/// resources, the templates and their versions.
async fn snapshot(c: &Client) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut read = |path: String, body: Value| out.push((path, body));
    let live = get(c, "/api/v2/workspaces").await;
    let deleted = get(c, "/api/v2/workspaces?q=deleted:true").await;
    let mut ids = Vec::new();
    for list in [&live, &deleted] {
        for ws in list["workspaces"].as_array().expect("workspaces") {
            ids.push(ws["id"].as_str().expect("id").to_owned());
        }
    }
    read("workspaces".into(), live);
    read("deleted workspaces".into(), deleted);
    assert!(ids.len() >= 4, "{ids:?}");
    for id in ids {
        let ws = format!("/api/v2/workspaces/{id}?include_deleted=true");
        read(ws.clone(), get(c, &ws).await);
        let builds = get(c, &format!("/api/v2/workspaces/{id}/builds")).await;
        for b in builds.as_array().expect("builds") {
            let b = b["id"].as_str().expect("build id");
            for sub in ["", "/logs", "/resources", "/parameters"] {
                let path = format!("/api/v2/workspacebuilds/{b}{sub}");
                read(path.clone(), get(c, &path).await);
            }
            let state = c.build_state(b.parse().expect("uuid")).await.expect("state");
            read(format!("state of {b}"), json!(String::from_utf8_lossy(&state)));
        }
        read(format!("builds of {id}"), builds);
    }
    let templates = get(c, "/api/v2/organizations/coder/templates").await;
    for t in templates.as_array().expect("templates") {
        let t = t["id"].as_str().expect("template id");
        let versions = get(c, &format!("/api/v2/templates/{t}/versions")).await;
        for v in versions.as_array().expect("versions") {
            let v = v["id"].as_str().expect("version id");
            let path = format!("/api/v2/templateversions/{v}/logs");
            read(path.clone(), get(c, &path).await);
        }
        read(format!("versions of {t}"), versions);
    }
    read("templates".into(), templates);
    out
}

async fn copy_cli(from: &str, to: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .args(["store", "copy", "--from", from, "--to", to, "--batch-size", "7"])
        .output()
        .await
        .expect("run provisionerd store copy")
}

#[tokio::test]
async fn a_sqlite_installation_copied_to_postgres_reads_back_identical() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("provisionerd.db").display());
    let opts = || Opts { database_url: Some(sqlite.clone()), ..Opts::default() };
    let source = TestServer::start(opts()).await;
    let c = source.client().await;
    let bob = new_member(&c, &source.url, "bob").await;
    let script = json!({
        "state": "state of an echo build",
        "logs": [{"output": "one"}, {"output": "two", "stage": "Applying"}, {"output": "three"}],
        "resources": [{"name": "vm", "type": "echo_instance"}],
        "transitions": {"stop": {"resources": [], "state": "stopped state"}},
    });
    let echo = echo_template(&script);
    let (echo_t, _) = create_template(&c, echo.path(), "echo", plain).await;
    let (tf_t, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let mut builds = Vec::new();
    for (who, t) in [(&c, echo_t), (&bob, echo_t), (&bob, echo_t), (&c, tf_t), (&c, echo_t)] {
        let ws = create_workspace(who, t).await;
        builds.push((ws.id, ws.latest_build.id));
    }
    for (_, b) in &builds {
        let done = wait_build(&c, *b, Duration::from_secs(120)).await;
        assert_eq!(done.job.status, "succeeded", "{done:?}");
    }
    for (ws, transition) in [(builds[0].0, "stop"), (builds[0].0, "start"), (builds[4].0, "delete")]
    {
        let b = build(&c, ws, transition).await;
        assert_eq!(wait_build(&c, b.id, Duration::from_secs(120)).await.job.status, "succeeded");
    }
    let before = snapshot(&c).await;
    let tf_state = build_state(&c, builds[3].1).await;
    assert!(tf_state.contains("\"resources\""), "a real terraform state: {tf_state}");
    source.stop().await;

    let target = new_postgres_database().await;
    let out = copy_cli(&sqlite, &target).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("workspace_builds: 8 rows"), "{stdout}");

    let server =
        TestServer::start(Opts { database_url: Some(target.clone()), ..Opts::default() }).await;
    let c = server.client().await;
    let after = snapshot(&c).await;
    assert_eq!(before.len(), after.len());
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "{path} differs after the copy");
    }
    // The copy goes on working: a new build gets new log line ids.
    let last_id = |logs: &Value| logs.as_array().and_then(|l| l.last()).map(|l| l["id"].clone());
    let old_logs = get(&c, &format!("/api/v2/workspacebuilds/{}/logs", builds[1].1)).await;
    let b = build(&c, builds[1].0, "stop").await;
    assert_eq!(wait_build(&c, b.id, Duration::from_secs(60)).await.job.status, "succeeded");
    let new_logs = get(&c, &format!("/api/v2/workspacebuilds/{}/logs", b.id)).await;
    let (old, new) = (last_id(&old_logs), last_id(&new_logs));
    assert!(
        new.as_ref().and_then(Value::as_i64) > old.as_ref().and_then(Value::as_i64),
        "{old:?} {new:?}"
    );
    let ws: sdk::Workspace = c.workspace(builds[1].0).await.expect("workspace");
    assert_eq!((ws.latest_build.build_number, ws.owner_name.as_str()), (2, "bob"));
    server.stop().await;

    let again = copy_cli(&sqlite, &target).await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "a second copy into the same database: {stderr}");
    assert!(stderr.contains("target database is not empty"), "{stderr}");
    let missing = copy_cli(&format!("sqlite://{}/nope.db", dir.path().display()), &target).await;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no SQLite database at"), "{stderr}");
    assert!(!dir.path().join("nope.db").exists(), "a missing source is not created");
}
