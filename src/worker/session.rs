//! The daemon's connection manager and the client edge of the protocol.
//!
//! One task owns everything that must survive a lost connection: the jobs
//! this daemon runs, their numbered log lines not yet acknowledged, and
//! completions not yet acknowledged. Job tasks only send [`JobEvent`]s to it:
//! a batch of log lines as the provisioner sent it, or the job's end.
//! When the connection drops, jobs keep running, their logs are kept, and the
//! manager reconnects with backoff, says hello with the jobs it still runs,
//! and resends everything unacknowledged; the server drops duplicates by
//! sequence number, so no line is lost or doubled. With several servers
//! (replicas on one database, [`super::servers`]) it reconnects to the next
//! one: the jobs, their owner and their stored lines are in the database,
//! so any replica takes the resumed session. A server that refuses
//! this daemon's protocol version stops the daemon: retrying cannot help.
//!
//! Messages are read and built by [`crate::protocol`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Streaming;
use uuid::Uuid;

use super::cache::ArchiveCache;
use super::job::{JobContext, JobReport};
use super::lifecycle::{Due, Lifecycle, StopPolicy};
use super::servers::{AfterFailure, Servers};
use super::{Shutdown, WorkerError, WorkerSettings};
use crate::domain::{JobType, LogLine};
use crate::proto::{self, daemon_message::Msg as Out, server_message::Msg as In};
use crate::protocol::{self, log_to_proto, Wire, PROTOCOL_VERSION};

/// Most log lines in one `LogBatch` message: as many as a provisioner puts
/// in one batch, so a batch that finds nothing waiting goes out as one
/// message. 500 lines of at most 64 KiB each stay well inside
/// `protocol::MAX_MESSAGE_BYTES`.
const MAX_BATCH: usize = crate::provisioner::MAX_BATCH_LINES;

/// A job's log batches go at most this often unless a full batch waits: a
/// chatty job then sends tens of lines per message instead of a few, and
/// every message costs the server a transaction. A line of a quiet job (no
/// batch sent within this time) still goes at once; a job's first lines
/// wait this long after its start, so a short job's log is one batch.
const LOG_LINGER: Duration = Duration::from_millis(10);

/// Most unacknowledged log lines held across all jobs (one more batch may
/// come on top). Past it the daemon stops taking job events, which backs up
/// through bounded channels to terraform's output pipe: memory stays
/// bounded and no line is dropped.
const MAX_BUFFERED_LINES: usize = 50_000;

/// Job events waiting for the manager. Each holds up to a batch of lines
/// (one read of terraform's output), so a few hundred are plenty.
const EVENT_QUEUE: usize = 256;

/// A session that lasted this long worked: the next one that ends soon
/// starts the pauses over. A shorter one counts as a failed attempt.
const STABLE_SESSION: Duration = Duration::from_secs(5);

/// The longest pause between connection attempts, before jitter.
const MAX_CONNECT_DELAY: Duration = Duration::from_secs(10);

/// The longest pause after a session that ended soon, before jitter. Short
/// enough that a daemon is back within seconds of a server restart (an old
/// server that is shutting down ends new sessions at once too), long enough
/// that a failing server sees a session every few seconds, not thousands.
const MAX_SESSION_PAUSE: Duration = Duration::from_secs(2);

