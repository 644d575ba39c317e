//! Workspace lifecycles on real terraform: start, stop, update, delete,
//! orphan delete, failures, and cancel.

use std::time::Duration;

use provisionerd::sdk::{
    CreateTemplateVersionRequest, CreateWorkspaceBuildRequest, WorkspaceBuild,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// The id terraform gave `terraform_data.home`, read from the build's state.
async fn home_id(c: &provisionerd::sdk::Client, build_id: Uuid) -> String {
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

fn resource_names(build: &WorkspaceBuild) -> Vec<String> {
    let mut names: Vec<String> =
        build.resources.iter().map(|r| format!("{}.{}", r.resource_type, r.name)).collect();
    names.sort();
    names
}

async fn stages(c: &provisionerd::sdk::Client, build_id: Uuid) -> Vec<String> {
    let logs = c.build_logs(build_id, Default::default()).await.expect("logs");
    let mut stages: Vec<String> = Vec::new();
    for l in logs {
        let s = l.stage.into_owned();
        if stages.last() != Some(&s) {
            stages.push(s);
        }
    }
    stages
}

fn marker_vars(marker: &std::path::Path) -> impl FnOnce(&mut CreateTemplateVersionRequest) {
    with_vars(&[("destroy_marker", &marker.display().to_string())])
}

/// A start build at `version`.
fn start_at(version: Uuid) -> CreateWorkspaceBuildRequest {
    CreateWorkspaceBuildRequest {
        template_version_id: Some(version),
        ..CreateWorkspaceBuildRequest::new("start")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_carries_state_and_runs_destroy_provisioners() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let marker = server.path().join("destroyed-marker");
    let (template, _v1) =
        create_template(&c, &template_dir("basic"), "terraform", marker_vars(&marker)).await;

    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = wait_build(&c, ws.latest_build.id, BUILD_TIMEOUT).await;
    assert_eq!(b1.status, "running", "{b1:?}");
    assert_eq!(b1.build_number, 1);
    assert_eq!(resource_names(&b1), ["terraform_data.home", "terraform_data.vm"]);
    let b1_id = b1.id;
    let first_home = home_id(&c, b1_id).await;
    let s = stages(&c, b1_id).await;
    for stage in ["Setting up", "Planning infrastructure", "Starting workspace", "Cleaning up"] {
        assert!(s.iter().any(|x| x == stage), "stage {stage:?} missing from {s:?}");
    }

    let b2 = build(&c, ws_id, "stop").await;
    let b2 = wait_build(&c, b2.id, BUILD_TIMEOUT).await;
    assert_eq!(b2.status, "stopped", "{b2:?}");
    assert_eq!(resource_names(&b2), ["terraform_data.home"]);
    assert!(stages(&c, b2.id).await.iter().any(|s| s == "Stopping workspace"));

    let vars = marker_vars(&marker);
    let extra = |r: &mut CreateTemplateVersionRequest| {
        vars(r);
        r.template_id = Some(template);
    };
    let v2 = push_version(&c, &template_dir("basic-v2"), "terraform", extra).await;
    assert_eq!(v2.job.status, "succeeded", "{v2:?}");
    let b3 = c.create_build(ws_id, &start_at(v2.id)).await.expect("build");
    let b3 = wait_build(&c, b3.id, BUILD_TIMEOUT).await;
    assert_eq!(b3.status, "running", "{b3:?}");
    assert_eq!(b3.template_version_id, v2.id);
    assert!(resource_names(&b3).len() > resource_names(&b1).len(), "v2 adds a resource: {b3:?}");
    assert_eq!(home_id(&c, b3.id).await, first_home, "state carried over");

    assert!(!marker.exists());
    let b4 = build(&c, ws_id, "delete").await;
    let b4 = wait_build(&c, b4.id, BUILD_TIMEOUT).await;
    assert_eq!(b4.status, "deleted", "{b4:?}");
    assert!(marker.exists(), "the destroy-time provisioner ran on delete");
    let (status, _) = raw(
        reqwest::Method::GET,
        format!("{}/api/v2/workspaces/{ws_id}", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 410, "a deleted workspace is gone (Coder's 410)");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_delete_destroys_nothing_but_deletes_the_workspace() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let marker = server.path().join("orphan-marker");
    let (template, _) =
        create_template(&c, &template_dir("basic"), "terraform", marker_vars(&marker)).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = wait_build(&c, ws.latest_build.id, BUILD_TIMEOUT).await;
    assert_eq!(b1.status, "running", "{b1:?}");

    let (status, body) = raw(
        reqwest::Method::POST,
        format!("{}/api/v2/workspaces/{ws_id}/builds", server.url),
        Some(c.token()),
        Some(json!({"transition": "stop", "orphan": true})),
    )
    .await;
    assert_eq!(status, 400, "orphan is only for delete: {body}");

    let orphan =
        CreateWorkspaceBuildRequest { orphan: true, ..CreateWorkspaceBuildRequest::new("delete") };
    let b2 = c.create_build(ws_id, &orphan).await.expect("build");
    let b2 = wait_build(&c, b2.id, BUILD_TIMEOUT).await;
    assert_eq!(b2.status, "deleted", "{b2:?}");
    assert!(!marker.exists(), "an orphan delete must not run destroy provisioners");
    let (status, _) = raw(
        reqwest::Method::GET,
        format!("{}/api/v2/workspaces/{ws_id}", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 410, "a deleted workspace is gone (Coder's 410)");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_apply_keeps_state_and_the_workspace_can_build_again() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, v1) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let b1 = wait_build(&c, ws.latest_build.id, BUILD_TIMEOUT).await;
    let home = home_id(&c, b1.id).await;

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
    let v2 = push_version(&c, broken.path(), "terraform", |r| r.template_id = Some(template)).await;
    assert_eq!(v2.job.status, "succeeded", "plan-only import succeeds: {v2:?}");

    let b2 = c.create_build(ws_id, &start_at(v2.id)).await.expect("build");
    let b2 = wait_build(&c, b2.id, BUILD_TIMEOUT).await;
    assert_eq!(b2.status, "failed", "{b2:?}");
    let error = b2.job.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("exit status 1") || error.contains("on fire"),
        "terraform's message in the error: {error}"
    );
    assert_eq!(home_id(&c, b2.id).await, home, "the failed build kept the state");

    let b3 = c.create_build(ws_id, &start_at(v1.id)).await.expect("build");
    let b3 = wait_build(&c, b3.id, BUILD_TIMEOUT).await;
    assert_eq!(b3.status, "running", "{b3:?}");
    assert_eq!(home_id(&c, b3.id).await, home);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_terraform_and_its_children() {
    let server =
        TestServer::start(Opts { cancel_grace: Duration::from_secs(5), ..Opts::default() }).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("slow"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let build_id = ws.latest_build.id;
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
    assert_eq!(cancel_build(&c, build_id).await, 200);
    let b = wait_build(&c, build_id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "canceled", "{b:?}");
    let logs = c.build_logs(build_id, Default::default()).await.expect("logs");
    let text: Vec<&str> = logs.iter().map(|l| &*l.output).collect();
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
    let state = build_state(&c, build_id).await;
    assert!(state.contains("\"slow\""), "the interrupted resource is in the stored state: {state}");
    // ...and the workspace builds again: deleting destroys that resource.
    let delete = build(&c, ws_id, "delete").await;
    let delete = wait_build(&c, delete.id, BUILD_TIMEOUT).await;
    assert_eq!(delete.status, "deleted", "{delete:?}");
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
    let v = push_version(&c, broken.path(), "terraform", plain).await;
    assert_eq!(v.job.status, "failed", "{v:?}");
    let error = v.job.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("no_such_argument") || error.contains("Unsupported argument"),
        "terraform's message: {error}"
    );
    let logs = c.template_version_logs(v.id, Default::default()).await.expect("logs");
    assert!(
        logs.iter().any(|l| l.log_level == "error"),
        "the error is in the import logs: {logs:?}"
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
    let vars = with_vars(&[("api_token", secret)]);
    let (template, v) = create_template(&c, dir.path(), "terraform", vars).await;
    let ws = create_workspace(&c, template).await;
    let b = wait_build(&c, ws.latest_build.id, BUILD_TIMEOUT).await;
    assert_eq!(b.status, "running", "the required variable reached terraform: {b:?}");

    let vid = v.id;
    let bid = b.id;
    for path in [
        format!("/api/v2/templateversions/{vid}"),
        format!("/api/v2/templateversions/{vid}/logs"),
        format!("/api/v2/workspacebuilds/{bid}"),
        format!("/api/v2/workspacebuilds/{bid}/logs"),
        format!("/api/v2/workspaces/{}", ws.id),
    ] {
        // The whole answer as text, whatever its fields.
        let (status, body) = c.raw(reqwest::Method::GET, &path, None).await.expect("get");
        assert_eq!(status, 200, "{path}: {body}");
        let body = body.to_string();
        assert!(!body.contains(secret), "{path} leaks the variable value");
    }
    server.stop().await;
}
