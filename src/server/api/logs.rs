//! Job logs for builds and template versions: pages by log id (`after`,
//! `before`, exclusive), and `follow=true` as a WebSocket that sends one
//! JSON log per text frame and closes (1000) once the job has completed and
//! every line was sent.
//!
//! A follower reads the store a page at a time, taking one of a few follower
//! permits around each read only, so followers never hold a store connection
//! while writing and never take every connection from the REST API. One
//! whose socket takes no page within `follow_stall_timeout` is closed with
//! 1013 (try again later) and the reason `log follower fell behind: follow
//! again with after=<id of the last line it was sent>`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::{json, uuid_param, Query};
use crate::domain::StoredLog;
use crate::server::limits::{FollowPage, Limits};
use crate::server::{AppState, Event, LogBatch};
use crate::store::{LogRange, StoreError};

/// Safety net for a follower: look again this often even without events.
const FOLLOW_RECHECK: Duration = Duration::from_secs(1);

/// Lines per store read when listing a whole log.
const PAGE: i64 = 2000;
const PAGE_LEN: usize = PAGE as usize;

/// Lines per store read for a WebSocket follower: its memory is one page,
/// whatever the size of the log.
const FOLLOW_PAGE: i64 = 1000;
const FOLLOW_PAGE_LEN: usize = FOLLOW_PAGE as usize;

/// Bytes of lines a follower frames per send turn.
const CHUNK_BYTES: usize = 64 * 1024;

/// How long a closing follower may take to read its last lines and the
/// close frame before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

#[derive(Deserialize, Default)]
pub struct LogQuery {
    after: Option<i64>,
    before: Option<i64>,
    #[serde(default)]
    follow: bool,
}

pub async fn build_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> ApiResult<Response> {
    let build = state.app().build(caller.subject(), uuid_param("workspacebuild", &id)?).await?;
    respond(state, build.job_id, q, req).await
}

pub async fn version_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> ApiResult<Response> {
    let id = uuid_param("templateversion", &id)?;
    let version = state.app().template_version(caller.subject(), id).await?;
    respond(state, version.job_id, q, req).await
}

async fn respond(state: AppState, job_id: Uuid, q: LogQuery, req: Request) -> ApiResult<Response> {
    let range = LogRange { after: q.after, before: q.before, limit: None };
    if !q.follow {
        return log_array(state, job_id, range).await;
    }
    let (mut parts, _) = req.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state).await.map_err(|e| {
        ApiError::bad_request("follow=true needs a WebSocket connection.").detail(e.body_text())
    })?;
    // Subscribe before the first read, so nothing stored in between is missed.
    let events = state.events.subscribe();
    let stored = state.events.subscribe_logs();
    Ok(upgrade.on_upgrade(move |socket| async move {
        // On the low-priority runtime, so followers cannot starve the API.
        let wakes = Wakes { events, stored };
        let following = follow(socket, state, job_id, Sent::new(q.after), wakes);
        if let Err(e) = crate::server::background::handle().spawn(following).await {
            tracing::error!(job = %job_id, error = %e, "log follower task failed");
        }
    }))
}

