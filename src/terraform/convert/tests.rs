//! Conversion rules on small hand-written inputs: the error cases terraform
//! would never print itself, and module/secret handling. The same rules on
//! real terraform output are exercised by `tests/it/coder.rs`.

use serde_json::{json, Value};

use super::*;
use crate::domain::Resource;

fn state(resources: Value) -> Value {
    json!({"values": {"root_module": {"resources": resources}}})
}

fn managed(address: &str, values: Value) -> Value {
    let (kind, name) = address
        .rsplit_once('.')
        .map(|(k, n)| {
            (
                k.rsplit('.').next().unwrap_or(k).to_owned(),
                n.split('[').next().unwrap_or(n).to_owned(),
            )
        })
        .unwrap_or_default();
    json!({"address": address, "mode": "managed", "type": kind, "name": name,
           "values": values, "sensitive_values": {}})
}

fn digraph(edges: &[(&str, &str)]) -> String {
    let mut g = String::from("digraph {\n\tsubgraph \"root\" {\n");
    for (from, to) in edges {
        g.push_str(&format!("\t\t\"[root] {from} (expand)\" -> \"[root] {to} (expand)\"\n"));
    }
    g.push_str("\t}\n}\n");
    g
}

fn error_of(resources: Value, edges: &[(&str, &str)]) -> String {
    match convert(&state(resources), &digraph(edges)) {
        Err(ConvertError::Invalid(message)) => message,
        other => panic!("expected an invalid-template error, got {other:?}"),
    }
}

fn agent(address: &str, id: &str) -> Value {
    managed(address, json!({"id": id, "os": "linux", "arch": "amd64"}))
}

#[test]
fn managed_non_coder_resources_with_modules_and_secrets_removed() {
    let show = json!({"values": {"root_module": {
        "resources": [
            {"address": "terraform_data.vm[0]", "mode": "managed", "type": "terraform_data", "name": "vm",
             "values": {"id": "abc", "input": "dev"}, "sensitive_values": {}},
            {"address": "data.coder_workspace.me", "mode": "data", "type": "coder_workspace", "name": "me", "values": {}}
        ],
        "child_modules": [{"address": "module.box", "resources": [
            {"address": "module.box.aws_instance.x", "mode": "managed", "type": "aws_instance", "name": "x",
             "values": {"instance_type": "t3.micro", "password": "hunter2", "tags": {"a": "1", "b": "2"}},
             "sensitive_values": {"password": true, "tags": {"b": true}}}
        ]}]
    }}});
    let rs = convert(&show, "digraph {}").expect("convert");
    assert_eq!(rs.len(), 2);
    let aws = &rs[0];
    assert_eq!((aws.name.as_str(), aws.module_path.as_str()), ("x", "module.box"));
    assert_eq!(aws.instance_type.as_deref(), Some("t3.micro"));
    assert!(aws.attributes.get("password").is_none(), "sensitive values are dropped");
    assert_eq!(aws.attributes["tags"], json!({"a": "1"}));
    assert_eq!((rs[1].resource_type.as_str(), rs[1].module_path.as_str()), ("terraform_data", ""));
}

#[test]
fn empty_or_malformed_input() {
    assert!(convert(&json!({"format_version": "1.0"}), "digraph {}").expect("ok").is_empty());
    assert_eq!(
        convert(&json!([]), "digraph {}").expect_err("not an object"),
        ConvertError::NotAnObject
    );
    assert!(matches!(convert(&json!({}), "graph"), Err(ConvertError::Graph(_))));
}

#[test]
fn duplicate_agent_names_are_case_insensitive() {
    let message = error_of(
        json!([
            agent("coder_agent.dev", "a1"),
            agent("coder_agent.Dev", "a2"),
            managed("terraform_data.vm", json!({"id": "vm"}))
        ]),
        &[("terraform_data.vm", "coder_agent.dev"), ("terraform_data.vm", "coder_agent.Dev")],
    );
    assert!(message.contains("duplicate agent name"), "{message}");
    assert!(
        message.contains("coder_agent.Dev") && message.contains("coder_agent.dev"),
        "{message}"
    );
}

#[test]
fn agent_names_must_be_valid() {
    let message = error_of(
        json!([
            agent("coder_agent.dev_box", "a1"),
            managed("terraform_data.vm", json!({"id": "vm"}))
        ]),
        &[("terraform_data.vm", "coder_agent.dev_box")],
    );
    assert!(message.contains("\"dev_box\""), "{message}");
    let message = error_of(
        json!([agent("coder_agent.dev-", "a1"), managed("terraform_data.vm", json!({"id": "vm"}))]),
        &[("terraform_data.vm", "coder_agent.dev-")],
    );
    assert!(message.contains("\"dev-\""), "{message}");
}

