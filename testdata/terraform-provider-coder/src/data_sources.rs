//! The data sources (`coder_workspace`, `coder_parameter`, ...): their
//! schemas and how they are read, from the environment the provisioner
//! daemon sets for Terraform (`CODER_WORKSPACE_*`, `CODER_PARAMETER_*`).

use rmpv::Value;
use sha2::{Digest, Sha256};

use crate::schema::{Attr, Block, Ty};
use crate::value;

/// The nil UUID, for ids the environment does not give.
const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// The names and schemas of all data sources.
pub fn schemas() -> Vec<(&'static str, Block)> {
    vec![
        ("coder_workspace", workspace()),
        ("coder_workspace_owner", workspace_owner()),
        ("coder_provisioner", provisioner()),
        ("coder_parameter", parameter()),
        ("coder_external_auth", external_auth()),
        ("coder_workspace_preset", workspace_preset()),
    ]
}

fn external_auth() -> Block {
    Block::new(vec![
        Attr::required("id", Ty::String),
        Attr::with_default("optional", Ty::Bool, false),
        Attr::computed("access_token", Ty::String).sensitive(),
    ])
}

fn workspace_preset() -> Block {
    let prebuilds = Block::new(vec![Attr::required("instances", Ty::Number)]);
    Block::new(vec![
        Attr::required("name", Ty::String),
        Attr::optional("parameters", Ty::MapOfString),
        Attr::with_default("default", Ty::Bool, false),
        Attr::optional("description", Ty::String),
        Attr::optional("icon", Ty::String),
    ])
    .with_block("prebuilds", 1, prebuilds)
}

fn workspace() -> Block {
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::computed("name", Ty::String),
        Attr::computed("transition", Ty::String),
        Attr::computed("start_count", Ty::Number),
        Attr::computed("template_id", Ty::String),
        Attr::computed("template_name", Ty::String),
        Attr::computed("template_version", Ty::String),
        Attr::computed("access_url", Ty::String),
        Attr::computed("access_port", Ty::Number),
        Attr::computed("owner", Ty::String),
        Attr::computed("owner_id", Ty::String),
        Attr::computed("owner_email", Ty::String),
    ])
}

fn workspace_owner() -> Block {
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::computed("name", Ty::String),
        Attr::computed("full_name", Ty::String),
        Attr::computed("email", Ty::String),
        Attr::computed("session_token", Ty::String).sensitive(),
        Attr::computed("groups", Ty::ListOfString),
    ])
}

fn provisioner() -> Block {
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::computed("os", Ty::String),
        Attr::computed("arch", Ty::String),
    ])
}

fn parameter() -> Block {
    let option = Block::new(vec![
        Attr::required("name", Ty::String),
        Attr::optional("description", Ty::String),
        Attr::required("value", Ty::String),
        Attr::optional("icon", Ty::String),
    ]);
    let validation = Block::new(vec![
        Attr::optional("min", Ty::Number),
        Attr::optional("max", Ty::Number),
        Attr::optional("monotonic", Ty::String),
        Attr::optional("regex", Ty::String),
        Attr::optional("error", Ty::String),
    ]);
    Block::new(vec![
        Attr::computed("id", Ty::String),
        Attr::required("name", Ty::String),
        Attr::optional("display_name", Ty::String),
        Attr::optional("description", Ty::String),
        Attr::with_default("type", Ty::String, "string"),
        Attr::with_default("mutable", Ty::Bool, false),
        Attr::optional("default", Ty::String),
        Attr::optional("icon", Ty::String),
        Attr::with_default("ephemeral", Ty::Bool, false),
        Attr::optional("order", Ty::Number),
        Attr::optional("form_type", Ty::String),
        Attr::computed("value", Ty::String),
        Attr::computed("optional", Ty::Bool),
    ])
    .with_block("option", 0, option)
    .with_block("validation", 1, validation)
}

