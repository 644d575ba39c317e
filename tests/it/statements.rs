//! No N+1 queries: the SQL statements a page of workspaces or builds costs,
//! counted from sqlx's own `sqlx::query` events (one per statement it runs)
//! inside the server's `api_request` span of that request, do not grow with
//! the page size. Real builds, real store (SQLite, or PostgreSQL with
//! `PROVISIONERD_TEST_STORE=postgres`); the counting layer is installed with
//! the harness's subscriber, so every test's server reports to it and each
//! request is told apart by its unique URI.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use provisionerd::sdk::{self, Client};
use reqwest::Method;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::harness::*;

/// Statements counted per request URI.
fn counts() -> &'static Mutex<HashMap<String, usize>> {
    static COUNTS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    COUNTS.get_or_init(Mutex::default)
}

/// The URI an `api_request` span names, kept in the span's extensions.
struct RequestUri(String);

struct UriVisitor(Option<String>);

impl Visit for UriVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "uri" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Counts `sqlx::query` events by the URI of the request they run in.
pub struct StatementCounter;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for StatementCounter {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "api_request" {
            return;
        }
        let mut visitor = UriVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(uri), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestUri(uri));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else { return };
        for span in scope {
            if let Some(RequestUri(uri)) = span.extensions().get::<RequestUri>() {
                *counts().lock().expect("counts").entry(uri.clone()).or_default() += 1;
                return;
            }
        }
    }
}

/// Only what the counter needs: sqlx's statements and the request spans.
pub struct StatementFilter;

impl<S> Filter<S> for StatementFilter {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.target() == "sqlx::query" || meta.name() == "api_request"
    }
}

/// GETs `path` with a unique marker parameter added and returns the body
/// and the number of SQL statements the server ran for it (the span sees
/// the URI as the nested API router does, without `/api/v2`).
async fn counted(c: &Client, path: &str) -> (serde_json::Value, usize) {
    let marker = format!("x={}", Uuid::new_v4().simple());
    let (status, body) = c.raw(Method::GET, &format!("{path}&{marker}"), None).await.expect("get");
    assert_eq!(status, 200, "{path}: {body}");
    let counts = counts().lock().expect("counts");
    let n = counts.iter().filter(|(uri, _)| uri.contains(&marker)).map(|(_, n)| n).sum();
    (body, n)
}

#[tokio::test]
async fn list_pages_cost_the_same_statements_whatever_their_size() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let dir = echo_template(&json!({"logs": [{"output": "hi"}]}));
    let (template, _) = create_template(&c, dir.path(), "echo", plain).await;
    let (other, _) = create_template(&c, dir.path(), "echo", plain).await;
    let bob = new_member(&c, &server.url, "bob").await;
    // Eight workspaces of two owners on two templates, one with six builds.
    let mut workspaces = Vec::new();
    for i in 0..8 {
        let (owner, t) = if i % 2 == 0 { (&c, template) } else { (&bob, other) };
        let ws = create_workspace(owner, t).await;
        wait_build(&c, ws.latest_build.id, Duration::from_secs(60)).await;
        workspaces.push(ws);
    }
    let busy = workspaces[0].id;
    for transition in ["stop", "start", "stop", "start", "stop"] {
        let b = build(&c, busy, transition).await;
        wait_build(&c, b.id, Duration::from_secs(60)).await;
    }

    let (small, small_n) = counted(&c, "/api/v2/workspaces?limit=1").await;
    let (large, large_n) = counted(&c, "/api/v2/workspaces?limit=8").await;
    let small: sdk::WorkspacesResponse = serde_json::from_value(small).expect("workspaces");
    let large: sdk::WorkspacesResponse = serde_json::from_value(large).expect("workspaces");
    assert_eq!((small.workspaces.len(), large.workspaces.len()), (1, 8));
    assert!(small_n > 0, "the counter saw the request's statements");
    assert_eq!(small_n, large_n, "statements for 1 and for 8 workspaces");
    eprintln!("statements: workspaces {small_n}/{large_n}");
    // The joined names are those of each workspace's owner and template.
    let owners: Vec<&str> = large.workspaces.iter().map(|w| w.owner_name.as_str()).collect();
    let created: Vec<&str> = workspaces.iter().map(|w| w.owner_name.as_str()).collect();
    assert_eq!(owners, created);
    assert_eq!(owners[1], "bob");
    let first = &large.workspaces[0];
    assert_eq!((first.id, first.latest_build.build_number), (busy, 6));
    assert_eq!(first.latest_build.transition, "stop");
    assert_eq!(first.latest_build.workspace_owner_name, workspaces[0].owner_name);
    let templates: Vec<Uuid> = large.workspaces.iter().map(|w| w.template_id).collect();
    assert_eq!(&templates[..2], [template, other]);

    let builds = format!("/api/v2/workspaces/{busy}/builds");
    let (small, small_n) = counted(&c, &format!("{builds}?limit=1")).await;
    let (large, large_n) = counted(&c, &format!("{builds}?limit=6")).await;
    let small: Vec<sdk::WorkspaceBuild> = serde_json::from_value(small).expect("builds");
    let large: Vec<sdk::WorkspaceBuild> = serde_json::from_value(large).expect("builds");
    assert_eq!((small.len(), large.len()), (1, 6));
    assert!(small_n > 0, "the counter saw the request's statements");
    assert_eq!(small_n, large_n, "statements for 1 and for 6 builds");
    let numbers: Vec<i32> = large.iter().map(|b| b.build_number).collect();
    assert_eq!(numbers, [6, 5, 4, 3, 2, 1]);
    for b in &large {
        assert_eq!(b, &c.build(b.id).await.expect("one build"), "as GET of the build shows it");
    }
    eprintln!("statements: builds {small_n}/{large_n}");
    server.stop().await;
}