#[test]
fn duplicate_app_slugs_on_one_agent() {
    let message = error_of(
        json!([
            agent("coder_agent.dev", "a1"),
            managed("terraform_data.vm", json!({"id": "vm"})),
            managed("coder_app.one", json!({"agent_id": "a1", "slug": "code"})),
            managed("coder_app.two", json!({"agent_id": "a1", "slug": "code"}))
        ]),
        &[("terraform_data.vm", "coder_agent.dev")],
    );
    assert!(message.contains("duplicate app slug \"code\""), "{message}");
    assert!(message.contains("coder_app.one and coder_app.two"), "{message}");
}

#[test]
fn two_metadata_on_one_resource() {
    let message = error_of(
        json!([
            managed("terraform_data.vm", json!({"id": "vm"})),
            managed("coder_metadata.a", json!({"resource_id": "vm"})),
            managed("coder_metadata.b", json!({"resource_id": "vm"}))
        ]),
        &[],
    );
    assert_eq!(
        message,
        "resource terraform_data.vm has two coder_metadata: coder_metadata.a and coder_metadata.b"
    );
}

#[test]
fn an_agent_nothing_depends_on_is_left_out_with_its_apps() {
    // Coder imports such a template and reports no agent; so do we.
    let rs = convert(
        &state(json!([
            agent("coder_agent.lonely", "a1"),
            managed("coder_app.web", json!({"agent_id": "a1", "slug": "web"})),
            managed("terraform_data.vm", json!({"id": "vm"}))
        ])),
        &digraph(&[("coder_agent.lonely", "terraform_data.vm")]),
    )
    .expect("an orphan agent is not an error");
    assert_eq!(rs.len(), 1);
    assert!(rs[0].agents.is_empty());
}

#[test]
fn an_app_of_no_agent() {
    let message = error_of(
        json!([
            agent("coder_agent.dev", "a1"),
            managed("terraform_data.vm", json!({"id": "vm"})),
            managed("coder_app.stray", json!({"agent_id": "other", "slug": "x"}))
        ]),
        &[("terraform_data.vm", "coder_agent.dev")],
    );
    assert!(message.contains("coder_app.stray does not belong"), "{message}");
}

#[test]
fn a_stopped_workspace_reports_no_agent() {
    // The agent exists but its resource has count 0: nothing to report.
    let rs = convert(
        &state(json!([
            agent("coder_agent.dev", "a1"),
            managed("terraform_data.disk", json!({"id": "d"}))
        ])),
        &digraph(&[("terraform_data.vm", "coder_agent.dev")]),
    )
    .expect("convert");
    assert_eq!(rs.len(), 1);
    assert!(rs[0].agents.is_empty());
}

#[test]
fn in_a_plan_apps_and_metadata_follow_the_graph_past_reduced_edges() {
    // Ids are unknown in a plan, and terraform's graph is transitively
    // reduced: the app reaches its agent only through the VM.
    let plan = json!({"planned_values": {"root_module": {"resources": [
        managed("coder_agent.dev", json!({"os": "linux", "arch": "amd64"})),
        managed("coder_app.web", json!({"slug": "web"})),
        managed("coder_metadata.vm", json!({"item": [{"key": "k", "value": "v"}]})),
        managed("terraform_data.vm", json!({})),
    ]}}});
    let graph = digraph(&[
        ("terraform_data.vm", "coder_agent.dev"),
        ("coder_app.web", "terraform_data.vm"),
        ("coder_metadata.vm", "terraform_data.vm"),
    ]);
    let rs = convert(&plan, &graph).expect("convert");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].agents[0].apps[0].slug, "web");
    assert_eq!(rs[0].metadata[0].value, "v");
}

fn attached(rs: &[Resource], name: &str) -> Vec<String> {
    rs.iter()
        .filter(|r| r.name == name)
        .flat_map(|r| r.agents.iter().map(|a| a.name.clone()))
        .collect()
}

#[test]
fn apps_fall_back_to_name_then_slug_and_read_open_in() {
    let rs = convert(
        &state(json!([
            agent("coder_agent.dev", "a1"),
            managed("terraform_data.vm", json!({"id": "vm"})),
            managed(
                "coder_app.a",
                json!({"agent_id": "a1", "slug": "a", "display_name": "Shown", "name": "Old"})
            ),
            managed(
                "coder_app.b",
                json!({"agent_id": "a1", "slug": "b", "name": "Old B", "open_in": "tab"})
            ),
            managed("coder_app.c", json!({"agent_id": "a1", "slug": "c", "open_in": "weird"})),
            managed("coder_app.noslug", json!({"agent_id": "a1"}))
        ])),
        &digraph(&[("terraform_data.vm", "coder_agent.dev")]),
    )
    .expect("convert");
    let apps: Vec<(&str, &str, &str)> = rs[0].agents[0]
        .apps
        .iter()
        .map(|a| (a.slug.as_str(), a.display_name.as_str(), a.open_in.as_str()))
        .collect();
    assert_eq!(
        apps,
        [
            ("a", "Shown", "slim-window"),
            ("b", "Old B", "tab"),
            ("c", "c", "slim-window"),
            ("noslug", "noslug", "slim-window")
        ]
    );
}

