//! A daemon's identity is bound to its credential, driven at the protocol
//! level with a tonic client built here: a daemon holding another credential
//! that claims a running daemon's id and jobs gets no ownership, cannot log
//! to, complete or download for those jobs, and does not replace the real
//! daemon in the list. Protocol violations end the session with a status
//! that names them, and an empty `--psk` stops the server from starting.

use std::time::Duration;

use provisionerd::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use provisionerd::proto::{self, daemon_message::Msg as Out, server_message::Msg as In};
use provisionerd::protocol::{KEY_HEADER, PROTOCOL_VERSION, PSK_HEADER};
use provisionerd::sdk::{CreateProvisionerKeyRequest, ProvisionerDaemon};
use provisionerd::server::daemon_keys::Credential;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::harness::*;

/// How a hand-driven daemon authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Cred<'a> {
    Psk(&'a str),
    Key(&'a str),
}

impl Cred<'_> {
    fn apply<T>(self, request: &mut tonic::Request<T>) {
        let (header, value) = match self {
            Cred::Psk(v) => (PSK_HEADER, v),
            Cred::Key(v) => (KEY_HEADER, v),
        };
        request.metadata_mut().insert(header, value.parse().expect("ascii"));
    }
}

/// A daemon driven by hand: what it sends, and what it receives.
pub(crate) struct Hand {
    tx: mpsc::Sender<proto::DaemonMessage>,
    inbound: tonic::Streaming<proto::ServerMessage>,
    /// The daemon's id on the server, from the welcome.
    server_id: String,
}

pub(crate) fn hello(daemon_id: Uuid, name: &str, running: &[Uuid]) -> Out {
    Out::Hello(proto::Hello {
        daemon_id: daemon_id.to_string(),
        name: name.into(),
        version: "test".into(),
        tags: Default::default(),
        provisioners: vec!["echo".into()],
        running_job_ids: running.iter().map(Uuid::to_string).collect(),
        protocol: Some(PROTOCOL_VERSION.into()),
    })
}

/// Opens a session whose first messages are `first`.
pub(crate) async fn open_raw(
    url: &str,
    cred: Cred<'_>,
    first: Vec<Out>,
) -> Result<Hand, tonic::Status> {
    let mut client = ProvisionerDaemonClient::connect(url.to_owned()).await.expect("connect");
    let (tx, rx) = mpsc::channel(16);
    for msg in first {
        tx.send(proto::DaemonMessage { msg: Some(msg) }).await.expect("queue message");
    }
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    cred.apply(&mut request);
    let inbound = client.session(request).await?.into_inner();
    Ok(Hand { tx, inbound, server_id: String::new() })
}

/// Says hello and waits for the welcome.
pub(crate) async fn open(
    url: &str,
    cred: Cred<'_>,
    id: Uuid,
    name: &str,
    running: &[Uuid],
) -> Hand {
    let mut hand = open_raw(url, cred, vec![hello(id, name, running)]).await.expect("session");
    match hand.next().await {
        Ok(Some(In::Welcome(w))) => Hand { server_id: w.daemon_id, ..hand },
        other => panic!("expected a welcome, got {other:?}"),
    }
}

impl Hand {
    pub(crate) async fn send(&self, msg: Out) {
        self.tx.send(proto::DaemonMessage { msg: Some(msg) }).await.expect("send");
    }

    /// The next message; `Ok(None)` when the stream ended with `OK`.
    pub(crate) async fn next(&mut self) -> Result<Option<In>, tonic::Status> {
        let msg = tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
            .await
            .expect("the server answers in time")?;
        Ok(msg.map(|m| m.msg.expect("a message with content")))
    }

