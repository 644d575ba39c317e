//! Pins the stored JSON formats: each fixture is byte for byte what the
//! store wrote before these types existed (generated from the domain types'
//! serde derives of that time), so a renamed or reordered field here, or a
//! conversion that loses a value, fails a test instead of changing what
//! existing databases hold.

use super::*;
use crate::domain::{Resource, Role};

/// A resource with every field set: an agent with two apps (one with a
/// healthcheck), a script, metadata, and attributes with sorted keys.
pub(crate) const RESOURCE: &str = r#"{"name":"vm","type":"docker_container","module_path":"module.a","hide":true,"icon":"/vm.svg","daily_cost":7,"instance_type":"t3.micro","metadata":[{"key":"region","value":"eu","sensitive":false},{"key":"pw","value":"","sensitive":true}],"attributes":{"alpha":{"nested":[1,"two",null,true]},"mid":"x","zeta":1},"agents":[{"id":"01010101-0101-0101-0101-010101010101","name":"dev","operating_system":"linux","architecture":"amd64","directory":"/home/coder","env":{"A":"1","B":"2"},"connection_timeout_seconds":120,"troubleshooting_url":"https://t","motd_file":"/etc/motd","display_apps":["vscode","web_terminal"],"metadata":[{"key":"cpu","display_name":"CPU","script":"top","interval":10,"timeout":1,"order":2}],"auth":"token","instance_id":"i-123","order":3,"apps":[{"id":"02020202-0202-0202-0202-020202020202","slug":"code","display_name":"Code","command":"code","url":"http://localhost:8080","icon":"/icon.svg","subdomain":true,"sharing_level":"owner","external":false,"healthcheck":{"url":"http://localhost/healthz","interval":5,"threshold":6},"order":1,"hidden":false},{"id":"03030303-0303-0303-0303-030303030303","slug":"ext","display_name":"","command":"","url":"https://example.com","icon":"","subdomain":false,"sharing_level":"public","external":true,"healthcheck":null,"order":0,"hidden":true}],"scripts":[{"log_source_id":"04040404-0404-0404-0404-040404040404","display_name":"Startup","script":"echo hi","icon":"","cron":"0 * * * *","log_path":"/tmp/s.log","run_on_start":true,"run_on_stop":false,"start_blocks_login":true,"timeout_seconds":30}]}]}"#;

/// A resource with every optional field empty.
pub(crate) const BARE_RESOURCE: &str = r#"{"name":"r","type":"null_resource","module_path":"","hide":false,"icon":"","daily_cost":0,"instance_type":null,"metadata":[],"attributes":null,"agents":[]}"#;

/// An import's findings: a parameter with every field set and one with defaults.
pub(crate) const IMPORT: &str = r#"{"parameters":[{"name":"region","display_name":"Region","description":"where","type":"string","form_type":"radio","mutable":true,"default_value":"eu","icon":"/r.svg","options":[{"name":"Europe","description":"EU","value":"eu","icon":"/eu.svg"}],"validation_regex":"^[a-z]+$","validation_error":"bad {value}","validation_min":1.0,"validation_max":9.5,"validation_monotonic":"increasing","required":false,"ephemeral":true,"order":4},{"name":"n","display_name":"","description":"","type":"number","form_type":"","mutable":false,"default_value":"","icon":"","options":[],"validation_regex":"","validation_error":"","validation_min":null,"validation_max":null,"validation_monotonic":"","required":true,"ephemeral":false,"order":0}],"variables":[{"name":"v","description":"d","type":"list(string)","default_value":"[\"a\"]","required":false,"sensitive":true}]}"#;

pub(crate) const INPUT_BUILD: &str = r#"{"dry_run":true,"kind":"workspace_build","log_level":"debug","workspace_build_id":"05050505-0505-0505-0505-050505050505"}"#;
pub(crate) const INPUT_BUILD_PLAIN: &str = r#"{"dry_run":false,"kind":"workspace_build","log_level":null,"workspace_build_id":"06060606-0606-0606-0606-060606060606"}"#;
pub(crate) const INPUT_IMPORT: &str = r#"{"kind":"template_version_import","template_version_id":"07070707-0707-0707-0707-070707070707","user_variable_values":[{"name":"v","value":"[\"a\"]"}]}"#;
pub(crate) const PARAMETERS: &str =
    r#"[{"name":"region","value":"eu"},{"name":"tools","value":"[\"git\"]"}]"#;
pub(crate) const TAGS: &str = r#"{"os":"linux","scope":"organization"}"#;
pub(crate) const ROLES: &str = r#"["owner","template-admin","user-admin"]"#;

