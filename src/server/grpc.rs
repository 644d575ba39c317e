//! The gRPC daemon service: the server's side of the protocol in
//! `proto/provisionerd/v1`.
//!
//! Each daemon session is one task ([`DaemonSession`]) that owns the session's
//! bookkeeping: how many jobs the daemon asked for, which offers await an
//! acknowledgement, and which jobs it runs. Jobs are offered when the event
//! bus says one was queued (no poll interval); cancels are pushed when the bus
//! says an owned job changed. Offers that were never acknowledged go back to
//! pending when the session ends, so a job is never lost in a handover.
//!
//! A daemon's identity is its credential plus the id it claims: the id a
//! session works under is [`Credential::daemon_id`], so a daemon holding
//! another credential can neither take over this daemon's jobs nor replace
//! its registry entry. A daemon may only act on jobs of its own session: a
//! message naming another job, a second hello, or anything before hello ends
//! the session with an error status saying what was wrong. A daemon of
//! another protocol major version is refused at hello (FAILED_PRECONDITION
//! naming both versions).
//!
//! Messages are read and built by [`crate::protocol`]; the store and the
//! event bus see domain types only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use uuid::Uuid;

use super::daemon_keys::{secret_matches, Credential, DaemonAuth};
use super::offer::job_offer;
use super::{AppState, Event, StoredLogs};
use crate::app;
use crate::domain::{Job, JobType, Provisioner, Tags, DAEMON_LOST};
use crate::proto::{self, daemon_message::Msg as In, server_message::Msg as Out};
use crate::protocol::{self, cancel, ProtocolVersion, KEY_HEADER};
use crate::store::{AcquireRequest, CompleteResult, LogBatch, StoreError};

/// How often a job's log batches also mark it as alive (its heartbeats do
/// too): once per batch cost a write of the job's row every few milliseconds.
const LOG_TOUCH_EVERY: Duration = Duration::from_secs(1);

/// The tonic service.
#[derive(Clone)]
pub struct DaemonService {
    state: AppState,
    auth: DaemonAuth,
    shutdown: CancellationToken,
}

impl DaemonService {
    pub fn new(state: AppState, auth: DaemonAuth, shutdown: CancellationToken) -> Self {
        Self { state, auth, shutdown }
    }

    /// Accepts a provisioner key (looked up in the store) or a pre-shared key.
    async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, Status> {
        let Some(value) = metadata.get(KEY_HEADER) else {
            let credential = self.auth.check(metadata)?;
            return Ok(Principal { credential, tags: None });
        };
        let invalid = || Status::unauthenticated("invalid or revoked provisioner key");
        let given = value.to_str().map_err(|_| invalid())?;
        let (id, secret) = given.split_once('.').ok_or_else(invalid)?;
        let id: Uuid = id.parse().map_err(|_| invalid())?;
        let key = match self.state.store.provisioner_key(id).await {
            Ok(key) => key,
            Err(StoreError::NotFound) => return Err(invalid()),
            Err(e) => return Err(store_status(e)),
        };
        if !secret_matches(secret, &key.hashed_secret) {
            return Err(invalid());
        }
        Ok(Principal { credential: Credential::Key(id), tags: Some(key.tags) })
    }

