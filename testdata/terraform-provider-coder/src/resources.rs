//! The managed resources (`coder_agent`, `coder_app`, ...): their schemas,
//! and how they are planned and applied. None of them talks to anything:
//! apply only fills the computed attributes (random ids and tokens).

use rmpv::Value;

use crate::schema::{map_get_mut, Attr, Block, Ty};
use crate::value;

/// The names and schemas of all resources.
pub fn schemas() -> Vec<(&'static str, Block)> {
    vec![
        ("coder_agent", agent()),
        ("coder_agent_instance", agent_instance()),
        ("coder_app", app()),
        ("coder_metadata", metadata()),
        ("coder_script", script()),
        ("coder_env", env()),
    ]
}

fn agent() -> Block {
    let metadata = Block::new(vec![
        Attr::required("key", Ty::String),
        Attr::optional("display_name", Ty::String),
        Attr::required("script", Ty::String),
        Attr::required("interval", Ty::Number),
        Attr::optional("timeout", Ty::Number),
        Attr::optional("order", Ty::Number),
    ]);
    let display_apps = Block::new(vec![
        Attr::with_default("vscode", Ty::Bool, true),
        Attr::with_default("vscode_insiders", Ty::Bool, false),
        Attr::with_default("web_terminal", Ty::Bool, true),
        Attr::with_default("ssh_helper", Ty::Bool, true),
        Attr::with_default("port_forwarding_helper", Ty::Bool, true),
    ]);
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("arch", Ty::String),
        Attr::required("os", Ty::String),
        Attr::with_default("auth", Ty::String, "token"),
        Attr::optional("dir", Ty::String),
        Attr::optional("env", Ty::MapOfString),
        Attr::optional("startup_script", Ty::String),
        Attr::optional("startup_script_behavior", Ty::String),
        Attr::optional("shutdown_script", Ty::String),
        Attr::with_default("connection_timeout", Ty::Number, 120),
        Attr::optional("troubleshooting_url", Ty::String),
        Attr::optional("motd_file", Ty::String),
        Attr::optional("order", Ty::Number),
        Attr::optional("api_key_scope", Ty::String),
        Attr::computed("token", Ty::String).sensitive(),
        Attr::computed("init_script", Ty::String),
    ])
    .with_block("metadata", 0, metadata)
    .with_block("display_apps", 1, display_apps)
}

fn agent_instance() -> Block {
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("agent_id", Ty::String),
        Attr::required("instance_id", Ty::String),
    ])
}

fn app() -> Block {
    let healthcheck = Block::new(vec![
        Attr::required("url", Ty::String),
        Attr::required("interval", Ty::Number),
        Attr::required("threshold", Ty::Number),
    ]);
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("agent_id", Ty::String),
        Attr::required("slug", Ty::String),
        Attr::optional("display_name", Ty::String),
        Attr::optional("name", Ty::String),
        Attr::optional("open_in", Ty::String),
        Attr::optional("command", Ty::String),
        Attr::optional("url", Ty::String),
        Attr::optional("icon", Ty::String),
        Attr::optional("subdomain", Ty::Bool),
        Attr::with_default("share", Ty::String, "owner"),
        Attr::optional("external", Ty::Bool),
        Attr::optional("order", Ty::Number),
        Attr::optional("hidden", Ty::Bool),
        Attr::optional("group", Ty::String),
    ])
    .with_block("healthcheck", 1, healthcheck)
}

fn metadata() -> Block {
    let item = Block::new(vec![
        Attr::required("key", Ty::String),
        Attr::optional("value", Ty::String),
        Attr::optional("sensitive", Ty::Bool),
        Attr::computed("is_null", Ty::Bool),
    ]);
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("resource_id", Ty::String),
        Attr::optional("hide", Ty::Bool),
        Attr::optional("icon", Ty::String),
        Attr::optional("daily_cost", Ty::Number),
    ])
    .with_block("item", 0, item)
}

fn script() -> Block {
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("agent_id", Ty::String),
        Attr::required("display_name", Ty::String),
        Attr::required("script", Ty::String),
        Attr::optional("icon", Ty::String),
        Attr::optional("cron", Ty::String),
        Attr::optional("log_path", Ty::String),
        Attr::optional("run_on_start", Ty::Bool),
        Attr::optional("run_on_stop", Ty::Bool),
        Attr::optional("start_blocks_login", Ty::Bool),
        Attr::optional("timeout", Ty::Number),
    ])
}

fn env() -> Block {
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("agent_id", Ty::String),
        Attr::required("name", Ty::String),
        Attr::optional("value", Ty::String),
    ])
}

