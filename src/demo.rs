//! `provisionerd demo`: a guided tour against a running server, using only
//! the public REST API. It creates (or logs in as) a first user, pushes a
//! template directory, creates a workspace, follows each build's logs over
//! WebSocket, then stops and deletes the workspace.
//!
//! This is client code: it knows HTTP and JSON, nothing of the server's
//! internals.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::config::DemoArgs;

/// A logged-in API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Creates the first user if there is none, then logs in.
    pub async fn login(base: &str, email: &str, password: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Self::login_with(http, base, email, password).await
    }

    /// Like `login`, with a configured HTTP client (e.g. trusting a private CA).
    pub async fn login_with(
        http: reqwest::Client,
        base: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let first =
            json!({"username": "admin", "email": email, "password": password, "name": "Admin"});
        let resp = post_when_up(&http, &format!("{base}/api/v2/users/first"), &first).await?;
        if !resp.status().is_success() && resp.status() != reqwest::StatusCode::CONFLICT {
            bail!("creating the first user failed: {}", resp.text().await?);
        }
        let login = json!({"email": email, "password": password});
        let resp = http.post(format!("{base}/api/v2/users/login")).json(&login).send().await?;
        let body: Value = ok_json(resp).await.context("login failed")?;
        let token = body["session_token"]
            .as_str()
            .context("login answered without a session_token")?
            .to_owned();
        Ok(Self { http, base, token })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp =
            self.http.get(self.url(path)).header("Coder-Session-Token", &self.token).send().await?;
        ok_json(resp).await.with_context(|| format!("GET {path}"))
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url(path))
            .header("Coder-Session-Token", &self.token)
            .json(body)
            .send()
            .await?;
        ok_json(resp).await.with_context(|| format!("POST {path}"))
    }

    pub async fn upload_tar(&self, data: Vec<u8>) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(self.url("/api/v2/files"))
            .header("Coder-Session-Token", &self.token)
            .header("Content-Type", "application/x-tar")
            .body(data)
            .send()
            .await?;
        let body = ok_json(resp).await.context("upload failed")?;
        Ok(body["hash"].as_str().context("upload answered without a hash")?.to_owned())
    }

    /// The session token (for callers that make their own requests).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Follows a logs endpoint over WebSocket until the server closes it,
    /// calling `each` for every log line.
    pub async fn follow(&self, path: &str, mut each: impl FnMut(&Value)) -> anyhow::Result<()> {
        let ws_url = format!("{}{path}?follow=true", self.base.replacen("http", "ws", 1));
        let mut request = ws_url.into_client_request()?;
        request.headers_mut().insert("Coder-Session-Token", self.token.parse()?);
        let (mut socket, _) =
            tokio_tungstenite::connect_async(request).await.context("follow logs")?;
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

/// Posts once the server accepts connections (it may still be starting),
/// giving up after 30 seconds.
async fn post_when_up(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> anyhow::Result<reqwest::Response> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match http.post(url).json(body).send().await {
            Ok(resp) => return Ok(resp),
            Err(e) if e.is_connect() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot reach {url}: is `provisionerd server` running?")
                })
            }
        }
    }
}

async fn ok_json(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Packs a template directory into a tar archive in memory.
pub fn tar_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .with_context(|| format!("failed to pack template {}", dir.display()))?;
    Ok(builder.into_inner()?)
}

fn print_log(l: &Value) {
    let stage = l["stage"].as_str().unwrap_or_default();
    let level = l["log_level"].as_str().unwrap_or_default();
    let output = l["output"].as_str().unwrap_or_default();
    println!("  [{stage}] {level:>5} {output}");
}

async fn build_and_follow(c: &Client, build: &Value) -> anyhow::Result<Value> {
    let id = build["id"].as_str().context("build without id")?;
    println!("build #{} ({}):", build["build_number"], build["transition"].as_str().unwrap_or("?"));
    c.follow(&format!("/api/v2/workspacebuilds/{id}/logs"), print_log).await?;
    let done = c.get(&format!("/api/v2/workspacebuilds/{id}")).await?;
    println!("  => status {}", done["status"]);
    if done["job"]["status"] != "succeeded" {
        bail!("build {id} ended {}: {}", done["job"]["status"], done["job"]["error"]);
    }
    Ok(done)
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let c = Client::login(&args.url, &args.email, &args.password).await?;
    let file = c.upload_tar(tar_dir(&args.template)?).await?;
    println!("pushed template {} as file {file}", args.template.display());
    let version = c
        .post(
            "/api/v2/organizations/coder/templateversions",
            &json!({"file_id": file, "storage_method": "file", "provisioner": "terraform"}),
        )
        .await?;
    let vid = version["id"].as_str().context("template version without id")?;
    println!("importing template version {vid}:");
    c.follow(&format!("/api/v2/templateversions/{vid}/logs"), print_log).await?;
    let version = c.get(&format!("/api/v2/templateversions/{vid}")).await?;
    if version["job"]["status"] != "succeeded" {
        bail!("template import ended {}: {}", version["job"]["status"], version["job"]["error"]);
    }
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let template = c
        .post(
            "/api/v2/organizations/coder/templates",
            &json!({"name": format!("demo-{suffix}"), "template_version_id": vid}),
        )
        .await?;
    let ws = c
        .post(
            "/api/v2/users/me/workspaces",
            &json!({"name": format!("demo-{suffix}"), "template_id": template["id"]}),
        )
        .await?;
    let ws_id = ws["id"].as_str().context("workspace without id")?.to_owned();
    println!("created workspace {} ({ws_id})", ws["name"]);
    let started = build_and_follow(&c, &ws["latest_build"]).await?;
    for r in started["resources"].as_array().into_iter().flatten() {
        println!(
            "  resource {}.{}",
            r["type"].as_str().unwrap_or("?"),
            r["name"].as_str().unwrap_or("?")
        );
    }
    for transition in ["stop", "delete"] {
        let b = c
            .post(&format!("/api/v2/workspaces/{ws_id}/builds"), &json!({"transition": transition}))
            .await?;
        build_and_follow(&c, &b).await?;
    }
    println!("demo finished: the workspace was started, stopped and deleted");
    Ok(())
}
