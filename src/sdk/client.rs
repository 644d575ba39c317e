//! A typed REST client: one method per route, each returning the body
//! types of [`super::types`], and one error type carrying Coder's error
//! shape with the HTTP status. The demo, the integration tests and the
//! bench talk to the server through it; `raw` is there for callers that
//! must send what no typed request can (malformed or hostile bodies).

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::types::*;

/// The header that carries a session token (or an API key).
pub const SESSION_HEADER: &str = "Coder-Session-Token";

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error("{method} {path}: {status}: {}{}", body.message, detail(body))]
    Api { method: Method, path: String, status: u16, body: ErrorResponse },
    /// The server could not be reached or the exchange broke off.
    #[error("{method} {path}: {source}")]
    Http {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// A success answer that is not the expected JSON.
    #[error("{method} {path}: the answer does not match the SDK's type ({source}): {text}")]
    Decode {
        method: Method,
        path: String,
        text: String,
        #[source]
        source: serde_json::Error,
    },
    /// Following logs over WebSocket failed.
    #[error("follow {path}: {message}")]
    Follow { path: String, message: String },
}

fn detail(body: &ErrorResponse) -> String {
    let mut out = String::new();
    if !body.detail.is_empty() {
        out.push_str(&format!(" ({})", body.detail));
    }
    for v in &body.validations {
        out.push_str(&format!(" [{}: {}]", v.field, v.detail));
    }
    out
}

impl Error {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error body of an error answer.
    pub fn response(&self) -> Option<&ErrorResponse> {
        match self {
            Error::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// True when the server could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Http { source, .. } if source.is_connect())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `after` / `before` of the log endpoints (line ids).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery {
    pub after: Option<i64>,
    pub before: Option<i64>,
}

impl LogQuery {
    fn query(self) -> String {
        let mut q = Vec::new();
        if let Some(a) = self.after {
            q.push(format!("after={a}"));
        }
        if let Some(b) = self.before {
            q.push(format!("before={b}"));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

/// A logged-in API client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Creates the first user if there is none, then logs in.
    pub async fn login(base: &str, email: &str, password: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| Error::Http { method: Method::GET, path: base.to_owned(), source })?;
        Self::login_with(http, base, email, password).await
    }

    /// Like `login`, with a configured HTTP client (e.g. trusting a private CA).
    pub async fn login_with(
        http: reqwest::Client,
        base: &str,
        email: &str,
        password: &str,
    ) -> Result<Self> {
        let mut c = Self::anonymous(http, base);
        let first = CreateUserRequest {
            username: "admin".into(),
            email: email.into(),
            password: password.into(),
            name: "Admin".into(),
        };
        match c.create_first_user_when_up(&first).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(409) => {}
            Err(e) => return Err(e),
        }
        let login = LoginRequest { email: email.into(), password: password.into() };
        c.token = c.login_user(&login).await?.session_token;
        Ok(c)
    }

    /// A client without a session (for the routes that need none), or with
    /// one set later by `with_token`.
    pub fn anonymous(http: reqwest::Client, base: &str) -> Self {
        Self { http, base: base.trim_end_matches('/').to_owned(), token: String::new() }
    }

    /// The same server with another session token (another user, an API key).
    pub fn with_token(&self, token: &str) -> Self {
        Self { token: token.to_owned(), ..self.clone() }
    }

    /// The session token (for callers that make their own requests).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client (for callers that make their own requests).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        if self.token.is_empty() {
            req
        } else {
            req.header(SESSION_HEADER, &self.token)
        }
    }

