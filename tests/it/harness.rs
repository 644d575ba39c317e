//! Test harness: start a server in-process on port 0, log in, push
//! templates, wait on builds with deadlines, find stray processes. Every
//! helper speaks the typed SDK (`provisionerd::sdk`); `raw` is for requests
//! that must be malformed or whose status alone matters.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use provisionerd::sdk::{self, tar_dir, Client, LogQuery};
use provisionerd::server::limits::LoginLimits;
use provisionerd::server::{self, ServerConfig, ServerSettings};
use provisionerd::worker::WorkerSettings;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const EMAIL: &str = "owner@example.com";
pub const PASSWORD: &str = "correct-horse-battery";

/// The terraform the tests run: `PROVISIONERD_TEST_TERRAFORM`, the project's
/// `.tools/bin/terraform`, or `terraform` on PATH.
pub fn terraform() -> PathBuf {
    if let Some(p) = std::env::var_os("PROVISIONERD_TEST_TERRAFORM") {
        return PathBuf::from(p);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform");
    if local.exists() {
        return local;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| panic!("no terraform found: run scripts/setup-terraform first"))
}

/// A fault-injecting fake terraform from `testdata/fake-terraform`.
pub fn fake_terraform(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fake-terraform").join(name)
}

pub fn template_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/templates").join(name)
}

/// Options for a test server.
pub struct Opts {
    pub builtin_daemons: u32,
    pub psk: Option<String>,
    pub cancel_grace: Duration,
    /// Reuse a data directory (to restart a server on the same database).
    pub data_dir: Option<PathBuf>,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub pending_timeout: Duration,
    /// Serve TLS with these files; the URL becomes https://localhost:port.
    pub tls: Option<provisionerd::server::TlsFiles>,
    /// Use this terraform (a fault-injecting fake) instead of the real one.
    pub terraform: Option<PathBuf>,
    /// Listen on this address instead of a fresh port (to restart a server
    /// where its daemons expect it).
    pub address: Option<std::net::SocketAddr>,
    /// Offers unacknowledged this long go back to the queue.
    pub offer_ack_timeout: Duration,
    /// The server's HTTP/2 keepalive ping interval and answer timeout.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// How long a log follower's socket may take no lines before it is closed.
    pub follow_stall_timeout: Duration,
    pub login_limits: LoginLimits,
    /// The scheduler's poll interval and clock.
    pub autobuild_poll_interval: Duration,
    pub clock: provisionerd::server::autobuild::Clock,
    /// The built-in daemons' provisioner types (default: terraform and echo).
    pub builtin_provisioners: Option<Vec<provisionerd::domain::Provisioner>>,
    /// Open this database instead of the data dir's (replicas share one).
    pub database_url: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            builtin_daemons: 1,
            psk: None,
            cancel_grace: Duration::from_secs(5),
            data_dir: None,
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(30),
            pending_timeout: Duration::from_secs(1800),
            terraform: None,
            tls: None,
            address: None,
            offer_ack_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            follow_stall_timeout: ServerSettings::default().follow_stall_timeout,
            login_limits: LoginLimits::default(),
            autobuild_poll_interval: Duration::from_secs(60),
            clock: provisionerd::server::autobuild::Clock::system(),
            builtin_provisioners: None,
            database_url: None,
        }
    }
}

/// The database a server on `data_dir` uses: the SQLite file in it, or,
/// with `PROVISIONERD_TEST_STORE=postgres`, a PostgreSQL database of its own
/// on the server `PROVISIONERD_TEST_DATABASE_URL` names (`scripts/test`
/// starts one). The PostgreSQL database's URL is kept in the data dir, so a
/// test that restarts a server on the same data dir gets the same database.
pub async fn store_url(data_dir: &Path) -> String {
    if !postgres_store() {
        return format!("sqlite://{}", data_dir.join("provisionerd.db").display());
    }
    let kept = data_dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return url;
    }
    let url = new_postgres_database().await;
    std::fs::write(&kept, &url).expect("keep the database URL");
    url
}

/// A new, empty PostgreSQL database on the test cluster (`crate::pg`);
/// returns its URL.
pub async fn new_postgres_database() -> String {
    crate::pg::new_database().await
}