/// Where a data source reads its values from: the process environment in
/// the provider, a fixed map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment; empty values count as unset.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Reads data source `name` (schema `block`) for `config`, which Terraform
/// sends fully known. Returns the state, or an error message.
pub fn read(name: &str, block: &Block, config: &Value, env: &dyn Env) -> Result<Value, String> {
    let mut state = block.shape(config);
    if state.is_nil() {
        state = block.null_object();
    }
    block.fill_defaults(&mut state);
    let var = |key: &str, fallback: &str| value::string(env.var(key).unwrap_or(fallback.into()));
    match name {
        "coder_workspace" => {
            let transition = env.var("CODER_WORKSPACE_TRANSITION").unwrap_or("start".into());
            let start_count = i64::from(transition == "start");
            set_all(
                &mut state,
                vec![
                    ("id", var("CODER_WORKSPACE_ID", NIL_UUID)),
                    ("name", var("CODER_WORKSPACE_NAME", "default")),
                    ("transition", value::string(transition)),
                    ("start_count", Value::from(start_count)),
                    ("template_id", var("CODER_WORKSPACE_TEMPLATE_ID", "")),
                    ("template_name", var("CODER_WORKSPACE_TEMPLATE_NAME", "")),
                    ("template_version", var("CODER_WORKSPACE_TEMPLATE_VERSION", "")),
                    ("access_url", var("CODER_WORKSPACE_ACCESS_URL", "https://example.invalid")),
                    ("access_port", Value::from(443)),
                    ("owner", var("CODER_WORKSPACE_OWNER", "default")),
                    ("owner_id", var("CODER_WORKSPACE_OWNER_ID", NIL_UUID)),
                    ("owner_email", var("CODER_WORKSPACE_OWNER_EMAIL", "default@example.com")),
                ],
            );
        }
        "coder_workspace_owner" => set_all(
            &mut state,
            vec![
                ("id", var("CODER_WORKSPACE_OWNER_ID", NIL_UUID)),
                ("name", var("CODER_WORKSPACE_OWNER", "default")),
                ("full_name", var("CODER_WORKSPACE_OWNER_NAME", "")),
                ("email", var("CODER_WORKSPACE_OWNER_EMAIL", "default@example.com")),
                ("session_token", var("CODER_WORKSPACE_OWNER_SESSION_TOKEN", "")),
                ("groups", Value::Array(Vec::new())),
            ],
        ),
        "coder_provisioner" => set_all(
            &mut state,
            vec![
                ("id", value::string(uuid::Uuid::new_v4().to_string())),
                ("os", value::string("linux")),
                ("arch", value::string("amd64")),
            ],
        ),
        "coder_parameter" => read_parameter(&mut state, env)?,
        // No provider is configured in tests: there is never a token.
        "coder_external_auth" => value::set(&mut state, "access_token", value::string("")),
        // Everything a preset has is configuration.
        "coder_workspace_preset" => {}
        other => return Err(format!("unknown data source {other:?}")),
    }
    Ok(state)
}

fn set_all(state: &mut Value, values: Vec<(&str, Value)>) {
    for (name, v) in values {
        value::set(state, name, v);
    }
}

/// `coder_parameter`: the value comes from `CODER_PARAMETER_<sha256 hex of
/// the name>`, else the default, else "".
fn read_parameter(state: &mut Value, env: &dyn Env) -> Result<(), String> {
    let name = value::get_str(state, "name")
        .ok_or_else(|| "coder_parameter: name must be a known string".to_owned())?
        .to_owned();
    let default = value::get_str(state, "default").map(str::to_owned);
    let from_env = env.var(&parameter_env_var(&name));
    let chosen = from_env.or_else(|| default.clone()).unwrap_or_default();
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    set_all(
        state,
        vec![
            ("id", value::string(id.to_string())),
            ("value", value::string(chosen)),
            ("optional", Value::Boolean(default.is_some())),
        ],
    );
    Ok(())
}

/// The environment variable that carries the value of parameter `name`.
pub fn parameter_env_var(name: &str) -> String {
    format!("CODER_PARAMETER_{}", hex::encode(Sha256::digest(name.as_bytes())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnv(HashMap<String, String>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn workspace_start_count_follows_transition() {
        let block = workspace();
        let config = block.null_object();
        let start = read("coder_workspace", &block, &config, &env(&[])).expect("read");
        assert_eq!(value::get(&start, "start_count").and_then(Value::as_i64), Some(1));
        let stop_env = env(&[("CODER_WORKSPACE_TRANSITION", "stop")]);
        let stop = read("coder_workspace", &block, &config, &stop_env).expect("read");
        assert_eq!(value::get(&stop, "start_count").and_then(Value::as_i64), Some(0));
        assert_eq!(value::get_str(&stop, "transition"), Some("stop"));
    }

    #[test]
    fn parameter_value_from_env_then_default() {
        let block = parameter();
        let mut config = block.null_object();
        value::set(&mut config, "name", value::string("region"));
        value::set(&mut config, "default", value::string("eu"));
        let state = read("coder_parameter", &block, &config, &env(&[])).expect("read");
        assert_eq!(value::get_str(&state, "value"), Some("eu"));
        assert_eq!(value::get_str(&state, "type"), Some("string"));
        assert_eq!(value::get(&state, "optional"), Some(&Value::Boolean(true)));
        let var = parameter_env_var("region");
        assert_eq!(
            var,
            "CODER_PARAMETER_c697d2981bf416569a16cfbcdec1542b5398f3cc77d2b905819aa99c46ecf6f6"
        );
        let state = read("coder_parameter", &block, &config, &env(&[(&var, "us")])).expect("read");
        assert_eq!(value::get_str(&state, "value"), Some("us"));
    }
}