    /// The next message other than heartbeat acks, which must be there.
    pub(crate) async fn expect(&mut self) -> In {
        loop {
            match self.next().await {
                Ok(Some(In::HeartbeatAck(_))) => continue,
                Ok(Some(m)) => return m,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// How the session ends: the status it ends with (`OK` fails the test).
    pub(crate) async fn ends_with(&mut self) -> tonic::Status {
        loop {
            match self.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the session ended with OK instead of an error status"),
                Err(status) => return status,
            }
        }
    }
}

pub(crate) fn logs(job: Uuid, seq: i64, output: &str) -> Out {
    Out::Logs(proto::LogBatch {
        job_id: job.to_string(),
        lines: vec![proto::LogLine {
            seq,
            source: proto::LogSource::Provisioner.into(),
            level: proto::LogLevel::Info.into(),
            stage: "Starting workspace".into(),
            output: output.into(),
            created_at_unix_ms: 0,
        }],
    })
}

pub(crate) fn complete(job: Uuid, state: &str, last_log_seq: i64) -> Out {
    Out::Complete(proto::Complete {
        job_id: job.to_string(),
        state: Some(state.as_bytes().to_vec()),
        last_log_seq,
        ..Default::default()
    })
}

/// Downloads a file as `daemon_id` for `job`; the chunks or the refusal.
async fn download(
    url: &str,
    cred: Cred<'_>,
    file: &str,
    daemon_id: Uuid,
    job: Uuid,
) -> Result<Vec<u8>, tonic::Status> {
    let mut client = ProvisionerDaemonClient::connect(url.to_owned()).await.expect("connect");
    let mut request = tonic::Request::new(proto::DownloadFileRequest {
        file_id: file.to_owned(),
        daemon_id: daemon_id.to_string(),
        job_id: job.to_string(),
    });
    cred.apply(&mut request);
    let mut stream = client.download_file(request).await?.into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        data.extend_from_slice(&chunk.data);
    }
    Ok(data)
}

fn assert_denied(result: Result<Vec<u8>, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{what}: {status:?}");
    assert!(status.message().contains("downloads only the files of jobs"), "{what}: {status:?}");
}

/// A provisioner key tagged `pool=gpu`, made through the REST API.
async fn gpu_key(c: &provisionerd::sdk::Client) -> String {
    let req = CreateProvisionerKeyRequest { name: "gpu".into(), tags: tags(&[("pool", "gpu")]) };
    c.create_key("coder", &req).await.expect("create key").key
}

async fn build_logs(c: &provisionerd::sdk::Client, build: Uuid) -> String {
    log_outputs(c, build).await.join("\n")
}

async fn daemons(c: &provisionerd::sdk::Client) -> Vec<ProvisionerDaemon> {
    c.daemons("coder").await.expect("daemons")
}

/// The probe's attack on the built-in daemon: a holder of a `pool=gpu`
/// key says hello with the built-in daemon's id (as the API shows it) and
/// its running job. It is told to cancel its copy, its log line and its
/// completion are dropped, its download is refused, and the real daemon
/// stays listed and completes the job with the real state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostor_with_another_key_cannot_take_the_builtin_daemons_job() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let key = gpu_key(&c).await;
    // Long enough for the attack to land while the job runs.
    let script = json!({
        "state": "real-state",
        "logs": [{"output": "real line"}],
        "transitions": {"start": {"delay_ms": 8000}},
    });
    let echo = echo_template(&script);
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;
    let running = wait_for("the build to run", Duration::from_secs(30), || async {
        let b = c.build(build_id).await.ok()?;
        (b.job.status == "running").then_some(b)
    })
    .await;
    let job = running.job.id;
    let owner = running.job.worker_id.expect("a running job has a worker");
    let file = running.job.file_id.to_string();
    let before = daemons(&c).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].id, owner, "the list shows the id jobs record");

    let mut impostor = open(&server.url, Cred::Key(&key), owner, "impostor", &[job]).await;
    assert_ne!(impostor.server_id, owner.to_string(), "the impostor is another daemon");
    match impostor.expect().await {
        In::Cancel(c) => assert_eq!(c.job_id, job.to_string(), "told to drop its copy"),
        other => panic!("the impostor must be told the job is not its own: {other:?}"),
    }
    impostor.send(logs(job, 1_000, "injected by the impostor")).await;
    assert!(matches!(impostor.expect().await, In::LogsAck(_)), "acknowledged, not stored");
    impostor.send(complete(job, "impostor-state", 1_000)).await;
    assert!(matches!(impostor.expect().await, In::CompleteAck(_)), "acknowledged, not stored");
    assert_denied(
        download(&server.url, Cred::Key(&key), &file, owner, job).await,
        "the impostor downloads the real daemon's template",
    );

    let listed = daemons(&c).await;
    assert_eq!(listed.len(), 2, "both daemons are listed: {listed:?}");
    let real = listed.iter().find(|d| d.id == owner).expect("the real daemon");
    assert_eq!(real.name, "test-builtin-0", "{listed:?}");
    let fake = listed.iter().find(|d| d.name == "impostor").expect("the impostor");
    assert_ne!(fake.id, owner);
    assert_eq!(fake.tags["pool"], "gpu", "{fake:?}");
    let now = c.build(build_id).await.expect("build");
    assert_eq!(now.job.status, "running", "the impostor neither completed nor canceled it");

    let done = wait_build(&c, build_id, Duration::from_secs(60)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert_eq!(done.job.worker_id, Some(owner));
    assert_eq!(build_state(&c, build_id).await, "real-state");
    let text = build_logs(&c, build_id).await;
    assert!(text.contains("real line") && !text.contains("injected"), "{text}");

    // Naming the ended job in a hello (as a daemon returning from a
    // partition would) does not let the impostor hold back the workspace's
    // next build while it stays connected.
    let mut holder = open(&server.url, Cred::Key(&key), owner, "holder", &[job]).await;
    assert!(matches!(holder.expect().await, In::Cancel(c) if c.job_id == job.to_string()));
    let ws_id = ws.id;
    let next = build(&c, ws_id, "stop").await;
    let next_id = next.id;
    let stopped = wait_build(&c, next_id, Duration::from_secs(30)).await;
    assert_eq!(stopped.job.status, "succeeded", "{stopped:?}");
    drop(holder);
    drop(impostor);
    server.stop().await;
}