/// The job's lines in `range` as one JSON array, read from the store a page
/// at a time and streamed, so a build with a million lines costs the server
/// one page of memory rather than the whole log.
async fn log_array(state: AppState, job_id: Uuid, range: LogRange) -> ApiResult<Response> {
    // The first page is read before answering, so a store error is still a
    // proper error response; a short log is answered in one piece.
    let first = state.store.logs(job_id, LogRange { limit: Some(PAGE), ..range }).await?;
    let more = first.len() == PAGE_LEN;
    let mut body = vec![b'['];
    write_page(&mut body, &first, false);
    if !more {
        body.push(b']');
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    // The id to read after; `None` once the last page (shorter than PAGE,
    // maybe empty) has closed the array.
    let cursor = first.last().map(|l| l.id);
    let rest = futures::stream::try_unfold(cursor, move |cursor| {
        let state = state.clone();
        async move {
            let Some(after) = cursor else { return Ok::<_, StoreError>(None) };
            let page = LogRange { after: Some(after), limit: Some(PAGE), ..range };
            let lines = state.store.logs(job_id, page).await.inspect_err(|e| {
                tracing::warn!(job = %job_id, error = %e, "log listing cut short");
            })?;
            let mut chunk = Vec::new();
            write_page(&mut chunk, &lines, true);
            let next = if lines.len() == PAGE_LEN { lines.last().map(|l| l.id) } else { None };
            if next.is_none() {
                chunk.push(b']');
            }
            Ok(Some((Bytes::from(chunk), next)))
        }
    });
    let body = futures::stream::once(async move { Ok(Bytes::from(body)) }).chain(rest);
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

/// Appends `lines` as JSON array elements, each after a comma when
/// `continued` or not the first.
fn write_page(out: &mut Vec<u8>, lines: &[StoredLog], continued: bool) {
    for (i, l) in lines.iter().enumerate() {
        if continued || i > 0 {
            out.push(b',');
        }
        // Serializing a struct of strings and numbers into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, &json::log(l));
    }
}

/// What a follower has sent so far.
struct Sent {
    /// Id of the last line sent (or the client's `after`).
    after: Option<i64>,
    /// Sequence number of the last line sent, when known: lines pushed by the
    /// log bus are sent directly only when they continue it.
    last_seq: Option<i64>,
}

impl Sent {
    fn new(after: Option<i64>) -> Self {
        // From the start of the log, the line before the first one is seq 0;
        // after a client's id, the seq is unknown until a read returns lines.
        Self { after, last_seq: after.is_none().then_some(0) }
    }

    /// The part of a stored batch to send next, when it follows on from
    /// what was sent: lines already sent are skipped, and the rest must
    /// start right after the last seq sent. The store only ever adds lines
    /// above a job's highest seq, so no line can hide in a gap this rules
    /// out. `None` means "read the store instead".
    fn continuation<'a>(&self, lines: &'a [StoredLog]) -> Option<&'a [StoredLog]> {
        let last = self.last_seq?;
        let start = lines.iter().position(|l| l.seq > last).unwrap_or(lines.len());
        let rest = &lines[start..];
        match rest.first() {
            Some(l) if l.seq != last + 1 => None,
            _ => Some(rest),
        }
    }
}

/// What wakes a follower.
struct Wakes {
    events: broadcast::Receiver<Event>,
    stored: broadcast::Receiver<Arc<LogBatch>>,
}

enum Wake {
    /// Lines of this job were stored.
    Lines(Arc<LogBatch>),
    /// The job changed, an event was missed, or it is time to check anyway:
    /// read the store.
    Look,
    /// The client or the server is gone.
    Gone,
}

async fn follow(
    mut socket: WebSocket,
    state: AppState,
    job_id: Uuid,
    mut sent: Sent,
    mut wakes: Wakes,
) {
    let stall = state.settings.follow_stall_timeout;
    loop {
        // Read completion first: every line stored before completion is then
        // in the reads that follow.
        let done = {
            let _turn = state.limits.follow_read().await;
            state.store.job(job_id).await.map(|job| job.completed_at.is_some())
        };
        let done = match done {
            Ok(done) => done,
            Err(e) => return stopped(socket, job_id, &e).await,
        };
        // A page at a time, each read under a follower permit that is given
        // back before the page is written out: a slow socket holds neither a
        // store connection nor more than one page of memory.
        loop {
            let page = match read_page(&state, job_id, sent.after).await {
                Ok(page) => page,
                Err(e) => return stopped(socket, job_id, &e).await,
            };
            let (lines, texts) = match &page {
                Page::Full(p, start) => (&p.lines[*start..], Some(&p.texts[*start..])),
                Page::Short(lines) => (&lines[..], None),
            };
            match send_lines(&mut socket, lines, texts, &mut sent, &state.limits, stall).await {
                Outcome::Sent => {}
                Outcome::Gone => return,
                Outcome::Stalled => return fell_behind(socket, job_id, &sent).await,
            }
            if matches!(page, Page::Short(_)) {
                break;
            }
        }
        if done {
            let frame =
                CloseFrame { code: close_code::NORMAL, reason: "the job has completed".into() };
            let _ =
                tokio::time::timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame)))).await;
            return;
        }
        // Until something calls for a store read, send lines as the writer
        // hands them over: reading each batch back cost the server about a
        // third of its time per line on a chatty build (scripts/bench).
        let recheck = tokio::time::sleep(FOLLOW_RECHECK);
        tokio::pin!(recheck);
        loop {
            match next_wake(&mut socket, &mut wakes, job_id, recheck.as_mut()).await {
                Wake::Gone => return,
                Wake::Look => break,
                Wake::Lines(batch) => match sent.continuation(&batch.logs.lines) {
                    Some(lines) => {
                        let texts = batch.rendered(render);
                        let texts = &texts[texts.len() - lines.len()..];
                        match send_lines(
                            &mut socket,
                            lines,
                            Some(texts),
                            &mut sent,
                            &state.limits,
                            stall,
                        )
                        .await
                        {
                            Outcome::Sent => {}
                            Outcome::Gone => return,
                            Outcome::Stalled => return fell_behind(socket, job_id, &sent).await,
                        }
                    }
                    None => break,
                },
            }
        }
    }
}

