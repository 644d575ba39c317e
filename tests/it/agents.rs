//! `GET /workspaceagents/{id}` and its sub-routes, as a Coder client calls
//! them: the agent a build reported, served from the newest build that
//! reported it, `connecting`, without logs; what needs a connected agent
//! refused with Coder's 400; an unknown agent or another member's a 404.

use std::time::Duration;

use provisionerd::sdk::Client;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The agent JSON of `build`'s resource `vm`.
async fn agent_in_build(server: &TestServer, c: &Client, build: Uuid) -> Value {
    let url = format!("{}/api/v2/workspacebuilds/{build}", server.url);
    let (status, body) = raw(Method::GET, url, Some(c.token()), None).await;
    assert_eq!(status, 200, "{body}");
    body["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "vm")
        .map(|r| r["agents"][0].clone())
        .unwrap_or_else(|| panic!("no vm in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_served_from_their_newest_build_as_never_connected() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let agent_id = Uuid::new_v4();
    let vm = json!({"name": "vm", "type": "echo_instance", "agents": [{
        "id": agent_id, "name": "main", "operating_system": "linux",
        "architecture": "amd64", "auth": "token", "directory": "/home/coder",
        "apps": [{"id": Uuid::new_v4(), "slug": "web", "display_name": "Web",
                  "command": "", "url": "http://localhost:8080", "icon": "",
                  "subdomain": false, "sharing_level": "owner", "external": false,
                  "order": 0, "hidden": false}]}]});
    let echo =
        echo_template(&json!({"resources": [vm], "transitions": {"stop": {"resources": []}}}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let first = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(first.job.status, "succeeded", "{first:?}");

    let get = |path: String| {
        let (url, token) = (format!("{}/api/v2/{path}", server.url), c.token().to_owned());
        async move { raw(Method::GET, url, Some(&token), None).await }
    };
    let (status, agent) = get(format!("workspaceagents/{agent_id}")).await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent, agent_in_build(&server, &c, first.id).await, "as the build shows it");
    assert_eq!(agent["status"], "connecting");
    assert_eq!(agent["lifecycle_state"], "created");
    assert_eq!(agent["name"], "main");
    assert_eq!(agent["apps"][0]["slug"], "web");

    // Never connected: no logs, and nothing that needs a connection.
    let (status, logs) = get(format!("workspaceagents/{agent_id}/logs")).await;
    assert_eq!((status, logs), (200, json!([])));
    let (status, logs) = get(format!("workspaceagents/{agent_id}/startup-logs?after=0")).await;
    assert_eq!((status, logs), (200, json!([])));
    let (status, body) = get(format!("workspaceagents/{agent_id}/logs?after=soon")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Query param \"after\" must be an integer.");
    let (status, body) = get(format!("workspaceagents/{agent_id}/logs?follow=true")).await;
    assert_eq!(status, 400, "{body}");
    let not_connected = "Agent state is \"connecting\", it must be in the \"connected\" state.";
    for sub in ["listening-ports", "pty", "containers"] {
        let (status, body) = get(format!("workspaceagents/{agent_id}/{sub}")).await;
        assert_eq!(status, 400, "{sub}: {body}");
        assert_eq!(body["message"], not_connected, "{sub}");
    }

    // Unknown agents and ids that are none.
    let (status, body) = get(format!("workspaceagents/{}", Uuid::new_v4())).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(format!("workspaceagents/{}/listening-ports", Uuid::new_v4())).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get("workspaceagents/nope".into()).await;
    assert_eq!(status, 400, "{body}");

    // Another member cannot see the owner's workspace, nor its agent.
    let other = new_member(&c, &server.url, "other").await;
    for path in ["", "/logs", "/listening-ports"] {
        let url = format!("{}/api/v2/workspaceagents/{agent_id}{path}", server.url);
        let (status, body) = raw(Method::GET, url, Some(other.token()), None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // A stop build reports no agent: the agent is still the first build's.
    // The next start reports it again, and that newer build serves it.
    let stop = build(&c, ws.id, "stop").await;
    assert_eq!(wait_build(&c, stop.id, TIMEOUT).await.job.status, "succeeded");
    let (status, agent) = get(format!("workspaceagents/{agent_id}")).await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent, agent_in_build(&server, &c, first.id).await);
    let start = build(&c, ws.id, "start").await;
    assert_eq!(wait_build(&c, start.id, TIMEOUT).await.job.status, "succeeded");
    let (status, agent) = get(format!("workspaceagents/{agent_id}")).await;
    assert_eq!(status, 200, "{agent}");
    let newest = agent_in_build(&server, &c, start.id).await;
    assert_eq!(agent, newest);
    assert_ne!(newest["resource_id"], agent_in_build(&server, &c, first.id).await["resource_id"]);
    server.stop().await;
}