/// The same attack on an external daemon whose claimed id the attacker
/// knows: the owner is (credential, id), so the key holder's hello with
/// that id owns nothing, its unannounced log batch ends its session with
/// an error, and only the real daemon can download the job's template.
/// A reconnect with the same key and id resumes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostor_knowing_a_psk_daemons_id_owns_nothing_and_a_reconnect_resumes() {
    let psk = "identity-test-psk-0123456789";
    let opts = Opts { builtin_daemons: 0, psk: Some(psk.into()), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let key = gpu_key(&c).await;
    let claimed = Uuid::new_v4();
    let owner = Credential::Psk.daemon_id(claimed);
    let mut real = open(&server.url, Cred::Psk(psk), claimed, "real", &[]).await;
    assert_eq!(real.server_id, owner.to_string(), "the welcome says the daemon's server id");
    real.send(Out::Acquire(proto::Acquire { slots: 1 })).await;

    // The real daemon imports the template by hand: ack, complete.
    let echo = echo_template(&json!({}));
    let c2 = server.client().await;
    let path = echo.path().to_owned();
    let pushed = tokio::spawn(async move { create_template(&c2, &path, "echo", plain).await.0 });
    let In::Offer(import) = real.expect().await else { panic!("an import offer") };
    let import_job: Uuid = import.job_id.parse().expect("job id");
    real.send(Out::Ack(proto::Ack { job_id: import.job_id.clone() })).await;
    let archive = download(&server.url, Cred::Psk(psk), &import.file_id, claimed, import_job)
        .await
        .expect("a daemon downloads the template of its own job");
    assert!(!archive.is_empty());
    real.send(complete(import_job, "", 0)).await;
    assert!(matches!(real.expect().await, In::CompleteAck(_)));
    assert_denied(
        download(&server.url, Cred::Psk(psk), &import.file_id, claimed, import_job).await,
        "a completed job's template",
    );
    let template = pushed.await.expect("template");

    // The build waits in the queue. A daemon that names it in its hello
    // does not own it (told to cancel), but once it asks for work and acks
    // the offer, the job is its own and its lines are stored.
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;
    let pending = ws.latest_build.job.id;
    drop(real);
    let mut real = open(&server.url, Cred::Psk(psk), claimed, "real", &[pending]).await;
    assert!(matches!(real.expect().await, In::Cancel(c) if c.job_id == pending.to_string()));
    real.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let In::Offer(offer) = real.expect().await else { panic!("a build offer") };
    let job: Uuid = offer.job_id.parse().expect("job id");
    assert_eq!(job, pending);
    real.send(Out::Ack(proto::Ack { job_id: offer.job_id.clone() })).await;
    real.send(logs(job, 1, "first real line")).await;
    assert!(matches!(real.expect().await, In::LogsAck(a) if a.up_to_seq == 1));
    let b = c.build(build_id).await.expect("build");
    assert_eq!(b.job.worker_id, Some(owner), "the job's worker is (psk, claimed id)");

    let mut impostor = open(&server.url, Cred::Key(&key), claimed, "impostor", &[job]).await;
    assert!(matches!(impostor.expect().await, In::Cancel(_)), "no ownership for the impostor");
    impostor.send(logs(job, 2, "injected by the impostor")).await;
    assert!(matches!(impostor.expect().await, In::LogsAck(_)));
    for (who, cred, id) in [
        ("the key holder with the real id", Cred::Key(&key), claimed),
        ("a psk holder with another id", Cred::Psk(psk), Uuid::new_v4()),
        ("anyone with a file id and no job", Cred::Psk(psk), claimed),
    ] {
        let job_id = if who.starts_with("anyone") { Uuid::new_v4() } else { job };
        assert_denied(download(&server.url, cred, &offer.file_id, id, job_id).await, who);
    }
    // A file that does not exist is refused the same way.
    assert_denied(
        download(&server.url, Cred::Psk(psk), &Uuid::new_v4().to_string(), claimed, job).await,
        "a file that does not exist",
    );
    let listed = daemons(&c).await;
    assert!(listed.iter().any(|d| d.id == owner && d.name == "real"), "{listed:?}");

    // Without naming the job in its hello, the impostor's log batch is a
    // protocol violation that ends its session.
    let mut bold = open(&server.url, Cred::Key(&key), claimed, "bold", &[]).await;
    bold.send(logs(job, 3, "injected again")).await;
    let status = bold.ends_with().await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(&job.to_string()), "names the job: {status:?}");

    // The real daemon loses its connection and comes back: same key, same
    // id, so it resumes the job (no cancel) and its logs are stored.
    drop(real);
    let mut back = open(&server.url, Cred::Psk(psk), claimed, "real", &[job]).await;
    back.send(logs(job, 2, "real line")).await;
    match back.expect().await {
        In::LogsAck(ack) => assert_eq!(ack.up_to_seq, 2, "stored"),
        other => panic!("the reconnected daemon owns its job: {other:?}"),
    }
    back.send(complete(job, "real-state", 2)).await;
    assert!(matches!(back.expect().await, In::CompleteAck(_)));
    let done = wait_build(&c, build_id, Duration::from_secs(30)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert_eq!(build_state(&c, build_id).await, "real-state");
    let text = build_logs(&c, build_id).await;
    assert!(text.contains("first real line\nreal line") && !text.contains("injected"), "{text}");
    drop((impostor, back));
    server.stop().await;
}