/// Whether the tests run on PostgreSQL (`PROVISIONERD_TEST_STORE=postgres`);
/// the few tests that break the SQLite file on purpose skip themselves then.
pub fn postgres_store() -> bool {
    std::env::var("PROVISIONERD_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// A server running in this process.
pub struct TestServer {
    pub url: String,
    dir: Option<TempDir>,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(opts: Opts) -> Self {
        // Server logs go to the test's captured output, shown when it fails.
        // The statement counter (`statements.rs`) listens beside them.
        use tracing_subscriber::prelude::*;
        let filter = tracing_subscriber::EnvFilter::new(
            std::env::var("PROVISIONERD_LOG").unwrap_or_else(|_| "provisionerd=info".into()),
        );
        let logs = tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter);
        let counter =
            crate::statements::StatementCounter.with_filter(crate::statements::StatementFilter);
        let _ = tracing_subscriber::registry().with(logs).with(counter).try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = opts.data_dir.clone().unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let url = match &opts.database_url {
            Some(url) => url.clone(),
            None => store_url(&data_dir).await,
        };
        let store = provisionerd::store::open(&url).await.expect("open store");
        let address = opts.address.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = match opts.tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let mut builtin = WorkerSettings::new("");
        builtin.terraform_path = opts.terraform.clone().unwrap_or_else(terraform);
        builtin.cancel_grace = opts.cancel_grace;
        builtin.work_dir = dir.path().join("work");
        builtin.cache_dir = dir.path().join("cache");
        builtin.name = "test".into();
        if let Some(p) = &opts.builtin_provisioners {
            builtin.provisioners.clone_from(p);
        }
        let config = ServerConfig {
            store,
            psk: opts.psk,
            builtin_daemons: opts.builtin_daemons,
            builtin,
            settings: ServerSettings {
                heartbeat_interval: opts.heartbeat_interval,
                heartbeat_timeout: opts.heartbeat_timeout,
                pending_timeout: opts.pending_timeout,
                offer_ack_timeout: opts.offer_ack_timeout,
                keepalive_interval: opts.keepalive_interval,
                keepalive_timeout: opts.keepalive_timeout,
                follow_stall_timeout: opts.follow_stall_timeout,
                login_limits: opts.login_limits,
                autobuild_poll_interval: opts.autobuild_poll_interval,
                clock: opts.clock.clone(),
                ..ServerSettings::default()
            },
            tls: opts.tls.clone(),
        };
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server::run(listener, config, shutdown.clone()));
        Self { url: base, dir: Some(dir), data_dir, shutdown, handle: Some(handle) }
    }

    /// The server's scratch directory (data, work and cache dirs live here).
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("/nonexistent"), |d| d.path())
    }

    pub async fn client(&self) -> Client {
        Client::login(&self.url, EMAIL, PASSWORD).await.expect("login")
    }

    /// Stops the server and waits for it. Returns its directory, so a test
    /// can start another server on the same database.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
        self.dir.take().expect("server directory")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `f` until it returns `Some`, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// Waits until a build's job has completed and returns the build.
pub async fn wait_build(c: &Client, build_id: Uuid, timeout: Duration) -> sdk::WorkspaceBuild {
    wait_for(&format!("build {build_id} to complete"), timeout, || async {
        let b = c.build(build_id).await.ok()?;
        is_final(&b.job.status).then_some(b)
    })
    .await
}

/// Pushes a template directory as a new version (`extra` sets further
/// fields of the request, e.g. the template or tags), waits for its import,
/// and returns the version.
pub async fn push_version(
    c: &Client,
    dir: &Path,
    provisioner: &str,
    extra: impl FnOnce(&mut sdk::CreateTemplateVersionRequest),
) -> sdk::TemplateVersion {
    let file = c.upload_tar(tar_dir(dir).expect("tar")).await.expect("upload");
    let mut req = sdk::CreateTemplateVersionRequest::new(file, provisioner);
    extra(&mut req);
    let v = c.create_template_version("coder", &req).await.expect("create version");
    wait_for("template import", Duration::from_secs(120), || async {
        let v = c.template_version(v.id).await.ok()?;
        is_final(&v.job.status).then_some(v)
    })
    .await
}

