//! The `coder` provider's resources read from show entries and attached to
//! the managed resources (see the parent module for the rules).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;
use uuid::Uuid;

use super::{plain_resource, ConvertError, Entry, Graph};
use crate::domain::{Agent, AgentMetadata, App, Healthcheck, Resource, ResourceMetadata, Script};

static AGENT_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new("^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$").expect("valid pattern")
});

fn invalid(message: String) -> ConvertError {
    ConvertError::Invalid(message)
}

/// An attribute as text: strings as they are, numbers and bools printed.
pub(super) fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn flag(v: &Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or(false)
}

fn int(v: &Value, key: &str) -> i64 {
    v[key].as_i64().or_else(|| v[key].as_f64().map(|f| f as i64)).unwrap_or(0)
}

fn blocks<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

/// The managed resource type of a graph node, if it names one.
fn managed_type(node: &str) -> Option<&str> {
    let inner = node.strip_prefix("[root] ")?.strip_suffix(" (expand)")?;
    let mut parts: Vec<&str> = inner.split('.').collect();
    while parts.len() > 2 && parts[0] == "module" {
        parts.drain(0..2);
    }
    match parts.as_slice() {
        [kind, _] if !matches!(*kind, "data" | "local" | "var" | "output" | "module") => Some(kind),
        _ => None,
    }
}

fn is_plain(kind: &str) -> bool {
    !kind.starts_with("coder_")
}

/// An agent being assembled, with where it came from.
struct Found {
    entry: Entry,
    agent: Agent,
}

/// Resolves which agent an app, script, env or instance belongs to: the one
/// whose id its `agent_id` names, else (in a plan, where ids are unknown) the
/// nearest agent it depends on in the graph (ties: the smallest address).
fn owner_of(e: &Entry, agents: &[Found], graph: &Graph) -> Result<usize, ConvertError> {
    let by_id = e.values["agent_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .and_then(|id| agents.iter().position(|a| a.entry.values["id"].as_str() == Some(id)));
    let by_graph = || {
        let is_agent = |n: &str| agents.iter().any(|a| a.entry.node() == n);
        let nodes = graph.nearest_dependencies(&e.node(), is_agent);
        nodes.first().and_then(|n| agents.iter().position(|a| &a.entry.node() == n))
    };
    by_id.or_else(by_graph).ok_or_else(|| {
        invalid(format!("{} does not belong to any coder_agent of the template", e.address))
    })
}

/// Every entry converted: plain resources with their agents and metadata.
pub(super) fn attach(entries: &[Entry], graph: &Graph) -> Result<Vec<Resource>, ConvertError> {
    let of_kind = |kind: &'static str| entries.iter().filter(move |e| e.managed && e.kind == kind);
    let mut agents: Vec<Found> =
        of_kind("coder_agent").map(|e| Found { entry: e.clone(), agent: agent(e) }).collect();
    check_agent_names(&agents)?;
    for e in of_kind("coder_agent_instance") {
        let i = owner_of(e, &agents, graph)?;
        agents[i].agent.auth = "instance_id".into();
        agents[i].agent.instance_id = Some(text(&e.values, "instance_id"));
    }
    let mut app_owners: BTreeMap<(usize, String), String> = BTreeMap::new();
    for e in of_kind("coder_app") {
        let i = owner_of(e, &agents, graph)?;
        let app = app(&e.values);
        if let Some(first) = app_owners.insert((i, app.slug.clone()), e.address.clone()) {
            return Err(invalid(format!(
                "duplicate app slug {:?} on agent {:?}: {first} and {}",
                app.slug, agents[i].agent.name, e.address
            )));
        }
        agents[i].agent.apps.push(app);
    }
    for e in of_kind("coder_script") {
        let i = owner_of(e, &agents, graph)?;
        agents[i].agent.scripts.push(script(&e.values));
    }
    for e in of_kind("coder_env") {
        let i = owner_of(e, &agents, graph)?;
        agents[i].agent.env.insert(text(&e.values, "name"), text(&e.values, "value"));
    }

    let mut resources: Vec<(Entry, Resource)> = entries
        .iter()
        .filter(|e| e.managed && is_plain(&e.kind))
        .map(|e| (e.clone(), plain_resource(e)))
        .collect();
    attach_metadata(entries, &mut resources, graph)?;
    for found in agents {
        let node = found.entry.node();
        let candidates = graph.nearest_dependents(&node, |n| managed_type(n).is_some_and(is_plain));
        if candidates.is_empty() {
            return Err(invalid(format!(
                "no resource depends on agent {:?} ({}): use its token or init_script in the \
                 resource the agent runs on",
                found.agent.name, found.entry.address
            )));
        }
        // The first candidate with an instance; none when the workspace is
        // stopped (count 0), and then the agent has nowhere to run.
        let host =
            candidates.iter().find_map(|c| resources.iter().position(|(e, _)| &e.node() == c));
        if let Some(i) = host {
            resources[i].1.agents.push(found.agent);
        }
    }
    Ok(resources.into_iter().map(|(_, r)| r).collect())
}

fn check_agent_names(agents: &[Found]) -> Result<(), ConvertError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for a in agents {
        let name = &a.agent.name;
        if !AGENT_NAME.is_match(name) {
            return Err(invalid(format!(
                "agent name {name:?} ({}) must contain only letters, digits and inner hyphens",
                a.entry.address
            )));
        }
        // Instances of one counted agent share their name; that is one agent.
        let config = super::graph::node_of(&a.entry.address);
        if let Some(first) = seen.insert(name.to_lowercase(), &a.entry.address) {
            if super::graph::node_of(first) != config {
                return Err(invalid(format!(
                    "duplicate agent name {name:?} (names are case-insensitive): {first} and {}",
                    a.entry.address
                )));
            }
        }
    }
    Ok(())
}

