//! Turns `terraform show -json` output (of a state or of a saved plan) and
//! `terraform graph -type=plan` output into the resources a build reports,
//! by Coder's rules:
//!
//! - every managed resource is listed except the `coder_*` types folded into
//!   others (`coder_agent`, `coder_agent_instance`, `coder_app`,
//!   `coder_metadata`, `coder_script`): `coder_env` is listed, as in Coder;
//! - a `coder_agent` goes to every instance of the nearest managed
//!   non-`coder_*` resource with instances that depends on it in the graph
//!   (ties: the smallest address); an agent nothing depends on is left out;
//! - `coder_app`, `coder_script`, `coder_env` go to the agent their
//!   `agent_id` names, or (in a plan, where ids are unknown) the agent they
//!   depend on; `coder_agent_instance` only by `agent_id`, and only for an
//!   agent that does not use a token; agents on Google, AWS and Azure VMs
//!   take the VM's instance id, and those VMs report their size;
//! - `coder_metadata` goes to the resource its `resource_id` names, or every
//!   instance of the one it depends on;
//! - an agent's legacy `startup_script`/`shutdown_script` become scripts.
//!
//! Templates that break Coder's rules fail with an error naming the offender.
//! Pure functions over JSON and DOT text; no I/O.

mod coder;
mod graph;
mod parameters;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::domain::Resource;
pub use graph::{Graph, GraphError};
pub use parameters::{external_auth, parameters, presets};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("terraform show output is not a JSON object")]
    NotAnObject,
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The template breaks one of the `coder` provider's rules.
    #[error("invalid template: {0}")]
    Invalid(String),
}

/// One resource instance of the show output.
#[derive(Debug, Clone)]
struct Entry {
    address: String,
    managed: bool,
    kind: String,
    name: String,
    module_path: String,
    /// Attribute values with everything terraform marks sensitive removed.
    values: Value,
}

impl Entry {
    fn node(&self) -> String {
        graph::node_of(&self.address)
    }
}

/// The resources of `show` (a state's `values`, or a plan's `planned_values`
/// with the data sources of its `prior_state`) with the agents and metadata
/// of the `coder` provider attached using `graph` (`terraform graph -type=plan`).
/// Ordered by address.
pub fn convert(show: &Value, graph: &str) -> Result<Vec<Resource>, ConvertError> {
    let entries = entries(show)?;
    let graph = Graph::parse(graph)?;
    coder::attach(&entries, &graph)
}

/// The entries of a show output, ordered by address.
fn entries(show: &Value) -> Result<Vec<Entry>, ConvertError> {
    let obj = show.as_object().ok_or(ConvertError::NotAnObject)?;
    let mut found = Vec::new();
    if let Some(root) = obj.get("values").and_then(|v| v.get("root_module")) {
        collect(root, "", &mut found);
    } else {
        if let Some(root) = obj.get("planned_values").and_then(|v| v.get("root_module")) {
            collect(root, "", &mut found);
        }
        // Data sources read while planning live in the prior state.
        let mut prior = Vec::new();
        if let Some(root) = show.pointer("/prior_state/values/root_module") {
            collect(root, "", &mut prior);
        }
        for e in prior {
            if !e.managed && !found.iter().any(|f: &Entry| f.address == e.address) {
                found.push(e);
            }
        }
    }
    found.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(found)
}

fn collect(module: &Value, path: &str, out: &mut Vec<Entry>) {
    for r in module.get("resources").and_then(Value::as_array).into_iter().flatten() {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        out.push(Entry {
            address: text("address"),
            managed: r["mode"] == "managed",
            kind: text("type"),
            name: text("name"),
            module_path: path.to_owned(),
            values: strip_sensitive(&r["values"], &r["sensitive_values"]),
        });
    }
    for child in module.get("child_modules").and_then(Value::as_array).into_iter().flatten() {
        let child_path = child["address"].as_str().unwrap_or(path);
        collect(child, child_path, out);
    }
}

/// A listed managed resource, as a build reports it.
fn plain_resource(e: &Entry) -> Resource {
    // Only the cloud VM types Coder knows report their size.
    let size_attribute = match e.kind.as_str() {
        "google_compute_instance" => Some("machine_type"),
        "aws_instance" | "aws_spot_instance_request" => Some("instance_type"),
        "azurerm_linux_virtual_machine" | "azurerm_windows_virtual_machine" => Some("size"),
        _ => None,
    };
    let instance_type =
        size_attribute.and_then(|k| e.values.get(k).and_then(Value::as_str)).map(str::to_owned);
    Resource {
        name: e.name.clone(),
        resource_type: e.kind.clone(),
        module_path: e.module_path.clone(),
        hide: false,
        icon: String::new(),
        daily_cost: 0,
        instance_type,
        metadata: Vec::new(),
        attributes: e.values.clone(),
        agents: Vec::new(),
    }
}

/// Drops every value that `sensitive` (terraform's mirror structure) marks
/// with `true`.
fn strip_sensitive(values: &Value, sensitive: &Value) -> Value {
    if sensitive == &Value::Bool(true) {
        return Value::Null;
    }
    match (values, sensitive) {
        (Value::Object(v), Value::Object(s)) => {
            let kept: Map<String, Value> = v
                .iter()
                .filter(|(k, _)| s.get(*k) != Some(&Value::Bool(true)))
                .map(|(k, val)| (k.clone(), strip_sensitive(val, s.get(k).unwrap_or(&Value::Null))))
                .collect();
            Value::Object(kept)
        }
        (Value::Array(v), Value::Array(s)) => Value::Array(
            v.iter()
                .enumerate()
                .map(|(i, val)| strip_sensitive(val, s.get(i).unwrap_or(&Value::Null)))
                .collect(),
        ),
        _ => values.clone(),
    }
}
