//! Build timings (`GET /workspacebuilds/{id}/timings`, `GET
//! /workspaces/{id}/timings`): a real terraform build with the test `coder`
//! provider lists its `init`, `plan`, `graph` and `apply` stages and the
//! template's resources, each within the job's own times; the routes answer
//! as the other build routes do (404 for an unknown build or one the caller
//! may not see); and a daemon of protocol 1.0, which sends no timings, still
//! completes its builds, while a 1.1 daemon's timings of a stage the server
//! does not know are dropped, not refused.

use std::collections::BTreeSet;
use std::time::Duration;

use provisionerd::proto::{self, daemon_message::Msg as Out, server_message::Msg as In};
use provisionerd::sdk::{self, Client};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::harness::*;
use crate::identity::{complete, hello, open_raw, Cred};

const TIMEOUT: Duration = Duration::from_secs(120);
const PSK: &str = "timings-test-psk-0123456789";

fn by_stage<'a>(t: &'a sdk::WorkspaceBuildTimings, stage: &str) -> Vec<&'a sdk::ProvisionerTiming> {
    t.provisioner_timings.iter().filter(|x| x.stage == stage).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terraform_build_lists_its_stages_and_resources_within_its_job() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) =
        create_template(&c, &template_dir("coder-compat"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let done = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    let timings = c.build_timings(done.id).await.expect("timings");

    let stages: BTreeSet<&str> =
        timings.provisioner_timings.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(stages, BTreeSet::from(["apply", "graph", "init", "plan"]), "{timings:#?}");
    let init = by_stage(&timings, "init");
    assert_eq!(init.len(), 1, "init is one step: {init:?}");
    assert_eq!(
        (init[0].source.as_str(), init[0].action.as_str(), init[0].resource.as_str()),
        ("terraform", "initializing terraform", "state file")
    );
    // The plan reads the data sources, the apply creates the resources.
    let plan = by_stage(&timings, "plan");
    assert!(
        plan.iter().any(|t| t.resource == "data.coder_workspace.me"
            && t.action == "read"
            && t.source == "coder"),
        "{plan:#?}"
    );
    let applied: BTreeSet<(&str, &str, &str)> = by_stage(&timings, "apply")
        .iter()
        .map(|t| (t.resource.as_str(), t.action.as_str(), t.source.as_str()))
        .collect();
    for want in [
        ("coder_agent.main", "create", "coder"),
        ("terraform_data.vm[0]", "create", "terraform"),
        ("coder_app.named", "create", "coder"),
        ("coder_app.bare", "create", "coder"),
    ] {
        assert!(applied.contains(&want), "{want:?} in {applied:?}");
    }
    // Every timing is the job's and lies within the job's own times.
    let started = done.job.started_at.expect("started");
    let completed = done.job.completed_at.expect("completed");
    for t in &timings.provisioner_timings {
        assert_eq!(t.job_id, done.job.id);
        assert!(t.started_at <= t.ended_at, "{t:?}");
        assert!(
            started <= t.started_at && t.ended_at <= completed,
            "{t:?} not within {started}..{completed}"
        );
    }
    // Oldest first: init, then the plan, then the apply.
    let first_apply = by_stage(&timings, "apply").iter().map(|t| t.started_at).min();
    assert!(init[0].ended_at <= plan[0].started_at, "init before plan");
    assert!(plan.iter().all(|p| Some(p.started_at) <= first_apply), "plan before apply");
    assert!(timings.agent_script_timings.is_empty() && timings.agent_connection_timings.is_empty());

    // The workspace's timings are its latest build's, in Coder's JSON.
    assert_eq!(c.workspace_timings(ws.id).await.expect("workspace timings"), timings);
    let url = format!("{}/api/v2/workspaces/{}/timings", server.url, ws.id);
    let (status, body) = raw(Method::GET, url, Some(c.token()), None).await;
    assert_eq!(status, 200, "{body}");
    let keys: BTreeSet<&str> =
        body.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(
        keys,
        BTreeSet::from(["agent_connection_timings", "agent_script_timings", "provisioner_timings"])
    );
    let one = &body["provisioner_timings"][0];
    for key in ["job_id", "started_at", "ended_at", "stage", "source", "action", "resource"] {
        assert!(one.get(key).is_some(), "{key} in {one}");
    }
    server.stop().await;
}

async fn member(server: &TestServer, admin: &Client) -> Client {
    new_member(admin, &server.url, "eve").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timings_answer_as_the_other_build_routes() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_template(&json!({"logs": [{"output": "hi"}]}));
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let done = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(done.job.status, "succeeded");
    // The echo provisioner times nothing: empty lists, not an error.
    let timings = c.build_timings(done.id).await.expect("timings");
    assert!(timings.provisioner_timings.is_empty(), "{timings:?}");

    let status =
        |r: Result<sdk::WorkspaceBuildTimings, sdk::Error>| r.err().and_then(|e| e.status());
    assert_eq!(status(c.build_timings(Uuid::new_v4()).await), Some(404), "an unknown build");
    assert_eq!(
        status(c.workspace_timings(Uuid::new_v4()).await),
        Some(404),
        "an unknown workspace"
    );
    let url = format!("{}/api/v2/workspacebuilds/not-a-uuid/timings", server.url);
    let (code, body) = raw(Method::GET, url, Some(c.token()), None).await;
    assert_eq!(code, 400, "{body}");
    let url = format!("{}/api/v2/workspacebuilds/{}/timings", server.url, done.id);
    let (code, _) = raw(Method::GET, url, None, None).await;
    assert_eq!(code, 401, "signed out");
    // A member sees neither the owner's build nor its timings.
    let eve = member(&server, &c).await;
    assert_eq!(status(eve.build(done.id).await.map(|_| timings.clone())), Some(404));
    assert_eq!(status(eve.build_timings(done.id).await), Some(404));
    assert_eq!(status(eve.workspace_timings(ws.id).await), Some(404));
    server.stop().await;
}

/// A hello of protocol `minor` with the echo provisioner.
fn hello_minor(minor: u32) -> Out {
    let Out::Hello(mut h) = hello(Uuid::new_v4(), "by-hand", &[]) else { unreachable!() };
    h.protocol = Some(proto::ProtocolVersion { major: 1, minor });
    Out::Hello(h)
}

fn timing(stage: i32, resource: &str, start_us: i64, end_us: i64) -> proto::ProvisionerTiming {
    proto::ProvisionerTiming {
        started_at_unix_us: start_us,
        ended_at_unix_us: end_us,
        stage,
        source: "coder".into(),
        action: "create".into(),
        resource: resource.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_timings_still_completes_and_unknown_stages_are_dropped() {
    let opts = Opts { builtin_daemons: 0, psk: Some(PSK.into()), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    // A protocol 1.0 daemon imports the template and runs the first build.
    let mut old = open_raw(&server.url, Cred::Psk(PSK), vec![hello_minor(0)]).await.expect("open");
    assert!(matches!(old.expect().await, In::Welcome(_)));
    old.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let dir = echo_template(&json!({}));
    let (c2, path) = (server.client().await, dir.path().to_owned());
    let pushed = tokio::spawn(async move { create_template(&c2, &path, "echo", plain).await.0 });
    let In::Offer(import) = old.expect().await else { panic!("an import offer") };
    old.send(Out::Ack(proto::Ack { job_id: import.job_id.clone() })).await;
    old.send(complete(import.job_id.parse().expect("id"), "", 0)).await;
    assert!(matches!(old.expect().await, In::CompleteAck(_)));
    let template = pushed.await.expect("template");
    let ws = create_workspace(&c, template).await;
    old.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let In::Offer(offer) = old.expect().await else { panic!("a build offer") };
    old.send(Out::Ack(proto::Ack { job_id: offer.job_id.clone() })).await;
    old.send(complete(offer.job_id.parse().expect("id"), "v1.0", 0)).await;
    assert!(matches!(old.expect().await, In::CompleteAck(a) if a.note.is_empty()));
    let first = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(first.job.status, "succeeded", "a 1.0 daemon's completion is stored");
    assert!(c.build_timings(first.id).await.expect("timings").provisioner_timings.is_empty());
    drop(old);

    // A 1.1 daemon reports timings, one of a stage from a newer version.
    let mut new = open_raw(&server.url, Cred::Psk(PSK), vec![hello_minor(1)]).await.expect("open");
    assert!(matches!(new.expect().await, In::Welcome(_)));
    let second = build(&c, ws.id, "stop").await;
    new.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let In::Offer(offer) = new.expect().await else { panic!("a build offer") };
    new.send(Out::Ack(proto::Ack { job_id: offer.job_id.clone() })).await;
    let now_us = chrono::Utc::now().timestamp_micros();
    let Out::Complete(mut done) = complete(offer.job_id.parse().expect("id"), "v1.1", 0) else {
        unreachable!()
    };
    done.timings = vec![
        timing(proto::TimingStage::Init.into(), "state file", now_us, now_us + 10),
        timing(99, "from.the.future", now_us, now_us + 20),
        timing(proto::TimingStage::Apply.into(), "coder_agent.main", now_us + 10, now_us + 30),
    ];
    new.send(Out::Complete(done)).await;
    assert!(matches!(new.expect().await, In::CompleteAck(a) if a.note.is_empty()));
    let stopped = wait_build(&c, second.id, TIMEOUT).await;
    assert_eq!(stopped.job.status, "succeeded");
    let got = c.build_timings(stopped.id).await.expect("timings").provisioner_timings;
    let kept: Vec<(&str, &str)> =
        got.iter().map(|t| (t.stage.as_str(), t.resource.as_str())).collect();
    assert_eq!(kept, [("init", "state file"), ("apply", "coder_agent.main")]);
    assert_eq!((got[1].ended_at - got[1].started_at).num_microseconds(), Some(20));
    server.stop().await;
}