fn attach_metadata(
    entries: &[Entry],
    resources: &mut [(Entry, Resource)],
    graph: &Graph,
) -> Result<(), ConvertError> {
    let mut owners: BTreeMap<usize, &str> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.managed && e.kind == "coder_metadata") {
        let target = e.values["resource_id"].as_str().filter(|id| !id.is_empty());
        let node = e.node();
        let index = target
            .and_then(|id| resources.iter().position(|(r, _)| r.values["id"].as_str() == Some(id)))
            .or_else(|| {
                let nodes =
                    graph.nearest_dependencies(&node, |n| managed_type(n).is_some_and(is_plain));
                nodes.iter().find_map(|n| resources.iter().position(|(r, _)| &r.node() == n))
            });
        // Metadata of a resource that has no instance (stopped) has no place.
        let Some(i) = index else { continue };
        if let Some(first) = owners.insert(i, &e.address) {
            return Err(invalid(format!(
                "resource {} has two coder_metadata: {first} and {}",
                resources[i].0.address, e.address
            )));
        }
        let resource = &mut resources[i].1;
        resource.hide = flag(&e.values, "hide");
        resource.icon = text(&e.values, "icon");
        resource.daily_cost = i32::try_from(int(&e.values, "daily_cost")).unwrap_or(i32::MAX);
        resource.metadata = blocks(&e.values, "item")
            .map(|item| {
                let sensitive = flag(item, "sensitive");
                ResourceMetadata {
                    key: text(item, "key"),
                    // A sensitive value never leaves the daemon.
                    value: if sensitive { String::new() } else { text(item, "value") },
                    sensitive,
                }
            })
            .collect();
    }
    Ok(())
}

fn agent(e: &Entry) -> Agent {
    let v = &e.values;
    let env = v["env"]
        .as_object()
        .map(|m| m.iter().map(|(k, val)| (k.clone(), val.as_str().unwrap_or("").to_owned())))
        .into_iter()
        .flatten()
        .collect();
    let display_apps = match blocks(v, "display_apps").next() {
        None => vec!["vscode", "web_terminal", "ssh_helper", "port_forwarding_helper"],
        Some(d) => {
            ["vscode", "vscode_insiders", "web_terminal", "ssh_helper", "port_forwarding_helper"]
                .into_iter()
                .filter(|k| flag(d, k))
                .collect()
        }
    };
    let timeout = v["connection_timeout"].as_i64().unwrap_or(120);
    Agent {
        id: v["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(Uuid::new_v4),
        name: e.name.clone(),
        operating_system: text(v, "os"),
        architecture: text(v, "arch"),
        directory: text(v, "dir"),
        env,
        connection_timeout_seconds: timeout,
        troubleshooting_url: text(v, "troubleshooting_url"),
        motd_file: text(v, "motd_file"),
        display_apps: display_apps.into_iter().map(str::to_owned).collect(),
        metadata: blocks(v, "metadata")
            .map(|m| AgentMetadata {
                key: text(m, "key"),
                display_name: text(m, "display_name"),
                script: text(m, "script"),
                interval: int(m, "interval"),
                timeout: int(m, "timeout"),
                order: int(m, "order"),
            })
            .collect(),
        auth: "token".into(),
        instance_id: None,
        order: int(v, "order"),
        apps: Vec::new(),
        scripts: Vec::new(),
    }
}

fn app(v: &Value) -> App {
    let share = text(v, "share");
    App {
        id: v["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(Uuid::new_v4),
        slug: text(v, "slug"),
        display_name: text(v, "display_name"),
        command: text(v, "command"),
        url: text(v, "url"),
        icon: text(v, "icon"),
        subdomain: flag(v, "subdomain"),
        sharing_level: if share.is_empty() { "owner".into() } else { share },
        external: flag(v, "external"),
        healthcheck: blocks(v, "healthcheck").next().map(|h| Healthcheck {
            url: text(h, "url"),
            interval: int(h, "interval"),
            threshold: int(h, "threshold"),
        }),
        order: int(v, "order"),
        hidden: flag(v, "hidden"),
    }
}

fn script(v: &Value) -> Script {
    Script {
        log_source_id: Uuid::new_v4(),
        display_name: text(v, "display_name"),
        script: text(v, "script"),
        icon: text(v, "icon"),
        cron: text(v, "cron"),
        log_path: text(v, "log_path"),
        run_on_start: flag(v, "run_on_start"),
        run_on_stop: flag(v, "run_on_stop"),
        start_blocks_login: flag(v, "start_blocks_login"),
        timeout_seconds: int(v, "timeout"),
    }
}
