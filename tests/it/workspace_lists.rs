//! Listing workspaces as Coder's clients do, on a real server with real
//! echo builds: the `q=` search grammar and seed 003's separate filters
//! (each returns exactly the expected workspaces), refused terms as
//! validations, favorites first, and `POST usage` moving `last_used_at`.

use std::time::Duration;

use provisionerd::sdk::{self, Client};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

async fn names(c: &Client, query: &str) -> (Vec<String>, i64) {
    let (status, body) =
        c.raw(Method::GET, &format!("/api/v2/workspaces?{query}"), None).await.expect("list");
    assert_eq!(status, 200, "{query}: {body}");
    let list: sdk::WorkspacesResponse = serde_json::from_value(body).expect("workspaces");
    (list.workspaces.into_iter().map(|w| w.name).collect(), list.count)
}

async fn refused(c: &Client, query: &str) -> Value {
    let (status, body) =
        c.raw(Method::GET, &format!("/api/v2/workspaces?{query}"), None).await.expect("list");
    assert_eq!(status, 400, "{query}: {body}");
    body
}

async fn named(c: &Client, template: Uuid, name: &str) -> sdk::Workspace {
    let req = sdk::CreateWorkspaceRequest {
        name: name.into(),
        template_id: Some(template),
        ..Default::default()
    };
    let ws = c.create_workspace("me", &req).await.expect("create workspace");
    wait_build(c, ws.latest_build.id, Duration::from_secs(60)).await;
    ws
}

#[tokio::test]
async fn filters_favorites_and_usage() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_template(&json!({"logs": [{"output": "hi"}]}));
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let bob = new_member(&c, &server.url, "bob").await;
    let alpha = named(&c, template, "alpha-dev").await;
    let beta = named(&c, template, "beta").await;
    let bobs = named(&bob, template, "bobs-dev").await;
    let stop = build(&c, beta.id, "stop").await;
    wait_build(&c, stop.id, Duration::from_secs(60)).await;

    let all = vec!["alpha-dev".to_owned(), "beta".into(), "bobs-dev".into()];
    assert_eq!(names(&c, "").await, (all.clone(), 3));
    assert_eq!(names(&c, "q=owner:me").await.0, ["alpha-dev", "beta"]);
    assert_eq!(names(&c, "q=owner:bob").await.0, ["bobs-dev"]);
    assert_eq!(names(&c, "owner=bob").await.0, ["bobs-dev"], "seed 003's parameter");
    assert_eq!(names(&c, "q=dev").await.0, ["alpha-dev", "bobs-dev"], "a bare word");
    assert_eq!(names(&c, "q=name:DEV+owner:me").await.0, ["alpha-dev"]);
    assert_eq!(names(&c, "q=status:stopped").await.0, ["beta"]);
    assert_eq!(names(&c, "status=running").await.0, ["alpha-dev", "bobs-dev"]);
    let tpl = c.template(template).await.expect("template").name;
    assert_eq!(names(&c, &format!("q=template:{tpl}")).await, (all.clone(), 3));
    assert_eq!(names(&c, "template=nope").await.0, Vec::<String>::new());
    assert_eq!(names(&c, "q=dormant:false+outdated:false").await.0, all);
    assert_eq!(names(&c, "q=deleted:true").await.0, Vec::<String>::new());
    assert_eq!(names(&c, "q=owner:me&limit=1").await, (vec!["alpha-dev".to_owned()], 2));
    assert_eq!(names(&bob, "q=owner:me").await.0, ["bobs-dev"], "a member sees their own");
    assert_eq!(names(&bob, "").await.0, ["bobs-dev"]);

    let body = refused(&c, "q=colour:red+deleted:maybe").await;
    assert_eq!(body["message"], "Invalid workspace search query.", "{body}");
    let fields: Vec<&str> = body["validations"]
        .as_array()
        .expect("validations")
        .iter()
        .filter_map(|v| v["field"].as_str())
        .collect();
    assert_eq!(fields, ["colour", "deleted"]);
    let body = refused(&c, "has_agent=connected").await;
    assert_eq!(body["validations"][0]["field"], "has-agent", "{body}");

    // Favorites: the owner's own come first; nobody else may mark them.
    let fav = format!("/api/v2/workspaces/{}/favorite", beta.id);
    assert_eq!(c.raw(Method::PUT, &fav, None).await.expect("put").0, 204);
    assert_eq!(names(&c, "q=owner:me").await.0, ["beta", "alpha-dev"]);
    assert!(c.workspace(beta.id).await.expect("beta").favorite);
    let theirs = format!("/api/v2/workspaces/{}/favorite", bobs.id);
    let (status, body) = c.raw(Method::PUT, &theirs, None).await.expect("put");
    assert_eq!(status, 403, "{body}");
    assert_eq!(bob.raw(Method::PUT, &fav, None).await.expect("put").0, 404, "bob cannot see it");
    assert_eq!(c.raw(Method::DELETE, &fav, None).await.expect("delete").0, 204);
    assert!(!c.workspace(beta.id).await.expect("beta").favorite);
    assert_eq!(names(&c, "q=owner:me").await.0, ["alpha-dev", "beta"]);

    let before = c.workspace(alpha.id).await.expect("alpha").last_used_at;
    let usage = format!("/api/v2/workspaces/{}/usage", alpha.id);
    assert_eq!(c.raw(Method::POST, &usage, Some(json!({}))).await.expect("usage").0, 204);
    assert!(c.workspace(alpha.id).await.expect("alpha").last_used_at > before);
    server.stop().await;
}
