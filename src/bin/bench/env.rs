//! The bench's environment: spawning `provisionerd server` and
//! `provisionerd start` as real child processes from the release build,
//! reading their memory and CPU from `/proc`, logging in, pushing templates,
//! and small statistics helpers. It measures nothing by itself; the scenario
//! modules decide what to time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use provisionerd::sdk::{
    tar_dir, Client, CreateTemplateRequest, CreateTemplateVersionRequest, CreateWorkspaceRequest,
    ProvisionerJob, TemplateVersion, Workspace, WorkspaceBuild,
};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use uuid::Uuid;

pub const PSK: &str = "bench-pre-shared-key";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct-horse-battery";

/// Paths every scenario needs.
#[derive(Clone)]
pub struct Paths {
    /// The release `provisionerd` next to this bench binary.
    pub provisionerd: PathBuf,
    /// Real terraform (`.tools/bin/terraform`).
    pub terraform: PathBuf,
    /// The repository root (for `testdata/`).
    pub root: PathBuf,
    /// A PostgreSQL server URL whose user may create databases (`--postgres`);
    /// without it the PostgreSQL rows are left out.
    pub postgres: Option<String>,
}

/// The store a scenario's server runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    pub fn name(self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite",
            Store::Postgres => "PostgreSQL",
        }
    }

    /// The stores this run can use: SQLite, and PostgreSQL when given.
    pub fn all(p: &Paths) -> Vec<Store> {
        let mut out = vec![Store::Sqlite];
        if p.postgres.is_some() {
            out.push(Store::Postgres);
        }
        out
    }
}

/// A fresh database on the `--postgres` server; returns its URL.
async fn fresh_database(admin: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("bench_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin).await.context("connect to --postgres")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    Ok(provisionerd::store::postgres::with_database(admin, &name))
}

/// Starts a server on `store` (a fresh PostgreSQL database each time).
pub async fn start_server_on(p: &Paths, o: ServerOpts, store: Store) -> anyhow::Result<Server> {
    let url = match (store, &p.postgres) {
        (Store::Sqlite, _) => None,
        (Store::Postgres, Some(admin)) => Some(fresh_database(admin).await?),
        (Store::Postgres, None) => bail!("PostgreSQL needs --postgres URL"),
    };
    start(p, o, url).await
}

/// Starts `n` servers on one fresh database of `store` (replicas; SQLite
/// has one process per database, so `n` must be 1 there), in order, each
/// with the options `opts(i)` gives it.
pub async fn start_replicas(
    p: &Paths,
    store: Store,
    n: usize,
    opts: impl Fn(usize) -> ServerOpts,
) -> anyhow::Result<Vec<Server>> {
    if n == 1 {
        return Ok(vec![start_server_on(p, opts(0), store).await?]);
    }
    let url = match (store, &p.postgres) {
        (Store::Postgres, Some(admin)) => fresh_database(admin).await?,
        _ => bail!("replicas need PostgreSQL (--postgres URL)"),
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(start(p, opts(i), Some(url.clone())).await?);
    }
    Ok(out)
}

impl Paths {
    pub fn fake_terraform(&self) -> PathBuf {
        self.root.join("testdata/fake-terraform/terraform-ignores-sigint")
    }
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// How to start a server.
#[derive(Clone)]
pub struct ServerOpts {
    pub builtin: u32,
    pub terraform: PathBuf,
    pub cancel_grace: &'static str,
}

/// A `provisionerd server` child with its own scratch directory.
pub struct Server {
    pub proc: Proc,
    pub url: String,
    pub dir: TempDir,
    /// Spawn to `/readyz` answering 200.
    pub ready_after: Duration,
}

impl Server {
    /// `$TMPDIR` of the server (and so of its built-in daemons' terraform).
    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::login(&self.url, EMAIL, PASSWORD).await?)
    }
}

/// A free loopback port (bound and released; a small race we accept).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    Ok(Stdio::from(std::fs::File::create(dir.join(name))?))
}