    pub fn into_server(self) -> proto::provisioner_daemon_server::ProvisionerDaemonServer<Self> {
        proto::provisioner_daemon_server::ProvisionerDaemonServer::new(self)
            .max_decoding_message_size(protocol::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(protocol::MAX_MESSAGE_BYTES)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl proto::provisioner_daemon_server::ProvisionerDaemon for DaemonService {
    type SessionStream = BoxStream<proto::ServerMessage>;
    type DownloadFileStream = BoxStream<proto::FileChunk>;

    async fn session(
        &self,
        request: Request<Streaming<proto::DaemonMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if self.shutdown.is_cancelled() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        let principal = self.authenticate(request.metadata()).await?;
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(proto::DaemonMessage { msg: Some(In::Hello(h)) }) => h,
            Some(other) => {
                return Err(Status::invalid_argument(format!(
                    "protocol violation: a session must start with hello, not {}",
                    message_name(&other.msg)
                )))
            }
            None => {
                return Err(Status::invalid_argument(
                    "protocol violation: the session ended before the daemon said hello",
                ))
            }
        };
        if let Err(mismatch) = protocol::check_daemon_version(&hello) {
            tracing::warn!(daemon = %hello.name, %mismatch, "daemon refused");
            return Err(mismatch.into());
        }
        let mut daemon = DaemonInfo::from_hello(hello, principal.credential)?;
        if let Some(tags) = principal.tags {
            // A key's tags decide what the daemon may run, not its flags.
            daemon.tags = tags;
        }
        let key = match principal.credential {
            Credential::Key(id) => Some(id),
            Credential::Internal | Credential::Psk => None,
        };
        let (tx, rx) = mpsc::channel(256);
        let session = DaemonSession {
            state: self.state.clone(),
            events: self.state.events.subscribe(),
            tx,
            daemon,
            credits: 0,
            offered: HashSet::new(),
            offered_at: HashMap::new(),
            owned: BTreeSet::new(),
            disowned: HashSet::new(),
            log_touched: HashMap::new(),
            logs_stored: HashMap::new(),
            registration: 0,
            key,
        };
        let span = tracing::info_span!("session", daemon = %session.daemon.name);
        tokio::spawn(session.run(inbound, self.shutdown.clone()).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// Serves a template archive only to the daemon that runs a job using it:
    /// the job must be offered to or owned by this daemon (its credential-
    /// scoped id) and not completed. Every refusal reads the same, so a
    /// daemon cannot probe which files exist.
    async fn download_file(
        &self,
        request: Request<proto::DownloadFileRequest>,
    ) -> Result<Response<Self::DownloadFileStream>, Status> {
        let principal = self.authenticate(request.metadata()).await?;
        let req = protocol::download_from_proto(request.get_ref())
            .map_err(|e| Status::invalid_argument(e.0))?;
        let (file_id, job_id) = (req.file_id, req.job_id);
        let daemon_id = principal.credential.daemon_id(req.daemon_id);
        let denied = || {
            Status::permission_denied(format!(
                "file {file_id} is not the template of job {job_id} running on this daemon: \
                 a daemon downloads only the files of jobs offered to it"
            ))
        };
        let job = match self.state.store.job(job_id).await {
            Ok(job) => job,
            Err(StoreError::NotFound) => return Err(denied()),
            Err(e) => return Err(store_status(e)),
        };
        let runs_it = job.worker_id == Some(daemon_id) && job.completed_at.is_none();
        if !runs_it || job.file_id != file_id {
            tracing::warn!(job = %job_id, file = %file_id, daemon = %daemon_id, "file download refused");
            return Err(denied());
        }
        let file = self.state.store.file(file_id).await.map_err(store_status)?;
        let chunks = protocol::file_chunks(&file.data).into_iter().map(Ok::<_, Status>);
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

/// How a daemon authenticated.
struct Principal {
    credential: Credential,
    /// A provisioner key's tags, which replace the daemon's own.
    tags: Option<Tags>,
}

/// Who is on the other end of a session.
#[derive(Debug, Clone)]
struct DaemonInfo {
    /// The daemon's id on the server (scoped by its credential): the worker
    /// of its jobs and its key in the registry.
    id: Uuid,
    /// The id the daemon sent in its hello, for logs.
    claimed: Uuid,
    name: String,
    tags: Tags,
    provisioners: Vec<Provisioner>,
    version: String,
    protocol: ProtocolVersion,
    resume: Vec<Uuid>,
}

impl DaemonInfo {
    fn from_hello(h: proto::Hello, credential: Credential) -> Result<Self, Status> {
        let h = protocol::hello_from_proto(h)
            .map_err(|e| Status::invalid_argument(format!("protocol violation: hello: {e}")))?;
        Ok(Self {
            id: credential.daemon_id(h.daemon_id),
            claimed: h.daemon_id,
            name: h.name,
            tags: crate::domain::with_default_scope(h.tags),
            provisioners: h.provisioners,
            version: h.version,
            protocol: h.protocol,
            resume: h.running_job_ids,
        })
    }
}

/// One daemon's session: the task that owns its bookkeeping.
struct DaemonSession {
    state: AppState,
    events: broadcast::Receiver<Event>,
    tx: mpsc::Sender<Result<proto::ServerMessage, Status>>,
    daemon: DaemonInfo,
    /// Jobs the daemon still wants.
    credits: u32,
    /// Jobs offered but not yet acknowledged.
    offered: HashSet<Uuid>,
    /// When each of them was offered: unacknowledged past
    /// `offer_ack_timeout`, an offer goes back to the queue.
    offered_at: HashMap<Uuid, Instant>,
    /// Jobs the daemon runs.
    owned: BTreeSet<Uuid>,
    /// Jobs the daemon may not run but must be able to let go of: jobs it
    /// named in its hello that are not its own (another daemon's, or gone),
    /// and jobs it acknowledged too late (they went back to the queue). It
    /// was told to cancel them; what it still sends for them is acknowledged
    /// and dropped.
    disowned: HashSet<Uuid>,
    /// When each owned job was last marked alive for its logs.
    log_touched: HashMap<Uuid, Instant>,
    /// The highest log `seq` stored for each owned job, as far as this
    /// session has seen: a completion within it needs no store read.
    logs_stored: HashMap<Uuid, i64>,
    /// This session's registration in the daemon registry.
    registration: u64,
    /// The provisioner key the daemon authenticated with, if any.
    key: Option<Uuid>,
}

/// Why a session loop step failed.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("daemon went away")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    App(#[from] app::Error),
    /// The daemon broke the protocol (message order, malformed fields).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The daemon named a job that is not one of this session's.
    #[error("protocol violation: {0}")]
    NotYourJob(String),
    #[error("the daemon's provisioner key was revoked")]
    Revoked,
    /// The connection broke or was closed under the stream (the daemon
    /// exited, or the keepalive found it dead): not the daemon's fault.
    #[error("connection closed: {0}")]
    Disconnected(String),
}

impl DaemonSession {
    async fn run(
        mut self,
        mut inbound: Streaming<proto::DaemonMessage>,
        shutdown: CancellationToken,
    ) {
        tracing::info!(id = %self.daemon.id, claimed_id = %self.daemon.claimed, tags = ?self.daemon.tags, protocol = %self.daemon.protocol, "daemon connected");
        let result = async {
            self.start().await?;
            loop {
                let offer_due = self.next_offer_due();
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    msg = inbound.message() => match msg {
                        Ok(Some(m)) => self.on_message(m).await?,
                        Ok(None) => return Ok(()),
                        Err(status) => return Err(stream_error(status)),
                    },
                    ev = self.events.recv() => self.on_event(ev).await?,
                    _ = sleep_until_due(offer_due) => self.expire_offers().await?,
                }
            }
        }
        .await;
        match result {
            Ok(()) | Err(SessionError::Gone) => {}
            Err(SessionError::Disconnected(why)) => {
                tracing::info!(daemon = %self.daemon.name, %why, "daemon connection closed")
            }
            Err(SessionError::Revoked) => {
                tracing::warn!("disconnecting daemon: its provisioner key was revoked");
                let _ = self.tx.send(Err(Status::unauthenticated("provisioner key revoked"))).await;
            }
            Err(e) => {
                tracing::warn!(daemon = %self.daemon.name, error = %e, "daemon session ended");
                // The daemon learns why, instead of a stream that ends `OK`.
                let _ = self.tx.send(Err(e.into())).await;
            }
        }
        self.release_offers().await;
        self.state.daemons.unregister(self.daemon.id, self.registration);
        tracing::info!(daemon = %self.daemon.name, "daemon disconnected");
    }

    async fn send(&self, msg: Out) -> Result<(), SessionError> {
        let msg = proto::ServerMessage { msg: Some(msg) };
        self.tx.send(Ok(msg)).await.map_err(|_| SessionError::Gone)
    }

    /// Welcomes the daemon and settles the jobs it says it is still running.
    async fn start(&mut self) -> Result<(), SessionError> {
        let d = &self.daemon;
        let provisioners = d.provisioners.iter().map(|p| p.to_string()).collect();
        self.registration =
            self.state.daemons.register(d.id, &d.name, &d.version, &d.tags, provisioners);
        let interval = self.state.settings.heartbeat_interval;
        self.send(protocol::welcome(interval, self.daemon.id)).await?;
        for job_id in std::mem::take(&mut self.daemon.resume) {
            let job = match self.state.store.job(job_id).await {
                Ok(job) => job,
                Err(StoreError::NotFound) => {
                    self.disowned.insert(job_id);
                    self.send(cancel(job_id, "the server has no such job")).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // `daemon.id` is scoped by the credential: a daemon claiming
            // another's id with another credential does not own its jobs.
            let ours = job.worker_id == Some(self.daemon.id);
            if ours {
                // A completed job's daemon resends its completion; the store
                // answers that idempotently, or keeps a late result's state.
                self.owned.insert(job_id);
            } else {
                self.disowned.insert(job_id);
            }
            if ours && job.completed_at.is_some() {
                // The server ended the job (it gave up on this daemon, or the
                // daemon's own result was stored and only the ack was lost):
                // whatever still runs must stop now, and report what it did.
                self.cancel_ended(&job).await?;
            } else if !ours {
                // Not a hold on the job's workspace either: a daemon naming
                // jobs that are not its own must not hold back their builds.
                self.send(cancel(job_id, "the job is not this daemon's")).await?;
            } else if job.canceled_at.is_some() {
                self.send(cancel(job_id, "")).await?;
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, msg: proto::DaemonMessage) -> Result<(), SessionError> {
        let result = self.handle(msg).await;
        self.state.daemons.seen(self.daemon.id, &self.owned);
        result
    }

    async fn handle(&mut self, msg: proto::DaemonMessage) -> Result<(), SessionError> {
        match msg.msg {
            Some(In::Acquire(a)) => {
                self.credits = a.slots;
                self.offer_jobs().await
            }
            Some(In::Ack(a)) => {
                let job_id = parse_uuid(&a.job_id, "job_id")?;
                if self.offered.contains(&job_id) {
                    // A job disowned at hello can be offered to the same
                    // daemon again once it is pending: this run is its own.
                    self.disowned.remove(&job_id);
                    self.on_ack(job_id).await
                } else if self.disowned.contains(&job_id) {
                    // An offer withdrawn before the ack (its deadline passed,
                    // or it was not this daemon's): it must not run the job.
                    let reason =
                        "the daemon acknowledged the offer too late; the job went back to the queue";
                    tracing::warn!(job = %job_id, "{reason}: telling the daemon to cancel it");
                    self.send(cancel(job_id, reason)).await
                } else {
                    Err(SessionError::NotYourJob(format!(
                        "ack for job {job_id}, which was not offered to this daemon"
                    )))
                }
            }
            Some(In::Reject(r)) => {
                let job_id = parse_uuid(&r.job_id, "job_id")?;
                if !self.offered.contains(&job_id) {
                    // Releasing it would take a running job from its daemon.
                    return Err(SessionError::NotYourJob(format!(
                        "reject for job {job_id}, which is not an offer awaiting this daemon's answer"
                    )));
                }
                // A daemon that declines wants nothing until it asks again.
                self.credits = 0;
                self.offered.remove(&job_id);
                self.state.store.release_job(job_id, self.daemon.id).await?;
                self.state.events.publish(Event::JobQueued);
                Ok(())
            }
            Some(In::Logs(batch)) => self.on_logs(batch).await,
            Some(In::Heartbeat(h)) => {
                let ids = protocol::heartbeat_ids(&h);
                self.state.store.heartbeat(self.daemon.id, &ids).await?;
                // The answer lets the daemon notice a server that went silent.
                self.send(protocol::heartbeat_ack()).await
            }
            Some(In::Complete(c)) => {
                let job_id = parse_uuid(&c.job_id, "job_id")?;
                if self.owned.contains(&job_id) {
                    self.on_complete(c).await
                } else if self.disowned.remove(&job_id) {
                    tracing::warn!(job = %job_id, "completion of a job this daemon does not own dropped");
                    let note =
                        "the job is not this daemon's to run: its result was not stored".into();
                    self.send(protocol::complete_ack(job_id, note)).await
                } else {
                    Err(SessionError::NotYourJob(format!(
                        "completion of job {job_id}, which this daemon does not run"
                    )))
                }
            }
            Some(In::Hello(_)) => Err(SessionError::Protocol(
                "a second hello on one session: a daemon says hello once, when it connects".into(),
            )),
            None => Err(SessionError::Protocol(
                "an empty or unknown message (is the daemon newer than the server?)".into(),
            )),
        }
    }

    async fn on_ack(&mut self, job_id: Uuid) -> Result<(), SessionError> {
        self.offered_at.remove(&job_id);
        if self.offered.remove(&job_id) {
            self.owned.insert(job_id);
            self.state.events.publish(Event::JobUpdated(job_id));
            // A cancel may have landed between the offer and the ack.
            self.push_cancel_if_canceled(job_id).await?;
        }
        Ok(())
    }

    async fn on_logs(&mut self, batch: proto::LogBatch) -> Result<(), SessionError> {
        let job_id = parse_uuid(&batch.job_id, "job_id")?;
        if !self.owned.contains(&job_id) && self.disowned.contains(&job_id) {
            // Not stored: the job is not this daemon's. Acknowledged, so the
            // daemon stops resending them.
            return self.send(protocol::logs_ack(job_id, protocol::batch_up_to(&batch))).await;
        }
        if !self.owned.contains(&job_id) {
            return Err(SessionError::NotYourJob(format!(
                "logs for job {job_id}, which this daemon does not run"
            )));
        }
        let lines =
            batch.lines.into_iter().map(protocol::log_from_proto).collect::<Result<Vec<_>, _>>()?;
        let appended = self.state.store.append_logs(LogBatch { job_id, lines }).await?;
        let bytes = appended.stored.iter().map(|l| l.line.output.len() as u64).sum();
        crate::metrics::get().logs_stored(appended.stored.len() as u64, bytes);
        // A daemon that streams logs is alive.
        let now = Instant::now();
        if self.log_touched.get(&job_id).is_none_or(|t| now.duration_since(*t) >= LOG_TOUCH_EVERY) {
            self.state.store.heartbeat(self.daemon.id, &[job_id]).await?;
            self.log_touched.insert(job_id, now);
        }
        let up_to_seq = appended.up_to_seq;
        self.logs_stored.insert(job_id, up_to_seq);
        if !appended.stored.is_empty() && self.state.events.has_log_followers() {
            self.state.events.publish_logs(StoredLogs { job_id, lines: appended.stored });
        }
        self.send(protocol::logs_ack(job_id, up_to_seq)).await
    }

    async fn on_complete(&mut self, c: proto::Complete) -> Result<(), SessionError> {
        let protocol::Completion { job_id, last_log_seq, outcome } =
            protocol::complete_from_proto(c)?;
        self.check_logs_stored(job_id, last_log_seq).await?;
        let note = match self.state.app().complete_job(job_id, self.daemon.id, &outcome).await {
            Ok(CompleteResult::Completed) => {
                tracing::info!(job = %job_id, failed = outcome.error.is_some(), "job completed");
                String::new()
            }
            Ok(CompleteResult::AlreadyCompleted) => String::new(),
            Ok(CompleteResult::Late { note, conflict }) => {
                if conflict {
                    tracing::error!(job = %job_id, daemon = %self.daemon.name, %note, "late result conflicts with a newer build");
                } else {
                    tracing::warn!(job = %job_id, daemon = %self.daemon.name, %note, "late result kept");
                }
                note
            }
            // Someone else owns it now (it was failed and re-queued): the
            // daemon's result is stale, so acknowledge and drop it.
            Err(app::Error::Conflict(app::Refusal { detail: msg, .. })) => {
                tracing::warn!(job = %job_id, daemon = %self.daemon.name, %msg, "stale completion dropped");
                format!("the result was refused and dropped: {msg}")
            }
            Err(e) => return Err(e.into()),
        };
        if self.state.daemons.finished_ended(self.daemon.id, job_id) {
            // Builds of that workspace held back for it may go now.
            self.state.events.publish(Event::JobQueued);
        }
        self.owned.remove(&job_id);
        self.disowned.remove(&job_id);
        self.log_touched.remove(&job_id);
        self.logs_stored.remove(&job_id);
        self.send(protocol::complete_ack(job_id, note)).await
    }

    /// Refuses a completion naming log lines the store does not hold. A
    /// daemon sends every line of a job before its completion, on the same
    /// stream, so they are stored by now unless the daemon lost some: the
    /// session ends, and on its next one the daemon resends its
    /// unacknowledged lines before the completion.
    async fn check_logs_stored(&self, job_id: Uuid, last_log_seq: i64) -> Result<(), SessionError> {
        if last_log_seq <= self.logs_stored.get(&job_id).copied().unwrap_or(0) {
            return Ok(());
        }
        // Lines stored in an earlier session (before a reconnect) are known
        // to the store only. An empty batch stores nothing and answers the
        // highest stored seq.
        let batch = LogBatch { job_id, lines: Vec::new() };
        let stored = self.state.store.append_logs(batch).await?.up_to_seq;
        if last_log_seq > stored {
            return Err(SessionError::Protocol(format!(
                "completion of job {job_id} after log line {last_log_seq}, but the server \
                 holds its lines only up to {stored}: a daemon sends all of a job's lines \
                 before its completion"
            )));
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        ev: Result<Event, broadcast::error::RecvError>,
    ) -> Result<(), SessionError> {
        match ev {
            Ok(Event::JobQueued) => self.offer_jobs().await,
            Ok(Event::KeyRevoked(id)) if self.key == Some(id) => Err(SessionError::Revoked),
            Ok(Event::JobUpdated(job_id)) if self.owned.contains(&job_id) => {
                self.push_cancel_if_canceled(job_id).await
            }
            Ok(_) => Ok(()),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // We may have missed anything: look at everything again.
                for job_id in self.owned.clone() {
                    self.push_cancel_if_canceled(job_id).await?;
                }
                self.offer_jobs().await
            }
            Err(broadcast::error::RecvError::Closed) => Err(SessionError::Gone),
        }
    }

    async fn push_cancel_if_canceled(&mut self, job_id: Uuid) -> Result<(), SessionError> {
        let job = self.state.store.job(job_id).await?;
        if job.canceled_at.is_some() && job.completed_at.is_none() {
            tracing::info!(job = %job_id, "pushing cancel to daemon");
            self.send(cancel(job_id, "")).await?;
        } else if job.completed_at.is_some() && job.error_code.as_deref() == Some(DAEMON_LOST) {
            // The reaper gave up on a job this session still holds (the
            // daemon went quiet but its connection lives on).
            self.cancel_ended(&job).await?;
        }
        Ok(())
    }

    /// Tells the daemon to stop a job the server has already ended, and
    /// holds back other builds of its workspace until the daemon reports
    /// it, so two applies of one workspace never run at once while the
    /// server can see it.
    async fn cancel_ended(&mut self, job: &Job) -> Result<(), SessionError> {
        if job.error_code.as_deref() == Some(DAEMON_LOST) {
            let reason = "the server gave up on this job while the daemon was away";
            tracing::warn!(job = %job.id, daemon = %self.daemon.name, "{reason}: telling the daemon to cancel it");
            self.hold_workspace_of(job).await;
            return self.send(cancel(job.id, reason)).await;
        }
        // Usually the daemon's own result was stored and only its ack was
        // lost: nothing runs any more, and the resent result follows.
        let reason = "the server has already ended this job";
        tracing::info!(job = %job.id, daemon = %self.daemon.name, "{reason}: telling the daemon to cancel it");
        self.hold_workspace_of(job).await;
        self.send(cancel(job.id, reason)).await
    }

    /// Notes that this daemon still runs an ended build, which holds back
    /// other builds of its workspace until the daemon reports it.
    async fn hold_workspace_of(&self, job: &Job) {
        if job.job_type == JobType::WorkspaceBuild {
            match self.state.store.build_by_job(job.id).await {
                Ok(build) => {
                    self.state.daemons.running_ended(self.daemon.id, job.id, build.workspace_id)
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "could not find the build of an ended job")
                }
            }
        }
    }

    /// When the oldest unacknowledged offer expires.
    fn next_offer_due(&self) -> Option<tokio::time::Instant> {
        let oldest = self.offered_at.values().min()?;
        Some(tokio::time::Instant::from_std(*oldest + self.state.settings.offer_ack_timeout))
    }

    /// Puts offers the daemon did not acknowledge in time back in the
    /// queue, for another daemon: this one's connection may be dead without
    /// anyone having noticed yet. It gets no more offers until it asks.
    async fn expire_offers(&mut self) -> Result<(), SessionError> {
        let timeout = self.state.settings.offer_ack_timeout;
        let now = Instant::now();
        let expired: Vec<Uuid> = self
            .offered_at
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for job_id in expired {
            self.offered_at.remove(&job_id);
            if !self.offered.remove(&job_id) {
                continue;
            }
            tracing::warn!(job = %job_id, daemon = %self.daemon.name, ?timeout, "offer not acknowledged in time; returning the job to the queue");
            self.state.store.release_job(job_id, self.daemon.id).await?;
            // A late ack is answered with a cancel, not a protocol error.
            self.disowned.insert(job_id);
            self.credits = 0;
        }
        self.state.events.publish(Event::JobQueued);
        Ok(())
    }

    /// Offers queued jobs while the daemon has free slots.
    async fn offer_jobs(&mut self) -> Result<(), SessionError> {
        while self.credits > 0 {
            let req = AcquireRequest {
                worker_id: self.daemon.id,
                worker_name: self.daemon.name.clone(),
                tags: self.daemon.tags.clone(),
                provisioners: self.daemon.provisioners.clone(),
            };
            let Some(job) = self.state.store.acquire_job(&req).await? else { return Ok(()) };
            if let Some((daemon, older)) = self.ended_build_running(&job).await? {
                // Another apply of that workspace may still be running: the
                // build waits in the queue until that daemon reports (a
                // JobQueued follows), and this daemon until then too, since
                // the queue hands out the oldest job first.
                tracing::info!(job = %job.id, %daemon, older = %older, "holding the build back: a daemon still runs an ended build of its workspace");
                self.state.store.release_job(job.id, self.daemon.id).await?;
                return Ok(());
            }
            let offer = match job_offer(self.state.store.as_ref(), &job).await {
                Ok(offer) => offer,
                Err(e) => {
                    // A job we cannot describe can never run: fail it loudly
                    // instead of handing it out forever.
                    let msg = format!("failed to prepare job for the daemon: {e}");
                    tracing::error!(job = %job.id, %msg);
                    self.state.app().fail_job(job.id, &msg, None).await?;
                    continue;
                }
            };
            self.credits -= 1;
            self.offered.insert(job.id);
            self.offered_at.insert(job.id, Instant::now());
            tracing::info!(job = %job.id, job_type = %job.job_type, "offering job");
            self.send(protocol::offer(offer)).await?;
        }
        Ok(())
    }

    /// The daemon and job of an ended build of the job's workspace that a
    /// connected daemon still runs.
    async fn ended_build_running(&self, job: &Job) -> Result<Option<(String, Uuid)>, SessionError> {
        if job.job_type != JobType::WorkspaceBuild || !self.state.daemons.any_running_ended() {
            return Ok(None);
        }
        let build = self.state.store.build_by_job(job.id).await?;
        Ok(self.state.daemons.running_ended_of(build.workspace_id))
    }

    /// Puts offers the daemon never acknowledged back in the queue.
    async fn release_offers(&mut self) {
        for job_id in self.offered.drain() {
            match self.state.store.release_job(job_id, self.daemon.id).await {
                Ok(()) => tracing::info!(job = %job_id, "unacknowledged job returned to the queue"),
                Err(e) => {
                    tracing::error!(job = %job_id, error = %e, "failed to return job to the queue")
                }
            }
        }
        self.state.events.publish(Event::JobQueued);
    }
}

async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What an error on the daemon's inbound stream means. Errors with a
/// transport cause (h2 or I/O: the daemon exited, the keepalive closed a
/// dead connection) are a disconnect, not a protocol violation.
fn stream_error(status: Status) -> SessionError {
    let transport = std::error::Error::source(&status).is_some()
        || matches!(status.code(), tonic::Code::Cancelled | tonic::Code::Unavailable);
    if transport {
        SessionError::Disconnected(status.message().to_owned())
    } else {
        SessionError::Protocol(status.to_string())
    }
}

impl From<SessionError> for Status {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Protocol(_) => Status::invalid_argument(e.to_string()),
            SessionError::NotYourJob(_) => Status::failed_precondition(e.to_string()),
            SessionError::Revoked => Status::unauthenticated("provisioner key revoked"),
            SessionError::Gone => Status::cancelled(e.to_string()),
            SessionError::Disconnected(_) => Status::unavailable(e.to_string()),
            // Details stay in the server's log (run() logged them).
            SessionError::Store(_) | SessionError::App(_) => {
                Status::internal("internal error; see the server's log")
            }
        }
    }
}

/// A message's name for protocol errors.
fn message_name(msg: &Option<In>) -> &'static str {
    match msg {
        Some(In::Hello(_)) => "hello",
        Some(In::Acquire(_)) => "acquire",
        Some(In::Ack(_)) => "ack",
        Some(In::Reject(_)) => "reject",
        Some(In::Logs(_)) => "logs",
        Some(In::Heartbeat(_)) => "heartbeat",
        Some(In::Complete(_)) => "complete",
        None => "an empty or unknown message",
    }
}

fn parse_uuid(s: &str, field: &str) -> Result<Uuid, Status> {
    protocol::parse_id(s, field).map_err(|e| Status::invalid_argument(e.0))
}

impl From<Status> for SessionError {
    fn from(s: Status) -> Self {
        SessionError::Protocol(s.message().to_owned())
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound => Status::not_found("not found"),
        other => {
            tracing::error!(error = %other, "store error in daemon service");
            Status::internal("internal error")
        }
    }
}

/// A daemon message whose content cannot be read is a protocol violation.
impl From<protocol::BadMessage> for SessionError {
    fn from(e: protocol::BadMessage) -> Self {
        SessionError::Protocol(e.0)
    }
}
