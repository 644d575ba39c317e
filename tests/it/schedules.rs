//! Workspace schedules and settings on a real server with real echo builds:
//! validation of autostart and ttl (at creation and when set), a deadline
//! from the ttl, extending it, the scheduler's autostop and autostart
//! (with a clock moved ahead instead of waiting for the minute), dormancy,
//! rename, automatic updates, `410 Gone` for deleted workspaces, and two
//! schedulers on one database queueing a build once.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use provisionerd::sdk::{self, Client};
use provisionerd::server::autobuild::Clock;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

const BUILD: Duration = Duration::from_secs(60);

/// A server whose scheduler ticks every 100 ms on a clock the returned
/// offset (seconds) moves ahead of the system's.
/// The scheduler's injected clock: how far ahead of the real time it runs,
/// and how many times the scheduler read it (once per tick; nothing else
/// reads it), so a test can wait for ticks instead of sleeping.
#[derive(Default)]
struct TestClock {
    ahead_secs: AtomicI64,
    reads: AtomicU64,
}

impl TestClock {
    fn store(&self, secs: i64, order: Ordering) {
        self.ahead_secs.store(secs, order);
    }

    /// Waits until the scheduler has run `n` whole ticks from now (a tick
    /// that had read the clock already may still be running, hence + 1).
    async fn wait_ticks(&self, n: u64) {
        let from = self.reads.load(Ordering::SeqCst);
        wait_for("scheduler ticks", Duration::from_secs(30), || async {
            (self.reads.load(Ordering::SeqCst) > from + n).then_some(())
        })
        .await;
    }
}