/// Where a server's log goes and what it keeps: warnings, in its scratch
/// directory (deleted with it). `BENCH_SERVER_LOG=FILTER` (tracing's
/// syntax, e.g. `warn,sqlx::query=debug` to see every statement) keeps
/// it instead, as `/tmp/server-PORT.err`.
struct ServerLog {
    filter: String,
    dir: PathBuf,
}

impl ServerLog {
    fn from_env(scratch: &Path) -> Self {
        match std::env::var("BENCH_SERVER_LOG") {
            Ok(filter) => Self { filter, dir: std::env::temp_dir() },
            Err(_) => Self { filter: "warn".into(), dir: scratch.to_owned() },
        }
    }
}

pub async fn start_server(p: &Paths, o: ServerOpts) -> anyhow::Result<Server> {
    start(p, o, None).await
}

async fn start(p: &Paths, o: ServerOpts, database_url: Option<String>) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    for sub in ["data", "work", "cache", "tmp"] {
        std::fs::create_dir_all(d.join(sub))?;
    }
    let port = free_port()?;
    let log = ServerLog::from_env(d);
    let t0 = Instant::now();
    let child = Command::new(&p.provisionerd)
        .args(["--log", &log.filter, "server", "--address", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(d.join("data"))
        .args(["--builtin-daemons", &o.builtin.to_string(), "--psk", PSK])
        .args(["--cancel-grace", o.cancel_grace])
        .arg("--terraform-path")
        .arg(&o.terraform)
        .arg("--work-dir")
        .arg(d.join("work"))
        .arg("--cache-dir")
        .arg(d.join("cache"))
        .args(database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
        .env("TMPDIR", d.join("tmp"))
        .stdin(Stdio::null())
        .stdout(log_file(d, "server.log")?)
        .stderr(log_file(&log.dir, &format!("server-{port}.err"))?)
        .kill_on_drop(true)
        .spawn()
        .context("failed to spawn provisionerd server: run `cargo build --release` first")?;
    let pid = child.id().context("server pid")?;
    let url = format!("http://127.0.0.1:{port}");
    let proc = Proc { child, pid };
    wait_ready(&format!("{url}/readyz")).await?;
    let ready_after = t0.elapsed();
    Ok(Server { proc, url, dir, ready_after })
}

/// Starts an external daemon against `server`; returns it and its
/// spawn-to-ready time (`--health-address` `/readyz` 200).
pub async fn start_daemon(
    p: &Paths,
    server: &Server,
    terraform: &Path,
    name: &str,
) -> anyhow::Result<(Proc, Duration)> {
    start_daemon_with(p, server, &[server.url.as_str()], terraform, name, &[]).await
}

/// Starts an external daemon given the server URLs `urls` in that order
/// (it connects to the first), with `extra` flags, in `scratch`'s scratch
/// directory (its `$TMPDIR` is `scratch.tmp()`).
pub async fn start_daemon_with(
    p: &Paths,
    scratch: &Server,
    urls: &[&str],
    terraform: &Path,
    name: &str,
    extra: &[&str],
) -> anyhow::Result<(Proc, Duration)> {
    let d = scratch.dir.path();
    let port = free_port()?;
    let t0 = Instant::now();
    let child = Command::new(&p.provisionerd)
        .args(["--log", "warn", "start", "--psk", PSK, "--name", name])
        .args(urls.iter().flat_map(|u| ["--url", u]))
        .args(["--health-address", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--terraform-path")
        .arg(terraform)
        .arg("--work-dir")
        .arg(d.join("work"))
        .arg("--cache-dir")
        .arg(d.join(format!("cache-{name}")))
        .env("TMPDIR", d.join("tmp"))
        .stdin(Stdio::null())
        .stdout(log_file(d, &format!("{name}.log"))?)
        .stderr(log_file(d, &format!("{name}.err"))?)
        .kill_on_drop(true)
        .spawn()
        .context("failed to spawn provisionerd start")?;
    let pid = child.id().context("daemon pid")?;
    let proc = Proc { child, pid };
    wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await?;
    Ok((proc, t0.elapsed()))
}

/// Polls `url` every millisecond until it answers 200 (30 s at most).
async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A `VmRSS`/`VmHWM`-style field of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process so far.
pub fn cpu_time(pid: u32) -> Duration {
    cpu_split(&pid.to_string()).0
}

/// CPU time of a process (`pid`, or `self`) and of its children it has
/// waited for, from `/proc/<pid>/stat`.
pub fn cpu_split(pid: &str) -> (Duration, Duration) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: index 0 is field 3 (state), so utime and
    // stime (fields 14 and 15) are indices 11 and 12, cutime and cstime
    // (16 and 17) indices 13 and 14, in clock ticks (100/s).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let ms = |ticks: u64| Duration::from_millis(ticks * 10);
    (ms(field(11) + field(12)), ms(field(13) + field(14)))
}

/// Uploads a template directory; returns the file id.
pub async fn upload(c: &Client, dir: &Path) -> anyhow::Result<Uuid> {
    Ok(c.upload_tar(tar_dir(dir)?).await?)
}

/// Queues a template-version import of an uploaded file; returns the version.
pub async fn import(c: &Client, file: Uuid, provisioner: &str) -> anyhow::Result<TemplateVersion> {
    let req = CreateTemplateVersionRequest::new(file, provisioner);
    Ok(c.create_template_version("coder", &req).await?)
}

/// Polls `get` every `every` until the job it shows is final.
async fn wait_final<T, F, Fut>(what: &str, every: Duration, get: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(T, ProvisionerJob)>>,
{
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (v, job) = get().await?;
        if is_final(&job.status) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what} did not finish within 600 s");
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls a template version every `every` until its import is final.
pub async fn wait_version(
    c: &Client,
    id: Uuid,
    every: Duration,
) -> anyhow::Result<TemplateVersion> {
    wait_final(&format!("template version {id}"), every, || async {
        let v = c.template_version(id).await?;
        let job = v.job.clone();
        Ok((v, job))
    })
    .await
}

/// Polls a build every `every` until its job is final.
pub async fn wait_build(c: &Client, id: Uuid, every: Duration) -> anyhow::Result<WorkspaceBuild> {
    wait_final(&format!("build {id}"), every, || async {
        let b = c.build(id).await?;
        let job = b.job.clone();
        Ok((b, job))
    })
    .await
}

pub fn is_final(s: &str) -> bool {
    matches!(s, "succeeded" | "failed" | "canceled")
}

/// Pushes a template directory, waits for the import, creates a template;
/// returns the template id.
pub async fn create_template(c: &Client, dir: &Path, provisioner: &str) -> anyhow::Result<Uuid> {
    let file = upload(c, dir).await?;
    let v = import(c, file, provisioner).await?;
    let v = wait_version(c, v.id, Duration::from_millis(20)).await?;
    if v.job.status != "succeeded" {
        bail!("template import failed: {:?}", v.job);
    }
    let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let req = CreateTemplateRequest { name, template_version_id: v.id, ..Default::default() };
    Ok(c.create_template("coder", &req).await?.id)
}

/// Creates a workspace (which queues its first start build).
pub async fn create_workspace(c: &Client, template: Uuid) -> anyhow::Result<Workspace> {
    let name = format!("ws-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let req = CreateWorkspaceRequest { name, template_id: Some(template), ..Default::default() };
    Ok(c.create_workspace("me", &req).await?)
}

/// A directory holding one file.
pub fn dir_with(name: &str, content: &str) -> anyhow::Result<TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(name), content)?;
    Ok(dir)
}

/// A timestamp from the API in nanoseconds since 1970.
pub fn ts_nanos(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    t?.timestamp_nanos_opt()
}

pub fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// The `p`-th percentile (nearest rank) of `v`; sorts it.
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
