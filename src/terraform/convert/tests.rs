//! Conversion rules on small hand-written inputs: the error cases terraform
//! would never print itself, and module/secret handling. The same rules on
//! real terraform output are exercised by `tests/it/coder.rs`.

use serde_json::{json, Value};

use super::*;

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
fn an_agent_nothing_depends_on() {
    let message = error_of(
        json!([
            agent("coder_agent.lonely", "a1"),
            managed("terraform_data.vm", json!({"id": "vm"}))
        ]),
        &[("coder_agent.lonely", "terraform_data.vm")],
    );
    assert!(message.contains("no resource depends on agent \"lonely\""), "{message}");
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
