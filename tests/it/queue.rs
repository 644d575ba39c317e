//! The queue under faults: a full disk (a real tmpfs filled to the last
//! byte), jobs no daemon can take piled ahead of one it can, a zero
//! heartbeat interval, and a server that ends every session at once.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use provisionerd::proto;
use provisionerd::sdk::{self, CreateTemplateVersionRequest, CreateWorkspaceRequest};
use provisionerd::store::AcquireRequest;
use provisionerd::worker::{Shutdown, WorkerSettings};
use serde_json::json;

use crate::harness::*;

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `8m`), or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, in case a file on it is still open.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros to `path` until the filesystem refuses more.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // What is left is less than a chunk: take it byte by byte.
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
}

async fn readyz(url: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{url}/readyz")).await.expect("readyz");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Asks for a new workspace of `template`.
async fn try_workspace(
    c: &provisionerd::sdk::Client,
    template: uuid::Uuid,
) -> Result<sdk::Workspace, sdk::Error> {
    let req = CreateWorkspaceRequest {
        name: workspace_name(),
        template_id: Some(template),
        ..Default::default()
    };
    c.create_workspace("me", &req).await
}

/// While the disk is full, queueing a build fails with a 503 that says
/// what to do and `/readyz` answers 503; once space is freed, `/readyz`
/// answers 200 and builds queue and run again, without a restart (the
/// writer connection used to stay inside a failed transaction until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_the_queue_recovers_once_space_is_freed() {
    if postgres_store() {
        eprintln!("skipped: fills the disk under the SQLite file");
        return;
    }
    let fs = match Tmpfs::mount("6m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "SKIPPED: a tmpfs cannot be mounted here ({why}); run as root to test a full disk"
            );
            return;
        }
    };
    let data_dir: PathBuf = fs.path().join("data");
    let server = TestServer::start(Opts { data_dir: Some(data_dir), ..Opts::default() }).await;
    let c = server.client().await;
    let echo = echo_template(&json!({"logs": [{"output": "hello"}]}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    let (status, _) = readyz(&server.url).await;
    assert_eq!(status, 200);

    let filler = fs.path().join("filler");
    fill(&filler);
    // The database may still have room in pages and WAL it holds: queue
    // until a write is refused.
    let mut refused = None;
    for _ in 0..500 {
        if let Err(e) = try_workspace(&c, template).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a write refused on a full disk");
    assert_eq!(e.status(), Some(503), "{e}");
    let body = e.response().expect("an error answer");
    assert_eq!(body.message, "The server cannot store changes right now.", "{e}");
    let detail = &body.detail;
    assert!(detail.contains("disk is full") && detail.contains("free disk space"), "{e}");
    let (status, text) = readyz(&server.url).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("disk is full"), "{text}");
    // Still full: still refused, and still not ready.
    let again = try_workspace(&c, template).await.expect_err("still refused");
    assert_eq!(again.status(), Some(503), "{again}");
    assert_eq!(readyz(&server.url).await.0, 503);

    std::fs::remove_file(&filler).expect("free the space");
    wait_for("/readyz to answer 200 again", Duration::from_secs(30), || async {
        (readyz(&server.url).await.0 == 200).then_some(())
    })
    .await;
    let ws = try_workspace(&c, template).await.expect("a workspace once space is freed");
    let build = wait_build(&c, ws.latest_build.id, Duration::from_secs(60)).await;
    assert_eq!(build.job.status, "succeeded", "{build:?}");
    // And again: the queue's writer is healthy, not lucky once.
    let ws = create_workspace(&c, template).await;
    let build = wait_build(&c, ws.latest_build.id, Duration::from_secs(60)).await;
    assert_eq!(build.job.status, "succeeded", "{build:?}");
    server.stop().await;
    drop(fs);
}

/// 600 pending imports for a pool no daemon serves, queued through the API,
/// sit ahead of an untagged import: the idle untagged daemon runs it at
/// once (it used to wait behind them until the pending timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_no_daemon_can_take_do_not_hold_up_one_it_can() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let echo = echo_template(&json!({"logs": [{"output": "hi"}]}));
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(echo.path()).expect("tar")).await.expect("upload");
    let body = CreateTemplateVersionRequest {
        tags: tags(&[("pool", "nobody")]),
        ..CreateTemplateVersionRequest::new(file, "echo")
    };
    let mut queued = tokio::task::JoinSet::new();
    let started = Instant::now();
    for chunk in 0..6 {
        let (c, body) = (server.client().await, body.clone());
        queued.spawn(async move {
            for _ in 0..100 {
                c.create_template_version("coder", &body)
                    .await
                    .unwrap_or_else(|e| panic!("queue an unmatched import (chunk {chunk}): {e}"));
            }
        });
    }
    while let Some(r) = queued.join_next().await {
        r.expect("queueing task");
    }
    eprintln!("queued 600 unmatched imports in {:?}", started.elapsed());
    let started = Instant::now();
    let v = push_version(&c, echo.path(), "echo", plain).await;
    assert_eq!(v.job.status, "succeeded", "{v:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    eprintln!("the untagged import ran in {:?}", started.elapsed());
    let version = c.template_version(v.id).await.expect("version");
    assert_eq!(version.job.status, "succeeded");
    server.stop().await;
}

