//! The error contract of seed 000: 401, 404, 409 and 400 with Coder's JSON
//! shape, on every route and for what axum answers itself (405, 413, 414,
//! 415, unknown paths, bad query strings), and the input limits of issue 12
//! (Coder's name rules and lengths, NUL, tags, declared rich parameters, one
//! template per version). Uses the echo provisioner, so no terraform runs.

use std::time::Duration;

use provisionerd::sdk::{
    CreateTemplateRequest, CreateUserRequest, CreateWorkspaceBuildRequest, CreateWorkspaceRequest,
};
use reqwest::Method;
use serde_json::json;

use crate::harness::*;

fn echo_ok() -> tempfile::TempDir {
    echo_template(&json!({"logs": [{"output": "hello", "stage": "Starting workspace"}],
        "resources": [{"name": "vm", "type": "echo_instance"}],
        "parameters": [{"name": "region", "mutable": true}]}))
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
    let (template, _) = create_template(&owner, dir.path(), "echo", plain).await;
    let ws = create_workspace(&owner, template).await;
    let ws_id = ws.id;
    let build_id = ws.latest_build.id;

    let (status, body) = raw(
        Method::GET,
        format!("{}/api/v2/workspaces/{}", server.url, uuid::Uuid::new_v4()),
        Some(owner.token()),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let req = CreateUserRequest {
        email: "other@example.com".into(),
        username: "other".into(),
        password: "another-long-password".into(),
        ..Default::default()
    };
    owner.create_user(&req).await.expect("create second user");
    let other =
        provisionerd::sdk::Client::login(&server.url, "other@example.com", "another-long-password")
            .await
            .expect("second user logs in");
    for path in
        [format!("/api/v2/workspaces/{ws_id}"), format!("/api/v2/workspacebuilds/{build_id}")]
    {
        let (status, body) =
            raw(Method::GET, format!("{}{path}", server.url), Some(other.token()), None).await;
        assert_eq!(status, 404, "{path} of another user: {body}");
    }
    let theirs = other.workspaces(None, None).await.expect("list");
    assert_eq!(theirs.count, 0, "users list only their own workspaces: {theirs:?}");
    // A member's own build: visible, but its raw state is for template
    // managers only, and hidden from anyone else (as in Coder).
    let own = create_workspace(&other, template).await;
    let own_build = own.latest_build.id;
    let state_url = format!("{}/api/v2/workspacebuilds/{own_build}/state", server.url);
    let (status, body) = raw(Method::GET, state_url, Some(other.token()), None).await;
    assert_eq!(status, 404, "raw state can hold secrets: {body}");
    let second = create_workspace(&owner, template).await;
    let all = owner.workspaces(None, None).await.expect("list");
    assert_eq!(all.count, 3, "owners see everyone's: {all:?}");
    let page = owner.workspaces(Some(1), Some(2)).await.expect("page");
    assert_eq!(page.count, 3, "count is the total: {page:?}");
    assert_eq!(page.workspaces.len(), 1);
    assert_eq!(page.workspaces[0].id, second.id, "oldest first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_invalid_transitions() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_ok();
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;
    let params = values(&[("region", "eu")]);
    let req = CreateWorkspaceBuildRequest {
        rich_parameter_values: Some(params.clone()),
        ..CreateWorkspaceBuildRequest::new("stop")
    };
    let stop = c.create_build(ws_id, &req).await.expect("stop");
    let stopped = wait_build(&c, stop.id, Duration::from_secs(30)).await;
    assert_eq!(stopped.status, "stopped");
    let by_number = c.build_by_number("me", &ws.name, 2).await.expect("by number");
    assert_eq!(by_number.id, stopped.id);
    let got = c.build_parameters(stopped.id).await.expect("parameters");
    assert_eq!(got, params);
    let list = c.builds(ws_id).await.expect("builds");
    let numbers: Vec<i32> = list.iter().map(|b| b.build_number).collect();
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
    let pending = build(&c, ws_id, "start").await;
    assert_eq!(pending.status, "pending");
    assert_eq!(pending.job.queue_position, 1, "{pending:?}");
    let inherited = c.build_parameters(pending.id).await.expect("parameters");
    assert_eq!(inherited, params, "parameters carry over from the previous build");
    let (status, body) =
        raw(Method::POST, builds_url, Some(c.token()), Some(json!({"transition": "stop"}))).await;
    assert_eq!(status, 409, "second build while one is pending: {body}");

    // Canceling the pending build completes it as canceled at once.
    let pending_id = pending.id;
    let (status, _) = raw(
        Method::PATCH,
        format!("{}/api/v2/workspacebuilds/{pending_id}/cancel", server.url),
        Some(c.token()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let b = c.build(pending_id).await.expect("build");
    assert_eq!(b.status, "canceled", "{b:?}");
    server.stop().await;
}

/// Sends a request and returns the status, content type, `Allow` header and
/// the body as JSON (a string when it is not JSON).
async fn send(req: reqwest::RequestBuilder) -> (u16, String, String, serde_json::Value) {
    answer(req.send().await.expect("request")).await
}

/// Status, content type, `Allow` and the JSON (or text) body of a response.
async fn answer(resp: reqwest::Response) -> (u16, String, String, serde_json::Value) {
    let status = resp.status().as_u16();
    let header = |name: reqwest::header::HeaderName| {
        resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    };
    let (content_type, allow) =
        (header(reqwest::header::CONTENT_TYPE), header(reqwest::header::ALLOW));
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, content_type, allow, body)
}

/// [`send`] for a body over the limit. The server answers 413 from the
/// headers, before reading the body, and closes the connection; a client
/// still writing the body can then see the connection reset before it reads
/// the answer (a TCP race real clients have too). A reset is sent again, a
/// few times; every answer that arrives is asserted by the caller.
async fn send_oversized(
    req: impl Fn() -> reqwest::RequestBuilder,
) -> (u16, String, String, serde_json::Value) {
    let mut last = None;
    for _ in 0..5 {
        match req().send().await {
            Ok(resp) => return answer(resp).await,
            Err(e) => last = Some(e),
        }
    }
    panic!("no answer to an oversized request in 5 tries: {last:?}");
}

/// Asserts an error in Coder's shape: JSON with a non-empty message.
fn coder_shaped(what: &str, content_type: &str, body: &serde_json::Value) {
    assert!(content_type.starts_with("application/json"), "{what}: content type {content_type:?}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
}

/// Asserts a 400 whose validations name `field`.
fn refused(what: &str, status: u16, body: &serde_json::Value, field: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    let fields: Vec<&str> = body["validations"]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(fields.contains(&field), "{what}: expected a validation for {field:?}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_outside_handlers_have_coders_shape() {
    let server = TestServer::start(Opts { builtin_daemons: 0, ..Opts::default() }).await;
    let c = server.client().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url);

    // Unknown paths, inside and outside /api/v2, and the daemon service's
    // own path asked over HTTP/1.1: none is gRPC, all are JSON 404s.
    for (method, path, content_type) in [
        (Method::GET, "/nope", "text/plain"),
        (Method::POST, "/nope", "application/grpc"),
        (Method::GET, "/api/v2/nope", "text/plain"),
        (Method::POST, "/provisionerd.v1.ProvisionerDaemon/Session", "application/grpc"),
        (Method::POST, "/provisionerd.v1.ProvisionerDaemon/DownloadFile", "text/plain"),
    ] {
        let req = http.request(method.clone(), url(path)).header("content-type", content_type);
        let (status, ct, _, body) = send(req).await;
        let what = format!("{method} {path} ({content_type})");
        assert_eq!(status, 404, "{what}: {body}");
        coder_shaped(&what, &ct, &body);
    }

    // A known path with the wrong method: 405, still saying what is allowed.
    let (status, ct, allow, body) = send(http.delete(url("/api/v2/users/first"))).await;
    assert_eq!(status, 405, "{body}");
    coder_shaped("405", &ct, &body);
    assert!(allow.contains("POST"), "Allow header kept: {allow:?}");

    // A malformed query string.
    let req =
        http.get(url("/api/v2/workspaces?limit=abc")).header("Coder-Session-Token", c.token());
    let (status, ct, _, body) = send(req).await;
    assert_eq!(status, 400, "{body}");
    coder_shaped("bad query", &ct, &body);

    // A URI over the limit: 414, before any handler or authentication.
    for len in [provisionerd::server::api::MAX_URI_BYTES, 32 << 10] {
        let long = format!("/api/v2/workspaces?x={}", "a".repeat(len));
        let (status, ct, _, body) = send(http.get(url(&long))).await;
        assert_eq!(status, 414, "{len} bytes: {body}");
        coder_shaped("414", &ct, &body);
    }

    // Bodies over the limit: JSON and a template archive.
    let big = json!({"username": "x".repeat(provisionerd::server::api::MAX_JSON_BYTES)});
    let req =
        || http.post(url("/api/v2/users")).header("Coder-Session-Token", c.token()).json(&big);
    let (status, ct, _, body) = send_oversized(req).await;
    assert_eq!(status, 413, "{body}");
    coder_shaped("413 json", &ct, &body);
    let req = || {
        http.post(url("/api/v2/files"))
            .header("Coder-Session-Token", c.token())
            .header("content-type", "application/x-tar")
            .body(vec![0u8; 11 << 20])
    };
    let (status, ct, _, body) = send_oversized(req).await;
    assert_eq!(status, 413, "{body}");
    coder_shaped("413 file", &ct, &body);

    // A JSON route without a JSON content type: 415.
    let req = http
        .post(url("/api/v2/users"))
        .header("Coder-Session-Token", c.token())
        .body(r#"{"username":"x"}"#);
    let (status, ct, _, body) = send(req).await;
    assert_eq!(status, 415, "{body}");
    coder_shaped("415", &ct, &body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_texts_and_tags_follow_coders_limits() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let token = Some(c.token());
    let url = |p: &str| format!("{}{p}", server.url);
    let long = "a".repeat(33);
    let bad_names = ["-a", "a-", "a--b", "a_b", "new", long.as_str(), ""];

    for name in bad_names {
        let user =
            json!({"username": name, "email": "u@example.com", "password": "long-enough-pw"});
        let (status, body) = raw(Method::POST, url("/api/v2/users"), token, Some(user)).await;
        refused(&format!("username {name:?}"), status, &body, "username");
    }
    let user = |name: &str| json!({"username": "u1", "email": "u1@example.com", "password": "long-enough-pw", "name": name});
    for (what, name) in
        [("NUL", "a\u{0}b"), ("129 chars", "n".repeat(129).as_str()), ("padded", " x")]
    {
        let (status, body) = raw(Method::POST, url("/api/v2/users"), token, Some(user(name))).await;
        refused(&format!("real name {what}"), status, &body, "name");
    }
    let (status, body) = raw(
        Method::POST,
        url("/api/v2/users"),
        token,
        Some(json!({"username": "u1", "email": "not-an-email", "password": "long-enough-pw"})),
    )
    .await;
    refused("email", status, &body, "email");
    let jo = CreateUserRequest {
        username: "u1".into(),
        email: "u1@example.com".into(),
        password: "long-enough-pw".into(),
        name: "Jo Doe".into(),
    };
    c.create_user(&jo).await.expect("a valid user is still created");

    let dir = echo_ok();
    let (template, version) = create_template(&c, dir.path(), "echo", plain).await;
    let fresh = push_version(&c, dir.path(), "echo", plain).await;
    let templates = url("/api/v2/organizations/coder/templates");
    for name in bad_names {
        let t = json!({"name": name, "template_version_id": fresh.id});
        let (status, body) = raw(Method::POST, templates.clone(), token, Some(t)).await;
        refused(&format!("template name {name:?}"), status, &body, "name");
    }
    for (field, value) in [
        ("display_name", "My\u{0}Template".to_owned()),
        ("display_name", "d".repeat(65)),
        ("display_name", "trailing ".to_owned()),
        ("description", "d".repeat(129)),
        ("description", "nul\u{0}".to_owned()),
    ] {
        let t = json!({"name": "ok-name", "template_version_id": fresh.id, field: value});
        let (status, body) = raw(Method::POST, templates.clone(), token, Some(t)).await;
        refused(&format!("template {field} {value:?}"), status, &body, field);
    }
    let ok = CreateTemplateRequest {
        name: "ok-name".into(),
        template_version_id: fresh.id,
        display_name: "My Template".into(),
        description: "d".repeat(128),
    };
    c.create_template("coder", &ok).await.expect("limits are inclusive");

    for name in bad_names {
        let ws = json!({"name": name, "template_id": template});
        let (status, body) =
            raw(Method::POST, url("/api/v2/users/me/workspaces"), token, Some(ws)).await;
        refused(&format!("workspace name {name:?}"), status, &body, "name");
    }

    // Tags on a version and on a provisioner key; a version name.
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(dir.path()).expect("tar")).await.expect("upload");
    let versions = url("/api/v2/organizations/coder/templateversions");
    let version_with = |extra: serde_json::Value| {
        let mut v = json!({"file_id": file, "storage_method": "file", "provisioner": "echo"});
        v.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        v
    };
    for (tags, field) in [
        (json!({"bad key": "x"}), "tags.bad key"),
        (json!({"": "x"}), "tags."),
        (json!({"os": "li\nnux"}), "tags.os"),
        (json!({"os": "x".repeat(257)}), "tags.os"),
    ] {
        let body = version_with(json!({"tags": tags}));
        let (status, body) = raw(Method::POST, versions.clone(), token, Some(body)).await;
        refused(&format!("version tags {tags}"), status, &body, field);
        let key = json!({"name": "k1", "tags": tags});
        let keys = url("/api/v2/organizations/coder/provisionerkeys");
        let (status, body) = raw(Method::POST, keys, token, Some(key)).await;
        refused(&format!("key tags {tags}"), status, &body, field);
    }
    let body = version_with(json!({"name": "v 1"}));
    let (status, body) = raw(Method::POST, versions.clone(), token, Some(body)).await;
    refused("version name", status, &body, "name");
    let body = version_with(json!({"message": "m\u{0}"}));
    let (status, body) = raw(Method::POST, versions, token, Some(body)).await;
    refused("NUL in a message", status, &body, "message");
    assert_eq!(version.job.status, "succeeded");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_parameters_only_as_the_template_declares() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let token = Some(c.token());
    let workspaces = format!("{}/api/v2/users/me/workspaces", server.url);
    let values = |names: &[&str]| -> serde_json::Value {
        names.iter().map(|n| json!({"name": n, "value": "1"})).collect()
    };

    // A template that declares nothing takes no values.
    let bare = echo_template(&json!({"resources": [{"name": "vm", "type": "echo_instance"}]}));
    let (template, _) = create_template(&c, bare.path(), "echo", plain).await;
    let ws = json!({"name": "bare", "template_id": template, "rich_parameter_values": values(&["region"])});
    let (status, body) = raw(Method::POST, workspaces.clone(), token, Some(ws)).await;
    refused("undeclared on a bare template", status, &body, "region");

    let dir = echo_ok();
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let ws =
        json!({"name": "w1", "template_id": template, "rich_parameter_values": values(&["zone"])});
    let (status, body) = raw(Method::POST, workspaces.clone(), token, Some(ws)).await;
    refused("undeclared parameter", status, &body, "zone");
    let many: Vec<String> = (0..257).map(|i| format!("p{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let ws = json!({"name": "w1", "template_id": template, "rich_parameter_values": values(&many)});
    let (status, body) = raw(Method::POST, workspaces.clone(), token, Some(ws)).await;
    refused("257 values", status, &body, "rich_parameter_values");
    let ws = json!({"name": "w1", "template_id": template,
        "rich_parameter_values": values(&["region", "region"])});
    let (status, body) = raw(Method::POST, workspaces.clone(), token, Some(ws)).await;
    refused("a value given twice", status, &body, "rich_parameter_values[1].name");
    let ws = json!({"name": "w1", "template_id": template,
        "rich_parameter_values": [{"name": "region", "value": "eu\u{0}"}]});
    let (status, body) = raw(Method::POST, workspaces.clone(), token, Some(ws)).await;
    refused("NUL in a value", status, &body, "rich_parameter_values[0].value");

    let ws = CreateWorkspaceRequest {
        name: "w1".into(),
        template_id: Some(template),
        rich_parameter_values: crate::harness::values(&[("region", "1")]),
        ..Default::default()
    };
    let ws = c.create_workspace("me", &ws).await.expect("declared values are taken");
    let ws_id = ws.id;
    wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;
    let builds = format!("{}/api/v2/workspaces/{ws_id}/builds", server.url);
    let b = json!({"transition": "stop", "rich_parameter_values": values(&["zone"])});
    let (status, body) = raw(Method::POST, builds, token, Some(b)).await;
    refused("undeclared on a build", status, &body, "zone");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_version_backs_one_template() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_ok();
    let (first, version) = create_template(&c, dir.path(), "echo", plain).await;
    let templates = format!("{}/api/v2/organizations/coder/templates", server.url);
    let t = json!({"name": "second", "template_version_id": version.id});
    let (status, body) = raw(Method::POST, templates.clone(), Some(c.token()), Some(t)).await;
    refused("a version another template owns", status, &body, "template_version_id");
    let listed = c.template_versions(first).await.expect("versions");
    assert_eq!(listed.len(), 1, "the first keeps its version: {listed:?}");
    assert_eq!(listed[0].id, version.id);
    let all = c.templates("coder").await.expect("templates");
    assert_eq!(all.len(), 1, "no second template: {all:?}");

    // A version pushed for the first template cannot start another either.
    let pushed = push_version(&c, dir.path(), "echo", |r| r.template_id = Some(first)).await;
    let t = json!({"name": "third", "template_version_id": pushed.id});
    let (status, body) = raw(Method::POST, templates, Some(c.token()), Some(t)).await;
    refused("a version pushed for another template", status, &body, "template_version_id");

    // Promoting: a template's own version, yes; another template's, no.
    let fresh = push_version(&c, dir.path(), "echo", plain).await;
    let second = CreateTemplateRequest {
        name: "second".into(),
        template_version_id: fresh.id,
        ..Default::default()
    };
    let second = c.create_template("coder", &second).await.expect("second");
    let promote = |t: uuid::Uuid| format!("{}/api/v2/templates/{t}/versions", server.url);
    let second_id = second.id;
    let body = json!({"id": version.id});
    let (status, body) = raw(Method::PATCH, promote(second_id), Some(c.token()), Some(body)).await;
    refused("promoting another template's version", status, &body, "id");
    let body = json!({"id": pushed.id});
    let (status, body) = raw(Method::PATCH, promote(first), Some(c.token()), Some(body)).await;
    assert_eq!(status, 200, "promoting its own version: {body}");
    let listed = c.template_versions(first).await.expect("versions");
    assert_eq!(listed.len(), 2, "{listed:?}");
    let listed = c.template_versions(second_id).await.expect("versions");
    assert_eq!(listed.len(), 1, "{listed:?}");
    server.stop().await;
}

/// Sends one HTTP/2 request (tonic's channel speaks only HTTP/2) and
/// returns the status, headers and body text.
async fn h2_request(
    base: &str,
    path: &str,
    content_type: &str,
) -> (u16, tonic::codegen::http::HeaderMap, String) {
    use tonic::codegen::http;
    use tonic::codegen::{Body as _, Service as _};
    let mut channel = tonic::transport::Endpoint::from_shared(base.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("HTTP/2 connection");
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await.expect("ready");
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{base}{path}"))
        .header("content-type", content_type)
        .body(tonic::body::Body::empty())
        .expect("request");
    let resp = channel.call(req).await.expect("response");
    let (parts, mut body) = resp.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame.expect("body frame").into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    (parts.status.as_u16(), parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_grpc_requests_reach_the_daemon_service() {
    let server = TestServer::start(Opts { builtin_daemons: 0, ..Opts::default() }).await;
    let session = "/provisionerd.v1.ProvisionerDaemon/Session";
    // HTTP/2 but not gRPC, on the service's own path: a JSON 404.
    let (status, headers, text) = h2_request(&server.url, session, "application/json").await;
    assert_eq!(status, 404, "{text}");
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON body");
    coder_shaped("HTTP/2 non-gRPC", ct, &body);
    // Real gRPC to a method that does not exist: gRPC's own "unimplemented".
    let (status, headers, _) =
        h2_request(&server.url, "/provisionerd.v1.ProvisionerDaemon/Nope", "application/grpc")
            .await;
    assert_eq!(status, 200);
    let grpc_status = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    assert_eq!(grpc_status, Some("12"), "UNIMPLEMENTED: {headers:?}");
    server.stop().await;
}
