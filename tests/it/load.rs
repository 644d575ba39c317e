//! Load on the REST API that must not starve it: many WebSocket followers of
//! a chatty build (each gets every line in order, the API keeps answering),
//! a follower that stops reading (closed with a close frame telling it to
//! resume with `after`), and a flood of wrong-password logins (`/healthz`
//! stays fast, the account is rate-limited, others can still log in).

use std::time::{Duration, Instant};

use futures::StreamExt;
use provisionerd::sdk::{Client, CreateUserRequest, ErrorResponse, Log, LoginResponse};
use provisionerd::server::limits::LoginLimits;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

/// An echo template whose start build prints `lines` lines of about
/// `width` bytes, after `delay_ms` (so followers can connect first).
fn chatty_echo(lines: usize, width: usize, delay_ms: u64) -> tempfile::TempDir {
    let pad = "x".repeat(width);
    let logs: Vec<Value> = (1..=lines)
        .map(|i| json!({"stage": "Flood", "output": format!("line {i} {pad}")}))
        .collect();
    echo_template(&json!({"transitions": {"start": {"delay_ms": delay_ms, "logs": logs}}}))
}

/// The number in `line <n> ...`.
fn line_number(l: &Log) -> Option<usize> {
    l.output.strip_prefix("line ")?.split(' ').next()?.parse().ok()
}

fn ws_url(base: &str, build_id: uuid::Uuid, after: Option<i64>) -> String {
    let base = base.replacen("http", "ws", 1);
    let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
    format!("{base}/api/v2/workspacebuilds/{build_id}/logs?follow=true{after}")
}

/// Follows until the server closes; returns the lines and the close frame.
async fn follow(
    server: &TestServer,
    c: &Client,
    build_id: uuid::Uuid,
    after: Option<i64>,
) -> (Vec<Log>, Option<(CloseCode, String)>) {
    let mut request = ws_url(&server.url, build_id, after).into_client_request().expect("request");
    request.headers_mut().insert("Coder-Session-Token", c.token().parse().expect("header"));
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket");
    read_to_close(socket).await
}

async fn read_to_close<S>(mut socket: S) -> (Vec<Log>, Option<(CloseCode, String)>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut lines = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(msg) = socket.next().await {
            match msg.expect("frame") {
                Message::Text(t) => lines.push(serde_json::from_str(&t).expect("one JSON log")),
                Message::Close(frame) => {
                    return frame.map(|f| (f.code, f.reason.to_string()));
                }
                _ => {}
            }
        }
        None
    })
    .await;
    (lines, read.expect("the server closes the follow socket within 120 s"))
}

fn ids(lines: &[Log]) -> Vec<i64> {
    lines.iter().map(|l| l.id).collect()
}

