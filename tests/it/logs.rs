//! Build logs: live following over WebSocket and paging with `after`.

use std::time::Duration;

use futures::StreamExt;
use provisionerd::sdk::{Log, LogQuery};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_stages_live_and_closes_after_completion() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;

    let (received, status_when_first_line) = follow_until_closed(&server, &c, build_id).await;
    assert_ne!(
        status_when_first_line.as_deref(),
        Some("succeeded"),
        "lines arrive while the job runs"
    );
    let stages: Vec<&str> = received.iter().map(|l| &*l.stage).collect();
    for stage in ["Setting up", "Planning infrastructure", "Starting workspace"] {
        assert!(stages.contains(&stage), "{stage} missing from followed logs");
    }
    let b = c.build(build_id).await.expect("build");
    assert!(is_final(&b.job.status), "closed only after completion: {b:?}");

    let all = c.build_logs(build_id, Default::default()).await.expect("logs");
    let ids = log_ids(&all);
    assert_eq!(ids, log_ids(&received), "follow delivered every stored line exactly once");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend");

    let cut = ids[ids.len() / 2];
    let after = LogQuery { after: Some(cut), ..LogQuery::default() };
    let newer = log_ids(&c.build_logs(build_id, after).await.expect("after"));
    assert_eq!(newer, ids.iter().copied().filter(|i| *i > cut).collect::<Vec<_>>());
    let before = LogQuery { before: Some(cut), ..LogQuery::default() };
    let older = c.build_logs(build_id, before).await.expect("before");
    assert!(older.iter().all(|l| l.id < cut));
    server.stop().await;
}

/// Follows a build's logs from the start until the server closes the socket.
/// Returns the lines received and the job's status when the first arrived.
async fn follow_until_closed(
    server: &TestServer,
    c: &provisionerd::sdk::Client,
    build_id: uuid::Uuid,
) -> (Vec<Log>, Option<String>) {
    let url = format!(
        "{}/api/v2/workspacebuilds/{build_id}/logs?follow=true",
        server.url.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("Coder-Session-Token", c.token().parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket");
    let mut received: Vec<Log> = Vec::new();
    let mut status_when_first_line = None;
    let closed = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(msg) = socket.next().await {
            match msg.expect("frame") {
                Message::Text(t) => {
                    if received.is_empty() {
                        let b = c.build(build_id).await.expect("build");
                        status_when_first_line = Some(b.job.status);
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
    (received, status_when_first_line)
}

fn log_ids(logs: &[Log]) -> Vec<i64> {
    logs.iter().map(|l| l.id).collect()
}

/// A build printing more lines than one page of the log listing: the
/// follower gets every line once and in order while they are handed over
/// from the writer, and the listing (streamed page by page) returns the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_build_is_followed_and_listed_line_for_line() {
    const LINES: usize = 5000;
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let main_tf = format!(
        r#"resource "terraform_data" "chatty" {{
  provisioner "local-exec" {{
    command = "seq -f 'chatty line %g' 1 {LINES}"
  }}
}}
"#
    );
    std::fs::write(dir.path().join("main.tf"), main_tf).expect("main.tf");
    let (template, _) = create_template(&c, dir.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;

    let (received, _) = follow_until_closed(&server, &c, build_id).await;
    let b = wait_build(&c, build_id, Duration::from_secs(120)).await;
    assert_eq!(b.job.status, "succeeded", "{b:?}");

    let all = c.build_logs(build_id, Default::default()).await.expect("logs");
    assert!(all.len() > LINES, "{} lines listed", all.len());
    assert_eq!(log_ids(&all), log_ids(&received), "follower and listing agree line for line");
    assert_eq!(all, received, "same JSON either way");
    // Every printed line once, in order. Terraform itself may cut one in
    // two: local-exec's output goes through go-linereader, which hands on
    // what it holds of a line when no byte came for 100 ms (a descheduled
    // terraform on a loaded machine), and terraform trims the pieces'
    // trailing spaces. So the text is compared with whitespace removed, and
    // the pieces may outnumber the lines; a lost, doubled or reordered line
    // still changes the text.
    let printed: Vec<&str> = all
        .iter()
        .filter_map(|l| l.output.strip_prefix("terraform_data.chatty: (local-exec): "))
        .filter(|o| !o.starts_with("Executing: "))
        .collect();
    assert!(printed.len() >= LINES, "{} local-exec lines", printed.len());
    let text: String = printed.concat().split_whitespace().collect();
    let want: String = (1..=LINES).map(|n| format!("chattyline{n}")).collect();
    if text != want {
        let at = text.bytes().zip(want.bytes()).take_while(|(a, b)| a == b).count();
        let start = at.saturating_sub(40);
        panic!(
            "every printed line, in order: they differ at byte {at}:\n stored: {:?}\n printed: {:?}",
            text.get(start..(at + 40).min(text.len())).unwrap_or(&text),
            want.get(start..(at + 40).min(want.len())).unwrap_or(&want),
        );
    }

    let ids = log_ids(&all);
    let cut = ids[ids.len() / 3];
    let after = LogQuery { after: Some(cut), ..LogQuery::default() };
    let newer = log_ids(&c.build_logs(build_id, after).await.expect("after"));
    assert_eq!(newer, ids.iter().copied().filter(|i| *i > cut).collect::<Vec<_>>());
    server.stop().await;
}