#[test]
fn resources_round_trip_byte_for_byte() {
    for text in [RESOURCE, BARE_RESOURCE] {
        let r: Resource = decode_resource(text).expect("decodes");
        assert_eq!(encode_resource(&r).expect("encodes"), text);
    }
    let r = decode_resource(RESOURCE).expect("decodes");
    assert_eq!(
        (r.name.as_str(), r.resource_type.as_str(), r.daily_cost),
        ("vm", "docker_container", 7)
    );
    assert_eq!(r.instance_type.as_deref(), Some("t3.micro"));
    assert_eq!(r.attributes["alpha"]["nested"][1], "two");
    let agent = &r.agents[0];
    assert_eq!((agent.name.as_str(), agent.instance_id.as_deref()), ("dev", Some("i-123")));
    assert_eq!(agent.env.get("B").map(String::as_str), Some("2"));
    assert_eq!(agent.apps[0].healthcheck.as_ref().map(|h| h.threshold), Some(6));
    assert!(agent.apps[1].healthcheck.is_none() && agent.apps[1].hidden);
    assert_eq!(agent.scripts[0].cron, "0 * * * *");
    assert_eq!(agent.metadata[0].display_name, "CPU");
    assert!(r.metadata[1].sensitive);
}

#[test]
fn resources_of_older_rows_take_defaults() {
    let r = decode_resource(r#"{"name":"a","type":"null_resource"}"#).expect("decodes");
    assert_eq!((r.module_path.as_str(), r.hide, r.agents.len()), ("", false, 0));
    assert_eq!(r.attributes, serde_json::Value::Null);
}

#[test]
fn import_results_round_trip_byte_for_byte() {
    let i = decode_import(IMPORT).expect("decodes");
    assert_eq!(encode_import(&i).expect("encodes"), IMPORT);
    assert_eq!(i.parameters[0].kind, "string");
    assert_eq!(i.parameters[0].options[0].name, "Europe");
    assert_eq!(
        (i.parameters[0].validation_min, i.parameters[0].validation_max),
        (Some(1.0), Some(9.5))
    );
    assert_eq!(i.parameters[1].validation_min, None);
    assert_eq!(i.variables[0].kind, "list(string)");
    assert!(i.stop_resources.is_empty(), "stop resources are rows of their own");
}

#[test]
fn job_inputs_round_trip_byte_for_byte() {
    for text in [INPUT_BUILD, INPUT_BUILD_PLAIN, INPUT_IMPORT] {
        let value = decode_job_input(text).expect("decodes");
        assert_eq!(encode_job_input(&value).expect("encodes"), text);
    }
    let value = decode_job_input(INPUT_BUILD).expect("decodes");
    let input: crate::domain::JobInput = serde_json::from_value(value).expect("a job input");
    assert!(matches!(
        input,
        crate::domain::JobInput::WorkspaceBuild { dry_run: true, log_level: Some(ref l), .. } if l == "debug"
    ));
    let value = decode_job_input(INPUT_IMPORT).expect("decodes");
    let input: crate::domain::JobInput = serde_json::from_value(value).expect("a job input");
    let crate::domain::JobInput::TemplateVersionImport { user_variable_values, .. } = input else {
        panic!("an import")
    };
    assert_eq!(user_variable_values[0].value, r#"["a"]"#);
    // Rows written before `dry_run` and `log_level` existed.
    let old =
        r#"{"kind":"workspace_build","workspace_build_id":"06060606-0606-0606-0606-060606060606"}"#;
    let value = decode_job_input(old).expect("decodes");
    assert_eq!(encode_job_input(&value).expect("encodes"), INPUT_BUILD_PLAIN);
    // Other JSON was always accepted and is kept as it is.
    for other in [r#"{}"#, r#"{"kind":"dance"}"#] {
        let value = decode_job_input(other).expect("decodes");
        assert_eq!(encode_job_input(&value).expect("encodes"), other);
    }
    assert!(decode_job_input("{").is_err(), "text that is no JSON is corrupt");
}

#[test]
fn parameters_tags_and_roles_round_trip_byte_for_byte() {
    let params = decode_parameters(PARAMETERS).expect("decodes");
    assert_eq!((params[1].name.as_str(), params[1].value.as_str()), ("tools", r#"["git"]"#));
    assert_eq!(encode_parameters(&params).expect("encodes"), PARAMETERS);
    let tags = decode_tags(TAGS).expect("decodes");
    assert_eq!(tags.get("os").map(String::as_str), Some("linux"));
    assert_eq!(encode_tags(&tags).expect("encodes"), TAGS);
    let roles = decode_roles(ROLES).expect("decodes");
    assert_eq!(roles, [Role::Owner, Role::TemplateAdmin, Role::UserAdmin]);
    assert_eq!(encode_roles(&roles), ROLES);
    assert!(decode_roles(r#"["auditor"]"#).is_err(), "an unknown role is corrupt");
}