#[test]
fn legacy_agent_scripts_become_scripts_before_coder_scripts() {
    let rs = convert(
        &state(json!([
            managed(
                "coder_agent.dev",
                json!({"id": "a1", "os": "linux", "arch": "amd64",
                "startup_script": "echo up", "shutdown_script": "echo down",
                "startup_script_behavior": "blocking"})
            ),
            managed(
                "coder_agent.old",
                json!({"id": "a2", "os": "linux", "arch": "amd64",
                "startup_script": "echo old", "login_before_ready": false})
            ),
            managed(
                "coder_agent.new",
                json!({"id": "a3", "os": "linux", "arch": "amd64",
                "startup_script": "echo new", "login_before_ready": true})
            ),
            managed(
                "coder_script.extra",
                json!({"agent_id": "a1", "display_name": "Extra",
                "script": "true", "run_on_start": true})
            ),
            managed("terraform_data.vm", json!({"id": "vm"}))
        ])),
        &digraph(&[
            ("terraform_data.vm", "coder_agent.dev"),
            ("terraform_data.vm", "coder_agent.old"),
            ("terraform_data.vm", "coder_agent.new"),
        ]),
    )
    .expect("convert");
    let agents = &rs[0].agents;
    let dev = agents.iter().find(|a| a.name == "dev").expect("dev");
    let s: Vec<_> = dev
        .scripts
        .iter()
        .map(|s| {
            (
                s.display_name.as_str(),
                s.script.as_str(),
                s.icon.as_str(),
                s.log_path.as_str(),
                s.run_on_start,
                s.run_on_stop,
                s.start_blocks_login,
            )
        })
        .collect();
    assert_eq!(
        s,
        [
            (
                "Startup Script",
                "echo up",
                "/emojis/25b6.png",
                "coder-startup-script.log",
                true,
                false,
                true
            ),
            (
                "Shutdown Script",
                "echo down",
                "/emojis/25c0.png",
                "coder-shutdown-script.log",
                false,
                true,
                false
            ),
            ("Extra", "true", "", "", true, false, false),
        ]
    );
    let blocks = |name: &str| {
        agents.iter().find(|a| a.name == name).expect(name).scripts[0].start_blocks_login
    };
    assert!(blocks("old"), "login_before_ready = false blocks login");
    assert!(!blocks("new"));
}

#[test]
fn coder_env_and_other_unfolded_coder_types_are_listed() {
    let rs = convert(
        &state(json!([
            agent("coder_agent.dev", "a1"),
            managed("terraform_data.vm", json!({"id": "vm"})),
            managed("coder_env.path", json!({"agent_id": "a1", "name": "P", "value": "1"})),
            managed("coder_app.web", json!({"agent_id": "a1", "slug": "web"})),
            managed("coder_script.s", json!({"agent_id": "a1", "script": "x"})),
            managed("coder_metadata.m", json!({"resource_id": "vm"})),
            managed("coder_agent_instance.i", json!({"agent_id": "a1", "instance_id": "x"})),
            managed("coder_devcontainer.dc", json!({"agent_id": "a1"}))
        ])),
        &digraph(&[("terraform_data.vm", "coder_agent.dev")]),
    )
    .expect("convert");
    let kinds: Vec<&str> = rs.iter().map(|r| r.resource_type.as_str()).collect();
    assert_eq!(kinds, ["coder_devcontainer", "coder_env", "terraform_data"]);
    assert_eq!(rs[2].agents[0].env["P"], "1", "coder_env still sets the agent's env");
}

#[test]
fn agent_instance_only_by_agent_id_and_only_for_instance_auth() {
    let graph = digraph(&[
        ("terraform_data.vm", "coder_agent.dev"),
        ("coder_agent_instance.i", "coder_agent.dev"),
        ("coder_agent_instance.i", "terraform_data.vm"),
    ]);
    // A plan: the agent id is unknown, the graph edge is not used.
    let plan = json!({"planned_values": {"root_module": {"resources": [
        managed("coder_agent.dev", json!({"os": "linux", "arch": "amd64", "auth": "google-instance-identity"})),
        managed("coder_agent_instance.i", json!({})),
        managed("terraform_data.vm", json!({})),
    ]}}});
    let rs = convert(&plan, &graph).expect("plan");
    assert_eq!(rs[0].agents[0].auth, "instance_id");
    assert_eq!(rs[0].agents[0].instance_id, None);
    // A state: the id links them.
    let applied = |auth: &str| {
        let rs = convert(
            &state(json!([
                managed(
                    "coder_agent.dev",
                    json!({"id": "a1", "os": "linux", "arch": "amd64", "auth": auth})
                ),
                managed("coder_agent_instance.i", json!({"agent_id": "a1", "instance_id": "i-9"})),
                managed("terraform_data.vm", json!({"id": "vm"}))
            ])),
            &graph,
        )
        .expect("state");
        rs[0].agents[0].instance_id.clone()
    };
    assert_eq!(applied("aws-instance-identity").as_deref(), Some("i-9"));
    assert_eq!(applied("token"), None, "a token agent ignores coder_agent_instance");
}