    /// Sends a request and returns the success answer's bytes, or the error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes> {
        let http = |source| Error::Http { method: method.clone(), path: path.to_owned(), source };
        let resp = req.send().await.map_err(http)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(http)?;
        if status.is_success() {
            return Ok(bytes);
        }
        // An answer from something other than the API (a proxy) may not be
        // JSON: its text becomes the message.
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorResponse {
            message: String::from_utf8_lossy(&bytes).into_owned(),
            ..ErrorResponse::default()
        });
        Err(Error::Api { method, path: path.to_owned(), status: status.as_u16(), body })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let bytes = self.send(method.clone(), path, req).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            method,
            path: path.to_owned(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            source,
        })
    }

    async fn fetch<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    async fn submit<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Any request with any JSON body, for what no typed request can say
    /// (malformed or hostile bodies, unknown routes): the status and the
    /// answer as JSON (or as a JSON string when it is not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let http = |source| Error::Http { method: method.clone(), path: path.to_owned(), source };
        let resp = req.send().await.map_err(http)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(http)?;
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok((status, value))
    }

    // ------------------------------------------------------------ users

    /// `POST /users/first`, retried while the server is not accepting
    /// connections yet (it may still be starting), for 30 seconds.
    pub async fn create_first_user_when_up(
        &self,
        req: &CreateUserRequest,
    ) -> Result<CreateFirstUserResponse> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.submit("/api/v2/users/first", req).await {
                Err(e) if e.is_connect() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// `POST /users/login`.
    pub async fn login_user(&self, req: &LoginRequest) -> Result<LoginResponse> {
        self.submit("/api/v2/users/login", req).await
    }

    /// `POST /users/logout`.
    pub async fn logout(&self) -> Result<Response> {
        self.submit("/api/v2/users/logout", &serde_json::json!({})).await
    }

    /// `POST /users`.
    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<User> {
        self.submit("/api/v2/users", req).await
    }

    /// `GET /users/{user}` (`me`, a username or an id).
    pub async fn user(&self, user: &str) -> Result<User> {
        self.fetch(&format!("/api/v2/users/{user}")).await
    }

    /// `PUT /users/{user}/roles`.
    pub async fn update_roles(&self, user: &str, roles: &[&str]) -> Result<User> {
        let req = UpdateRolesRequest { roles: roles.iter().map(|r| (*r).to_owned()).collect() };
        self.call(Method::PUT, &format!("/api/v2/users/{user}/roles"), Some(&req)).await
    }

    /// `GET /users/{user}/organizations`.
    pub async fn user_organizations(&self, user: &str) -> Result<Vec<Organization>> {
        self.fetch(&format!("/api/v2/users/{user}/organizations")).await
    }

    /// `GET /organizations/{org}`.
    pub async fn organization(&self, org: &str) -> Result<Organization> {
        self.fetch(&format!("/api/v2/organizations/{org}")).await
    }

    /// `GET /buildinfo`.
    pub async fn build_info(&self) -> Result<BuildInfo> {
        self.fetch("/api/v2/buildinfo").await
    }

    // ------------------------------------------------- daemons and keys

    /// `GET /organizations/{org}/provisionerdaemons`.
    pub async fn daemons(&self, org: &str) -> Result<Vec<ProvisionerDaemon>> {
        self.fetch(&format!("/api/v2/organizations/{org}/provisionerdaemons")).await
    }

    /// `POST /organizations/{org}/provisionerkeys`.
    pub async fn create_key(
        &self,
        org: &str,
        req: &CreateProvisionerKeyRequest,
    ) -> Result<CreateProvisionerKeyResponse> {
        self.submit(&format!("/api/v2/organizations/{org}/provisionerkeys"), req).await
    }

    /// `GET /organizations/{org}/provisionerkeys`.
    pub async fn keys(&self, org: &str) -> Result<Vec<ProvisionerKey>> {
        self.fetch(&format!("/api/v2/organizations/{org}/provisionerkeys")).await
    }

    /// `DELETE /organizations/{org}/provisionerkeys/{name}`.
    pub async fn delete_key(&self, org: &str, name: &str) -> Result<()> {
        let path = format!("/api/v2/organizations/{org}/provisionerkeys/{name}");
        self.send(Method::DELETE, &path, self.request(Method::DELETE, &path)).await.map(|_| ())
    }

    // ----------------------------------------------------------- files

    /// `POST /files` with a tar archive; returns the file's id.
    pub async fn upload_tar(&self, data: Vec<u8>) -> Result<Uuid> {
        let path = "/api/v2/files";
        let req =
            self.request(Method::POST, path).header("Content-Type", "application/x-tar").body(data);
        let bytes = self.send(Method::POST, path, req).await?;
        let up: UploadResponse =
            serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
                method: Method::POST,
                path: path.to_owned(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
                source,
            })?;
        Ok(up.hash)
    }

    /// `GET /files/{id}`: the file's bytes.
    pub async fn download_file(&self, id: Uuid) -> Result<Vec<u8>> {
        let path = format!("/api/v2/files/{id}");
        Ok(self.send(Method::GET, &path, self.request(Method::GET, &path)).await?.to_vec())
    }

    // --------------------------------------------- templates, versions

    /// `POST /organizations/{org}/templateversions`.
    pub async fn create_template_version(
        &self,
        org: &str,
        req: &CreateTemplateVersionRequest,
    ) -> Result<TemplateVersion> {
        self.submit(&format!("/api/v2/organizations/{org}/templateversions"), req).await
    }

    /// `GET /templateversions/{id}`.
    pub async fn template_version(&self, id: Uuid) -> Result<TemplateVersion> {
        self.fetch(&format!("/api/v2/templateversions/{id}")).await
    }

    /// `GET /templateversions/{id}/logs`.
    pub async fn template_version_logs(&self, id: Uuid, q: LogQuery) -> Result<Vec<Log>> {
        self.fetch(&format!("/api/v2/templateversions/{id}/logs{}", q.query())).await
    }

    /// `GET /templateversions/{id}/resources`.
    pub async fn template_version_resources(&self, id: Uuid) -> Result<Vec<WorkspaceResource>> {
        self.fetch(&format!("/api/v2/templateversions/{id}/resources")).await
    }

    /// `GET /templateversions/{id}/rich-parameters` (codersdk's
    /// `TemplateVersionParameter`, kept as JSON).
    pub async fn template_version_rich_parameters(
        &self,
        id: Uuid,
    ) -> Result<Vec<serde_json::Value>> {
        self.fetch(&format!("/api/v2/templateversions/{id}/rich-parameters")).await
    }

    /// `GET /templateversions/{id}/variables`.
    pub async fn template_version_variables(
        &self,
        id: Uuid,
    ) -> Result<Vec<TemplateVersionVariable>> {
        self.fetch(&format!("/api/v2/templateversions/{id}/variables")).await
    }

    /// `POST /organizations/{org}/templates`.
    pub async fn create_template(
        &self,
        org: &str,
        req: &CreateTemplateRequest,
    ) -> Result<Template> {
        self.submit(&format!("/api/v2/organizations/{org}/templates"), req).await
    }

    /// `GET /organizations/{org}/templates`.
    pub async fn templates(&self, org: &str) -> Result<Vec<Template>> {
        self.fetch(&format!("/api/v2/organizations/{org}/templates")).await
    }

    /// `GET /organizations/{org}/templates/{name}`.
    pub async fn template_by_name(&self, org: &str, name: &str) -> Result<Template> {
        self.fetch(&format!("/api/v2/organizations/{org}/templates/{name}")).await
    }

    /// `GET /templates/{id}`.
    pub async fn template(&self, id: Uuid) -> Result<Template> {
        self.fetch(&format!("/api/v2/templates/{id}")).await
    }

    /// `GET /templates/{id}/versions`.
    pub async fn template_versions(&self, id: Uuid) -> Result<Vec<TemplateVersion>> {
        self.fetch(&format!("/api/v2/templates/{id}/versions")).await
    }

    /// `PATCH /templates/{id}/versions`: makes `version` the active one.
    pub async fn promote(&self, template: Uuid, version: Uuid) -> Result<Response> {
        let req = UpdateActiveTemplateVersion { id: version };
        self.call(Method::PATCH, &format!("/api/v2/templates/{template}/versions"), Some(&req))
            .await
    }

    // ------------------------------------------------------ workspaces

    /// `POST /users/{user}/workspaces`.
    pub async fn create_workspace(
        &self,
        user: &str,
        req: &CreateWorkspaceRequest,
    ) -> Result<Workspace> {
        self.submit(&format!("/api/v2/users/{user}/workspaces"), req).await
    }

    /// `POST /organizations/{org}/members/{user}/workspaces`.
    pub async fn create_member_workspace(
        &self,
        org: &str,
        user: &str,
        req: &CreateWorkspaceRequest,
    ) -> Result<Workspace> {
        self.submit(&format!("/api/v2/organizations/{org}/members/{user}/workspaces"), req).await
    }

    /// `GET /workspaces/{id}`.
    pub async fn workspace(&self, id: Uuid) -> Result<Workspace> {
        self.fetch(&format!("/api/v2/workspaces/{id}")).await
    }

    /// `GET /workspacebuilds/{id}/timings`.
    pub async fn build_timings(&self, id: Uuid) -> Result<super::WorkspaceBuildTimings> {
        self.fetch(&format!("/api/v2/workspacebuilds/{id}/timings")).await
    }

    /// `GET /workspaces/{id}/timings`: the latest build's.
    pub async fn workspace_timings(&self, id: Uuid) -> Result<super::WorkspaceBuildTimings> {
        self.fetch(&format!("/api/v2/workspaces/{id}/timings")).await
    }

    /// `GET /workspaces/{id}?include_deleted=true`.
    pub async fn workspace_including_deleted(&self, id: Uuid) -> Result<Workspace> {
        self.fetch(&format!("/api/v2/workspaces/{id}?include_deleted=true")).await
    }

    /// `GET /users/{user}/workspace/{name}`.
    pub async fn workspace_by_owner_and_name(&self, user: &str, name: &str) -> Result<Workspace> {
        self.fetch(&format!("/api/v2/users/{user}/workspace/{name}")).await
    }

    /// `GET /workspaces`, a page when `limit`/`offset` are given.
    pub async fn workspaces(
        &self,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<WorkspacesResponse> {
        let mut q = Vec::new();
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        if let Some(o) = offset {
            q.push(format!("offset={o}"));
        }
        let query = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
        self.fetch(&format!("/api/v2/workspaces{query}")).await
    }

    // ---------------------------------------------------------- builds

    /// `POST /workspaces/{id}/builds`.
    pub async fn create_build(
        &self,
        workspace: Uuid,
        req: &CreateWorkspaceBuildRequest,
    ) -> Result<WorkspaceBuild> {
        self.submit(&format!("/api/v2/workspaces/{workspace}/builds"), req).await
    }

    /// `GET /workspaces/{id}/builds`.
    pub async fn builds(&self, workspace: Uuid) -> Result<Vec<WorkspaceBuild>> {
        self.fetch(&format!("/api/v2/workspaces/{workspace}/builds")).await
    }

    /// `GET /workspacebuilds/{id}`.
    pub async fn build(&self, id: Uuid) -> Result<WorkspaceBuild> {
        self.fetch(&format!("/api/v2/workspacebuilds/{id}")).await
    }

    /// `GET /users/{user}/workspace/{name}/builds/{number}`.
    pub async fn build_by_number(
        &self,
        user: &str,
        name: &str,
        number: i32,
    ) -> Result<WorkspaceBuild> {
        self.fetch(&format!("/api/v2/users/{user}/workspace/{name}/builds/{number}")).await
    }

    /// `GET /workspacebuilds/{id}/logs`.
    pub async fn build_logs(&self, id: Uuid, q: LogQuery) -> Result<Vec<Log>> {
        self.fetch(&format!("/api/v2/workspacebuilds/{id}/logs{}", q.query())).await
    }

    /// `GET /workspacebuilds/{id}/resources`.
    pub async fn build_resources(&self, id: Uuid) -> Result<Vec<WorkspaceResource>> {
        self.fetch(&format!("/api/v2/workspacebuilds/{id}/resources")).await
    }

    /// `GET /workspacebuilds/{id}/parameters`.
    pub async fn build_parameters(&self, id: Uuid) -> Result<Vec<WorkspaceBuildParameter>> {
        self.fetch(&format!("/api/v2/workspacebuilds/{id}/parameters")).await
    }

    /// `GET /workspacebuilds/{id}/state`: the raw provisioner state.
    pub async fn build_state(&self, id: Uuid) -> Result<Vec<u8>> {
        let path = format!("/api/v2/workspacebuilds/{id}/state");
        Ok(self.send(Method::GET, &path, self.request(Method::GET, &path)).await?.to_vec())
    }

    /// `PATCH /workspacebuilds/{id}/cancel`.
    pub async fn cancel_build(&self, id: Uuid) -> Result<Response> {
        self.call(Method::PATCH, &format!("/api/v2/workspacebuilds/{id}/cancel"), None::<&()>).await
    }

    // ---------------------------------------------------- following logs

    /// Follows a build's logs over WebSocket until the server closes the
    /// socket, calling `each` for every line.
    pub async fn follow_build_logs(
        &self,
        id: Uuid,
        after: Option<i64>,
        each: impl FnMut(Log),
    ) -> Result<()> {
        self.follow_logs(&format!("/api/v2/workspacebuilds/{id}/logs"), after, each).await
    }

    /// Follows a template version's import logs, like `follow_build_logs`.
    pub async fn follow_template_version_logs(
        &self,
        id: Uuid,
        each: impl FnMut(Log),
    ) -> Result<()> {
        self.follow_logs(&format!("/api/v2/templateversions/{id}/logs"), None, each).await
    }

    async fn follow_logs(
        &self,
        path: &str,
        after: Option<i64>,
        mut each: impl FnMut(Log),
    ) -> Result<()> {
        let fail = |message: String| Error::Follow { path: path.to_owned(), message };
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let ws_url = format!("{}{path}?follow=true{after}", self.base.replacen("http", "ws", 1));
        let mut request = ws_url.into_client_request().map_err(|e| fail(e.to_string()))?;
        let token =
            self.token.parse().map_err(|_| fail("the session token is not a header".into()))?;
        request.headers_mut().insert(SESSION_HEADER, token);
        let (mut socket, _) =
            tokio_tungstenite::connect_async(request).await.map_err(|e| fail(e.to_string()))?;
        while let Some(msg) = socket.next().await {
            match msg.map_err(|e| fail(e.to_string()))? {
                Message::Text(text) => {
                    each(serde_json::from_str(&text).map_err(|e| fail(format!("{e}: {text}")))?)
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Packs a template directory into a tar archive in memory.
pub fn tar_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).map_err(|e| {
        std::io::Error::new(e.kind(), format!("failed to pack template {}: {e}", dir.display()))
    })?;
    builder.into_inner()
}

// ------------------------------------------------ for the command line

impl Client {
    /// Whether the server has its first user. There is no read route for
    /// it, so this asks `POST /users/first` with an empty user: the server
    /// answers 409 when a user exists before it looks at the body, and
    /// refuses the empty fields (400) otherwise, creating nothing.
    pub async fn has_first_user(&self) -> Result<bool> {
        let probe = CreateUserRequest::default();
        match self.submit::<serde_json::Value>("/api/v2/users/first", &probe).await {
            Err(e) if e.status() == Some(409) => Ok(true),
            Err(e) if e.status() == Some(400) => Ok(false),
            Err(e) => Err(e),
            // Unreachable with this server (an empty user is invalid), but
            // a user now exists either way.
            Ok(_) => Ok(true),
        }
    }
}