/// Pushes a template and creates a template from it; returns its id and
/// the imported version.
pub async fn create_template(
    c: &Client,
    dir: &Path,
    provisioner: &str,
    extra: impl FnOnce(&mut sdk::CreateTemplateVersionRequest),
) -> (Uuid, sdk::TemplateVersion) {
    let v = push_version(c, dir, provisioner, extra).await;
    assert_eq!(v.job.status, "succeeded", "import failed: {v:?}");
    let name = format!("t-{}", &Uuid::new_v4().simple().to_string()[..10]);
    let req = sdk::CreateTemplateRequest { name, template_version_id: v.id, ..Default::default() };
    let t = c.create_template("coder", &req).await.expect("create template");
    (t.id, v)
}

/// A fresh workspace name.
pub fn workspace_name() -> String {
    format!("ws-{}", &Uuid::new_v4().simple().to_string()[..10])
}

/// Creates a workspace of the caller's and returns it (with `latest_build`).
pub async fn create_workspace(c: &Client, template_id: Uuid) -> sdk::Workspace {
    let req = sdk::CreateWorkspaceRequest {
        name: workspace_name(),
        template_id: Some(template_id),
        ..Default::default()
    };
    c.create_workspace("me", &req).await.expect("create workspace")
}

/// Queues a build of `transition` with defaults and returns it.
pub async fn build(c: &Client, workspace_id: Uuid, transition: &str) -> sdk::WorkspaceBuild {
    c.create_build(workspace_id, &sdk::CreateWorkspaceBuildRequest::new(transition))
        .await
        .expect("create build")
}

/// Asks to cancel a build; returns the HTTP status.
pub async fn cancel_build(c: &Client, build_id: Uuid) -> u16 {
    match c.cancel_build(build_id).await {
        Ok(_) => 200,
        Err(e) => e.status().unwrap_or_else(|| panic!("cancel: {e}")),
    }
}

/// A build's raw provisioner state, as the state endpoint returns it.
pub async fn build_state(c: &Client, build_id: Uuid) -> String {
    let state = c.build_state(build_id).await.expect("state endpoint");
    String::from_utf8(state).expect("state is text")
}

/// The text of a build's stored log lines, in order.
pub async fn log_outputs(c: &Client, build_id: Uuid) -> Vec<String> {
    let logs = c.build_logs(build_id, LogQuery::default()).await.expect("logs");
    logs.into_iter().map(|l| l.output.into_owned()).collect()
}

/// Pids of processes whose environment contains `needle` (e.g. a unique
/// `CODER_WORKSPACE_ID=...`), so a test can prove nothing of a job survives.
pub fn processes_with_env(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// An echo template directory written from a script.
pub fn echo_template(script: &Value) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("echo.json"), script.to_string()).expect("write echo.json");
    dir
}

/// Raw HTTP for status-code assertions.
pub async fn raw(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.header("Coder-Session-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Tags from pairs.
pub fn tags(pairs: &[(&str, &str)]) -> sdk::Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Name/value pairs (parameters, variable values).
pub fn values(pairs: &[(&str, &str)]) -> Vec<sdk::WorkspaceBuildParameter> {
    pairs
        .iter()
        .map(|(n, v)| sdk::WorkspaceBuildParameter {
            name: (*n).to_owned(),
            value: (*v).to_owned(),
        })
        .collect()
}

/// No further fields on a template version request.
pub fn plain(_: &mut sdk::CreateTemplateVersionRequest) {}

/// A version request with these provisioner tags.
pub fn tagged(pairs: &[(&str, &str)]) -> impl FnOnce(&mut sdk::CreateTemplateVersionRequest) {
    let t = tags(pairs);
    move |r| r.tags = t
}

/// A version request with these variable values.
pub fn with_vars(pairs: &[(&str, &str)]) -> impl FnOnce(&mut sdk::CreateTemplateVersionRequest) {
    let v = values(pairs);
    move |r| r.user_variable_values = v
}

/// Creates the member `username` (`{username}@example.com`) through the
/// admin's client and signs in as them on `url`.
pub async fn new_member(admin: &Client, url: &str, username: &str) -> Client {
    let email = format!("{username}@example.com");
    let password = "a-long-enough-password";
    let req = sdk::CreateUserRequest {
        email: email.clone(),
        username: username.into(),
        password: password.into(),
        ..Default::default()
    };
    admin.create_user(&req).await.expect("create a member");
    Client::login(url, &email, password).await.expect("the member signs in")
}
