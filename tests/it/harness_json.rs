//! The untyped test helpers the suite used before the typed SDK: requests
//! and answers as `serde_json::Value`. Only test files not yet converted to
//! the typed client (see `harness.rs`) import this module; each converted
//! file drops it, and the module goes when none is left.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use provisionerd::sdk::{tar_dir, Client};
use serde_json::{json, Value};

pub use crate::harness::*;

/// Untyped requests on the typed client: any path, any JSON.
#[allow(async_fn_in_trait)]
pub trait ValueClient {
    async fn get(&self, path: &str) -> anyhow::Result<Value>;
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value>;
    async fn follow(&self, path: &str, each: impl FnMut(&Value)) -> anyhow::Result<()>;
}

impl ValueClient for Client {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        ok(self.raw(reqwest::Method::GET, path, None).await?, path)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        ok(self.raw(reqwest::Method::POST, path, Some(body.clone())).await?, path)
    }

    async fn follow(&self, path: &str, mut each: impl FnMut(&Value)) -> anyhow::Result<()> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Message;
        let ws_url = format!("{}{path}?follow=true", self.base().replacen("http", "ws", 1));
        let mut request = ws_url.into_client_request()?;
        request.headers_mut().insert("Coder-Session-Token", self.token().parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        while let Some(msg) = socket.next().await {
            match msg? {
                Message::Text(text) => each(&serde_json::from_str(&text)?),
                Message::Close(_) => break,
                _ => {}
            }
        }
        Ok(())
    }
}

fn ok((status, body): (u16, Value), path: &str) -> anyhow::Result<Value> {
    anyhow::ensure!((200..300).contains(&status), "{path}: {status}: {body}");
    Ok(body)
}

/// Waits until a build's job has completed and returns the build.
pub async fn wait_build(c: &Client, build_id: &str, timeout: Duration) -> Value {
    wait_for(&format!("build {build_id} to complete"), timeout, || async {
        let b = c.get(&format!("/api/v2/workspacebuilds/{build_id}")).await.ok()?;
        is_final(b["job"]["status"].as_str()?).then_some(b)
    })
    .await
}

/// Pushes a template directory as a new version (optionally of `template`),
/// waits for its import, and returns the version JSON.
pub async fn push_version(c: &Client, dir: &Path, provisioner: &str, extra: Value) -> Value {
    let file = c.upload_tar(tar_dir(dir).expect("tar")).await.expect("upload");
    let mut body = json!({"file_id": file, "storage_method": "file", "provisioner": provisioner});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let v = c
        .post("/api/v2/organizations/coder/templateversions", &body)
        .await
        .expect("create version");
    let id = v["id"].as_str().expect("version id").to_owned();
    wait_for("template import", Duration::from_secs(120), || async {
        let v = c.get(&format!("/api/v2/templateversions/{id}")).await.ok()?;
        is_final(v["job"]["status"].as_str()?).then_some(v)
    })
    .await
}

/// Pushes a template and creates a template from it; returns its id.
pub async fn create_template(
    c: &Client,
    dir: &Path,
    provisioner: &str,
    extra: Value,
) -> (String, Value) {
    let v = push_version(c, dir, provisioner, extra).await;
    assert_eq!(v["job"]["status"], "succeeded", "import failed: {v}");
    let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let t = c
        .post(
            "/api/v2/organizations/coder/templates",
            &json!({"name": name, "template_version_id": v["id"]}),
        )
        .await
        .expect("create template");
    (t["id"].as_str().expect("template id").to_owned(), v)
}

/// Creates a workspace and returns its JSON (with `latest_build`).
pub async fn create_workspace(c: &Client, template_id: &str) -> Value {
    let name = format!("ws-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    c.post("/api/v2/users/me/workspaces", &json!({"name": name, "template_id": template_id}))
        .await
        .expect("create workspace")
}

/// Queues a build and returns its JSON.
pub async fn build(c: &Client, workspace_id: &str, body: Value) -> Value {
    c.post(&format!("/api/v2/workspaces/{workspace_id}/builds"), &body).await.expect("create build")
}

/// Asks to cancel a build; returns the HTTP status.
pub async fn cancel_build(c: &Client, build_id: &str) -> u16 {
    let path = format!("/api/v2/workspacebuilds/{build_id}/cancel");
    c.raw(reqwest::Method::PATCH, &path, None).await.expect("cancel").0
}

/// A build's raw provisioner state, as the state endpoint returns it.
pub async fn build_state(c: &Client, build_id: &str) -> String {
    let id = build_id.parse().expect("build id");
    String::from_utf8(c.build_state(id).await.expect("state endpoint")).expect("state is text")
}