/// One store read of a follower.
enum Page {
    /// A full page shared with the other followers of the job, from the
    /// index of the first line to send.
    Full(Arc<FollowPage>, usize),
    /// The end of what is stored so far.
    Short(Vec<StoredLog>),
}

/// The page after `after`: from the shared cache when another follower read
/// it already, otherwise from the store under a follower permit (given back
/// before the page is written out).
async fn read_page(state: &AppState, job_id: Uuid, after: Option<i64>) -> Result<Page, StoreError> {
    if let Some((p, start)) = state.limits.follow_pages.get(job_id, after) {
        return Ok(Page::Full(p, start));
    }
    let lines = {
        let _turn = state.limits.follow_read().await;
        // Another follower may have read it while this one waited.
        if let Some((p, start)) = state.limits.follow_pages.get(job_id, after) {
            return Ok(Page::Full(p, start));
        }
        let range = LogRange { after, before: None, limit: Some(FOLLOW_PAGE) };
        state.store.logs(job_id, range).await?
    };
    if lines.len() < FOLLOW_PAGE_LEN {
        return Ok(Page::Short(lines));
    }
    let page = Arc::new(FollowPage { texts: render(&lines), lines });
    state.limits.follow_pages.put(job_id, after, page.clone());
    Ok(Page::Full(page, 0))
}

enum Outcome {
    Sent,
    /// The client went away.
    Gone,
    /// The client did not take the lines within the stall timeout.
    Stalled,
}

/// Each line's JSON text, as followers send it.
fn render(lines: &[StoredLog]) -> Vec<String> {
    // Serializing a struct of strings and numbers cannot fail.
    lines.iter().map(|l| serde_json::to_string(&json::log(l)).unwrap_or_default()).collect()
}

/// Sends one message per line, written out in chunks of about
/// [`CHUNK_BYTES`] (a flush per line cost a write per line on a chatty
/// build). Each chunk is framed under a send turn (see
/// [`Limits::follow_turn`]) and flushed after the turn is given back, and
/// must go out within `stall`. `texts`, when given, are the lines already
/// rendered (shared by every follower of the page or batch).
async fn send_lines(
    socket: &mut WebSocket,
    lines: &[StoredLog],
    texts: Option<&[String]>,
    sent: &mut Sent,
    limits: &Limits,
    stall: Duration,
) -> Outcome {
    let mut next = 0;
    while next < lines.len() {
        let turn = limits.follow_turn().await;
        // The socket was flushed, so framing a chunk this size fills
        // tungstenite's buffer (128 KiB) without waiting on the socket, and
        // the turn is never held across a slow client.
        let chunk = async {
            let mut bytes = 0;
            while next < lines.len() && bytes < CHUNK_BYTES {
                let l = &lines[next];
                let text = match texts.and_then(|t| t.get(next)) {
                    Some(t) => t.clone(),
                    None => serde_json::to_string(&json::log(l)).unwrap_or_default(),
                };
                bytes += text.len();
                socket.feed(Message::Text(text.into())).await?;
                // Once fed, the line is queued ahead of anything sent later
                // (a close frame included), so the client gets it before that.
                sent.after = Some(l.id);
                sent.last_seq = Some(l.seq);
                next += 1;
            }
            Ok::<_, axum::Error>(())
        };
        let fed = tokio::time::timeout(stall, chunk).await;
        drop(turn);
        let flushed = match fed {
            Ok(Ok(())) => tokio::time::timeout(stall, socket.flush()).await,
            other => other,
        };
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Outcome::Gone,
            Err(_) => return Outcome::Stalled,
        }
    }
    Outcome::Sent
}

