//! The stored formats of what terraform reported: a resource row's
//! `resource` (with its agents, apps, scripts and metadata) and an import's
//! `result` (the template's parameters and variables). Field for field the
//! same as the domain types, which may change their own names freely: the
//! conversions here are written out by hand.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Result;
use crate::domain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Resource {
    name: String,
    #[serde(rename = "type")]
    resource_type: String,
    #[serde(default)]
    module_path: String,
    #[serde(default)]
    hide: bool,
    #[serde(default)]
    icon: String,
    #[serde(default)]
    daily_cost: i32,
    #[serde(default)]
    instance_type: Option<String>,
    #[serde(default)]
    metadata: Vec<ResourceMetadata>,
    #[serde(default)]
    attributes: serde_json::Value,
    #[serde(default)]
    agents: Vec<Agent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ResourceMetadata {
    key: String,
    value: String,
    sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Agent {
    id: Uuid,
    name: String,
    operating_system: String,
    architecture: String,
    #[serde(default)]
    directory: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    connection_timeout_seconds: i64,
    #[serde(default)]
    troubleshooting_url: String,
    #[serde(default)]
    motd_file: String,
    #[serde(default)]
    display_apps: Vec<String>,
    #[serde(default)]
    metadata: Vec<AgentMetadata>,
    auth: String,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    order: i64,
    #[serde(default)]
    apps: Vec<App>,
    #[serde(default)]
    scripts: Vec<Script>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AgentMetadata {
    key: String,
    display_name: String,
    script: String,
    interval: i64,
    timeout: i64,
    order: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct App {
    id: Uuid,
    slug: String,
    display_name: String,
    command: String,
    url: String,
    icon: String,
    subdomain: bool,
    sharing_level: String,
    external: bool,
    healthcheck: Option<Healthcheck>,
    order: i64,
    hidden: bool,
    // Left out when it is the default, so rows written before the field
    // existed keep their exact bytes.
    #[serde(default = "domain::slim_window", skip_serializing_if = "is_slim_window")]
    open_in: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Healthcheck {
    url: String,
    interval: i64,
    threshold: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Script {
    log_source_id: Uuid,
    display_name: String,
    script: String,
    icon: String,
    cron: String,
    log_path: String,
    run_on_start: bool,
    run_on_stop: bool,
    start_blocks_login: bool,
    timeout_seconds: i64,
}

/// An import's findings; its stop resources are resource rows, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ImportResult {
    parameters: Vec<TemplateParameter>,
    variables: Vec<TemplateVariable>,
    // Left out when empty, so results written before these existed keep
    // their exact bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    external_auth: Vec<ExternalAuthProvider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    presets: Vec<Preset>,
}

fn is_slim_window(open_in: &str) -> bool {
    open_in == "slim-window"
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ExternalAuthProvider {
    id: String,
    optional: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Preset {
    name: String,
    parameters: BTreeMap<String, String>,
    default: bool,
    description: String,
    icon: String,
    prebuild_instances: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TemplateParameter {
    name: String,
    display_name: String,
    description: String,
    #[serde(rename = "type")]
    kind: String,
    form_type: String,
    mutable: bool,
    default_value: String,
    icon: String,
    options: Vec<ParameterOption>,
    validation_regex: String,
    validation_error: String,
    validation_min: Option<f64>,
    validation_max: Option<f64>,
    validation_monotonic: String,
    required: bool,
    ephemeral: bool,
    order: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ParameterOption {
    name: String,
    description: String,
    value: String,
    icon: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TemplateVariable {
    name: String,
    description: String,
    #[serde(rename = "type")]
    kind: String,
    default_value: String,
    required: bool,
    sensitive: bool,
}

/// Converts field by field between a stored type and its domain type, in
/// both directions; a field missing on either side fails to compile.
macro_rules! convert {
    ($stored:ident <-> $domain:path { $($field:ident $(via $conv:ident)?),+ $(,)? }) => {
        impl From<&$domain> for $stored {
            fn from(d: &$domain) -> Self {
                $stored { $($field: convert!(@to d.$field $(, $conv)?)),+ }
            }
        }
        impl From<$stored> for $domain {
            fn from(s: $stored) -> Self {
                Self { $($field: convert!(@from s.$field $(, $conv)?)),+ }
            }
        }
    };
    (@to $e:expr) => { $e.clone() };
    (@to $e:expr, each) => { $e.iter().map(Into::into).collect() };
    (@to $e:expr, opt) => { $e.as_ref().map(Into::into) };
    (@from $e:expr) => { $e };
    (@from $e:expr, each) => { $e.into_iter().map(Into::into).collect() };
    (@from $e:expr, opt) => { $e.map(Into::into) };
}

convert!(Resource <-> domain::Resource {
    name, resource_type, module_path, hide, icon, daily_cost, instance_type,
    metadata via each, attributes, agents via each,
});
convert!(ResourceMetadata <-> domain::ResourceMetadata { key, value, sensitive });
convert!(Agent <-> domain::Agent {
    id, name, operating_system, architecture, directory, env, connection_timeout_seconds,
    troubleshooting_url, motd_file, display_apps, metadata via each, auth, instance_id, order,
    apps via each, scripts via each,
});
convert!(AgentMetadata <-> domain::AgentMetadata {
    key, display_name, script, interval, timeout, order,
});
convert!(App <-> domain::App {
    id, slug, display_name, command, url, icon, subdomain, sharing_level, external,
    healthcheck via opt, order, hidden, open_in,
});
convert!(Healthcheck <-> domain::Healthcheck { url, interval, threshold });
convert!(Script <-> domain::Script {
    log_source_id, display_name, script, icon, cron, log_path, run_on_start, run_on_stop,
    start_blocks_login, timeout_seconds,
});
convert!(TemplateParameter <-> domain::TemplateParameter {
    name, display_name, description, kind, form_type, mutable, default_value, icon,
    options via each, validation_regex, validation_error, validation_min, validation_max,
    validation_monotonic, required, ephemeral, order,
});
convert!(ParameterOption <-> domain::ParameterOption { name, description, value, icon });
convert!(ExternalAuthProvider <-> domain::ExternalAuthProvider { id, optional });
convert!(Preset <-> domain::Preset {
    name, parameters, default, description, icon, prebuild_instances,
});
convert!(TemplateVariable <-> domain::TemplateVariable {
    name, description, kind, default_value, required, sensitive,
});

/// A resource row's `resource` column.
pub fn encode_resource(r: &domain::Resource) -> Result<String> {
    Ok(serde_json::to_string(&Resource::from(r))?)
}

pub fn decode_resource(text: &str) -> Result<domain::Resource> {
    Ok(serde_json::from_str::<Resource>(text)?.into())
}

/// An import's `result` column: its parameters and variables.
pub fn encode_import(i: &domain::ImportResult) -> Result<String> {
    let stored = ImportResult {
        parameters: i.parameters.iter().map(Into::into).collect(),
        variables: i.variables.iter().map(Into::into).collect(),
        external_auth: i.external_auth.iter().map(Into::into).collect(),
        presets: i.presets.iter().map(Into::into).collect(),
    };
    Ok(serde_json::to_string(&stored)?)
}

/// Decodes an import's findings; its stop resources come from resource rows.
pub fn decode_import(text: &str) -> Result<domain::ImportResult> {
    let stored: ImportResult = serde_json::from_str(text)?;
    Ok(domain::ImportResult {
        parameters: stored.parameters.into_iter().map(Into::into).collect(),
        variables: stored.variables.into_iter().map(Into::into).collect(),
        external_auth: stored.external_auth.into_iter().map(Into::into).collect(),
        presets: stored.presets.into_iter().map(Into::into).collect(),
        stop_resources: Vec::new(),
    })
}
