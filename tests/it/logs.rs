//! Build logs: live following over WebSocket and paging with `after`.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_stages_live_and_closes_after_completion() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", json!({})).await;
    let ws = create_workspace(&c, &template).await;
    let build_id = ws["latest_build"]["id"].as_str().expect("id").to_owned();

    let url = format!(
        "{}/api/v2/workspacebuilds/{build_id}/logs?follow=true",
        server.url.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("Coder-Session-Token", c.token().parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket");
    let mut received: Vec<Value> = Vec::new();
    let mut status_when_first_line = None;
    let closed = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(msg) = socket.next().await {
            match msg.expect("frame") {
                Message::Text(t) => {
                    if received.is_empty() {
                        let b = c
                            .get(&format!("/api/v2/workspacebuilds/{build_id}"))
                            .await
                            .expect("build");
                        status_when_first_line = b["job"]["status"].as_str().map(str::to_owned);
                    }
                    received.push(serde_json::from_str(&t).expect("one JSON log per frame"));
                }
                Message::Close(_) => return true,
                _ => {}
            }
        }
        true
    })
    .await;
    assert_eq!(closed, Ok(true), "the server closes the socket after the job completes");
    assert_ne!(
        status_when_first_line.as_deref(),
        Some("succeeded"),
        "lines arrive while the job runs"
    );
    let stages: Vec<&str> = received.iter().filter_map(|l| l["stage"].as_str()).collect();
    for stage in ["Setting up", "Planning infrastructure", "Starting workspace"] {
        assert!(stages.contains(&stage), "{stage} missing from followed logs");
    }
    let b = c.get(&format!("/api/v2/workspacebuilds/{build_id}")).await.expect("build");
    assert!(
        is_final(b["job"]["status"].as_str().unwrap_or_default()),
        "closed only after completion: {b}"
    );

    let all = c.get(&format!("/api/v2/workspacebuilds/{build_id}/logs")).await.expect("logs");
    let all = all.as_array().expect("array");
    assert_eq!(all.len(), received.len(), "follow delivered every stored line exactly once");
    let ids: Vec<i64> = all.iter().filter_map(|l| l["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend");

    let cut = ids[ids.len() / 2];
    let newer = c
        .get(&format!("/api/v2/workspacebuilds/{build_id}/logs?after={cut}"))
        .await
        .expect("after");
    let newer: Vec<i64> =
        newer.as_array().expect("array").iter().filter_map(|l| l["id"].as_i64()).collect();
    assert_eq!(newer, ids.iter().copied().filter(|i| *i > cut).collect::<Vec<_>>());
    let older = c
        .get(&format!("/api/v2/workspacebuilds/{build_id}/logs?before={cut}"))
        .await
        .expect("before");
    assert!(older.as_array().expect("array").iter().all(|l| l["id"].as_i64() < Some(cut)));
    server.stop().await;
}
