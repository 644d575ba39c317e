//! Coder-style templates on real terraform with the test `coder` provider
//! (testdata/terraform-provider-coder, installed into a filesystem mirror by
//! scripts/setup-test-provider; scripts/test points TF_CLI_CONFIG_FILE at
//! it): agents, apps, scripts, env and metadata reported under the right
//! resources; template import of resources, parameters and variables; the
//! validation of parameter values; invalid templates failing by name.

use std::time::Duration;

use provisionerd::sdk::{
    CreateTemplateVersionRequest, CreateWorkspaceBuildRequest, CreateWorkspaceRequest,
    WorkspaceResource,
};
use serde_json::{json, Value};

use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(180);

/// Fails clearly when the provider mirror is not configured.
fn require_provider() {
    let configured = std::env::var("TF_CLI_CONFIG_FILE")
        .map(|p| std::fs::read_to_string(p).unwrap_or_default().contains("provider-mirror"))
        .unwrap_or(false);
    assert!(
        configured,
        "these tests need the test coder provider: run them with scripts/test, or export \
         TF_CLI_CONFIG_FILE=$(scripts/setup-test-provider)"
    );
}

/// The element of a JSON list (agents and what is in them, which the SDK
/// keeps as JSON) whose `key` is `value`.
fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no element with {key} = {value:?} in {list}"))
}

/// The resource named `name`.
fn resource<'a>(list: &'a [WorkspaceResource], name: &str) -> &'a WorkspaceResource {
    list.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

/// `type.name` → names of the agents on it, for every resource of `resources`.
fn placement(resources: &[WorkspaceResource]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = resources
        .iter()
        .map(|r| {
            let module = if r.module_path.is_empty() {
                String::new()
            } else {
                format!("{}.", r.module_path)
            };
            let name = format!("{module}{}.{}", r.resource_type, r.name);
            let agents =
                r.agents.iter().filter_map(|a| a["name"].as_str().map(str::to_owned)).collect();
            (name, agents)
        })
        .collect();
    out.sort();
    out
}

const TOKEN_VAR: &str = "s3cr3t-token-value";