/// Plans a change of resource `block`: `prior` is null on create,
/// `proposed` null on destroy. Returns the planned state.
pub fn plan(block: &Block, prior: &Value, proposed: Value) -> Value {
    if proposed.is_nil() {
        return Value::Nil;
    }
    let creating = prior.is_nil();
    let mut planned = proposed;
    block.plan_computed(&mut planned, creating);
    derive_metadata_is_null(&mut planned);
    if !creating && planned == *prior {
        // Nothing changed: the prior state as is, so there is no diff.
        return prior.clone();
    }
    planned
}

/// Applies a planned change: destroy (null plan) gives null; otherwise the
/// planned state with its unknown computed attributes filled.
pub fn apply(planned: &Value) -> Value {
    if planned.is_nil() {
        return Value::Nil;
    }
    let mut state = planned.clone();
    for name in ["id", "token"] {
        if value::get(&state, name).is_some_and(value::is_unknown) {
            value::set(&mut state, name, value::string(uuid::Uuid::new_v4().to_string()));
        }
    }
    if value::get(&state, "init_script").is_some_and(value::is_unknown) {
        let script = init_script(
            value::get_str(&state, "os").unwrap_or("linux"),
            value::get_str(&state, "arch").unwrap_or("amd64"),
        );
        value::set(&mut state, "init_script", value::string(script));
    }
    derive_metadata_is_null(&mut state);
    null_remaining_unknowns(&mut state);
    state
}

/// The agent's init script: a fixed stand-in for the real download-and-run
/// script, which gets its token from `CODER_AGENT_TOKEN`.
fn init_script(os: &str, arch: &str) -> String {
    format!(
        "#!/bin/sh\n# coder agent init script ({os}/{arch}, test provider)\n\
         # expects CODER_AGENT_TOKEN (coder_agent.token) in the environment\n\
         exec coder agent\n"
    )
}

/// `coder_metadata`'s `item.is_null`: whether the item's value is null,
/// unknown while the value is.
fn derive_metadata_is_null(obj: &mut Value) {
    let Some(Value::Array(items)) = map_get_mut(obj, "item") else { return };
    for item in items {
        if value::get(item, "is_null").is_none() {
            continue;
        }
        let is_null = match value::get(item, "value") {
            Some(v) if value::is_unknown(v) => value::unknown(),
            Some(v) => Value::Boolean(v.is_nil()),
            None => Value::Boolean(true),
        };
        value::set(item, "is_null", is_null);
    }
}

/// After apply nothing may stay unknown: any computed attribute without a
/// rule of its own becomes null.
fn null_remaining_unknowns(v: &mut Value) {
    match v {
        Value::Ext(..) => *v = Value::Nil,
        Value::Array(items) => items.iter_mut().for_each(null_remaining_unknowns),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| null_remaining_unknowns(v)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed_agent() -> Value {
        let mut obj = agent().null_object();
        value::set(&mut obj, "os", value::string("linux"));
        value::set(&mut obj, "arch", value::string("amd64"));
        obj
    }

    #[test]
    fn create_plans_unknowns_and_apply_fills_them() {
        let planned = plan(&agent(), &Value::Nil, proposed_agent());
        assert!(value::get(&planned, "id").is_some_and(value::is_unknown));
        assert!(value::get(&planned, "token").is_some_and(value::is_unknown));
        assert_eq!(value::get(&planned, "connection_timeout").and_then(Value::as_i64), Some(120));
        let state = apply(&planned);
        assert!(!value::contains_unknown(&state));
        assert_eq!(value::get_str(&state, "id").map(str::len), Some(36));
        assert_ne!(value::get_str(&state, "id"), value::get_str(&state, "token"));
        // Unchanged config plans the prior state.
        let again = plan(&agent(), &state, state.clone());
        assert_eq!(again, state);
    }

    #[test]
    fn destroy_plans_and_applies_null() {
        assert_eq!(plan(&agent(), &proposed_agent(), Value::Nil), Value::Nil);
        assert_eq!(apply(&Value::Nil), Value::Nil);
    }

    #[test]
    fn metadata_items_know_whether_they_are_null() {
        let mut obj = metadata().null_object();
        let item = |v: Value| {
            Value::Map(vec![
                (Value::from("key"), value::string("k")),
                (Value::from("value"), v),
                (Value::from("sensitive"), Value::Nil),
                (Value::from("is_null"), Value::Nil),
            ])
        };
        let items = vec![item(value::string("x")), item(Value::Nil), item(value::unknown())];
        value::set(&mut obj, "item", Value::Array(items));
        let planned = plan(&metadata(), &Value::Nil, obj);
        let Some(Value::Array(items)) = value::get(&planned, "item") else { panic!("items") };
        assert_eq!(value::get(&items[0], "is_null"), Some(&Value::Boolean(false)));
        assert_eq!(value::get(&items[1], "is_null"), Some(&Value::Boolean(true)));
        assert!(value::get(&items[2], "is_null").is_some_and(value::is_unknown));
    }
}