/// Exponential delays from `min` to `max` with jitter (backon adds up to
/// the delay again), so a fleet of daemons does not retry in step.
fn backoff(min: Duration, max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Pauses after sessions that end soon after opening.
fn session_backoff() -> ExponentialBackoff {
    backoff(Duration::from_millis(100), MAX_SESSION_PAUSE)
}

/// What job tasks tell the manager.
#[derive(Debug)]
pub enum JobEvent {
    /// Lines of the job's log, in order, as one batch of the provisioner's.
    Logs(Uuid, Vec<LogLine>),
    Done(Uuid, JobReport),
}

/// A job this daemon runs or has not finished reporting.
struct RunningJob {
    cancel: CancellationToken,
    next_seq: i64,
    /// Highest sequence number sent on the current connection.
    sent_up_to: i64,
    /// Highest sequence number the server acknowledged.
    acked_up_to: i64,
    unacked: VecDeque<proto::LogLine>,
    completion: Option<proto::Complete>,
    /// When the last batch was sent.
    last_sent: Option<Instant>,
}

/// An open session.
struct Connection {
    tx: mpsc::Sender<proto::DaemonMessage>,
    inbound: Streaming<proto::ServerMessage>,
    heartbeat: Duration,
}

/// Why the current connection ended.
enum Disconnect {
    /// The connection broke; reconnect.
    Lost(String),
    /// The server ended the session cleanly: it is shutting down (a server
    /// that fails ends a session with an error status instead). Reconnect
    /// without a growing pause, so a restarted server gets its daemons back
    /// at once; a server that is gone is retried with the connect backoff.
    Closed,
    /// The daemon is done.
    Exit,
}

/// The connection manager: the task that owns the daemon's jobs and its
/// session with the server.
pub struct ConnectionManager {
    settings: WorkerSettings,
    id: Uuid,
    /// The servers it may connect to, and the one it uses now.
    servers: Servers,
    jobs: HashMap<Uuid, RunningJob>,
    events_tx: mpsc::Sender<JobEvent>,
    events_rx: mpsc::Receiver<JobEvent>,
    tasks: TaskTracker,
    cache: ArchiveCache,
    life: Lifecycle,
    free_slots: Vec<usize>,
    slot_of: HashMap<Uuid, usize>,
    /// When lines held back by [`LOG_LINGER`] are due.
    linger_until: Option<Instant>,
    /// Why the server refused this daemon's protocol version, if it did.
    incompatible: Option<String>,
}

impl ConnectionManager {
    pub fn new(settings: WorkerSettings) -> Result<Self, WorkerError> {
        let servers = Servers::new(&settings)?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let cache = ArchiveCache::new(settings.cache_dir.join("archives"));
        let free_slots = (0..settings.concurrency.max(1) as usize).rev().collect();
        let life =
            Lifecycle::new(StopPolicy { cancel_grace: settings.cancel_grace, ..settings.stop });
        Ok(Self {
            settings,
            id: Uuid::new_v4(),
            servers,
            jobs: HashMap::new(),
            events_tx,
            events_rx,
            tasks: TaskTracker::new(),
            cache,
            life,
            free_slots,
            slot_of: HashMap::new(),
            linger_until: None,
            incompatible: None,
        })
    }

    /// Runs until the daemon stops; fails when it could not report every job
    /// or the server refused its protocol version.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<(), WorkerError> {
        let urls: Vec<&str> = self.servers.urls().collect();
        tracing::info!(name = %self.settings.name, servers = ?urls, tags = ?self.settings.tags, "provisioner daemon starting");
        // A session that ends soon after it opened (the server welcomes the
        // daemon, then fails) is followed by a pause that grows with each
        // such session in a row. Reconnecting at once after each made
        // 238,243 sessions in 98 s, whose log lines filled the server's disk.
        let mut pauses = session_backoff();
        let mut pause = None;
        loop {
            let Some(conn) = self.connect(&shutdown, pause.take()).await else { break };
            let opened = Instant::now();
            let ended = self.serve(conn, &shutdown).await;
            let url = self.servers.current().url.clone();
            if !matches!(ended, Disconnect::Exit) {
                self.settings.health.set_connected(false);
                // Running jobs go on; the next server (the same one when it
                // is the only one) hears of them in the next hello.
                self.servers.lost();
            }
            let next = &self.servers.current().url;
            match ended {
                Disconnect::Exit => break,
                Disconnect::Closed => {
                    pauses = session_backoff();
                    tracing::info!(%url, %next, "the server closed the session; reconnecting");
                }
                Disconnect::Lost(why) => {
                    if opened.elapsed() >= STABLE_SESSION {
                        pauses = session_backoff();
                        tracing::warn!(%url, %why, %next, "lost the server; reconnecting");
                    } else {
                        let delay = pauses.next().unwrap_or(MAX_SESSION_PAUSE);
                        tracing::warn!(%url, %why, %next, ?delay, "the session ended soon after it opened; reconnecting after a pause");
                        pause = Some(delay);
                    }
                }
            }
        }
        self.cancel_all();
        self.tasks.close();
        self.tasks.wait().await;
        let unreported = self.jobs.len();
        if unreported > 0 {
            let ids: Vec<String> = self.jobs.keys().map(Uuid::to_string).collect();
            tracing::error!(jobs = ?ids, "exiting without reporting these jobs; the server fails them after its heartbeat timeout");
        }
        tracing::info!(name = %self.settings.name, "provisioner daemon stopped");
        match (self.incompatible.take(), unreported) {
            (Some(why), _) => Err(WorkerError::Incompatible(why)),
            (None, 0) => Ok(()),
            (None, n) => Err(WorkerError::Unreported(n)),
        }
    }

    fn buffered_lines(&self) -> usize {
        self.jobs.values().map(|j| j.unacked.len()).sum()
    }

    fn should_exit(&self) -> bool {
        self.life.draining() && (self.jobs.is_empty() || self.life.gave_up())
    }

    fn cancel_all(&self) {
        for job in self.jobs.values() {
            job.cancel.cancel();
        }
    }

    /// Applies a stop request or a passed deadline.
    fn apply_stop(&mut self, stop: Stop) {
        match stop {
            Stop::Drain => {
                self.settings.health.set_draining();
                if self.life.begin_drain() {
                    tracing::info!(
                        running = self.jobs.len(),
                        "draining: no new jobs, waiting for running ones"
                    );
                }
            }
            Stop::Abort => {
                self.settings.health.set_draining();
                if self.life.begin_abort() {
                    tracing::warn!(running = self.jobs.len(), "canceling running jobs");
                    self.cancel_all();
                }
            }
            Stop::Due(due) => {
                self.settings.health.set_draining();
                self.life.on_due(due);
                match due {
                    Due::Drain => tracing::info!("idle timeout: exiting"),
                    Due::Abort => {
                        tracing::warn!("drain timeout: canceling running jobs");
                        self.cancel_all();
                    }
                    Due::GiveUp => {
                        tracing::error!("could not report canceled jobs in time; giving up")
                    }
                }
            }
        }
    }

    /// Connects with backoff, first waiting `pause` if given, keeping job
    /// events flowing meanwhile. Each server is tried in turn; the pause
    /// (growing, with jitter) comes after every one of them failed. `None`
    /// when the daemon should exit instead.
    async fn connect(
        &mut self,
        shutdown: &Shutdown,
        mut pause: Option<Duration>,
    ) -> Option<Connection> {
        let mut retries = backoff(Duration::from_millis(50), MAX_CONNECT_DELAY);
        loop {
            if let Some(delay) = pause.take() {
                if !self.wait_to_reconnect(delay, shutdown).await {
                    return None;
                }
            }
            if self.should_exit() {
                return None;
            }
            let url = self.servers.current().url.clone();
            let after = match self.open().await {
                Ok(conn) => {
                    self.servers.connected();
                    return Some(conn);
                }
                Err(e) if protocol::is_version_refusal(&e) => match self.servers.refused() {
                    Some(after) => {
                        tracing::error!(%url, error = %e.message(), "this server refused this daemon's protocol version; trying the next");
                        after
                    }
                    None => {
                        tracing::error!(%url, error = %e.message(), "the server refused this daemon's protocol version; stopping");
                        self.incompatible = Some(e.message().to_owned());
                        return None;
                    }
                },
                Err(e) if e.code() == tonic::Code::Unauthenticated => {
                    tracing::error!(%url, error = %e.message(), "the server rejected this daemon's credentials; retrying");
                    self.servers.failed()
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "connect failed");
                    self.servers.failed()
                }
            };
            if after == AfterFailure::Pause {
                pause = Some(retries.next().unwrap_or(MAX_CONNECT_DELAY));
            }
        }
    }

    /// Waits `delay` while recording job events and applying stop requests;
    /// `false` when the daemon should exit instead.
    async fn wait_to_reconnect(&mut self, delay: Duration, shutdown: &Shutdown) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return !self.should_exit(),
                Some(ev) = self.events_rx.recv(), if self.buffered_lines() < MAX_BUFFERED_LINES => self.record(ev),
                stop = next_stop(&self.life, self.jobs.is_empty(), shutdown) => self.apply_stop(stop),
            }
            if self.should_exit() {
                return false;
            }
        }
    }

    /// Opens a session: hello, welcome, then everything unacknowledged.
    async fn open(&mut self) -> Result<Connection, tonic::Status> {
        let (tx, rx) = mpsc::channel(1024);
        let hello = protocol::Hello {
            daemon_id: self.id,
            name: self.settings.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            tags: self.settings.tags.clone(),
            provisioners: self.settings.provisioners.clone(),
            running_job_ids: self.jobs.keys().copied().collect(),
        };
        send_on(&tx, protocol::hello_to_proto(hello)).await?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        self.settings.credentials.apply(&mut request)?;
        let mut inbound =
            self.servers.current().client.clone().session(request).await?.into_inner();
        let welcome = match inbound.message().await? {
            Some(proto::ServerMessage { msg: Some(In::Welcome(w)) }) => {
                protocol::welcome_from_proto(w)
            }
            _ => return Err(tonic::Status::internal("server did not welcome the daemon")),
        };
        let (heartbeat, server_id) = (welcome.heartbeat_interval, welcome.daemon_id);
        let server_protocol = welcome.protocol.map_or_else(|| "unknown".into(), |v| v.to_string());
        // The server's id for this daemon, as its daemon list and jobs show it.
        let url = &self.servers.current().url;
        tracing::info!(%url, daemon_id = %server_id, protocol = %server_protocol, resumed = self.jobs.len(), "connected to server");
        self.settings.health.set_server(url);
        self.settings.health.set_connected(true);
        let conn = Connection { tx, inbound, heartbeat };
        self.resend(&conn).await?;
        Ok(conn)
    }

    /// Resends unacknowledged logs and completions, then asks for work.
    async fn resend(&mut self, conn: &Connection) -> Result<(), tonic::Status> {
        for (job_id, job) in &mut self.jobs {
            job.sent_up_to = job.unacked.back().map_or(job.sent_up_to, |l| l.seq);
            for chunk in job.unacked.iter().cloned().collect::<Vec<_>>().chunks(MAX_BATCH) {
                send_on(&conn.tx, protocol::logs(*job_id, chunk.to_vec())).await?;
            }
            if let Some(c) = &job.completion {
                send_on(&conn.tx, Out::Complete(c.clone())).await?;
            }
        }
        send_on(&conn.tx, protocol::acquire(self.wanted_slots())).await
    }

    fn wanted_slots(&self) -> u32 {
        if self.life.draining() {
            0
        } else {
            self.free_slots.len() as u32
        }
    }

    async fn serve(&mut self, mut conn: Connection, shutdown: &Shutdown) -> Disconnect {
        let mut heartbeat = tokio::time::interval(conn.heartbeat);
        // The server answers every heartbeat; silence this long means the
        // connection is dead even if TCP has not noticed.
        let silence_limit = conn.heartbeat * 3 + Duration::from_secs(1);
        let mut last_heard = tokio::time::Instant::now();
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A new session starts with the current wish (zero slots when draining).
        let mut announced_drain = self.life.draining();
        loop {
            if self.should_exit() {
                return Disconnect::Exit;
            }
            let linger = self.linger_until;
            let step = tokio::select! {
                _ = tokio::time::sleep_until(linger.unwrap_or_else(Instant::now)), if linger.is_some() => {
                    self.send_lingering(&conn).await
                }
                msg = conn.inbound.message() => match msg {
                    Ok(Some(m)) => {
                    last_heard = tokio::time::Instant::now();
                    self.settings.health.contact();
                    self.on_server_message(&conn, m).await
                }
                    Ok(None) => return Disconnect::Closed,
                    Err(status) => Err(status),
                },
                Some(ev) = self.events_rx.recv(), if self.buffered_lines() < MAX_BUFFERED_LINES => {
                    self.on_job_event(&conn, ev).await
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > silence_limit {
                        let silent = last_heard.elapsed();
                        Err(tonic::Status::unavailable(format!("no word from the server for {silent:?}")))
                    } else {
                        self.send_heartbeat(&conn).await
                    }
                }
                stop = next_stop(&self.life, self.jobs.is_empty(), shutdown) => {
                    self.apply_stop(stop);
                    Ok(())
                }
            };
            // Tell the server once that this daemon takes no more work.
            let step = match step {
                Ok(()) if self.life.draining() && !announced_drain => {
                    announced_drain = true;
                    send_on(&conn.tx, protocol::acquire(0)).await
                }
                other => other,
            };
            if let Err(status) = step {
                return Disconnect::Lost(status.to_string());
            }
        }
    }

    async fn send_heartbeat(&self, conn: &Connection) -> Result<(), tonic::Status> {
        send_on(&conn.tx, protocol::heartbeat(self.jobs.keys())).await
    }

    async fn on_server_message(
        &mut self,
        conn: &Connection,
        msg: proto::ServerMessage,
    ) -> Result<(), tonic::Status> {
        match msg.msg {
            Some(In::Offer(offer)) => self.on_offer(conn, offer).await,
            Some(In::Cancel(c)) => {
                let job =
                    protocol::parse_id(&c.job_id, "job_id").ok().and_then(|id| self.jobs.get(&id));
                match job {
                    // Not a user's cancel: the server ended the job while this
                    // daemon was away (or the offer expired). Terraform stops,
                    // and the state it leaves is still reported.
                    Some(job) if !c.reason.is_empty() => {
                        if job.completion.is_none() {
                            tracing::warn!(job = %c.job_id, reason = %c.reason, "the server ended this job; canceling it");
                        }
                        job.cancel.cancel();
                    }
                    Some(job) => {
                        tracing::info!(job = %c.job_id, "job canceled by the server");
                        job.cancel.cancel();
                    }
                    None => {
                        tracing::debug!(job = %c.job_id, "cancel for a job this daemon does not run")
                    }
                }
                Ok(())
            }
            Some(In::LogsAck(ack)) => {
                let Ok(id) = protocol::parse_id(&ack.job_id, "job_id") else { return Ok(()) };
                let Some(job) = self.jobs.get_mut(&id) else { return Ok(()) };
                while job.unacked.front().is_some_and(|l| l.seq <= ack.up_to_seq) {
                    job.unacked.pop_front();
                }
                job.acked_up_to = job.acked_up_to.max(ack.up_to_seq);
                self.settings.health.set_buffered_lines(self.buffered_lines());
                // What gathered while that batch was in flight goes now.
                self.send_new_logs(conn, id, false).await
            }
            Some(In::CompleteAck(ack)) => {
                if !ack.note.is_empty() {
                    // The server kept the result only in part, or refused it.
                    tracing::warn!(job = %ack.job_id, note = %ack.note, "the server did not take this job's result as a normal completion");
                }
                if let Ok(id) = protocol::parse_id(&ack.job_id, "job_id") {
                    if self.jobs.get(&id).is_some_and(|j| j.completion.is_some()) {
                        self.jobs.remove(&id);
                    }
                }
                Ok(())
            }
            Some(In::Welcome(_)) | Some(In::HeartbeatAck(_)) | None => Ok(()),
        }
    }

    async fn on_offer(
        &mut self,
        conn: &Connection,
        offer: proto::JobOffer,
    ) -> Result<(), tonic::Status> {
        let Ok(job_id) = protocol::parse_id(&offer.job_id, "job_id") else {
            return Err(tonic::Status::invalid_argument("offer with a malformed job id"));
        };
        if self.life.draining() || self.free_slots.is_empty() {
            send_on(&conn.tx, protocol::reject(job_id)).await?;
            return send_on(&conn.tx, protocol::acquire(self.wanted_slots())).await;
        }
        send_on(&conn.tx, protocol::ack(job_id)).await?;
        let slot = self.free_slots.pop().unwrap_or_default();
        self.slot_of.insert(job_id, slot);
        self.settings.health.set_running_jobs(self.slot_of.len());
        let cancel = CancellationToken::new();
        self.jobs.insert(
            job_id,
            RunningJob {
                cancel: cancel.clone(),
                next_seq: 1,
                sent_up_to: 0,
                unacked: VecDeque::new(),
                acked_up_to: 0,
                completion: None,
                // The job's start counts as a send: its first lines wait up
                // to `LOG_LINGER` for company, so a short job's whole log
                // goes in one batch (with its completion right after)
                // instead of a first line alone and then the rest.
                last_sent: Some(Instant::now()),
            },
        );
        let ctx = JobContext {
            daemon_id: self.id,
            clients: self.servers.clients_from_current(),
            credentials: self.settings.credentials.clone(),
            cache: self.cache.clone(),
            terraform: self.settings.terraform(slot),
            events: self.events_tx.clone(),
            cancel,
        };
        let job_type = JobType::from_wire(offer.job_type).map_or("unknown", JobType::as_str);
        tracing::info!(job = %job_id, job_type, "acquired job");
        if self.life.job_started() {
            tracing::info!(max_jobs = ?self.settings.stop.max_jobs, "reached --max-jobs: taking no more work");
            self.apply_stop(Stop::Drain);
        }
        // Everything logged for the job carries its id (a field in JSON logs).
        let span = tracing::info_span!("job", job = %job_id, daemon = %self.settings.name);
        self.tasks
            .spawn(tracing::Instrument::instrument(super::job::run(job_id, offer, ctx), span));
        Ok(())
    }

    /// Handles one job event: a batch of lines goes on as the job's log
    /// rules allow ([`Self::send_new_logs`]); a completion goes after every
    /// line of its job, and the freed slot is asked to be filled.
    async fn on_job_event(&mut self, conn: &Connection, ev: JobEvent) -> Result<(), tonic::Status> {
        let (job_id, done) = match &ev {
            JobEvent::Logs(id, _) => (*id, false),
            JobEvent::Done(id, _) => (*id, true),
        };
        self.record(ev);
        if !done {
            return self.send_new_logs(conn, job_id, false).await;
        }
        self.send_new_logs(conn, job_id, true).await?;
        if let Some(c) = self.jobs.get(&job_id).and_then(|j| j.completion.clone()) {
            send_on(&conn.tx, Out::Complete(c)).await?;
        }
        if !self.life.draining() {
            send_on(&conn.tx, protocol::acquire(self.wanted_slots())).await?;
        }
        Ok(())
    }

    /// Sends the job's lines not yet sent on this connection. Unless
    /// `force`d, it waits while an earlier batch is unacknowledged: lines
    /// that arrive meanwhile go together after the ack, so a chatty job
    /// sends few large batches and a quiet one each line at once.
    async fn send_new_logs(
        &mut self,
        conn: &Connection,
        job_id: Uuid,
        force: bool,
    ) -> Result<(), tonic::Status> {
        let Some(job) = self.jobs.get_mut(&job_id) else { return Ok(()) };
        if !force && job.sent_up_to > job.acked_up_to {
            return Ok(());
        }
        // Lines are kept in seq order without gaps, so the unsent ones are a
        // suffix: skip to it instead of scanning the whole buffer.
        let from = unsent_from(&job.unacked, job.sent_up_to);
        let unsent = job.unacked.len().saturating_sub(from);
        if unsent == 0 {
            return Ok(());
        }
        if !force && unsent < MAX_BATCH {
            if let Some(due) = job.last_sent.map(|t| t + LOG_LINGER) {
                if due > Instant::now() {
                    self.linger_until = Some(self.linger_until.map_or(due, |d| d.min(due)));
                    return Ok(());
                }
            }
        }
        job.last_sent = Some(Instant::now());
        let mut lines = job.unacked.iter().skip(from).cloned().peekable();
        while lines.peek().is_some() {
            let chunk: Vec<proto::LogLine> = lines.by_ref().take(MAX_BATCH).collect();
            if let Some(last) = chunk.last() {
                job.sent_up_to = last.seq;
            }
            send_on(&conn.tx, protocol::logs(job_id, chunk)).await?;
        }
        Ok(())
    }

    /// Sends the lines [`LOG_LINGER`] held back, now that they are due.
    async fn send_lingering(&mut self, conn: &Connection) -> Result<(), tonic::Status> {
        self.linger_until = None;
        let ids: Vec<Uuid> = self.jobs.keys().copied().collect();
        for job_id in ids {
            self.send_new_logs(conn, job_id, false).await?;
        }
        Ok(())
    }

    /// Records a job event in the daemon's state (no I/O).
    fn record(&mut self, ev: JobEvent) {
        self.record_event(ev);
        self.settings.health.set_buffered_lines(self.buffered_lines());
        self.settings.health.set_running_jobs(self.slot_of.len());
    }

    fn record_event(&mut self, ev: JobEvent) {
        match ev {
            JobEvent::Logs(job_id, lines) => {
                if let Some(job) = self.jobs.get_mut(&job_id) {
                    job.unacked.reserve(lines.len());
                    for line in lines {
                        job.unacked.push_back(log_to_proto(job.next_seq, line));
                        job.next_seq += 1;
                    }
                }
            }
            JobEvent::Done(job_id, report) => {
                // Said also while disconnected: the result waits for the server.
                tracing::info!(job = %job_id, "job finished");
                self.life.job_finished();
                if let Some(slot) = self.slot_of.remove(&job_id) {
                    self.free_slots.push(slot);
                }
                if let Some(job) = self.jobs.get_mut(&job_id) {
                    job.completion = Some(report.into_proto(job_id, job.next_seq - 1));
                }
            }
        }
    }
}

