//! One daemon's session: the task ([`DaemonSession`]) that owns the
//! session's bookkeeping (credits, offers awaiting an ack, owned and
//! disowned jobs), says welcome, settles the jobs a daemon resumes, reads
//! its messages and reacts to the event bus. Offering jobs and storing logs
//! and results live in `jobs.rs`; the service that starts sessions in
//! `mod.rs`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};
use uuid::Uuid;

use super::{parse_uuid, DaemonInfo};
use crate::app;
use crate::domain::{Job, JobType, DAEMON_LOST};
use crate::proto::{self, daemon_message::Msg as In, server_message::Msg as Out};
use crate::protocol::{self, cancel};
use crate::server::offer::FileInfos;
use crate::server::{AppState, Event};
use crate::store::StoreError;

/// How often a session looks for work and for cancels of its jobs without
/// being told: a notice from another replica may come late or not at all.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// One daemon's session: the task that owns its bookkeeping.
pub(super) struct DaemonSession {
    pub(super) state: AppState,
    pub(super) events: broadcast::Receiver<Event>,
    pub(super) tx: mpsc::Sender<Result<proto::ServerMessage, Status>>,
    pub(super) daemon: DaemonInfo,
    /// Jobs the daemon still wants.
    pub(super) credits: u32,
    /// Jobs offered but not yet acknowledged.
    pub(super) offered: HashSet<Uuid>,
    /// When each of them was offered: unacknowledged past
    /// `offer_ack_timeout`, an offer goes back to the queue.
    pub(super) offered_at: HashMap<Uuid, Instant>,
    /// Jobs the daemon runs.
    pub(super) owned: BTreeSet<Uuid>,
    /// Jobs the daemon may not run but must be able to let go of: jobs it
    /// named in its hello that are not its own (another daemon's, or gone),
    /// and jobs it acknowledged too late (they went back to the queue). It
    /// was told to cancel them; what it still sends for them is acknowledged
    /// and dropped.
    pub(super) disowned: HashSet<Uuid>,
    /// When each owned job was last marked alive for its logs.
    pub(super) log_touched: HashMap<Uuid, Instant>,
    /// The highest log `seq` stored for each owned job, as far as this
    /// session has seen: a completion within it needs no store read.
    pub(super) logs_stored: HashMap<Uuid, i64>,
    /// This session's registration in the daemon registry.
    pub(super) registration: Uuid,
    /// Owned jobs the daemon was told to cancel, so the re-check does not
    /// tell it again every time.
    pub(super) cancel_sent: HashSet<Uuid>,
    /// The provisioner key the daemon authenticated with, if any.
    pub(super) key: Option<Uuid>,
    /// Template files' hashes and sizes, for offers.
    pub(super) files: FileInfos,
    /// Offered jobs a cancel (or the server's end of them) was announced
    /// for before the daemon acknowledged them: the ack looks at them again.
    pub(super) canceled_offers: HashSet<Uuid>,
}

