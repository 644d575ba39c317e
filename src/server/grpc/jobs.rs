//! The work a daemon session hands out and takes back: offering queued
//! jobs while the daemon has credits (and returning offers it did not
//! acknowledge), storing its log batches and its completions.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::parse_uuid;
use super::session::{DaemonSession, SessionError};
use crate::app;
use crate::domain::{Job, JobType};
use crate::proto;
use crate::protocol;
use crate::server::offer::job_offer;
use crate::server::{Event, StoredLogs};
use crate::store::{AcquireRequest, CompleteResult, LogBatch};

/// How often a job's log batches also mark it as alive (its heartbeats do
/// too): once per batch cost a write of the job's row every few milliseconds.
const LOG_TOUCH_EVERY: Duration = Duration::from_secs(1);

impl DaemonSession {
    pub(super) async fn on_logs(&mut self, batch: proto::LogBatch) -> Result<(), SessionError> {
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

    pub(super) async fn on_complete(&mut self, c: proto::Complete) -> Result<(), SessionError> {
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
        self.cancel_sent.remove(&job_id);
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

    /// When the oldest unacknowledged offer expires.
    pub(super) fn next_offer_due(&self) -> Option<tokio::time::Instant> {
        let oldest = self.offered_at.values().min()?;
        Some(tokio::time::Instant::from_std(*oldest + self.state.settings.offer_ack_timeout))
    }

    /// Puts offers the daemon did not acknowledge in time back in the
    /// queue, for another daemon: this one's connection may be dead without
    /// anyone having noticed yet. It gets no more offers until it asks.
    pub(super) async fn expire_offers(&mut self) -> Result<(), SessionError> {
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
            self.canceled_offers.remove(&job_id);
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
    pub(super) async fn offer_jobs(&mut self) -> Result<(), SessionError> {
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
            let offer = match job_offer(self.state.store.as_ref(), &mut self.files, &job).await {
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
    pub(super) async fn release_offers(&mut self) {
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