/// With a zero heartbeat interval (settings built in code skip the flag
/// parser), the reaper still runs: a job whose daemon vanished is failed
/// after the heartbeat timeout instead of staying running forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_heartbeat_interval_does_not_stop_the_reaper() {
    let opts = Opts {
        builtin_daemons: 0,
        heartbeat_interval: Duration::ZERO,
        heartbeat_timeout: Duration::from_secs(1),
        ..Opts::default()
    };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let echo = echo_template(&json!({}));
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(echo.path()).expect("tar")).await.expect("upload");
    let v = c
        .create_template_version("coder", &CreateTemplateVersionRequest::new(file, "echo"))
        .await
        .expect("version");
    // A daemon that takes the job and is never heard from again.
    let url = store_url(&server.data_dir).await;
    let store = provisionerd::store::open(&url).await.expect("second store on the database");
    let ghost = AcquireRequest {
        worker_id: uuid::Uuid::new_v4(),
        worker_name: "ghost".into(),
        tags: provisionerd::domain::default_tags(),
        provisioners: vec![provisionerd::domain::Provisioner::Echo],
    };
    let job = store.acquire_job(&ghost).await.expect("acquire").expect("the import job");
    assert_eq!(job.id, v.job.id);
    let failed =
        wait_for("the reaper to fail the ghost's job", Duration::from_secs(20), || async {
            let v = c.template_version(v.id).await.ok()?;
            (v.job.status == "failed").then_some(v)
        })
        .await;
    assert_eq!(failed.job.error_code.as_deref(), Some("PROVISIONER_DAEMON_LOST"), "{failed:?}");
    assert!(failed.job.error.as_deref().unwrap_or_default().contains("ghost"), "{failed:?}");
    server.stop().await;
}

/// A server that welcomes every daemon and ends the session at once, as
/// one whose store refuses writes did.
struct EndsAtOnce {
    sessions: Arc<AtomicUsize>,
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl proto::provisioner_daemon_server::ProvisionerDaemon for EndsAtOnce {
    type SessionStream = Stream<proto::ServerMessage>;
    type DownloadFileStream = Stream<proto::FileChunk>;

    async fn session(
        &self,
        request: tonic::Request<tonic::Streaming<proto::DaemonMessage>>,
    ) -> Result<tonic::Response<Self::SessionStream>, tonic::Status> {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let welcome = proto::ServerMessage {
                msg: Some(proto::server_message::Msg::Welcome(proto::Welcome {
                    heartbeat_interval_ms: 1000,
                    ..Default::default()
                })),
            };
            let _ = tx.send(Ok(welcome)).await;
            // Once the daemon asks for work, the session is fully open: end it.
            while let Ok(Some(m)) = inbound.message().await {
                if matches!(m.msg, Some(proto::daemon_message::Msg::Acquire(_))) {
                    break;
                }
            }
            let _ = tx.send(Err(tonic::Status::internal("database or disk is full"))).await;
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn download_file(
        &self,
        _request: tonic::Request<proto::DownloadFileRequest>,
    ) -> Result<tonic::Response<Self::DownloadFileStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("no files here"))
    }
}

/// A daemon whose sessions end right after the welcome backs off
/// exponentially instead of reconnecting in a tight loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_backs_off_when_sessions_end_at_once() {
    let sessions = Arc::new(AtomicUsize::new(0));
    let service = proto::provisioner_daemon_server::ProvisionerDaemonServer::new(EndsAtOnce {
        sessions: sessions.clone(),
    });
    let app = tonic::service::Routes::new(service).into_axum_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    let dir = tempfile::tempdir().expect("dir");
    let mut settings = WorkerSettings::new(url);
    settings.credentials.psk = Some("any-psk-the-fake-server-ignores".into());
    settings.provisioners = vec![provisionerd::domain::Provisioner::Echo];
    settings.work_dir = dir.path().join("work");
    settings.cache_dir = dir.path().join("cache");
    let shutdown = Shutdown::default();
    let daemon = tokio::spawn(provisionerd::worker::run(settings, shutdown.clone()));

    // The window is the measurement, not a synchronisation.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = sessions.load(Ordering::SeqCst);
    shutdown.abort.cancel();
    shutdown.drain.cancel();
    tokio::time::timeout(Duration::from_secs(20), daemon)
        .await
        .expect("the daemon stops")
        .expect("daemon task")
        .expect("daemon result");
    stop.cancel();
    let _ = serving.await;
    eprintln!("{seen} sessions in 5 s");
    assert!(seen >= 2, "the daemon reconnected: {seen} sessions");
    assert!(seen < 20, "{seen} sessions in 5 s: no backoff");
}
