//! The protocol's version check and its completion rule, driven at the
//! protocol level: a daemon of another major version (or of a release
//! before versions) is refused at hello with a status naming both
//! versions, one of the same major version and a newer minor version is
//! served, and a daemon refused for its version stops at once instead of
//! retrying. A completion naming log lines the server does not hold ends
//! the session; resent after its lines, it is stored.

use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use provisionerd::proto::{self, daemon_message::Msg as Out, server_message::Msg as In};
use provisionerd::protocol::{ProtocolVersion, VersionMismatch, PROTOCOL_VERSION};
use provisionerd::worker::{Shutdown, WorkerError, WorkerSettings};
use serde_json::json;
use uuid::Uuid;

use crate::harness::*;
use crate::identity::{complete, hello, logs, open, open_raw, Cred};

const PSK: &str = "protocol-test-psk-0123456789";

/// A hello with the given protocol version (`None`: none, as releases
/// before versions sent).
fn hello_with(version: Option<(u32, u32)>) -> Out {
    let Out::Hello(mut h) = hello(Uuid::new_v4(), "versioned", &[]) else {
        unreachable!("hello() makes a hello")
    };
    h.protocol = version.map(|(major, minor)| proto::ProtocolVersion { major, minor });
    Out::Hello(h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_of_another_major_version_is_refused_naming_both_versions() {
    let opts = Opts { builtin_daemons: 0, psk: Some(PSK.into()), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let ours = PROTOCOL_VERSION;
    let other = ours.major + 1;

    let refused = open_raw(&server.url, Cred::Psk(PSK), vec![hello_with(Some((other, 0)))])
        .await
        .err()
        .expect("a daemon of another major version is refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        refused.message(),
        format!(
            "daemon speaks provisionerd protocol {other}.0, this server speaks {ours}; \
             upgrade the daemon or the server so their major versions match"
        )
    );
    let header = refused.metadata().get("x-provisionerd-protocol").and_then(|v| v.to_str().ok());
    assert_eq!(header, Some(ours.to_string().as_str()), "the server says its version");

    let old = open_raw(&server.url, Cred::Psk(PSK), vec![hello_with(None)])
        .await
        .err()
        .expect("a daemon without a version is refused");
    assert_eq!(old.code(), tonic::Code::FailedPrecondition, "{old:?}");
    assert!(
        old.message().contains("no provisionerd protocol version")
            && old.message().contains(&format!("this server speaks {ours}")),
        "{old:?}"
    );

    // Same major version, newer minor version: served.
    let newer = hello_with(Some((ours.major, ours.minor + 1)));
    let mut served = open_raw(&server.url, Cred::Psk(PSK), vec![newer]).await.expect("served");
    match served.next().await {
        Ok(Some(In::Welcome(_))) => {}
        other => panic!("a daemon of a newer minor version is welcomed: {other:?}"),
    }
    let c = server.client().await;
    let listed = c.daemons("coder").await.expect("daemons");
    assert_eq!(listed.len(), 1, "only the served daemon: {listed:?}");
    drop(served);
    server.stop().await;
}

/// A server that refuses every daemon's protocol version.
struct RefusesEveryVersion {
    sessions: Arc<AtomicUsize>,
    server: ProtocolVersion,
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl proto::provisioner_daemon_server::ProvisionerDaemon for RefusesEveryVersion {
    type SessionStream = Stream<proto::ServerMessage>;
    type DownloadFileStream = Stream<proto::FileChunk>;

    async fn session(
        &self,
        _request: tonic::Request<tonic::Streaming<proto::DaemonMessage>>,
    ) -> Result<tonic::Response<Self::SessionStream>, tonic::Status> {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        Err(VersionMismatch { daemon: Some(PROTOCOL_VERSION), server: self.server }.into())
    }

    async fn download_file(
        &self,
        _request: tonic::Request<proto::DownloadFileRequest>,
    ) -> Result<tonic::Response<Self::DownloadFileStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("no files here"))
    }
}

/// A daemon left on an older release: the server refuses its version, and
/// the daemon stops with an error naming both versions after one attempt,
/// instead of reconnecting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_refused_for_its_version_stops_instead_of_retrying() {
    let sessions = Arc::new(AtomicUsize::new(0));
    let server = ProtocolVersion { major: PROTOCOL_VERSION.major + 1, minor: 2 };
    let service =
        proto::provisioner_daemon_server::ProvisionerDaemonServer::new(RefusesEveryVersion {
            sessions: sessions.clone(),
            server,
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
    settings.credentials.psk = Some(PSK.into());
    settings.work_dir = dir.path().join("work");
    settings.cache_dir = dir.path().join("cache");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        provisionerd::worker::run(settings, Shutdown::default()),
    )
    .await
    .expect("the daemon stops by itself");
    stop.cancel();
    let _ = serving.await;
    match result {
        Err(WorkerError::Incompatible(why)) => {
            let ours = PROTOCOL_VERSION;
            assert!(
                why.contains(&format!("daemon speaks provisionerd protocol {ours}"))
                    && why.contains(&format!("this server speaks {server}")),
                "{why}"
            );
        }
        other => panic!("the daemon must fail naming the versions: {other:?}"),
    }
    assert_eq!(sessions.load(Ordering::SeqCst), 1, "no retries after a version refusal");
}

/// A completion is stored only after every log line it names: one that
/// names a line the server does not hold ends the session with an error
/// saying so, and the job keeps running; resent after the missing lines
/// (as a reconnecting daemon does), it is stored with all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_ahead_of_its_log_lines_is_refused_until_they_are_stored() {
    let opts = Opts { builtin_daemons: 0, psk: Some(PSK.into()), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let claimed = Uuid::new_v4();
    let mut daemon = open(&server.url, Cred::Psk(PSK), claimed, "hand", &[]).await;
    daemon.send(Out::Acquire(proto::Acquire { slots: 1 })).await;

    // The daemon imports the template by hand.
    let echo = echo_template(&json!({}));
    let c2 = server.client().await;
    let path = echo.path().to_owned();
    let pushed = tokio::spawn(async move { create_template(&c2, &path, "echo", plain).await.0 });
    let In::Offer(import) = daemon.expect().await else { panic!("an import offer") };
    let import_job: Uuid = import.job_id.parse().expect("job id");
    daemon.send(Out::Ack(proto::Ack { job_id: import.job_id.clone() })).await;
    daemon.send(complete(import_job, "", 0)).await;
    assert!(matches!(daemon.expect().await, In::CompleteAck(_)));
    let template = pushed.await.expect("template");

    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;
    daemon.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let In::Offer(offer) = daemon.expect().await else { panic!("a build offer") };
    let job: Uuid = offer.job_id.parse().expect("job id");
    daemon.send(Out::Ack(proto::Ack { job_id: offer.job_id.clone() })).await;
    daemon.send(logs(job, 1, "line one")).await;
    assert!(matches!(daemon.expect().await, In::LogsAck(a) if a.up_to_seq == 1));
    daemon.send(complete(job, "too-early", 3)).await;
    let status = daemon.ends_with().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let text = status.message();
    assert!(
        text.contains(&job.to_string()) && text.contains("log line 3") && text.contains("up to 1"),
        "names the job and both seqs: {status:?}"
    );
    let now = c.build(build_id).await.expect("build");
    assert_eq!(now.job.status, "running", "the completion was not stored: {now:?}");

    let mut back = open(&server.url, Cred::Psk(PSK), claimed, "hand", &[job]).await;
    for (seq, line) in [(2, "line two"), (3, "line three")] {
        back.send(logs(job, seq, line)).await;
        assert!(matches!(back.expect().await, In::LogsAck(a) if a.up_to_seq == seq));
    }
    back.send(complete(job, "final", 3)).await;
    assert!(matches!(back.expect().await, In::CompleteAck(a) if a.note.is_empty()));
    let done = wait_build(&c, build_id, Duration::from_secs(30)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert_eq!(build_state(&c, build_id).await, "final");
    assert_eq!(log_outputs(&c, build_id).await, ["line one", "line two", "line three"]);
    drop(back);
    server.stop().await;
}
