//! The error contract of seed 000: 401, 404, 409 and 400 with Coder's JSON
//! shape. Uses the echo provisioner, so no terraform runs.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

fn echo_ok() -> tempfile::TempDir {
    echo_template(&json!({"logs": [{"output": "hello", "stage": "Starting workspace"}],
        "resources": [{"name": "vm", "type": "echo_instance"}]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_get_401() {
    let server = TestServer::start(Opts { builtin_daemons: 0, ..Opts::default() }).await;
    let _ = server.client().await;
    for token in [None, Some("nope"), Some("abcdefghij-0123456789012345678901")] {
        let (status, body) =
            raw(Method::GET, format!("{}/api/v2/users/me", server.url), token, None).await;
        assert_eq!(status, 401, "token {token:?}: {body}");
        assert!(body["message"].is_string(), "Coder's error shape: {body}");
    }
    let (status, _) =
        raw(Method::GET, format!("{}/api/v2/workspaces", server.url), None, None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_workspaces_are_404() {
    let server = TestServer::start(Opts::default()).await;
    let owner = server.client().await;
    let dir = echo_ok();
    let (template, _) = create_template(&owner, dir.path(), "echo", json!({})).await;
    let ws = create_workspace(&owner, &template).await;
    let ws_id = ws["id"].as_str().expect("id");
    let build_id = ws["latest_build"]["id"].as_str().expect("id");

    let (status, body) = raw(
        Method::GET,
        format!("{}/api/v2/workspaces/{}", server.url, uuid::Uuid::new_v4()),
        Some(owner.token()),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    owner
        .post("/api/v2/users", &json!({"email": "other@example.com", "username": "other", "password": "another-long-password"}))
        .await
        .expect("create second user");
    let other = provisionerd::demo::Client::login(
        &server.url,
        "other@example.com",
        "another-long-password",
    )
    .await
    .expect("second user logs in");
    for path in
        [format!("/api/v2/workspaces/{ws_id}"), format!("/api/v2/workspacebuilds/{build_id}")]
    {
        let (status, body) =
            raw(Method::GET, format!("{}{path}", server.url), Some(other.token()), None).await;
        assert_eq!(status, 404, "{path} of another user: {body}");
    }
    let theirs = other.get("/api/v2/workspaces").await.expect("list");
    assert_eq!(theirs["count"], 0, "users list only their own workspaces: {theirs}");
    // A member's own build: visible, but its raw state is for template
    // managers only, and hidden from anyone else (as in Coder).
    let own = create_workspace(&other, &template).await;
    let own_build = own["latest_build"]["id"].as_str().expect("id");
    let state_url = format!("{}/api/v2/workspacebuilds/{own_build}/state", server.url);
    let (status, body) = raw(Method::GET, state_url, Some(other.token()), None).await;
    assert_eq!(status, 404, "raw state can hold secrets: {body}");
    let second = create_workspace(&owner, &template).await;
    let all = owner.get("/api/v2/workspaces").await.expect("list");
    assert_eq!(all["count"], 3, "owners see everyone's: {all}");
    let page = owner.get("/api/v2/workspaces?limit=1&offset=2").await.expect("page");
    assert_eq!(page["count"], 3, "count is the total: {page}");
    assert_eq!(page["workspaces"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["workspaces"][0]["id"], second["id"], "oldest first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_invalid_transitions() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_ok();
    let (template, _) = create_template(&c, dir.path(), "echo", json!({})).await;
    let ws = create_workspace(&c, &template).await;
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    wait_build(&c, ws["latest_build"]["id"].as_str().expect("id"), Duration::from_secs(30)).await;
    let params = json!([{"name": "region", "value": "eu"}]);
    let stop =
        build(&c, &ws_id, json!({"transition": "stop", "rich_parameter_values": params})).await;
    let stopped = wait_build(&c, stop["id"].as_str().expect("id"), Duration::from_secs(30)).await;
    assert_eq!(stopped["status"], "stopped");
    let name = ws["name"].as_str().expect("name");
    let by_number =
        c.get(&format!("/api/v2/users/me/workspace/{name}/builds/2")).await.expect("by number");
    assert_eq!(by_number["id"], stopped["id"]);
    let stopped_id = stopped["id"].as_str().expect("id");
    let got = c
        .get(&format!("/api/v2/workspacebuilds/{stopped_id}/parameters"))
        .await
        .expect("parameters");
    assert_eq!(got, params);
    let list = c.get(&format!("/api/v2/workspaces/{ws_id}/builds")).await.expect("builds");
    let numbers: Vec<i64> =
        list.as_array().expect("array").iter().filter_map(|b| b["build_number"].as_i64()).collect();
    assert_eq!(numbers, [2, 1], "newest first");

    let builds_url = format!("{}/api/v2/workspaces/{ws_id}/builds", server.url);
    let (status, body) =
        raw(Method::POST, builds_url.clone(), Some(c.token()), Some(json!({"transition": "stop"})))
            .await;
    assert_eq!(status, 400, "stopping a stopped workspace: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");

    let (status, body) = raw(
        Method::POST,
        builds_url.clone(),
        Some(c.token()),
        Some(json!({"transition": "explode"})),
    )
    .await;
    assert_eq!(status, 400, "unknown transition: {body}");
    let resp = reqwest::Client::new()
        .post(&builds_url)
        .header("Coder-Session-Token", c.token())
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("malformed JSON gets a JSON error");
    assert!(body["message"].is_string(), "{body}");

    // With no daemon running, a queued build stays pending: a second is a conflict.
    let data_dir = server.data_dir.clone();
    let _keep = server.stop().await;
    let server =
        TestServer::start(Opts { builtin_daemons: 0, data_dir: Some(data_dir), ..Opts::default() })
            .await;
    let c = server.client().await;
    let builds_url = format!("{}/api/v2/workspaces/{ws_id}/builds", server.url);
    let pending = build(&c, &ws_id, json!({"transition": "start"})).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["job"]["queue_position"], 1, "{pending}");
    let pending_params =
        format!("/api/v2/workspacebuilds/{}/parameters", pending["id"].as_str().expect("id"));
    let inherited = c.get(&pending_params).await.expect("parameters");
    assert_eq!(inherited, params, "parameters carry over from the previous build");
    let (status, body) =
        raw(Method::POST, builds_url, Some(c.token()), Some(json!({"transition": "stop"}))).await;
    assert_eq!(status, 409, "second build while one is pending: {body}");

    // Canceling the pending build completes it as canceled at once.
    let pending_id = pending["id"].as_str().expect("id");
    let (status, _) = raw(
        Method::PATCH,
        format!("{}/api/v2/workspacebuilds/{pending_id}/cancel", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let b = c.get(&format!("/api/v2/workspacebuilds/{pending_id}")).await.expect("build");
    assert_eq!(b["status"], "canceled", "{b}");
    server.stop().await;
}
