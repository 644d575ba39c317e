//! The small messages of a session, built from domain values: what the
//! server sends (welcome, offer, cancel, acknowledgements) and what the
//! daemon sends (acquire, ack, reject, logs, heartbeat, completion). The
//! payload-carrying ones are converted in their own files.

use std::time::Duration;

use uuid::Uuid;

use super::proto::daemon_message::Msg as FromDaemon;
use super::proto::server_message::Msg as FromServer;
use super::{offer_to_proto, proto, JobOffer};

/// The server's welcome: the heartbeat interval the daemon should keep, its
/// id on the server, and the server's protocol version.
pub fn welcome(heartbeat: Duration, daemon_id: Uuid) -> FromServer {
    let heartbeat_interval_ms = u32::try_from(heartbeat.as_millis()).unwrap_or(u32::MAX);
    FromServer::Welcome(proto::Welcome {
        heartbeat_interval_ms,
        daemon_id: daemon_id.to_string(),
        protocol: Some(super::PROTOCOL_VERSION.into()),
    })
}

/// A job for the daemon.
pub fn offer(o: JobOffer) -> FromServer {
    FromServer::Offer(offer_to_proto(o))
}

/// Stop a job; `reason` is empty for a user's cancel.
pub fn cancel(job_id: Uuid, reason: &str) -> FromServer {
    FromServer::Cancel(proto::CancelJob { job_id: job_id.to_string(), reason: reason.to_owned() })
}

/// Every line of the job with seq up to `up_to_seq` is stored.
pub fn logs_ack(job_id: Uuid, up_to_seq: i64) -> FromServer {
    FromServer::LogsAck(proto::LogsAck { job_id: job_id.to_string(), up_to_seq })
}

/// The job's completion is settled; `note` says how, when not as usual.
pub fn complete_ack(job_id: Uuid, note: String) -> FromServer {
    FromServer::CompleteAck(proto::CompleteAck { job_id: job_id.to_string(), note })
}

pub fn heartbeat_ack() -> FromServer {
    FromServer::HeartbeatAck(proto::HeartbeatAck {})
}

/// The daemon wants up to `slots` more jobs (0: none).
pub fn acquire(slots: u32) -> FromDaemon {
    FromDaemon::Acquire(proto::Acquire { slots })
}

/// The daemon takes the offered job.
pub fn ack(job_id: Uuid) -> FromDaemon {
    FromDaemon::Ack(proto::Ack { job_id: job_id.to_string() })
}

/// The daemon declines the offered job.
pub fn reject(job_id: Uuid) -> FromDaemon {
    FromDaemon::Reject(proto::Reject { job_id: job_id.to_string() })
}

/// Log lines of one job (see [`super::log_to_proto`]).
pub fn logs(job_id: Uuid, lines: Vec<proto::LogLine>) -> FromDaemon {
    FromDaemon::Logs(proto::LogBatch { job_id: job_id.to_string(), lines })
}

/// The jobs the daemon runs, to mark them alive.
pub fn heartbeat<'a>(running: impl Iterator<Item = &'a Uuid>) -> FromDaemon {
    FromDaemon::Heartbeat(proto::Heartbeat {
        running_job_ids: running.map(Uuid::to_string).collect(),
    })
}

/// The job ids of a heartbeat; ids that do not read are skipped, since
/// heartbeats are advisory.
pub fn heartbeat_ids(h: &proto::Heartbeat) -> Vec<Uuid> {
    h.running_job_ids.iter().filter_map(|j| j.parse().ok()).collect()
}

/// The highest seq of a log batch (0 for none), without reading its lines.
pub fn batch_up_to(batch: &proto::LogBatch) -> i64 {
    batch.lines.iter().map(|l| l.seq).max().unwrap_or(0)
}

/// Size of the chunks a file is sent in.
const FILE_CHUNK: usize = 256 * 1024;

/// A file as the chunks the server streams.
pub fn file_chunks(data: &[u8]) -> Vec<proto::FileChunk> {
    data.chunks(FILE_CHUNK).map(|c| proto::FileChunk { data: c.to_vec() }).collect()
}

/// What a download asks for: the file, and the daemon and job it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download {
    pub file_id: Uuid,
    /// The id the daemon claims in its hello.
    pub daemon_id: Uuid,
    pub job_id: Uuid,
}

pub fn download_to_proto(d: Download) -> proto::DownloadFileRequest {
    proto::DownloadFileRequest {
        file_id: d.file_id.to_string(),
        daemon_id: d.daemon_id.to_string(),
        job_id: d.job_id.to_string(),
    }
}

pub fn download_from_proto(r: &proto::DownloadFileRequest) -> Result<Download, super::BadMessage> {
    Ok(Download {
        file_id: super::parse_id(&r.file_id, "file_id")?,
        daemon_id: super::parse_id(&r.daemon_id, "daemon_id")?,
        job_id: super::parse_id(&r.job_id, "job_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_carry_their_ids() {
        let (job, daemon, file) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let d = Download { file_id: file, daemon_id: daemon, job_id: job };
        assert_eq!(download_from_proto(&download_to_proto(d)), Ok(d));
        let bad = proto::DownloadFileRequest { file_id: "f".into(), ..download_to_proto(d) };
        assert!(download_from_proto(&bad).expect_err("file id").0.contains("file_id"));
        let ids = [job, daemon];
        let FromDaemon::Heartbeat(h) = heartbeat(ids.iter()) else { panic!("a heartbeat") };
        assert_eq!(heartbeat_ids(&h), ids);
        let FromServer::Cancel(c) = cancel(job, "why") else { panic!("a cancel") };
        assert_eq!((c.job_id, c.reason), (job.to_string(), "why".to_owned()));
        let FromDaemon::Logs(batch) =
            logs(job, vec![proto::LogLine { seq: 4, ..Default::default() }])
        else {
            panic!("logs")
        };
        assert_eq!(batch_up_to(&batch), 4);
        let file = vec![7u8; FILE_CHUNK * 2 + 1];
        let chunks = file_chunks(&file);
        assert_eq!(
            chunks.iter().map(|c| c.data.len()).collect::<Vec<_>>(),
            [FILE_CHUNK, FILE_CHUNK, 1]
        );
        assert_eq!(chunks.into_iter().flat_map(|c| c.data).collect::<Vec<_>>(), file);
    }
}