/// Many followers of one chatty build all get every line once and in order,
/// while `GET /api/v2/workspaces` keeps answering: followers read the store
/// a page at a time under a few permits, so they cannot take the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_followers_get_every_line_in_order_and_the_api_keeps_answering() {
    const FOLLOWERS: usize = 30;
    const LINES: usize = 5000;
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = chatty_echo(LINES, 40, 1500);
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;

    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let url = server.url.clone();
            let token = c.token().to_owned();
            tokio::spawn(async move {
                let mut request = ws_url(&url, build_id, None).into_client_request().expect("req");
                request.headers_mut().insert("Coder-Session-Token", token.parse().expect("header"));
                let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws");
                read_to_close(socket).await
            })
        })
        .collect();

    // Poll the API while the followers run; the slowest answer counts.
    let poll = {
        let c = server.client().await;
        tokio::spawn(async move {
            let (mut slowest, mut polls) = (Duration::ZERO, 0);
            loop {
                let t = Instant::now();
                let list = c.workspaces(None, None).await.expect("list workspaces");
                slowest = slowest.max(t.elapsed());
                polls += 1;
                assert!(list.count >= 1, "{list:?}");
                let b = c.build(build_id).await;
                if b.is_ok_and(|b| is_final(&b.job.status)) {
                    return (slowest, polls);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut got = Vec::new();
    for f in followers {
        got.push(f.await.expect("follower task"));
    }
    let (slowest, polls) = poll.await.expect("poll task");
    let all = c.build_logs(build_id, Default::default()).await.expect("logs");
    let numbers: Vec<usize> = all.iter().filter_map(line_number).collect();
    assert_eq!(numbers, (1..=LINES).collect::<Vec<_>>(), "the build stored every line");
    for (i, (lines, close)) in got.iter().enumerate() {
        assert_eq!(
            close.as_ref().map(|c| c.0),
            Some(CloseCode::Normal),
            "follower {i} ends normally"
        );
        assert_eq!(ids(lines), ids(&all), "follower {i} got every line once, in order");
    }
    // Late followers read the whole log from the store, a page at a time,
    // the full pages shared between them: each still gets every line.
    let late: Vec<_> = (0..10)
        .map(|_| {
            let (url, token) = (server.url.clone(), c.token().to_owned());
            tokio::spawn(async move {
                let mut request = ws_url(&url, build_id, None).into_client_request().expect("req");
                request.headers_mut().insert("Coder-Session-Token", token.parse().expect("header"));
                let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws");
                read_to_close(socket).await
            })
        })
        .collect();
    for (i, f) in late.into_iter().enumerate() {
        let (lines, close) = f.await.expect("late follower task");
        assert_eq!(close.map(|c| c.0), Some(CloseCode::Normal), "late follower {i} ends normally");
        assert_eq!(ids(&lines), ids(&all), "late follower {i} got every line once, in order");
    }
    eprintln!(
        "{FOLLOWERS} followers x {LINES} lines: slowest GET /workspaces {slowest:?} of {polls}"
    );
    assert!(slowest < Duration::from_secs(2), "GET /workspaces took {slowest:?} under followers");
    server.stop().await;
}

/// A follower that stops reading is closed once the server's socket buffers
/// are full and it took no lines for the stall timeout: with a close frame
/// (1013) whose reason names the `after` to resume from. It gets the lines
/// queued before the frame, then the frame; following again with that
/// `after` gets the rest, so nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_is_closed_with_a_frame_saying_where_to_resume() {
    const LINES: usize = 20_000;
    let stall = Duration::from_secs(1);
    let server = TestServer::start(Opts { follow_stall_timeout: stall, ..Opts::default() }).await;
    let c = server.client().await;
    // ~300 bytes per frame: 6 MB, more than loopback socket buffers hold.
    let dir = chatty_echo(LINES, 200, 1000);
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;

    // A client with a small receive buffer that does not read.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(16 * 1024).expect("recv buffer");
    let stream = tcp.connect(addr.parse().expect("addr")).await.expect("connect");
    let mut request = ws_url(&server.url, build_id, None).into_client_request().expect("request");
    request.headers_mut().insert("Coder-Session-Token", c.token().parse().expect("header"));
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("websocket");

    let b = wait_build(&c, build_id, Duration::from_secs(120)).await;
    assert_eq!(b.job.status, "succeeded", "{b:?}");
    // The server gives up `stall` after its socket stopped taking lines,
    // which is no later than the build's end; a time-out can only be waited
    // out. Generous, for a loaded machine.
    tokio::time::sleep(stall * 4).await;

    let (first, close) = read_to_close(socket).await;
    let (code, reason) = close.expect("a close frame, not a dropped connection");
    let last = *ids(&first).last().expect("some lines arrived before the stall");
    assert_eq!(code, CloseCode::Again, "1013 try again later: {reason}");
    assert_eq!(reason, format!("log follower fell behind: follow again with after={last}"));
    assert!(first.len() < LINES, "the follower fell behind ({} lines)", first.len());

    let (rest, close) = follow(&server, &c, build_id, Some(last)).await;
    assert_eq!(close.map(|c| c.0), Some(CloseCode::Normal), "the resumed follow ends normally");
    let all = c.build_logs(build_id, Default::default()).await.expect("logs");
    let both: Vec<Log> = first.into_iter().chain(rest).collect();
    assert_eq!(ids(&both), ids(&all), "stalled part plus resumed part is the whole log");
    let numbers: Vec<usize> = both.iter().filter_map(line_number).collect();
    assert_eq!(numbers, (1..=LINES).collect::<Vec<_>>(), "every line once, in order");
    server.stop().await;
}

/// 300 concurrent wrong-password logins: hashing runs off the async threads
/// in a bounded pool and the account is limited after a few failures, so
/// `/healthz` stays fast, later attempts get 429 with `Retry-After`, and
/// another account (from the same address) still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_is_rate_limited_and_does_not_stall_the_server() {
    const ATTEMPTS: usize = 300;
    let limits = LoginLimits { per_account: 5, per_address: 20, window: Duration::from_secs(60) };
    let server = TestServer::start(Opts { login_limits: limits, ..Opts::default() }).await;
    let owner = server.client().await;
    let other = CreateUserRequest {
        username: "other".into(),
        email: "other@example.com".into(),
        password: "other-password-1".into(),
        ..Default::default()
    };
    owner.create_user(&other).await.expect("create second user");

    let http = reqwest::Client::new();
    let login = format!("{}/api/v2/users/login", server.url);
    let health = {
        let (http, url) = (http.clone(), format!("{}/healthz", server.url));
        let stop = tokio_util::sync::CancellationToken::new();
        let done = stop.clone();
        let task = tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while !done.is_cancelled() {
                let t = Instant::now();
                let r = http.get(&url).send().await.expect("healthz");
                assert_eq!(r.status(), 200);
                slowest = slowest.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            slowest
        });
        (stop, task)
    };
    let attempts: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let (http, url) = (http.clone(), login.clone());
            tokio::spawn(async move {
                let body = json!({"email": EMAIL, "password": format!("wrong-password-{i}")});
                let r = http.post(&url).json(&body).send().await.expect("login");
                let retry =
                    r.headers().get("retry-after").map(|v| v.to_str().unwrap_or("?").to_owned());
                (r.status().as_u16(), retry, r.json::<ErrorResponse>().await.unwrap_or_default())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for a in attempts {
        answers.push(a.await.expect("login task"));
    }
    health.0.cancel();
    let slowest = health.1.await.expect("healthz task");

    let unauthorized = answers.iter().filter(|a| a.0 == 401).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    assert_eq!(unauthorized, 5, "only the account's allowance was checked");
    assert_eq!(limited.len(), ATTEMPTS - 5, "the rest were refused: {:?}", answers.first());
    for (_, retry, body) in &limited {
        let secs: u64 = retry.as_deref().and_then(|r| r.parse().ok()).expect("Retry-After seconds");
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
        assert_eq!(body.message, "Too many failed login attempts.", "{body:?}");
        assert!(body.detail.contains("wait"), "{body:?}");
    }
    eprintln!("{ATTEMPTS} wrong-password logins: slowest /healthz {slowest:?}");
    assert!(slowest < Duration::from_millis(500), "/healthz took {slowest:?} during the flood");

    // The right password of the flooded account waits for the window; the
    // other account, from the same address, logs in now.
    let (status, body) = raw(
        reqwest::Method::POST,
        login.clone(),
        None,
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let (status, body) = raw(
        reqwest::Method::POST,
        login,
        None,
        Some(json!({"email": "other@example.com", "password": "other-password-1"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let login: LoginResponse = serde_json::from_value(body).expect("a session token");
    assert!(!login.session_token.is_empty());
    server.stop().await;
}
