//! Coder compatibility of the API details real Coder clients depend on:
//! the build `state` override as Go's SDK sends it (base64) and empty
//! states ignored, Coder's extra routes and trailing slashes, build list
//! paging, `matched_provisioners` on template versions, and a job's
//! `metadata` and `available_workers`.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The id terraform gave the `home` resource in a build's state.
async fn home_id(c: &provisionerd::sdk::Client, build: uuid::Uuid) -> String {
    let state: Value = serde_json::from_str(&build_state(c, build).await).expect("state JSON");
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "home")
        .and_then(|r| r["instances"][0]["attributes"]["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no home in {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_override_accepts_base64_and_ignores_an_empty_state() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let first = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(first.job.status, "succeeded", "{first:?}");
    let home = home_id(&c, first.id).await;
    let path = format!("{}/api/v2/workspaces/{}/builds", server.url, ws.id);
    let post = |body: Value| raw(Method::POST, path.clone(), Some(c.token()), Some(body));

    // `[]` and `""` (an empty byte array as Go's SDK writes it) are no
    // state: the build keeps the previous one and re-creates nothing.
    for empty in [json!([]), json!("")] {
        let (status, body) = post(json!({"transition": "start", "state": empty})).await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().and_then(|i| i.parse().ok()).expect("build id");
        let done = wait_build(&c, id, TIMEOUT).await;
        assert_eq!(done.job.status, "succeeded", "{done:?}");
        assert_eq!(home_id(&c, id).await, home, "state {empty} wiped the state");
    }

    // A base64 state is decoded and used: a state without resources makes
    // terraform create home again, with a new id.
    let previous: Value = serde_json::from_str(&build_state(&c, first.id).await).expect("json");
    let mut emptied = previous.clone();
    emptied["resources"] = json!([]);
    let text = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&emptied).expect("bytes"));
    let (status, body) = post(json!({"transition": "start", "state": text})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().and_then(|i| i.parse().ok()).expect("build id");
    let done = wait_build(&c, id, TIMEOUT).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert_ne!(home_id(&c, id).await, home, "the base64 state was not used");

    // Text that is not base64 is a 400 naming the problem.
    let (status, body) = post(json!({"transition": "start", "state": "not base64!"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("base64"), "{body}");
    server.stop().await;
}

/// The ids of a workspace's builds as the list returns them for `query`.
async fn listed(server: &TestServer, token: &str, ws: uuid::Uuid, query: &str) -> (u16, Value) {
    let url = format!("{}/api/v2/workspaces/{ws}/builds{query}", server.url);
    raw(Method::GET, url, Some(token), None).await
}

fn numbers(body: &Value) -> Vec<i64> {
    body.as_array().into_iter().flatten().filter_map(|b| b["build_number"].as_i64()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_list_pages_by_after_id_and_since_excludes_its_boundary() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let mut ids = vec![wait_build(&c, ws.latest_build.id, TIMEOUT).await];
    for transition in ["stop", "start"] {
        let b = build(&c, ws.id, transition).await;
        ids.push(wait_build(&c, b.id, TIMEOUT).await);
    }
    let token = c.token();
    let (status, all) = listed(&server, token, ws.id, "").await;
    assert_eq!((status, numbers(&all)), (200, vec![3, 2, 1]), "{all}");

    // after_id: the builds numbered above the cursor (Coder's cursor).
    let (status, body) = listed(&server, token, ws.id, &format!("?after_id={}", ids[0].id)).await;
    assert_eq!((status, numbers(&body)), (200, vec![3, 2]), "{body}");
    let (_, body) =
        listed(&server, token, ws.id, &format!("?after_id={}&limit=1", ids[0].id)).await;
    assert_eq!(numbers(&body), [3]);
    let (status, body) = listed(&server, token, ws.id, &format!("?after_id={}", ids[2].id)).await;
    assert_eq!((status, numbers(&body)), (200, vec![]), "{body}");
    // A cursor that is no build of this workspace is a 400, not an empty page.
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = listed(&server, token, ws.id, &format!("?after_id={unknown}")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("after_id"), "{body}");

    // since: strictly after the given time, so a build's own created_at
    // leaves that build out.
    let since = all[1]["created_at"].as_str().expect("created_at");
    let query = format!("?since={}", since.replace('+', "%2B"));
    let (status, body) = listed(&server, token, ws.id, &query).await;
    assert_eq!((status, numbers(&body)), (200, vec![3]), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_workspace_with_both_template_and_version_is_a_400() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, version) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let url = format!("{}/api/v2/users/me/workspaces", server.url);
    let body = json!({"name": workspace_name(), "template_id": template,
                      "template_version_id": version.id});
    let (status, body) = raw(Method::POST, url, Some(c.token()), Some(body)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["validations"][0]["field"], "template_version_id", "{body}");
    let workspaces = c.workspaces(None, None).await.expect("workspaces");
    assert_eq!(workspaces.count, 0, "no workspace was created: {workspaces:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_coder_clients_call_and_trailing_slashes() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, version) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let get =
        |path: String| raw(Method::GET, format!("{}{path}", server.url), Some(c.token()), None);

    let (status, orgs) = get("/api/v2/organizations".into()).await;
    assert_eq!(status, 200, "{orgs}");
    let org_id = orgs[0]["id"].as_str().expect("an organization").to_owned();
    assert_eq!(orgs.as_array().map(Vec::len), Some(1), "{orgs}");

    let (status, templates) = get("/api/v2/templates".into()).await;
    assert_eq!(status, 200, "{templates}");
    let ids: Vec<&str> =
        templates.as_array().into_iter().flatten().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, [template.to_string()], "{templates}");

    let (status, by_name) =
        get(format!("/api/v2/templates/{template}/versions/{}", version.name)).await;
    assert_eq!(status, 200, "{by_name}");
    assert_eq!(by_name["id"], version.id.to_string());
    let (status, body) = get(format!("/api/v2/templates/{template}/versions/no-such")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("no-such"), "{body}");

    let (status, examples) =
        get(format!("/api/v2/organizations/{org_id}/templates/examples")).await;
    assert_eq!((status, examples), (200, json!([])));
    let (status, _) = get("/api/v2/organizations/nope/templates/examples".into()).await;
    assert_eq!(status, 404);

    // A trailing slash reaches the same handler, query kept.
    let (status, versions) = get(format!("/api/v2/templates/{template}/versions/")).await;
    assert_eq!(status, 200, "{versions}");
    assert_eq!(versions[0]["id"], version.id.to_string());
    let (status, me) = get("/api/v2/users/me/".into()).await;
    assert_eq!((status, me["email"].is_string()), (200, true), "{me}");
    let (status, page) = get("/api/v2/workspaces/?limit=1".into()).await;
    assert_eq!((status, page["count"].as_i64()), (200, Some(0)), "{page}");
    // Unknown paths stay 404 with or without the slash.
    let (status, body) = get("/api/v2/nothing/".into()).await;
    assert_eq!(status, 404, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_import_no_daemon_can_run_says_so() {
    use provisionerd::domain::Provisioner;
    // The built-in daemon found no terraform: it runs echo jobs only.
    let opts = Opts { builtin_provisioners: Some(vec![Provisioner::Echo]), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let file = c
        .upload_tar(provisionerd::sdk::tar_dir(&template_dir("basic")).expect("tar"))
        .await
        .expect("upload");
    let req = provisionerd::sdk::CreateTemplateVersionRequest::new(file, "terraform");
    let v = c.create_template_version("coder", &req).await.expect("create version");
    // The daemon is connected (it has tags that fit), yet counts for nothing.
    wait_for("the built-in daemon", TIMEOUT, || async {
        let url = format!("{}/api/v2/organizations/coder/provisionerdaemons", server.url);
        let (_, daemons) = raw(Method::GET, url, Some(c.token()), None).await;
        daemons.as_array().is_some_and(|d| !d.is_empty()).then_some(())
    })
    .await;
    let got = c.template_version(v.id).await.expect("version");
    assert_eq!(got.job.status, "pending");
    let matched = got.matched_provisioners.expect("a pending import shows matched_provisioners");
    assert_eq!((matched.count, matched.available), (0, 0), "{matched:?}");
    assert_eq!(matched.most_recently_seen, None);
    // Raw JSON as a Coder client reads it.
    let url = format!("{}/api/v2/templateversions/{}", server.url, v.id);
    let (_, body) = raw(Method::GET, url, Some(c.token()), None).await;
    assert_eq!(body["matched_provisioners"]["count"], 0, "{body}");

    // An echo import the daemon can run is taken; a finished job carries
    // no matched_provisioners.
    let done = push_version(&c, &template_dir("basic"), "echo", plain).await;
    assert_ne!(done.job.status, "pending", "{done:?}");
    assert!(done.matched_provisioners.is_none(), "only pending jobs carry it");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_serves_external_auth_presets_and_coder_app_and_script_rules() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let v = push_version(&c, &template_dir("coder-compat"), "terraform", plain).await;
    assert_eq!(v.job.status, "succeeded", "import failed: {v:?}");
    let get =
        |path: String| raw(Method::GET, format!("{}{path}", server.url), Some(c.token()), None);

    let (status, auth) = get(format!("/api/v2/templateversions/{}/external-auth", v.id)).await;
    assert_eq!(status, 200, "{auth}");
    let ids: Vec<(&str, bool, bool)> = auth
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let id = a["id"].as_str().unwrap_or("");
            (id, a["optional"] == true, a["authenticated"] == true)
        })
        .collect();
    assert_eq!(ids, [("github", true, false), ("gitlab", false, false)], "{auth}");

    let (status, presets) = get(format!("/api/v2/templateversions/{}/presets", v.id)).await;
    assert_eq!(status, 200, "{presets}");
    assert_eq!(presets[0]["Name"], "Large", "{presets}");
    assert_eq!(presets[0]["Parameters"], json!([{"Name": "size", "Value": "l"}]));
    assert_eq!(presets[0]["DesiredPrebuildInstances"], 1);
    assert_eq!(presets[0]["Description"], "for big builds");
    let (_, again) = get(format!("/api/v2/templateversions/{}/presets", v.id)).await;
    assert_eq!(again[0]["ID"], presets[0]["ID"], "a preset's id is stable");

    let (status, resources) = get(format!("/api/v2/templateversions/{}/resources", v.id)).await;
    assert_eq!(status, 200, "{resources}");
    let vm = resources
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "vm" && r["workspace_transition"] == "start")
        .unwrap_or_else(|| panic!("no vm in {resources}"));
    let agent = &vm["agents"][0];
    let apps: Vec<(&str, &str, &str)> = agent["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("");
            (s("slug"), s("display_name"), s("open_in"))
        })
        .collect();
    let mut apps = apps;
    apps.sort();
    assert_eq!(apps, [("bare", "bare", "slim-window"), ("named", "Legacy Name", "tab")]);
    let scripts: Vec<(&str, &str, bool, bool, bool)> = agent["scripts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let t = |k: &str| s[k].as_str().unwrap_or("");
            (
                t("display_name"),
                t("log_path"),
                s["run_on_start"] == true,
                s["run_on_stop"] == true,
                s["start_blocks_login"] == true,
            )
        })
        .collect();
    assert_eq!(
        scripts,
        [
            ("Startup Script", "coder-startup-script.log", true, false, true),
            ("Shutdown Script", "coder-shutdown-script.log", false, true, false)
        ],
        "{agent}"
    );
    assert_eq!(agent["startup_script_behavior"], "blocking");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_debug_makes_terraform_log_at_debug_level() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) = create_template(&c, &template_dir("basic"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let first = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(first.job.status, "succeeded", "{first:?}");
    let debug_lines = |logs: &[String]| logs.iter().filter(|l| l.contains("[DEBUG]")).count();
    assert_eq!(debug_lines(&log_outputs(&c, first.id).await), 0, "no debug log by default");

    let mut req = provisionerd::sdk::CreateWorkspaceBuildRequest::new("stop");
    req.log_level = Some("debug".into());
    let b = c.create_build(ws.id, &req).await.expect("debug build");
    let done = wait_build(&c, b.id, TIMEOUT).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    let logs = log_outputs(&c, b.id).await;
    assert!(debug_lines(&logs) > 0, "terraform's debug log is in the job log: {logs:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_cost_workspace_health_and_script_ids() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) =
        create_template(&c, &template_dir("coder-compat"), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let done = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert_eq!(done.daily_cost, 5, "the sum of the resources' costs");

    let url = format!("{}/api/v2/workspaces/{}", server.url, ws.id);
    let (status, body) = raw(Method::GET, url, Some(c.token()), None).await;
    assert_eq!(status, 200, "{body}");
    let vm = body["latest_build"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "vm")
        .unwrap_or_else(|| panic!("no vm in {body}"))
        .clone();
    let agent = &vm["agents"][0];
    assert_eq!(agent["health"]["healthy"], false);
    // The workspace agrees with its agent.
    assert_eq!(body["health"], json!({"healthy": false, "failing_agents": [agent["id"]]}));
    let ids: Vec<&str> = agent["scripts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "every script has an id: {agent}");
    assert_ne!(ids[0], ids[1]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_carry_metadata_and_available_workers() {
    let server = TestServer::start(Opts { builtin_daemons: 1, ..Opts::default() }).await;
    let c = server.client().await;
    // Start builds take long enough to keep the one daemon busy.
    let echo = echo_template(&json!({"transitions": {"start": {"delay_ms": 60_000}}}));
    let (template, version) = create_template(&c, echo.path(), "echo", plain).await;
    let url = format!("{}/api/v2/templateversions/{}", server.url, version.id);
    let (_, body) = raw(Method::GET, url, Some(c.token()), None).await;
    let meta = &body["job"]["metadata"];
    assert_eq!(meta["template_id"], json!(template), "{body}");
    assert_eq!(meta["template_version_name"], body["name"]);
    assert!(meta["template_name"].as_str().is_some_and(|n| !n.is_empty()), "{meta}");
    assert!(meta.get("workspace_id").is_none(), "an import has no workspace: {meta}");
    assert!(body["job"].get("available_workers").is_none(), "a finished job has none: {body}");

    let busy = create_workspace(&c, template).await;
    wait_for("the first build to start", TIMEOUT, || async {
        let b = c.build(busy.latest_build.id).await.expect("build");
        (b.job.status == "running").then_some(())
    })
    .await;
    let waiting = create_workspace(&c, template).await;
    let url = format!("{}/api/v2/organizations/coder/provisionerdaemons", server.url);
    let (_, daemons) = raw(Method::GET, url, Some(c.token()), None).await;
    let daemon = daemons[0]["id"].clone();
    let url = format!("{}/api/v2/workspaces/{}", server.url, waiting.id);
    let (_, ws) = raw(Method::GET, url, Some(c.token()), None).await;
    assert_eq!(ws["template_require_active_version"], false, "{ws}");
    let job = &ws["latest_build"]["job"];
    assert_eq!(job["status"], "pending", "{ws}");
    assert_eq!(job["available_workers"], json!([daemon]), "the busy daemon could take it: {ws}");
    let meta = &job["metadata"];
    assert_eq!(meta["workspace_id"], json!(waiting.id), "{meta}");
    assert_eq!(meta["workspace_name"], json!(waiting.name));
    assert_eq!(meta["template_id"], json!(template));
    assert_eq!(meta["template_version_name"], ws["latest_build"]["template_version_name"]);
    let url = format!("{}/api/v2/workspacebuilds/{}", server.url, busy.latest_build.id);
    let (_, running) = raw(Method::GET, url, Some(c.token()), None).await;
    assert!(running["job"].get("available_workers").is_none(), "only pending jobs: {running}");

    for b in [waiting.latest_build.id, busy.latest_build.id] {
        assert_eq!(cancel_build(&c, b).await, 200);
        wait_build(&c, b, TIMEOUT).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_that_ended_leave_the_workspace_as_it_was() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let echo = echo_template(&json!({"resources": [{"name": "vm", "type": "echo_instance"}]}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let first = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(first.status, "running", "{first:?}");
    let (base, token, ws_id) = (server.url.clone(), c.token().to_owned(), ws.id);
    let get_ws = || {
        let (url, token) = (format!("{base}/api/v2/workspaces/{ws_id}"), token.clone());
        async move {
            let (status, body) = raw(Method::GET, url, Some(&token), None).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let listed = |q: &str| {
        let (url, token) = (format!("{base}/api/v2/workspaces?q={q}"), token.clone());
        async move {
            let (_, body) = raw(Method::GET, url, Some(&token), None).await;
            body["workspaces"].as_array().into_iter().flatten().any(|w| w["id"] == json!(ws_id))
        }
    };
    let post = |body: Value| {
        let (url, token) = (format!("{base}/api/v2/workspaces/{ws_id}/builds"), token.clone());
        async move {
            let (status, body) = raw(Method::POST, url, Some(&token), Some(body)).await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().and_then(|id| id.parse::<uuid::Uuid>().ok()).expect("build id")
        }
    };

    // A dry-run stop and a dry-run delete plan and change nothing.
    for transition in ["stop", "delete"] {
        let id = post(json!({"transition": transition, "dry_run": true})).await;
        let planned = wait_build(&c, id, TIMEOUT).await;
        assert_eq!(planned.job.status, "succeeded", "{planned:?}");
        let body = get_ws().await;
        assert_eq!(body["latest_build"]["id"], json!(first.id), "{transition}: {body}");
        assert_eq!(body["latest_build"]["status"], "running", "{transition}");
        assert!(listed("status:running").await, "{transition}: listed as running");
        assert!(!listed("status:stopped").await && !listed("status:deleted").await);
    }
    // The workspace was neither stopped nor deleted: a real stop is taken
    // and numbered after the dry runs.
    let id = post(json!({"transition": "stop"})).await;
    let stopped = wait_build(&c, id, TIMEOUT).await;
    assert_eq!((stopped.status.as_str(), stopped.build_number), ("stopped", 4), "{stopped:?}");
    // A dry-run start leaves it stopped, with no deadline to stop it again.
    let id = post(json!({"transition": "start", "dry_run": true})).await;
    let planned = wait_build(&c, id, TIMEOUT).await;
    assert_eq!(planned.job.status, "succeeded", "{planned:?}");
    assert_eq!(planned.deadline, None, "a plan starts nothing to stop");
    let body = get_ws().await;
    assert_eq!(body["latest_build"]["status"], "stopped", "{body}");
    assert!(listed("status:stopped").await);
    server.stop().await;
}