/// Index of the first line after `sent_up_to` in a seq-ordered buffer.
fn unsent_from(unacked: &VecDeque<proto::LogLine>, sent_up_to: i64) -> usize {
    unacked.front().map_or(0, |first| usize::try_from(sent_up_to + 1 - first.seq).unwrap_or(0))
}

async fn send_on(tx: &mpsc::Sender<proto::DaemonMessage>, msg: Out) -> Result<(), tonic::Status> {
    tx.send(proto::DaemonMessage { msg: Some(msg) })
        .await
        .map_err(|_| tonic::Status::unavailable("session stream closed"))
}

/// A reason to change how the daemon runs.
enum Stop {
    Drain,
    Abort,
    Due(Due),
}

/// Waits for the next stop signal or lifecycle deadline.
async fn next_stop(life: &Lifecycle, idle: bool, shutdown: &Shutdown) -> Stop {
    let deadline = life.next_deadline(idle);
    let at =
        deadline.map_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400), |d| d.0);
    tokio::select! {
        _ = shutdown.drain.cancelled(), if !life.draining() => Stop::Drain,
        _ = shutdown.abort.cancelled(), if !life.aborted() => Stop::Abort,
        _ = tokio::time::sleep_until(at), if deadline.is_some() => Stop::Due(deadline.map_or(Due::GiveUp, |d| d.1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(seqs: std::ops::RangeInclusive<i64>) -> VecDeque<proto::LogLine> {
        seqs.map(|seq| proto::LogLine { seq, ..Default::default() }).collect()
    }

    #[test]
    fn unsent_lines_are_the_suffix_after_the_last_sent() {
        let buf = lines(5..=9);
        assert_eq!(unsent_from(&buf, 4), 0, "nothing of this buffer sent yet");
        assert_eq!(unsent_from(&buf, 6), 2);
        assert_eq!(buf.iter().skip(unsent_from(&buf, 9)).count(), 0, "all sent");
        assert_eq!(unsent_from(&VecDeque::new(), 3), 0);
    }

    /// A batch from a job becomes that many numbered lines, in order, with
    /// the job's sequence going on across batches.
    #[tokio::test]
    async fn a_batch_is_numbered_in_order_across_batches() {
        let mut daemon =
            ConnectionManager::new(WorkerSettings::new("http://127.0.0.1:9")).expect("daemon");
        let job_id = Uuid::new_v4();
        daemon.jobs.insert(
            job_id,
            RunningJob {
                cancel: CancellationToken::new(),
                next_seq: 1,
                sent_up_to: 0,
                acked_up_to: 0,
                unacked: VecDeque::new(),
                completion: None,
                last_sent: None,
            },
        );
        let line = |output: &str| LogLine {
            source: crate::domain::LogSource::Provisioner,
            level: crate::domain::LogLevel::Info,
            stage: "Planning".into(),
            output: output.into(),
            created_at: chrono::Utc::now(),
        };
        daemon.record(JobEvent::Logs(job_id, vec![line("a"), line("b"), line("c")]));
        daemon.record(JobEvent::Logs(job_id, vec![line("d"), line("e")]));
        daemon.record(JobEvent::Logs(Uuid::new_v4(), vec![line("not ours")]));
        let job = &daemon.jobs[&job_id];
        let got: Vec<(i64, &str)> =
            job.unacked.iter().map(|l| (l.seq, l.output.as_str())).collect();
        assert_eq!(got, [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]);
        assert_eq!(job.next_seq, 6);
        assert_eq!(daemon.buffered_lines(), 5);
    }
}
