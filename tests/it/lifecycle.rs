//! Workspace lifecycles on real terraform: start, stop, update, delete,
//! orphan delete, failures, and cancel.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness_json::*;

const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// The id terraform gave `terraform_data.home`, read from the build's state.
async fn home_id(c: &provisionerd::sdk::Client, build_id: &str) -> String {
    let state: Value =
        serde_json::from_str(&build_state(c, build_id).await).expect("state is JSON");
    let home = state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "terraform_data" && r["name"] == "home")
        .unwrap_or_else(|| panic!("no terraform_data.home in state: {state}"));
    home["instances"][0]["attributes"]["id"].as_str().expect("home id").to_owned()
}

fn resource_names(build: &Value) -> Vec<String> {
    let mut names: Vec<String> = build["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!("{}.{}", r["type"].as_str().unwrap_or("?"), r["name"].as_str().unwrap_or("?"))
        })
        .collect();
    names.sort();
    names
}

async fn stages(c: &provisionerd::sdk::Client, build_id: &str) -> Vec<String> {
    let logs = c.get(&format!("/api/v2/workspacebuilds/{build_id}/logs")).await.expect("logs");
    let mut stages: Vec<String> = Vec::new();
    for l in logs.as_array().into_iter().flatten() {
        let s = l["stage"].as_str().unwrap_or_default().to_owned();
        if stages.last() != Some(&s) {
            stages.push(s);
        }
    }
    stages
}

