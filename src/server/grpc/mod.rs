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

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use uuid::Uuid;

use super::daemon_keys::{secret_matches, Credential, DaemonAuth};
use super::AppState;
use crate::domain::{Provisioner, Tags};
use crate::proto::{self, daemon_message::Msg as In};
use crate::protocol::{self, ProtocolVersion, KEY_HEADER};
use crate::store::StoreError;

mod jobs;
mod session;

use session::DaemonSession;

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
        let session = DaemonSession::new(self.state.clone(), tx, daemon, key);
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
pub(super) struct DaemonInfo {
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

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound => Status::not_found("not found"),
        other => {
            tracing::error!(error = %other, "store error in daemon service");
            Status::internal("internal error")
        }
    }
}