/// Messages before hello, a second hello, and job ids the session does not
/// know end the stream with a non-OK status naming what was wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_end_the_session_with_a_status() {
    let psk = "violation-test-psk-0123456789";
    let opts = Opts { builtin_daemons: 0, psk: Some(psk.into()), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let url = server.url.clone();
    let cred = Cred::Psk(psk);

    let early = open_raw(&url, cred, vec![Out::Acquire(proto::Acquire { slots: 1 })]).await;
    let status = early.err().expect("a session that starts without hello is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("must start with hello, not acquire"), "{status:?}");

    let mut twice = open(&url, cred, Uuid::new_v4(), "twice", &[]).await;
    twice.send(hello(Uuid::new_v4(), "twice", &[])).await;
    let status = twice.ends_with().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("second hello"), "{status:?}");

    let stranger = Uuid::new_v4();
    let cases: [(&str, Out); 4] = [
        ("logs for job", logs(stranger, 1, "x")),
        ("ack for job", Out::Ack(proto::Ack { job_id: stranger.to_string() })),
        ("reject for job", Out::Reject(proto::Reject { job_id: stranger.to_string() })),
        ("completion of job", complete(stranger, "s", 0)),
    ];
    for (what, msg) in cases {
        let mut s = open(&url, cred, Uuid::new_v4(), "unknown", &[]).await;
        s.send(msg).await;
        let status = s.ends_with().await;
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{what}: {status:?}");
        let text = status.message();
        assert!(text.contains(what) && text.contains(&stranger.to_string()), "{what}: {text}");
    }

    let mut bad = open(&url, cred, Uuid::new_v4(), "bad", &[]).await;
    bad.send(Out::Ack(proto::Ack { job_id: "not-a-uuid".into() })).await;
    let status = bad.ends_with().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("job_id") && status.message().contains("not-a-uuid"));
    server.stop().await;
}

/// `--psk ''` and `--psk '   '` (flag or environment) stop the server at
/// start with a message that says what to do; so does the library entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_psk_is_refused_at_start() {
    for (flag, env) in
        [(Some(""), None), (Some("   "), None), (None, Some("")), (None, Some(" \t"))]
    {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"));
        cmd.args(["server", "--address", "127.0.0.1:0", "--builtin-daemons", "0"]);
        let dir = tempfile::tempdir().expect("temp dir");
        cmd.arg("--data-dir").arg(dir.path());
        if let Some(f) = flag {
            cmd.args(["--psk", f]);
        }
        cmd.env_remove("PROVISIONERD_PSK");
        if let Some(e) = env {
            cmd.env("PROVISIONERD_PSK", e);
        }
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .expect("the server refuses at once instead of serving")
            .expect("run provisionerd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag:?}/{env:?}: {stderr}");
        assert!(stderr.contains("empty or whitespace"), "{flag:?}/{env:?}: {stderr}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store = provisionerd::store::open(&url).await.expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = provisionerd::server::ServerConfig {
        store,
        psk: Some(" ".into()),
        builtin_daemons: 0,
        builtin: provisionerd::worker::WorkerSettings::new(""),
        settings: Default::default(),
        tls: None,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = provisionerd::server::run(listener, config, shutdown.clone());
    let result = tokio::time::timeout(Duration::from_secs(10), run).await;
    shutdown.cancel();
    let err = result.expect("run returns at once").expect_err("a blank psk is refused");
    assert!(err.to_string().contains("empty or whitespace"), "{err}");
}