async fn server_with_clock() -> (TestServer, Client, Arc<TestClock>) {
    let ahead = Arc::new(TestClock::default());
    let read = ahead.clone();
    let clock = Clock::from_fn(move || {
        read.reads.fetch_add(1, Ordering::SeqCst);
        Utc::now() + chrono::Duration::seconds(read.ahead_secs.load(Ordering::SeqCst))
    });
    let opts =
        Opts { autobuild_poll_interval: Duration::from_millis(100), clock, ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    (server, c, ahead)
}

async fn call(c: &Client, method: Method, path: &str, body: Value) -> (u16, Value) {
    c.raw(method, path, Some(body)).await.expect("request")
}

async fn echo(c: &Client) -> Uuid {
    let dir = echo_template(&json!({"logs": [{"output": "hi"}]}));
    create_template(c, dir.path(), "echo", plain).await.0
}

async fn create(c: &Client, body: Value) -> (u16, Value) {
    call(c, Method::POST, "/api/v2/users/me/workspaces", body).await
}

fn field(v: &Value) -> &str {
    v["validations"][0]["field"].as_str().unwrap_or_default()
}

/// Waits for the workspace's latest build to be `number` and final.
async fn wait_latest(c: &Client, ws: Uuid, number: i32) -> sdk::WorkspaceBuild {
    wait_for(&format!("build #{number} of {ws} to complete"), BUILD, || async {
        let b = c.workspace(ws).await.ok()?.latest_build;
        (b.build_number == number && is_final(&b.job.status)).then_some(b)
    })
    .await
}

#[tokio::test]
async fn schedules_and_settings_are_validated_at_creation_and_when_set() {
    let (server, c, _) = server_with_clock().await;
    let template = echo(&c).await;
    let (status, body) =
        create(&c, json!({"name": "a", "template_id": template, "autostart_schedule": "garbage"}))
            .await;
    assert_eq!((status, field(&body)), (400, "schedule"), "{body}");
    let (status, body) =
        create(&c, json!({"name": "a", "template_id": template, "ttl_ms": -5})).await;
    assert_eq!((status, field(&body)), (400, "ttl_ms"), "{body}");
    let (status, body) = create(
        &c,
        json!({"name": "a", "template_id": template, "automatic_updates": "always", "ttl_ms": 3_600_000}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let ws: sdk::Workspace = serde_json::from_value(body).expect("workspace");
    assert_eq!((ws.automatic_updates.as_str(), ws.ttl_ms), ("always", Some(3_600_000)));
    let base = format!("/api/v2/workspaces/{}", ws.id);

    let (status, body) =
        call(&c, Method::PUT, &format!("{base}/autostart"), json!({"schedule": "0 9 1 * *"})).await;
    assert_eq!((status, field(&body)), (400, "schedule"), "{body}");
    let dublin = "CRON_TZ=Europe/Dublin 30 9 * * 1-5";
    let (status, _) =
        call(&c, Method::PUT, &format!("{base}/autostart"), json!({"schedule": dublin})).await;
    assert_eq!(status, 204);
    let got = c.workspace(ws.id).await.expect("workspace");
    assert_eq!(got.autostart_schedule.as_deref(), Some(dublin));
    let next = got.next_start_at.expect("next_start_at");
    assert!(next > Utc::now() && next < Utc::now() + chrono::Duration::days(4), "{next}");
    let (status, _) =
        call(&c, Method::PUT, &format!("{base}/autostart"), json!({"schedule": null})).await;
    assert_eq!(status, 204);
    let got = c.workspace(ws.id).await.expect("workspace");
    assert_eq!((got.autostart_schedule, got.next_start_at), (None, None));

    let (status, body) =
        call(&c, Method::PUT, &format!("{base}/ttl"), json!({"ttl_ms": 59_000})).await;
    assert_eq!((status, field(&body)), (400, "ttl_ms"), "{body}");
    assert!(body["validations"][0]["detail"].as_str().unwrap_or("").contains("one minute"));
    let (status, body) = call(
        &c,
        Method::PUT,
        &format!("{base}/autoupdates"),
        json!({"automatic_updates": "maybe"}),
    )
    .await;
    assert_eq!((status, field(&body)), (400, "automatic_updates"), "{body}");
    let (status, _) = call(
        &c,
        Method::PUT,
        &format!("{base}/autoupdates"),
        json!({"automatic_updates": "never"}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(c.workspace(ws.id).await.expect("ws").automatic_updates, "never");

    // Rename: to a free name, then to the name of another of the owner's.
    let other = create_workspace(&c, template).await;
    let (status, _) = call(&c, Method::PATCH, &base, json!({"name": "renamed"})).await;
    assert_eq!(status, 204);
    assert_eq!(c.workspace(ws.id).await.expect("ws").name, "renamed");
    let (status, body) = call(&c, Method::PATCH, &base, json!({"name": other.name})).await;
    assert_eq!((status, field(&body)), (409, "name"), "{body}");
    let (status, body) = call(&c, Method::PATCH, &base, json!({"name": "not a name!"})).await;
    assert_eq!((status, field(&body)), (400, "name"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_ttl_gives_a_deadline_that_extends_and_the_scheduler_stops_then_starts() {
    let (server, c, ahead) = server_with_clock().await;
    let template = echo(&c).await;
    let (status, body) =
        create(&c, json!({"name": workspace_name(), "template_id": template, "ttl_ms": 3_600_000}))
            .await;
    assert_eq!(status, 201, "{body}");
    let ws: sdk::Workspace = serde_json::from_value(body).expect("workspace");
    // The deadline is written in the completion's transaction: the first
    // read that sees the build finished sees its deadline too.
    let first = wait_latest(&c, ws.id, 1).await;
    assert_eq!(first.status, "running");
    let completed = first.job.completed_at.expect("completed");
    let deadline = first.deadline.expect("a start build with a ttl has a deadline");
    assert_eq!((deadline - completed).num_seconds(), 3600, "completion + ttl");

    let base = format!("/api/v2/workspaces/{}", ws.id);
    let soon = Utc::now() + chrono::Duration::minutes(10);
    let (status, body) =
        call(&c, Method::PUT, &format!("{base}/extend"), json!({"deadline": soon})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("at least 30 minutes"), "{body}");
    let later: DateTime<Utc> = (Utc::now() + chrono::Duration::hours(2)).trunc_subsecs(0);
    let (status, body) =
        call(&c, Method::PUT, &format!("{base}/extend"), json!({"deadline": later})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["message"].as_str().unwrap_or("").starts_with("Deadline updated to"), "{body}");
    assert_eq!(c.workspace(ws.id).await.expect("ws").latest_build.deadline, Some(later));

    // Three hours on, the deadline has passed: the scheduler stops it.
    ahead.store(3 * 3600, Ordering::SeqCst);
    let stop = wait_latest(&c, ws.id, 2).await;
    assert_eq!(
        (stop.transition.as_str(), stop.reason.as_str(), stop.status.as_str()),
        ("stop", "autostop", "stopped")
    );
    assert_eq!(stop.initiator_id, ws.owner_id, "the system builds as the owner");

    // No ttl, and a schedule that fired since the stop: it starts again, once.
    let (status, _) = call(&c, Method::PUT, &format!("{base}/ttl"), json!({"ttl_ms": null})).await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &c,
        Method::PUT,
        &format!("{base}/autostart"),
        json!({"schedule": "CRON_TZ=UTC * * * * *"}),
    )
    .await;
    assert_eq!(status, 204);
    let start = wait_latest(&c, ws.id, 3).await;
    assert_eq!(
        (start.transition.as_str(), start.reason.as_str(), start.status.as_str()),
        ("start", "autostart", "running")
    );
    assert_eq!(start.deadline, None, "no ttl, no deadline");
    // A negative check: several more ticks queue nothing more.
    ahead.wait_ticks(5).await;
    assert_eq!(c.workspace(ws.id).await.expect("ws").latest_build.build_number, 3);
    server.stop().await;
}

#[tokio::test]
async fn a_dormant_workspace_refuses_to_start_but_stops_and_deletes_then_is_gone() {
    let (server, c, _) = server_with_clock().await;
    let template = echo(&c).await;
    let ws = create_workspace(&c, template).await;
    wait_latest(&c, ws.id, 1).await;
    let base = format!("/api/v2/workspaces/{}", ws.id);
    let (status, body) =
        call(&c, Method::PUT, &format!("{base}/dormant"), json!({"dormant": true})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["dormant_at"].is_string(), "{body}");
    let stop = build(&c, ws.id, "stop").await;
    assert_eq!(wait_build(&c, stop.id, BUILD).await.status, "stopped");
    let (status, body) =
        call(&c, Method::POST, &format!("{base}/builds"), json!({"transition": "start"})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("dormant"), "{body}");
    let delete = build(&c, ws.id, "delete").await;
    assert_eq!(wait_build(&c, delete.id, BUILD).await.status, "deleted");

    let (status, body) = c.raw(Method::GET, &base, None).await.expect("get");
    assert_eq!(status, 410, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("include_deleted=true"), "{body}");
    assert!(c.workspace_including_deleted(ws.id).await.is_ok());
    let by_name = format!("/api/v2/users/me/workspace/{}", ws.name);
    assert_eq!(c.raw(Method::GET, &by_name, None).await.expect("get").0, 404);
    let (status, body) =
        c.raw(Method::GET, &format!("{by_name}?include_deleted=true"), None).await.expect("get");
    assert_eq!((status, body["id"].as_str()), (200, Some(ws.id.to_string().as_str())), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn two_schedulers_on_one_database_queue_each_build_once() {
    let opts = Opts { autobuild_poll_interval: Duration::from_secs(3600), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let template = echo(&c).await;
    let (status, body) =
        create(&c, json!({"name": workspace_name(), "template_id": template, "ttl_ms": 60_000}))
            .await;
    assert_eq!(status, 201, "{body}");
    let ws: sdk::Workspace = serde_json::from_value(body).expect("workspace");
    wait_latest(&c, ws.id, 1).await;

    // Two replicas: their own store handles and event buses, one database.
    let url = store_url(&server.data_dir).await;
    let (one, two) = (
        provisionerd::store::open(&url).await.expect("store"),
        provisionerd::store::open(&url).await.expect("store"),
    );
    let (e1, e2) = (provisionerd::server::Events::new(), provisionerd::server::Events::new());
    let (a, b) = (
        provisionerd::app::App::new(one.as_ref(), &e1),
        provisionerd::app::App::new(two.as_ref(), &e2),
    );
    let at = Utc::now() + chrono::Duration::hours(1);
    let (ra, rb) = tokio::join!(a.autobuild_tick(at), b.autobuild_tick(at));
    let queued: Vec<_> = ra.expect("tick").into_iter().chain(rb.expect("tick")).collect();
    assert_eq!(queued.len(), 1, "one autostop between both: {queued:?}");
    let got = c.workspace(ws.id).await.expect("ws").latest_build;
    assert_eq!((got.build_number, got.reason.as_str()), (2, "autostop"));
    server.stop().await;
}

/// Reads SSE events (`event`, `data`) from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                return (event, data);
            }
            let chunk = self.resp.chunk().await.expect("stream").expect("stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn watch_streams_the_workspace_until_its_autostop() {
    let (server, c, ahead) = server_with_clock().await;
    let template = echo(&c).await;
    let (status, body) =
        create(&c, json!({"name": workspace_name(), "template_id": template, "ttl_ms": 60_000}))
            .await;
    assert_eq!(status, 201, "{body}");
    let ws: sdk::Workspace = serde_json::from_value(body).expect("workspace");
    wait_latest(&c, ws.id, 1).await;

    let resp = reqwest::Client::new()
        .get(format!("{}/api/v2/workspaces/{}/watch", server.url, ws.id))
        .header("Coder-Session-Token", c.token())
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().expect("type").to_owned();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let mut events = SseReader { resp, buf: String::new() };
    let (event, data) = events.next().await;
    assert_eq!(event, "data");
    let now: sdk::Workspace = serde_json::from_str(&data).expect("workspace json");
    assert_eq!((now.id, now.latest_build.status.as_str()), (ws.id, "running"));

    ahead.store(3600, Ordering::SeqCst);
    let stopped = tokio::time::timeout(BUILD, async {
        loop {
            let (event, data) = events.next().await;
            if event != "data" {
                continue;
            }
            let w: sdk::Workspace = serde_json::from_str(&data).expect("workspace json");
            if w.latest_build.reason == "autostop" && w.latest_build.status == "stopped" {
                return w;
            }
        }
    })
    .await
    .expect("the autostop reaches the watcher");
    assert_eq!(stopped.latest_build.build_number, 2);
    server.stop().await;
}

#[tokio::test]
async fn an_autostart_with_automatic_updates_always_builds_the_active_version() {
    let (server, c, ahead) = server_with_clock().await;
    let dir = echo_template(&json!({"logs": [{"output": "v1"}]}));
    let (template, v1) = create_template(&c, dir.path(), "echo", plain).await;
    let (status, body) = create(
        &c,
        json!({"name": workspace_name(), "template_id": template, "automatic_updates": "always"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let ws: sdk::Workspace = serde_json::from_value(body).expect("workspace");
    assert_eq!(wait_latest(&c, ws.id, 1).await.template_version_id, v1.id);
    let stop = build(&c, ws.id, "stop").await;
    assert_eq!(wait_build(&c, stop.id, BUILD).await.status, "stopped");
    let v2 = push_version(&c, dir.path(), "echo", |r| r.template_id = Some(template)).await;
    c.promote(template, v2.id).await.expect("promote");

    let base = format!("/api/v2/workspaces/{}", ws.id);
    let (status, body) =
        c.raw(Method::GET, &format!("{base}/resolve-autostart"), None).await.expect("resolve");
    assert_eq!((status, &body), (200, &json!({"parameter_mismatch": false})));
    let (status, _) =
        call(&c, Method::PUT, &format!("{base}/autostart"), json!({"schedule": "* * * * *"})).await;
    assert_eq!(status, 204);
    ahead.store(120, Ordering::SeqCst);
    let start = wait_latest(&c, ws.id, 3).await;
    assert_eq!(
        (start.reason.as_str(), start.status.as_str(), start.template_version_id),
        ("autostart", "running", v2.id),
        "the scheduler moved it to the active version"
    );
    server.stop().await;
}

/// Readers polling as fast as they can while a start build of a workspace
/// with a ttl completes never see it `running` (its job succeeded) without
/// its deadline: the deadline commits with the completion, not after it.
#[tokio::test]
async fn a_running_build_is_never_seen_without_its_deadline() {
    let (server, c, _) = server_with_clock().await;
    let template = echo(&c).await;
    for round in 0..3 {
        let name = format!("deadline-{round}");
        let (status, body) =
            create(&c, json!({"name": name, "template_id": template, "ttl_ms": 600_000})).await;
        assert_eq!(status, 201, "{body}");
        let ws: sdk::Workspace = serde_json::from_value(body).expect("workspace");
        let readers = (0..4).map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut reads = 0u32;
                loop {
                    let b = c.workspace(ws.id).await.expect("read").latest_build;
                    reads += 1;
                    if b.job.status == "succeeded" {
                        assert_eq!(b.status, "running");
                        assert!(
                            b.deadline.is_some(),
                            "read #{reads} saw {} running without a deadline",
                            b.id
                        );
                        return reads;
                    }
                    assert!(started.elapsed() < BUILD, "the build did not complete");
                }
            })
        });
        let reads: Vec<u32> = futures::future::join_all(readers)
            .await
            .into_iter()
            .map(|r| r.expect("reader"))
            .collect();
        assert!(reads.iter().all(|n| *n > 0), "{reads:?}");
    }
    server.stop().await;
}
