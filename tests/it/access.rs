//! Roles and permissions (issue 12, points 2-5): every route walked as an
//! owner, the workspace's member, another member, a template admin and a user
//! admin, against someone else's workspace, build, logs, state, template,
//! file and key; and the probe's attacks (a member pushing code into the
//! owner's template, a member's hand-written state) performed for real.

use std::path::Path;
use std::time::Duration;

use provisionerd::sdk::{
    self, tar_dir, Client, CreateProvisionerKeyRequest, CreateUserRequest, Role,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

const PASSWORD: &str = "a-long-enough-password";

/// Creates a user as `admin` and logs them in.
async fn user(server: &TestServer, admin: &Client, name: &str) -> (Client, String) {
    let email = format!("{name}@example.com");
    let req = CreateUserRequest {
        email: email.clone(),
        username: name.into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let created = admin.create_user(&req).await.expect("create user");
    assert_eq!(created.roles, [], "a new user is a plain member: {created:?}");
    let client = Client::login(&server.url, &email, PASSWORD).await.expect("login");
    (client, created.id.to_string())
}

/// `PUT /users/{user}/roles` as `who`.
async fn set_roles(who: &Client, user: &str, roles: &[&str]) -> Result<sdk::User, sdk::Error> {
    who.update_roles(user, roles).await
}

fn role(name: &str, display_name: &str) -> Role {
    Role { name: name.into(), display_name: display_name.into() }
}

/// One request and the status each role must get: owner, the workspace's
/// member, another member, template admin, user admin.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    want: [u16; 5],
}

fn get(path: impl Into<String>, want: [u16; 5]) -> Case {
    Case { method: Method::GET, path: path.into(), body: None, want }
}

fn send(method: Method, path: impl Into<String>, body: Value, want: [u16; 5]) -> Case {
    Case { method, path: path.into(), body: Some(body), want }
}

const ROLES: [&str; 5] = ["owner", "member A", "member B", "template-admin", "user-admin"];

/// Sends `case` as role `role`; a wrong status or error shape is returned
/// as a line for the report, so one run shows the whole matrix.
async fn ask(server: &TestServer, client: &Client, case: &Case, role: usize) -> Option<String> {
    let url = format!("{}{}", server.url, case.path);
    let (status, body) =
        raw(case.method.clone(), url, Some(client.token()), case.body.clone()).await;
    let (want, what) =
        (case.want[role], format!("{} {} as {}", case.method, case.path, ROLES[role]));
    if status != want {
        Some(format!("{what}: got {status}, want {want}: {body}"))
    } else if status >= 400 && !body["message"].is_string() {
        Some(format!("{what}: not Coder's error shape: {body}"))
    } else {
        None
    }
}

/// Walks `cases` as every role; a 0 marks a request that role may make but
/// that is not sent here (it would queue a build or change the fixture).
async fn walk(server: &TestServer, who: &[&Client; 5], cases: &[Case]) -> Vec<String> {
    let mut wrong = Vec::new();
    for case in cases {
        for (role, client) in who.iter().enumerate() {
            if case.want[role] != 0 {
                wrong.extend(ask(server, client, case, role).await);
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_coder_does() {
    let server = TestServer::start(Opts::default()).await;
    let owner = server.client().await;
    let (a, a_id) = user(&server, &owner, "alice").await;
    let (b, b_id) = user(&server, &owner, "bob").await;
    let (ta, ta_id) = user(&server, &owner, "tadmin").await;
    let (ua, ua_id) = user(&server, &owner, "uadmin").await;
    let body = set_roles(&owner, &ta_id, &["template-admin"]).await.expect("roles");
    assert_eq!(body.roles, [role("template-admin", "Template Admin")]);
    let body = set_roles(&owner, "uadmin", &["user-admin", "member"]).await.expect("roles");
    assert_eq!(body.roles[0].name, "user-admin", "{body:?}");
    let me = owner.user("me").await.expect("me");
    assert_eq!(me.roles, [role("owner", "Owner")]);

    // The owner's template and archive, a version of no template yet, A's
    // workspace with one finished build, and a provisioner key.
    let echo = echo_template(&json!({"logs": [{"output": "hello"}],
        "resources": [{"name": "vm", "type": "echo_instance"}], "state": "{\"secret\": 1}"}));
    let (template, version) = create_template(&owner, echo.path(), "echo", plain).await;
    let file = version.job.file_id;
    let version = version.id;
    let loose = push_version(&owner, echo.path(), "echo", plain).await.id;
    let ws = create_workspace(&a, template).await;
    let (ws_id, ws_name) = (ws.id, ws.name.as_str());
    let build = ws.latest_build.id;
    let done = wait_build(&a, build, Duration::from_secs(60)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    let key = CreateProvisionerKeyRequest { name: "ownerkey".into(), ..Default::default() };
    owner.create_key("coder", &key).await.expect("key");

    // Reads. 404 where Coder hides the resource from the caller.
    let mine = [200, 200, 404, 200, 404];
    let all = [200; 5];
    let managers = [200, 404, 404, 200, 404];
    let admins_only = [200, 403, 403, 200, 403];
    let reads = [
        get(format!("/api/v2/workspaces/{ws_id}"), mine),
        get(format!("/api/v2/workspaces/{ws_id}/builds"), mine),
        get(format!("/api/v2/users/{a_id}/workspace/{ws_name}"), mine),
        get(format!("/api/v2/users/alice/workspace/{ws_name}/builds/1"), mine),
        get(format!("/api/v2/workspacebuilds/{build}"), mine),
        get(format!("/api/v2/workspacebuilds/{build}/logs"), mine),
        get(format!("/api/v2/workspacebuilds/{build}/resources"), mine),
        get(format!("/api/v2/workspacebuilds/{build}/parameters"), mine),
        get(format!("/api/v2/workspacebuilds/{build}/state"), managers),
        get(format!("/api/v2/users/{a_id}"), [200, 200, 404, 200, 200]),
        get("/api/v2/users/alice/organizations", [200, 200, 404, 200, 200]),
        get(format!("/api/v2/users/{b_id}"), [200, 404, 200, 200, 200]),
        get("/api/v2/organizations/coder", all),
        get(format!("/api/v2/templates/{template}"), all),
        get(format!("/api/v2/templates/{template}/versions"), all),
        get("/api/v2/organizations/coder/templates", all),
        get(format!("/api/v2/templateversions/{version}"), all),
        get(format!("/api/v2/templateversions/{version}/logs"), all),
        get(format!("/api/v2/templateversions/{version}/resources"), all),
        get(format!("/api/v2/templateversions/{loose}"), managers),
        get(format!("/api/v2/templateversions/{loose}/logs"), managers),
        get(format!("/api/v2/templateversions/{loose}/rich-parameters"), managers),
        get(format!("/api/v2/templateversions/{loose}/variables"), managers),
        get(format!("/api/v2/files/{file}"), managers),
        get(format!("/api/v2/workspacebuilds/{build}/logs?follow=true"), [0, 0, 404, 0, 404]),
        get(format!("/api/v2/templateversions/{loose}/logs?follow=true"), [0, 404, 404, 0, 404]),
        get("/api/v2/organizations/coder/provisionerkeys", admins_only),
        get("/api/v2/organizations/coder/provisionerdaemons", admins_only),
    ];
    let who = [&owner, &a, &b, &ta, &ua];
    let mut wrong = walk(&server, &who, &reads).await;
    for (client, count) in who.iter().zip([1, 1, 0, 1, 0]) {
        let listed = client.workspaces(None, None).await.expect("list");
        if listed.count != count {
            wrong.push(format!("workspace list: {listed:?}, want {count}"));
        }
    }

    // Changes the caller may not make: 403 where the resource is visible
    // (or there is none to hide), 404 where it is not. Allowed changes that
    // would start builds are left to other tests.
    let stop = json!({"transition": "stop"});
    let tv = json!({"file_id": file, "provisioner": "echo", "template_id": template});
    let denied = [
        send(
            Method::POST,
            format!("/api/v2/workspaces/{ws_id}/builds"),
            stop,
            [0, 0, 404, 403, 404],
        ),
        send(
            Method::POST,
            format!("/api/v2/workspaces/{ws_id}/builds"),
            json!({"transition": "delete"}),
            [0, 0, 404, 403, 404],
        ),
        send(
            Method::POST,
            format!("/api/v2/workspaces/{ws_id}/builds"),
            json!({"transition": "start", "state": b"{}".to_vec()}),
            [0, 403, 404, 403, 404],
        ),
        send(
            Method::POST,
            format!("/api/v2/workspaces/{ws_id}/builds"),
            json!({"transition": "delete", "orphan": true}),
            [0, 403, 404, 403, 404],
        ),
        send(
            Method::POST,
            format!("/api/v2/workspaces/{ws_id}/builds"),
            json!({"transition": "start", "log_level": "debug"}),
            [0, 400, 404, 403, 404],
        ),
        send(
            Method::PATCH,
            format!("/api/v2/workspacebuilds/{build}/cancel"),
            json!({}),
            [400, 400, 404, 403, 404],
        ),
        send(
            Method::POST,
            "/api/v2/organizations/coder/templateversions",
            tv,
            [0, 403, 403, 0, 403],
        ),
        send(
            Method::PATCH,
            format!("/api/v2/templates/{template}/versions"),
            json!({"id": version}),
            [200, 403, 403, 200, 403],
        ),
        send(
            Method::POST,
            "/api/v2/organizations/coder/templates",
            json!({"name": "theirs", "template_version_id": loose}),
            [0, 403, 403, 0, 403],
        ),
        send(
            Method::POST,
            format!("/api/v2/users/{a_id}/workspaces"),
            json!({"name": "planted", "template_id": template}),
            [0, 0, 403, 403, 403],
        ),
        send(
            Method::POST,
            "/api/v2/users",
            json!({"email": "x@example.com", "username": "x", "password": PASSWORD}),
            [0, 403, 403, 403, 0],
        ),
        send(
            Method::PUT,
            format!("/api/v2/users/{b_id}/roles"),
            json!({"roles": ["template-admin"]}),
            [0, 404, 400, 403, 403],
        ),
        send(
            Method::PUT,
            format!("/api/v2/users/{ua_id}/roles"),
            json!({"roles": []}),
            [0, 404, 404, 403, 400],
        ),
        send(Method::PUT, "/api/v2/users/me/roles", json!({"roles": ["owner"]}), [400; 5]),
        send(
            Method::POST,
            "/api/v2/organizations/coder/provisionerkeys",
            json!({"name": "k"}),
            [0, 403, 403, 0, 403],
        ),
        send(
            Method::DELETE,
            "/api/v2/organizations/coder/provisionerkeys/ownerkey",
            json!({}),
            [0, 403, 403, 0, 403],
        ),
    ];
    wrong.extend(walk(&server, &who, &denied).await);
    assert!(wrong.is_empty(), "{} wrong answers:\n{}", wrong.len(), wrong.join("\n"));

    // Files are per uploader: the same bytes uploaded by another user are
    // their own file (readable by them), not the owner's id, which would
    // tell them the owner uploaded those bytes.
    let bytes = tar_dir(echo.path()).expect("tar");
    let owners = owner.upload_tar(bytes.clone()).await.expect("owner upload");
    assert_eq!(owner.upload_tar(bytes.clone()).await.expect("again"), owners, "deduplicated");
    let bobs = b.upload_tar(bytes).await.expect("bob upload");
    assert_ne!(bobs, owners, "another uploader's file is their own");
    let download = format!("{}/api/v2/files/{bobs}", server.url);
    let (status, _) = raw(Method::GET, download, Some(b.token()), None).await;
    assert_eq!(status, 200, "an uploader reads their file");
    let download = format!("{}/api/v2/files/{owners}", server.url);
    let (status, _) = raw(Method::GET, download, Some(b.token()), None).await;
    assert_eq!(status, 404, "but not the owner's");

    // Nothing denied happened: one build, the version unchanged, the roles
    // as the owner set them.
    let builds = owner.builds(ws_id).await.expect("builds");
    assert_eq!(builds.len(), 1, "no build was queued: {builds:?}");
    let t = owner.template(template).await.expect("template");
    assert_eq!(t.active_version_id, version);
    let bob = owner.user(&b_id).await.expect("bob");
    assert_eq!(bob.roles, [], "bob was not promoted: {bob:?}");

    // What the roles may do, they can: a user admin creates users, a
    // template admin pushes versions, downloads the owner's archive and
    // manages keys; an owner grants and takes away any role.
    user(&server, &ua, "carol").await;
    let own = push_version(&ta, echo.path(), "echo", |r| r.template_id = Some(template)).await;
    assert_eq!(own.job.status, "succeeded", "{own:?}");
    let key = CreateProvisionerKeyRequest { name: "takey".into(), ..Default::default() };
    let key = ta.create_key("coder", &key).await;
    assert!(key.is_ok(), "{key:?}");
    let body = set_roles(&owner, "bob", &["owner", "template-admin"]).await.expect("roles");
    assert_eq!(body.roles.len(), 2, "{body:?}");
    let body = set_roles(&b, "alice", &["owner"]).await;
    assert!(body.is_ok(), "a new owner may grant owner: {body:?}");
    let e = set_roles(&owner, "bob", &["superuser"]).await.expect_err("no such role");
    assert_eq!(e.status(), Some(400), "{e}");
    assert_eq!(e.response().expect("error body").validations[0].field, "roles", "{e}");
    let body = set_roles(&owner, "bob", &[]).await;
    assert!(body.is_ok(), "{body:?}");
    let (status, _) = raw(
        Method::GET,
        format!("{}/api/v2/organizations/coder/provisionerkeys", server.url),
        Some(b.token()),
        None,
    )
    .await;
    assert_eq!(status, 403, "taking a role away takes effect at once");
    server.stop().await;
}

/// A template whose apply runs `touch <marker>` on the build host.
fn hostile_template(marker: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let tf = format!(
        "resource \"terraform_data\" \"x\" {{\n  provisioner \"local-exec\" {{\n    command = \"touch {}\"\n  }}\n}}\n",
        marker.display()
    );
    std::fs::write(dir.path().join("main.tf"), tf).expect("main.tf");
    dir
}

/// The probe's attacks, with real terraform: a member pushes a version with a
/// `local-exec` into the owner's template (and promotes it, or makes a
/// template of their own), then hands their own workspace's delete build a
/// state whose destroy provisioner input is a shell command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_run_code_through_templates_or_state() {
    let server = TestServer::start(Opts::default()).await;
    let owner = server.client().await;
    let (member, _) = user(&server, &owner, "mallory").await;
    let (template, good) =
        create_template(&owner, &template_dir("basic"), "terraform", plain).await;
    let marker = server.path().join("pwned");
    let hostile = hostile_template(&marker);
    let file = member.upload_tar(tar_dir(hostile.path()).expect("tar")).await.expect("upload");

    let post = |path: &str, body: Value| {
        let url = format!("{}{path}", server.url);
        raw(Method::POST, url, Some(member.token()), Some(body))
    };
    let tv = json!({"file_id": file, "provisioner": "terraform", "template_id": template});
    let (status, body) = post("/api/v2/organizations/coder/templateversions", tv).await;
    assert_eq!(status, 403, "a member adds no version to the owner's template: {body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("template")), "{body}");
    let loose = json!({"file_id": file, "provisioner": "terraform"});
    let (status, body) = post("/api/v2/organizations/coder/templateversions", loose).await;
    assert_eq!(status, 403, "nor a version of their own: {body}");
    let (status, body) = raw(
        Method::PATCH,
        format!("{}/api/v2/templates/{template}/versions", server.url),
        Some(member.token()),
        Some(json!({"id": good.id})),
    )
    .await;
    assert_eq!(status, 403, "nor promotes: {body}");
    let versions = owner.template_versions(template).await.expect("list");
    assert_eq!(versions.len(), 1, "no version was added: {versions:?}");

    // The member's own workspace runs the owner's template, not theirs.
    let ws = create_workspace(&member, template).await;
    let ws_id = ws.id;
    let build = ws.latest_build.id;
    let done = wait_build(&member, build, Duration::from_secs(120)).await;
    assert_eq!(done.job.status, "succeeded", "{done:?}");
    assert!(!marker.exists(), "the member's local-exec never ran");

    // A hand-written state: the destroy provisioner echoes into the path in
    // `home`'s input, so a crafted input is a shell command.
    let state = build_state(&owner, build).await;
    let mut state: Value = serde_json::from_str(&state).expect("state json");
    let payload = format!("/dev/null\"; touch \"{}", marker.display());
    let mut planted = 0;
    for r in state["resources"].as_array_mut().expect("resources") {
        if r["name"] == "home" {
            planted += 1;
            // terraform_data keeps `input` as a dynamic value; with this one
            // (checked with the permission check removed) the delete build
            // runs the member's `touch`.
            r["instances"][0]["attributes"]["input"] = json!({"value": payload, "type": "string"});
        }
    }
    assert_eq!(planted, 1, "the state has the template's home resource: {state}");
    let crafted = serde_json::to_vec(&state).expect("bytes");
    let path = format!("/api/v2/workspaces/{ws_id}/builds");
    let (status, body) = post(&path, json!({"transition": "delete", "state": crafted})).await;
    assert_eq!(status, 403, "only template managers may provide custom state: {body}");
    assert_eq!(body["message"], "Only template managers may provide custom state");
    let (status, body) = post(&path, json!({"transition": "delete", "orphan": true})).await;
    assert_eq!(status, 403, "nor orphan a workspace: {body}");
    let (status, body) = raw(
        Method::GET,
        format!("{}/api/v2/workspacebuilds/{build}/state", server.url),
        Some(member.token()),
        None,
    )
    .await;
    assert_eq!(status, 404, "nor read the raw state: {body}");
    let builds = member.builds(ws_id).await.expect("builds");
    assert_eq!(builds.len(), 1, "no build was queued: {builds:?}");
    assert!(!marker.exists(), "the crafted state never ran");
    server.stop().await;
}