/// Why a session loop step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
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
    pub(super) fn new(
        state: AppState,
        tx: mpsc::Sender<Result<proto::ServerMessage, Status>>,
        daemon: DaemonInfo,
        key: Option<Uuid>,
    ) -> Self {
        Self {
            events: state.events.subscribe(),
            state,
            tx,
            daemon,
            credits: 0,
            offered: HashSet::new(),
            offered_at: HashMap::new(),
            owned: BTreeSet::new(),
            disowned: HashSet::new(),
            log_touched: HashMap::new(),
            logs_stored: HashMap::new(),
            registration: Uuid::nil(),
            cancel_sent: HashSet::new(),
            key,
            files: FileInfos::default(),
            canceled_offers: HashSet::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut inbound: Streaming<proto::DaemonMessage>,
        shutdown: CancellationToken,
    ) {
        tracing::info!(id = %self.daemon.id, claimed_id = %self.daemon.claimed, tags = ?self.daemon.tags, protocol = %self.daemon.protocol, "daemon connected");
        let result = async {
            self.start().await?;
            let mut recheck = tokio::time::interval(RECHECK_EVERY);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            recheck.reset();
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
                    _ = recheck.tick() => self.recheck().await?,
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
        self.state.daemons.unregister(self.daemon.id, self.registration).await;
        tracing::info!(daemon = %self.daemon.name, "daemon disconnected");
    }

    pub(super) async fn send(&self, msg: Out) -> Result<(), SessionError> {
        let msg = proto::ServerMessage { msg: Some(msg) };
        self.tx.send(Ok(msg)).await.map_err(|_| SessionError::Gone)
    }

    /// Welcomes the daemon and settles the jobs it says it is still running.
    async fn start(&mut self) -> Result<(), SessionError> {
        let d = &self.daemon;
        let provisioners = d.provisioners.iter().map(|p| p.to_string()).collect();
        self.registration =
            self.state.daemons.register(d.id, &d.name, &d.version, &d.tags, provisioners).await?;
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
            } else if job.canceled_at.is_some() && self.cancel_sent.insert(job_id) {
                self.send(cancel(job_id, "")).await?;
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, msg: proto::DaemonMessage) -> Result<(), SessionError> {
        let result = self.handle(msg).await;
        self.state.daemons.seen(self.daemon.id, self.registration, &self.owned).await?;
        result
    }

    /// What the event bus may have missed (a notice from another replica
    /// lost or late): ends the session if its provisioner key was deleted,
    /// offers queued work while the daemon has credits, pushes cancels of
    /// its jobs, and tells the registry it is alive.
    async fn recheck(&mut self) -> Result<(), SessionError> {
        if let Some(key) = self.key {
            match self.state.store.provisioner_key(key).await {
                Err(StoreError::NotFound) => return Err(SessionError::Revoked),
                other => drop(other?),
            }
        }
        self.state.daemons.seen(self.daemon.id, self.registration, &self.owned).await?;
        for job_id in self.owned.clone() {
            if !self.cancel_sent.contains(&job_id) {
                self.push_cancel_if_canceled(job_id).await?;
            }
        }
        self.offer_jobs().await
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
                self.canceled_offers.remove(&job_id);
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
        let offered_at = self.offered_at.remove(&job_id);
        if self.offered.remove(&job_id) {
            self.owned.insert(job_id);
            // Taking the job marked it alive: its first log batches need
            // not (see `LOG_TOUCH_EVERY`).
            self.log_touched.insert(job_id, offered_at.unwrap_or_else(Instant::now));
            self.state.events.publish(Event::JobUpdated(job_id));
            // A cancel that landed between the offer and the ack. (One whose
            // notice is late or lost is found by the re-check.)
            if self.canceled_offers.remove(&job_id) {
                self.push_cancel_if_canceled(job_id).await?;
            }
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
            Ok(Event::Missed) => self.recheck().await,
            Ok(Event::JobCanceled(job_id)) if self.owned.contains(&job_id) => {
                self.push_cancel_if_canceled(job_id).await
            }
            Ok(Event::JobCanceled(job_id)) if self.offered.contains(&job_id) => {
                // Told once the daemon has acknowledged it.
                self.canceled_offers.insert(job_id);
                Ok(())
            }
            Ok(_) => Ok(()),
            // We may have missed anything: look at everything again.
            Err(broadcast::error::RecvError::Lagged(_)) => self.recheck().await,
            Err(broadcast::error::RecvError::Closed) => Err(SessionError::Gone),
        }
    }

    pub(super) async fn push_cancel_if_canceled(
        &mut self,
        job_id: Uuid,
    ) -> Result<(), SessionError> {
        if self.cancel_sent.contains(&job_id) {
            return Ok(());
        }
        let job = self.state.store.job(job_id).await?;
        if job.canceled_at.is_some() && job.completed_at.is_none() {
            self.cancel_sent.insert(job_id);
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
        self.cancel_sent.insert(job.id);
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

impl From<Status> for SessionError {
    fn from(s: Status) -> Self {
        SessionError::Protocol(s.message().to_owned())
    }
}

/// A daemon message whose content cannot be read is a protocol violation.
impl From<protocol::BadMessage> for SessionError {
    fn from(e: protocol::BadMessage) -> Self {
        SessionError::Protocol(e.0)
    }
}