#[test]
fn agents_attach_to_every_instance_of_a_counted_resource() {
    let rs = convert(
        &state(json!([
            managed("coder_agent.dev", json!({"id": "8c1a7b6e-0000-4000-8000-000000000001", "os": "linux", "arch": "amd64"})),
            managed("coder_app.web", json!({"agent_id": "8c1a7b6e-0000-4000-8000-000000000001", "slug": "web",
                "id": "8c1a7b6e-0000-4000-8000-000000000002"})),
            managed("terraform_data.vm[0]", json!({"id": "vm0"})),
            managed("terraform_data.vm[1]", json!({"id": "vm1"})),
            managed("terraform_data.vm[\"x\"]", json!({"id": "vmx"})),
            managed("coder_metadata.m", json!({"item": [{"key": "k", "value": "v"}]}))
        ])),
        &digraph(&[("terraform_data.vm", "coder_agent.dev"), ("coder_metadata.m", "terraform_data.vm")]),
    )
    .expect("convert");
    assert_eq!(rs.len(), 3);
    assert_eq!(attached(&rs, "vm"), ["dev", "dev", "dev"]);
    let ids: std::collections::BTreeSet<_> = rs.iter().map(|r| r.agents[0].id).collect();
    assert_eq!(ids.len(), 3, "each copy has its own id");
    let app_ids: std::collections::BTreeSet<_> =
        rs.iter().map(|r| r.agents[0].apps[0].id).collect();
    assert_eq!(app_ids.len(), 3);
    assert!(rs.iter().all(|r| r.metadata.len() == 1), "metadata on every instance");
}

#[test]
fn an_agent_skips_dependents_without_instances() {
    // The nearest dependent has count 0; the next one up gets the agent.
    let rs = convert(
        &state(json!([
            agent("coder_agent.dev", "a1"),
            managed("terraform_data.outer", json!({"id": "o"}))
        ])),
        &digraph(&[
            ("terraform_data.vm", "coder_agent.dev"),
            ("terraform_data.outer", "terraform_data.vm"),
        ]),
    )
    .expect("convert");
    assert_eq!(attached(&rs, "outer"), ["dev"]);
}

#[test]
fn cloud_vms_link_instance_identity_and_report_their_size() {
    let vm = |kind: &str, values: Value| managed(&format!("{kind}.vm"), values);
    let case = |kind: &str, values: Value, auth: &str| {
        let rs = convert(
            &state(json!([
                managed(
                    "coder_agent.dev",
                    json!({"id": "a1", "os": "linux", "arch": "amd64", "auth": auth})
                ),
                vm(kind, values)
            ])),
            &digraph(&[(&format!("{kind}.vm"), "coder_agent.dev")]),
        )
        .expect("convert");
        (rs[0].agents[0].instance_id.clone(), rs[0].instance_type.clone())
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        case(
            "google_compute_instance",
            json!({"instance_id": "g1", "machine_type": "e2"}),
            "google-instance-identity"
        ),
        (some("g1"), some("e2"))
    );
    assert_eq!(
        case(
            "aws_instance",
            json!({"id": "i-1", "instance_type": "t3.micro"}),
            "aws-instance-identity"
        ),
        (some("i-1"), some("t3.micro"))
    );
    assert_eq!(
        case(
            "aws_spot_instance_request",
            json!({"spot_instance_id": "s1", "instance_type": "t3"}),
            "aws-instance-identity"
        ),
        (some("s1"), some("t3"))
    );
    assert_eq!(
        case(
            "azurerm_linux_virtual_machine",
            json!({"virtual_machine_id": "z1", "size": "B1"}),
            "azure-instance-identity"
        ),
        (some("z1"), some("B1"))
    );
    // A token agent keeps its token; other types never report a size.
    assert_eq!(
        case("aws_instance", json!({"id": "i-1", "instance_type": "t3"}), "token"),
        (None, some("t3"))
    );
    assert_eq!(
        case(
            "docker_container",
            json!({"id": "c", "instance_type": "big", "machine_type": "m"}),
            "x"
        ),
        (None, None)
    );
}