/// Closes a follower whose socket stopped taking lines, with a close frame
/// that tells it where to resume. The frame is queued after every line
/// already handed to the socket, so a client that reads again gets those
/// lines, then the frame; one that never reads again is dropped after
/// [`CLOSE_GRACE`].
async fn fell_behind(mut socket: WebSocket, job_id: Uuid, sent: &Sent) {
    let reason = fell_behind_reason(sent.after);
    tracing::info!(job = %job_id, after = ?sent.after, "log follower fell behind: closing it");
    let frame = CloseFrame { code: close_code::AGAIN, reason: reason.into() };
    let _ = tokio::time::timeout(CLOSE_GRACE, async move {
        socket.send(Message::Close(Some(frame))).await?;
        // Wait for the client's close reply (the closing handshake), so the
        // socket is not torn down under lines it has yet to read.
        while let Some(msg) = socket.recv().await {
            if matches!(msg?, Message::Close(_)) {
                break;
            }
        }
        Ok::<_, axum::Error>(())
    })
    .await;
}

/// The close reason for a follower that fell behind (at most 123 bytes, as
/// WebSocket allows).
pub fn fell_behind_reason(after: Option<i64>) -> String {
    match after {
        Some(id) => format!("log follower fell behind: follow again with after={id}"),
        None => "log follower fell behind: follow again".to_owned(),
    }
}

/// Ends a follower on a store error with 1011 (internal error), so the
/// client knows it was not the end of the log.
async fn stopped(mut socket: WebSocket, job_id: Uuid, e: &StoreError) {
    tracing::warn!(job = %job_id, error = %e, "log follower stopped");
    let frame =
        CloseFrame { code: close_code::ERROR, reason: "internal error reading logs".into() };
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame)))).await;
}

/// Waits for lines, a change of the job, or the recheck deadline.
async fn next_wake(
    socket: &mut WebSocket,
    wakes: &mut Wakes,
    job_id: Uuid,
    mut recheck: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Wake {
    loop {
        tokio::select! {
            batch = wakes.stored.recv() => match batch {
                Ok(batch) if batch.logs.job_id == job_id => return Wake::Lines(batch),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return Wake::Look,
                Err(RecvError::Closed) => return Wake::Gone,
            },
            ev = wakes.events.recv() => match ev {
                Ok(Event::JobUpdated(j) | Event::JobCanceled(j) | Event::LogsStored(j))
                    if j == job_id =>
                {
                    return Wake::Look
                }
                Ok(Event::Missed) => return Wake::Look,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return Wake::Look,
                Err(RecvError::Closed) => return Wake::Gone,
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Wake::Gone,
                Some(Ok(_)) => {}
            },
            _ = &mut recheck => return Wake::Look,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::Sent;
    use crate::domain::{LogLevel, LogLine, LogSource, StoredLog};

    fn lines(seqs: std::ops::RangeInclusive<i64>) -> Vec<StoredLog> {
        let line = LogLine {
            source: LogSource::Provisioner,
            level: LogLevel::Info,
            stage: String::new(),
            output: String::new(),
            created_at: Utc::now(),
        };
        seqs.map(|seq| StoredLog { id: seq * 10, job_id: Uuid::nil(), seq, line: line.clone() })
            .collect()
    }

    fn seqs(got: Option<&[StoredLog]>) -> Option<Vec<i64>> {
        got.map(|ls| ls.iter().map(|l| l.seq).collect())
    }

    #[test]
    fn pushed_lines_are_sent_only_when_they_continue_what_was_sent() {
        let from_start = Sent::new(None);
        assert_eq!(seqs(from_start.continuation(&lines(1..=3))), Some(vec![1, 2, 3]));
        assert_eq!(seqs(from_start.continuation(&lines(2..=3))), None, "line 1 was missed");

        let after_five = Sent { after: Some(50), last_seq: Some(5) };
        assert_eq!(seqs(after_five.continuation(&lines(4..=7))), Some(vec![6, 7]), "overlap");
        assert_eq!(seqs(after_five.continuation(&lines(1..=5))), Some(vec![]), "all sent");
        assert_eq!(seqs(after_five.continuation(&lines(7..=8))), None, "line 6 was missed");

        let client_after = Sent::new(Some(42));
        assert_eq!(seqs(client_after.continuation(&lines(1..=2))), None, "seq unknown");
    }
}