fn marker_vars(marker: &std::path::Path) -> Value {
    json!({"user_variable_values": [{"name": "destroy_marker", "value": marker.display().to_string()}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_carries_state_and_runs_destroy_provisioners() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let marker = server.path().join("destroyed-marker");
    let (template, _v1) =
        create_template(&c, &template_dir("basic"), "terraform", marker_vars(&marker)).await;

    let ws = create_workspace(&c, &template).await;
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    let b1 =
        wait_build(&c, ws["latest_build"]["id"].as_str().expect("build id"), BUILD_TIMEOUT).await;
    assert_eq!(b1["status"], "running", "{b1}");
    assert_eq!(b1["build_number"], 1);
    assert_eq!(resource_names(&b1), ["terraform_data.home", "terraform_data.vm"]);
    let b1_id = b1["id"].as_str().expect("id");
    let first_home = home_id(&c, b1_id).await;
    let s = stages(&c, b1_id).await;
    for stage in ["Setting up", "Planning infrastructure", "Starting workspace", "Cleaning up"] {
        assert!(s.iter().any(|x| x == stage), "stage {stage:?} missing from {s:?}");
    }

    let b2 = build(&c, &ws_id, json!({"transition": "stop"})).await;
    let b2 = wait_build(&c, b2["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b2["status"], "stopped", "{b2}");
    assert_eq!(resource_names(&b2), ["terraform_data.home"]);
    assert!(stages(&c, b2["id"].as_str().expect("id"))
        .await
        .iter()
        .any(|s| s == "Stopping workspace"));

    let mut extra = marker_vars(&marker);
    extra["template_id"] = json!(template);
    let v2 = push_version(&c, &template_dir("basic-v2"), "terraform", extra).await;
    assert_eq!(v2["job"]["status"], "succeeded", "{v2}");
    let b3 =
        build(&c, &ws_id, json!({"transition": "start", "template_version_id": v2["id"]})).await;
    let b3 = wait_build(&c, b3["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b3["status"], "running", "{b3}");
    assert_eq!(b3["template_version_id"], v2["id"]);
    assert!(resource_names(&b3).len() > resource_names(&b1).len(), "v2 adds a resource: {b3}");
    assert_eq!(home_id(&c, b3["id"].as_str().expect("id")).await, first_home, "state carried over");

    assert!(!marker.exists());
    let b4 = build(&c, &ws_id, json!({"transition": "delete"})).await;
    let b4 = wait_build(&c, b4["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b4["status"], "deleted", "{b4}");
    assert!(marker.exists(), "the destroy-time provisioner ran on delete");
    let (status, _) = raw(
        reqwest::Method::GET,
        format!("{}/api/v2/workspaces/{ws_id}", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 404, "a deleted workspace is gone");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_delete_destroys_nothing_but_deletes_the_workspace() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let marker = server.path().join("orphan-marker");
    let (template, _) =
        create_template(&c, &template_dir("basic"), "terraform", marker_vars(&marker)).await;
    let ws = create_workspace(&c, &template).await;
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    let b1 = wait_build(&c, ws["latest_build"]["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b1["status"], "running", "{b1}");

    let (status, body) = raw(
        reqwest::Method::POST,
        format!("{}/api/v2/workspaces/{ws_id}/builds", server.url),
        Some(c.token()),
        Some(json!({"transition": "stop", "orphan": true})),
    )
    .await;
    assert_eq!(status, 400, "orphan is only for delete: {body}");

    let b2 = build(&c, &ws_id, json!({"transition": "delete", "orphan": true})).await;
    let b2 = wait_build(&c, b2["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b2["status"], "deleted", "{b2}");
    assert!(!marker.exists(), "an orphan delete must not run destroy provisioners");
    let (status, _) = raw(
        reqwest::Method::GET,
        format!("{}/api/v2/workspaces/{ws_id}", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_apply_keeps_state_and_the_workspace_can_build_again() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, v1) = create_template(&c, &template_dir("basic"), "terraform", json!({})).await;
    let ws = create_workspace(&c, &template).await;
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    let b1 = wait_build(&c, ws["latest_build"]["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    let home = home_id(&c, b1["id"].as_str().expect("id")).await;

    // The same template plus a resource whose provisioner fails.
    let broken = tempfile::tempdir().expect("dir");
    for entry in std::fs::read_dir(template_dir("basic")).expect("basic") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), broken.path().join(entry.file_name())).expect("copy");
    }
    std::fs::write(
        broken.path().join("boom.tf"),
        r#"resource "terraform_data" "boom" {
  provisioner "local-exec" {
    command = "echo 'the disk array is on fire' >&2; exit 1"
  }
}
"#,
    )
    .expect("write boom.tf");
    let v2 = push_version(&c, broken.path(), "terraform", json!({"template_id": template})).await;
    assert_eq!(v2["job"]["status"], "succeeded", "plan-only import succeeds: {v2}");

    let b2 =
        build(&c, &ws_id, json!({"transition": "start", "template_version_id": v2["id"]})).await;
    let b2 = wait_build(&c, b2["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b2["status"], "failed", "{b2}");
    let error = b2["job"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exit status 1") || error.contains("on fire"),
        "terraform's message in the error: {error}"
    );
    assert_eq!(
        home_id(&c, b2["id"].as_str().expect("id")).await,
        home,
        "the failed build kept the state"
    );

    let b3 =
        build(&c, &ws_id, json!({"transition": "start", "template_version_id": v1["id"]})).await;
    let b3 = wait_build(&c, b3["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b3["status"], "running", "{b3}");
    assert_eq!(home_id(&c, b3["id"].as_str().expect("id")).await, home);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_terraform_and_its_children() {
    let server =
        TestServer::start(Opts { cancel_grace: Duration::from_secs(5), ..Opts::default() }).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("slow"), "terraform", json!({})).await;
    let ws = create_workspace(&c, &template).await;
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    let build_id = ws["latest_build"]["id"].as_str().expect("id").to_owned();
    let needle = format!("CODER_WORKSPACE_ID={ws_id}");

    // Wait until the slow step runs: a `sleep` with the job's environment.
    wait_for("the slow step to start", Duration::from_secs(120), || async {
        let pids = processes_with_env(&needle);
        pids.iter()
            .any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .then_some(())
    })
    .await;
    assert_eq!(cancel_build(&c, &build_id).await, 200);
    let b = wait_build(&c, &build_id, Duration::from_secs(30)).await;
    assert_eq!(b["status"], "canceled", "{b}");
    let logs = c.get(&format!("/api/v2/workspacebuilds/{build_id}/logs")).await.expect("logs");
    let text: Vec<&str> =
        logs.as_array().into_iter().flatten().filter_map(|l| l["output"].as_str()).collect();
    assert!(text.iter().any(|l| l.contains("slow step started")), "logs up to the cancel are kept");
    assert!(
        text.iter().any(|l| l.contains("stopped gracefully after SIGINT")),
        "the last line says how the job was canceled: {text:?}"
    );
    wait_for("every process of the job to exit", Duration::from_secs(10), || async {
        processes_with_env(&needle).is_empty().then_some(())
    })
    .await;

    // The state terraform wrote while being interrupted is kept...
    let state = build_state(&c, &build_id).await;
    assert!(state.contains("\"slow\""), "the interrupted resource is in the stored state: {state}");
    // ...and the workspace builds again: deleting destroys that resource.
    let delete = build(&c, &ws_id, json!({"transition": "delete"})).await;
    let delete = wait_build(&c, delete["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(delete["status"], "deleted", "{delete}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_template_fails_import_with_terraforms_message() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let broken = tempfile::tempdir().expect("dir");
    std::fs::write(
        broken.path().join("main.tf"),
        "resource \"terraform_data\" \"x\" {\n  no_such_argument = 1\n}\n",
    )
    .expect("write");
    let v = push_version(&c, broken.path(), "terraform", json!({})).await;
    assert_eq!(v["job"]["status"], "failed", "{v}");
    let error = v["job"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no_such_argument") || error.contains("Unsupported argument"),
        "terraform's message: {error}"
    );
    let id = v["id"].as_str().expect("id");
    let logs = c.get(&format!("/api/v2/templateversions/{id}/logs")).await.expect("logs");
    assert!(
        logs.as_array().into_iter().flatten().any(|l| l["log_level"] == "error"),
        "the error is in the import logs: {logs}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variable_values_reach_terraform_but_never_the_api_or_logs() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("main.tf"),
        r#"variable "api_token" {
  type      = string
  sensitive = true
}

resource "terraform_data" "uses_token" {
  input = sha256(var.api_token)
}
"#,
    )
    .expect("write");
    let secret = "s3cr3t-token-value-4711";
    let vars = json!({"user_variable_values": [{"name": "api_token", "value": secret}]});
    let (template, v) = create_template(&c, dir.path(), "terraform", vars).await;
    let ws = create_workspace(&c, &template).await;
    let b = wait_build(&c, ws["latest_build"]["id"].as_str().expect("id"), BUILD_TIMEOUT).await;
    assert_eq!(b["status"], "running", "the required variable reached terraform: {b}");

    let vid = v["id"].as_str().expect("id");
    let bid = b["id"].as_str().expect("id");
    for path in [
        format!("/api/v2/templateversions/{vid}"),
        format!("/api/v2/templateversions/{vid}/logs"),
        format!("/api/v2/workspacebuilds/{bid}"),
        format!("/api/v2/workspacebuilds/{bid}/logs"),
        format!("/api/v2/workspaces/{}", ws["id"].as_str().expect("id")),
    ] {
        let body = c.get(&path).await.expect("get").to_string();
        assert!(!body.contains(secret), "{path} leaks the variable value");
    }
    server.stop().await;
}