fn full_vars() -> impl FnOnce(&mut CreateTemplateVersionRequest) {
    with_vars(&[("api_token", TOKEN_VAR)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_apps_scripts_and_metadata_are_reported_under_their_resource() {
    require_provider();
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, _) =
        create_template(&c, &template_dir("coder-full"), "terraform", full_vars()).await;
    let req = CreateWorkspaceRequest {
        name: workspace_name(),
        template_id: Some(template),
        rich_parameter_values: values(&[("image", "debian")]),
        ..Default::default()
    };
    let ws = c.create_workspace("me", &req).await.expect("create workspace");
    let build_id = ws.latest_build.id;
    let build = wait_build(&c, build_id, TIMEOUT).await;
    assert_eq!(build.job.status, "succeeded", "build failed: {build:?}");

    let resources = c.build_resources(build_id).await.expect("resources");
    // coder_env is listed as a resource of its own, as Coder lists it.
    assert_eq!(
        placement(&resources),
        [
            ("coder_env.region".to_owned(), vec![]),
            ("terraform_data.home".to_owned(), vec![]),
            ("terraform_data.vm".to_owned(), vec!["main".to_owned()])
        ]
    );
    let vm = resource(&resources, "vm");
    assert_eq!((vm.icon.as_str(), vm.daily_cost), ("/icon/vm.svg", 7));
    let meta = |key: &str| vm.metadata.iter().find(|m| m.key == key).expect("metadata");
    assert_eq!(meta("region").value, "eu-west");
    let secret = meta("api token");
    assert_eq!((secret.sensitive, secret.value.as_str()), (true, ""));

    let agent = &vm.agents[0];
    assert_eq!(agent["operating_system"], "linux");
    assert_eq!(agent["architecture"], "amd64");
    assert_eq!(agent["directory"], "/home/coder");
    assert_eq!(agent["connection_timeout_seconds"], 300);
    assert_eq!(agent["troubleshooting_url"], "https://example.com/help");
    assert_eq!(agent["environment_variables"], json!({"EDITOR": "vim", "REGION": "eu-west"}));
    assert_eq!(agent["resource_id"], vm.id.to_string());
    assert_eq!(find(&agent["metadata"], "key", "load")["interval"], 10);
    let code = find(&agent["apps"], "slug", "code");
    assert_eq!(code["display_name"], "Code Server");
    assert_eq!(code["sharing_level"], "authenticated");
    assert_eq!(code["subdomain"], true);
    assert_eq!(
        code["healthcheck"],
        json!({"url": "http://localhost:8080/healthz", "interval": 5, "threshold": 6})
    );
    assert_eq!(code["health"], "initializing");
    let docs = find(&agent["apps"], "slug", "docs");
    assert_eq!(
        (docs["external"].as_bool(), docs["health"].as_str()),
        (Some(true), Some("disabled"))
    );
    let boot = find(&agent["scripts"], "display_name", "Boot");
    assert_eq!(
        (boot["run_on_start"].as_bool(), boot["script"].as_str()),
        (Some(true), Some("echo booting"))
    );
    assert_eq!(agent["startup_script_behavior"], "blocking");

    // The same under the build and the workspace's latest build.
    let build = c.build(build_id).await.expect("build");
    assert_eq!(placement(&build.resources), placement(&resources));
    let ws = c.workspace(ws.id).await.expect("ws");
    assert_eq!(placement(&ws.latest_build.resources), placement(&resources));
    // The sensitive variable's value appears nowhere the API answers.
    for body in [format!("{resources:?}"), format!("{build:?}"), format!("{ws:?}")] {
        assert!(!body.contains(TOKEN_VAR), "secret leaked: {body}");
    }
    let params = c.build_parameters(build_id).await.expect("params");
    assert_eq!(params, values(&[("cpu", "2"), ("image", "debian")]));

    // Stopped: the VM (and its agent and metadata) is gone, home stays.
    let stop =
        c.create_build(ws.id, &CreateWorkspaceBuildRequest::new("stop")).await.expect("stop");
    let stop = wait_build(&c, stop.id, TIMEOUT).await;
    assert_eq!(stop.job.status, "succeeded", "stop failed: {stop:?}");
    assert_eq!(
        placement(&stop.resources),
        [("coder_env.region".to_owned(), vec![]), ("terraform_data.home".to_owned(), vec![])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_attach_to_the_nearest_dependent_resource() {
    require_provider();
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let (template, version) =
        create_template(&c, &template_dir("coder-multi"), "terraform", plain).await;
    let expected = [
        ("module.box.terraform_data.inner", vec!["boxed"]),
        ("terraform_data.db_vm", vec!["db"]),
        ("terraform_data.dev_vm", vec!["dev"]),
        ("terraform_data.disk", vec![]),
        ("terraform_data.far_vm", vec!["far"]),
        ("terraform_data.outer", vec![]),
        ("terraform_data.tie_a", vec!["tie"]),
        ("terraform_data.tie_b", vec![]),
    ]
    .map(|(r, a)| (r.to_owned(), a.into_iter().map(str::to_owned).collect::<Vec<_>>()))
    .to_vec();
    // In the import's plan (ids unknown: the graph decides) ...
    let planned = c.template_version_resources(version.id).await.expect("version resources");
    let start: Vec<WorkspaceResource> =
        planned.into_iter().filter(|r| r.workspace_transition == "start").collect();
    assert_eq!(placement(&start), expected);
    // ... and in the applied state.
    let ws = create_workspace(&c, template).await;
    let build = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(build.job.status, "succeeded", "build failed: {build:?}");
    assert_eq!(placement(&build.resources), expected);
    let far = &resource(&build.resources, "far_vm").agents[0];
    assert_eq!(far["operating_system"], "windows");
    assert_eq!(far["auth"], "token");
    // db uses instance identity; coder_agent_instance names its instance.
    let db_vm = resource(&build.resources, "db_vm");
    let db = &db_vm.agents[0];
    assert_eq!(db["auth"], "instance_id");
    let state: Value = serde_json::from_str(&build_state(&c, build.id).await).expect("state JSON");
    let db_vm_id = state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "db_vm")
        .map(|r| r["instances"][0]["attributes"]["id"].clone())
        .expect("db_vm in state");
    assert_eq!(db["instance_id"], db_vm_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_lists_resources_parameters_and_variables() {
    require_provider();
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let v = push_version(&c, &template_dir("coder-full"), "terraform", full_vars()).await;
    assert_eq!(v.job.status, "succeeded", "import failed: {v:?}");
    let id = v.id;
    let logs = c.template_version_logs(id, Default::default()).await.expect("logs");
    let stages: Vec<&str> = logs.iter().map(|l| &*l.stage).collect();
    for stage in ["Detecting persistent resources", "Detecting ephemeral resources"] {
        assert!(stages.contains(&stage), "no {stage:?} stage in {stages:?}");
    }

    let resources = c.template_version_resources(id).await.expect("resources");
    let of = |t: &str| {
        let mut names: Vec<String> = resources
            .iter()
            .filter(|r| r.workspace_transition == t)
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(of("start"), ["home", "region", "vm"], "coder_env is listed");
    assert_eq!(of("stop"), ["home", "region"]);
    assert_eq!(resource(&resources, "vm").agents[0]["apps"].as_array().map(Vec::len), Some(2));

    let params = Value::Array(c.template_version_rich_parameters(id).await.expect("params"));
    let cpu = find(&params, "name", "cpu");
    assert_eq!(cpu["type"], "number");
    assert_eq!(cpu["display_name"], "CPU cores");
    assert_eq!(
        (cpu["validation_min"].as_f64(), cpu["validation_max"].as_f64()),
        (Some(1.0), Some(8.0))
    );
    assert_eq!(
        (cpu["required"].as_bool(), cpu["default_value"].as_str()),
        (Some(false), Some("2"))
    );
    let image = find(&params, "name", "image");
    assert_eq!(
        (image["required"].as_bool(), image["mutable"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(image["options"].as_array().map(Vec::len), Some(2));

    let vars = c.template_version_variables(id).await.expect("variables");
    let var = |name: &str| vars.iter().find(|v| v.name == name).expect("variable");
    let region = var("region");
    assert_eq!(region.kind, "string");
    assert_eq!(region.description, "Where the workspace runs");
    assert_eq!((region.value.as_str(), region.required), ("eu-west", false));
    let token = var("api_token");
    assert_eq!((token.sensitive, token.required), (true, true));
    assert_eq!(token.value, "", "a sensitive value is never shown");
    assert!(!format!("{vars:?}").contains(TOKEN_VAR));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_variables_and_bad_parameters_are_rejected() {
    require_provider();
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    // The import fails naming the variable.
    let v = push_version(&c, &template_dir("coder-full"), "terraform", plain).await;
    assert_eq!(v.job.status, "failed");
    assert_eq!(v.job.error_code.as_deref(), Some("REQUIRED_TEMPLATE_VARIABLES"));
    assert!(v.job.error.as_deref().unwrap_or_default().contains("\"api_token\""), "{v:?}");

    let (template, _) =
        create_template(&c, &template_dir("coder-full"), "terraform", full_vars()).await;
    let create = |params: Value| {
        let name = format!("ws-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        raw(
            reqwest::Method::POST,
            format!("{}/api/v2/users/me/workspaces", c.base()),
            Some(c.token()),
            Some(json!({"name": name, "template_id": template, "rich_parameter_values": params})),
        )
    };
    let fields = |body: &Value| -> Vec<String> {
        body["validations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["field"].as_str().map(str::to_owned))
            .collect()
    };
    // Missing required parameter.
    let (status, body) = create(json!([])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["image"]);
    // One validation per bad field: out of range, not an option.
    let (status, body) =
        create(json!([{"name": "cpu", "value": "12"}, {"name": "image", "value": "arch"}])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["cpu", "image"]);
    assert!(body.to_string().contains("[1, 8]"), "{body}");
    // Valid, then an immutable parameter may not change; a mutable one may.
    let (status, ws) = create(json!([{"name": "image", "value": "ubuntu"}])).await;
    assert_eq!(status, 201, "{ws:?}");
    let ws: provisionerd::sdk::Workspace = serde_json::from_value(ws).expect("a workspace");
    let first = wait_build(&c, ws.latest_build.id, TIMEOUT).await;
    assert_eq!(first.job.status, "succeeded", "{first:?}");
    let ws_id = ws.id;
    let (status, body) = raw(
        reqwest::Method::POST,
        format!("{}/api/v2/workspaces/{ws_id}/builds", c.base()),
        Some(c.token()),
        Some(json!({"transition": "start", "rich_parameter_values": [{"name": "image", "value": "debian"}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["image"]);
    assert!(body.to_string().contains("immutable"), "{body}");
    let req = CreateWorkspaceBuildRequest {
        rich_parameter_values: Some(values(&[("cpu", "4")])),
        ..CreateWorkspaceBuildRequest::new("start")
    };
    let next = c.create_build(ws_id, &req).await.expect("build");
    let next = wait_build(&c, next.id, TIMEOUT).await;
    assert_eq!(next.job.status, "succeeded", "{next:?}");
    let params = c.build_parameters(next.id).await.expect("params");
    assert_eq!(params, values(&[("cpu", "4"), ("image", "ubuntu")]), "image is inherited");
}

/// Templates that break one rule each, and the words their error must carry.
const INVALID: &[(&str, &str, &[&str])] = &[
    (
        "duplicate agent names",
        r#"resource "coder_agent" "dev" {
  os = "linux"
  arch = "amd64"
}
resource "coder_agent" "Dev" {
  os = "linux"
  arch = "amd64"
}
resource "terraform_data" "vm" { input = [coder_agent.dev.token, coder_agent.Dev.token] }"#,
        &["duplicate agent name", "coder_agent.Dev", "coder_agent.dev"],
    ),
    (
        "bad agent name",
        r#"resource "coder_agent" "dev_box" {
  os = "linux"
  arch = "amd64"
}
resource "terraform_data" "vm" { input = coder_agent.dev_box.token }"#,
        &["agent name \"dev_box\""],
    ),
    (
        "duplicate app slugs",
        r#"resource "coder_agent" "dev" {
  os = "linux"
  arch = "amd64"
}
resource "terraform_data" "vm" { input = coder_agent.dev.token }
resource "coder_app" "one" {
  agent_id = coder_agent.dev.id
  slug = "code"
}
resource "coder_app" "two" {
  agent_id = coder_agent.dev.id
  slug = "code"
}"#,
        &["duplicate app slug \"code\"", "coder_app.one", "coder_app.two"],
    ),
    (
        "two metadata on one resource",
        r#"resource "terraform_data" "vm" { input = "x" }
resource "coder_metadata" "a" { resource_id = terraform_data.vm.id }
resource "coder_metadata" "b" { resource_id = terraform_data.vm.id }"#,
        &["terraform_data.vm has two coder_metadata", "coder_metadata.a", "coder_metadata.b"],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_templates_fail_naming_the_offender() {
    require_provider();
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    for (rule, body, words) in INVALID {
        let dir = tempfile::tempdir().expect("temp dir");
        let tf = format!(
            "terraform {{\n  required_providers {{\n    coder = {{ source = \"coder/coder\" }}\n  }}\n}}\n{body}\n"
        );
        std::fs::write(dir.path().join("main.tf"), tf).expect("write main.tf");
        let v = push_version(&c, dir.path(), "terraform", plain).await;
        assert_eq!(v.job.status, "failed", "{rule}: {v:?}");
        let error = v.job.error.as_deref().unwrap_or_default();
        for w in *words {
            assert!(error.contains(w), "{rule}: {w:?} not in {error:?}");
        }
    }
}

/// Runs terraform in `dir` and returns stdout, failing the test on error.
fn tf(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(terraform())
        .args(args)
        .current_dir(dir)
        .env("CHECKPOINT_DISABLE", "1")
        .env("CODER_WORKSPACE_TRANSITION", "start")
        .output()
        .expect("run terraform");
    assert!(
        out.status.success(),
        "terraform {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `provisionerd resources` on files a plain terraform run wrote.
#[test]
fn resources_command_reads_terraform_output_files() {
    require_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path();
    for entry in ["main.tf", "box"] {
        let from = template_dir("coder-multi").join(entry);
        let status =
            std::process::Command::new("cp").arg("-r").arg(&from).arg(work).status().expect("cp");
        assert!(status.success());
    }
    tf(work, &["init", "-input=false", "-no-color"]);
    tf(work, &["plan", "-input=false", "-no-color", "-out=plan.out"]);
    std::fs::write(work.join("plan.json"), tf(work, &["show", "-json", "plan.out"]))
        .expect("write");
    std::fs::write(work.join("graph.dot"), tf(work, &["graph", "-type=plan"])).expect("write");
    tf(work, &["apply", "-input=false", "-no-color", "plan.out"]);
    std::fs::write(work.join("state.json"), tf(work, &["show", "-json"])).expect("write");
    for (flag, file) in [("--plan", "plan.json"), ("--state", "state.json")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
            .args(["resources", flag])
            .arg(work.join(file))
            .arg("--graph")
            .arg(work.join("graph.dot"))
            .output()
            .expect("run provisionerd resources");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Vec<WorkspaceResource> =
            serde_json::from_slice(&out.stdout).expect("resources as JSON on stdout");
        let placed = placement(&listed);
        assert!(
            placed.contains(&("terraform_data.far_vm".to_owned(), vec!["far".to_owned()])),
            "{flag}: {placed:?}"
        );
        assert!(
            placed.contains(&(
                "module.box.terraform_data.inner".to_owned(),
                vec!["boxed".to_owned()]
            )),
            "{flag}: {placed:?}"
        );
    }
    // A bad file is a clear error, not a crash.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .args(["resources", "--state"])
        .arg(work.join("graph.dot"))
        .arg("--graph")
        .arg(work.join("graph.dot"))
        .output()
        .expect("run provisionerd resources");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not JSON"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `provisionerd resources --import` prints what an import finds besides the
/// resources: parameters, external auth providers and presets, in the
/// API's shapes; without the flag the output stays the resource list.
#[test]
fn resources_command_with_import_prints_parameters_auth_and_presets() {
    require_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path();
    std::fs::copy(template_dir("coder-compat").join("main.tf"), work.join("main.tf"))
        .expect("copy");
    tf(work, &["init", "-input=false", "-no-color"]);
    tf(work, &["plan", "-input=false", "-no-color", "-out=plan.out"]);
    std::fs::write(work.join("plan.json"), tf(work, &["show", "-json", "plan.out"]))
        .expect("write");
    std::fs::write(work.join("graph.dot"), tf(work, &["graph", "-type=plan"])).expect("write");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
            .args(["resources", "--plan"])
            .arg(work.join("plan.json"))
            .arg("--graph")
            .arg(work.join("graph.dot"))
            .args(extra)
            .output()
            .expect("run provisionerd resources");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON on stdout")
    };
    let plain = run(&[]);
    let all = run(&["--import"]);
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(plain.is_array(), "without --import: the resource list: {plain}");
    assert_eq!(names(&all["resources"]), names(&plain), "the same resources");
    let parameters = all["parameters"].as_array().expect("parameters");
    assert_eq!(parameters.len(), 1, "{all}");
    assert_eq!(parameters[0]["name"], "size");
    assert_eq!(parameters[0]["default_value"], "s");
    assert_eq!(parameters[0]["form_type"], "input");
    let auth: Vec<(String, bool)> = all["external_auth_providers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["id"].as_str().unwrap_or("").to_owned(), p["optional"] == true))
        .collect();
    assert_eq!(auth, [("github".to_owned(), true), ("gitlab".to_owned(), false)], "{all}");
    let presets = all["presets"].as_array().expect("presets");
    assert_eq!(presets.len(), 1, "{all}");
    assert_eq!(presets[0]["Name"], "Large");
    assert_eq!(presets[0]["Parameters"], serde_json::json!([{"Name": "size", "Value": "l"}]));
    assert_eq!(presets[0]["DesiredPrebuildInstances"], 1);
}

/// The daemon's own check: a build that reaches terraform without a value
/// for a parameter that has no default fails with MISSING_TEMPLATE_PARAMETER
/// (the server normally rejects such a build first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_a_required_parameter_fails_with_its_code() {
    use provisionerd::domain::{NameValue, Transition};
    use provisionerd::provisioner::{ProvisionKind, ProvisionRequest};
    use provisionerd::terraform::{provision, TerraformConfig};
    require_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let template = dir.path().join("template");
    std::fs::create_dir(&template).expect("mkdir");
    std::fs::write(
        template.join("main.tf"),
        r#"terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
data "coder_parameter" "image" {
  name = "image"
}
resource "terraform_data" "vm" {
  input = data.coder_parameter.image.value
}
"#,
    )
    .expect("write");
    let archive = provisionerd::sdk::tar_dir(&template).expect("tar");
    let config = TerraformConfig {
        path: terraform(),
        cancel_grace: Duration::from_secs(5),
        plugin_cache_dir: None,
        work_root: dir.path().to_owned(),
        limits: Default::default(),
    };
    let run = |parameters: Vec<NameValue>| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<provisionerd::domain::LogLine>>(64);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let request = ProvisionRequest {
            archive: archive.clone().into(),
            kind: ProvisionKind::Build {
                transition: Transition::Start,
                state: Vec::new(),
                dry_run: true,
            },
            workspace: None,
            parameters,
            variables: Vec::new(),
            debug: false,
        };
        let config = config.clone();
        async move { provision(&config, request, &tx, Default::default()).await }
    };
    let err = run(Vec::new()).await.expect_err("no value for image");
    assert_eq!(err.code.as_deref(), Some("MISSING_TEMPLATE_PARAMETER"));
    assert!(err.message.contains("\"image\""), "{}", err.message);
    let ok = run(vec![NameValue { name: "image".into(), value: "debian".into() }])
        .await
        .expect("planned with a value");
    assert_eq!(ok.resources.len(), 1);
}
