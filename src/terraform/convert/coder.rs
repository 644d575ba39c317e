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

/// Managed `coder_*` types that are folded into the resources they belong to
/// and never listed themselves; every other managed type (`coder_env`
/// included) is a resource of the build, as in Coder.
const FOLDED: [&str; 5] =
    ["coder_agent", "coder_agent_instance", "coder_app", "coder_metadata", "coder_script"];

/// Whether a managed resource of this type is listed in the build's resources.
fn is_listed(kind: &str) -> bool {
    !FOLDED.contains(&kind)
}

/// Cloud VM types whose attributes name the instance an agent authenticates
/// as (instance identity), as Coder links them automatically.
fn instance_id_attribute(kind: &str) -> Option<&'static str> {
    match kind {
        "google_compute_instance" => Some("instance_id"),
        "aws_instance" => Some("id"),
        "aws_spot_instance_request" => Some("spot_instance_id"),
        "azurerm_linux_virtual_machine" | "azurerm_windows_virtual_machine" => {
            Some("virtual_machine_id")
        }
        _ => None,
    }
}

/// An agent being assembled, with where it came from.
struct Found {
    entry: Entry,
    agent: Agent,
}

/// Resolves which agent an app, script or env belongs to: the one whose id
/// its `agent_id` names, else (in a plan, where ids are unknown) the
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

/// Every entry converted: listed resources with their agents and metadata.
pub(super) fn attach(entries: &[Entry], graph: &Graph) -> Result<Vec<Resource>, ConvertError> {
    let of_kind = |kind: &'static str| entries.iter().filter(move |e| e.managed && e.kind == kind);
    let mut agents: Vec<Found> =
        of_kind("coder_agent").map(|e| Found { entry: e.clone(), agent: agent(e) }).collect();
    check_agent_names(&agents)?;
    // Only by `agent_id`, as Coder: in a plan the id is unknown and the
    // instance stays unset; an agent authenticating by token ignores it.
    for e in of_kind("coder_agent_instance") {
        let Some(id) = e.values["agent_id"].as_str().filter(|id| !id.is_empty()) else {
            continue;
        };
        let owner = agents.iter_mut().find(|a| a.entry.values["id"].as_str() == Some(id));
        if let Some(found) = owner.filter(|a| a.agent.auth != "token") {
            found.agent.instance_id = Some(text(&e.values, "instance_id"));
        }
    }
    let mut app_owners: BTreeMap<(usize, String), String> = BTreeMap::new();
    for e in of_kind("coder_app") {
        let i = owner_of(e, &agents, graph)?;
        let app = app(e);
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
        .filter(|e| e.managed && is_listed(&e.kind))
        .map(|e| (e.clone(), plain_resource(e)))
        .collect();
    attach_metadata(entries, &mut resources, graph)?;
    for found in agents {
        // The nearest plain resource that depends on the agent and has
        // instances (ties: the smallest address). An agent nothing depends
        // on has nowhere to run and is left out, as Coder leaves it out.
        let has_instances = |n: &str| {
            managed_type(n).is_some_and(is_plain) && resources.iter().any(|(e, _)| e.node() == n)
        };
        let candidates = graph.nearest_dependents(&found.entry.node(), has_instances);
        let Some(host) = candidates.first() else { continue };
        // Every instance of a counted resource runs the agent; each copy
        // after the first gets ids of its own so the API can tell them apart.
        let instances = resources.iter_mut().filter(|(e, _)| &e.node() == host);
        for (copy, (e, r)) in instances.enumerate() {
            let mut agent = found.agent.clone();
            if copy > 0 {
                renumber(&mut agent, &e.address);
            }
            link_instance(e, &mut agent);
            r.agents.push(agent);
        }
    }
    Ok(resources.into_iter().map(|(_, r)| r).collect())
}

/// Instance identity from the cloud VM an agent runs on, unless the agent
/// uses a token or a `coder_agent_instance` named its instance already.
fn link_instance(host: &Entry, agent: &mut Agent) {
    if agent.auth == "token" || agent.instance_id.as_deref().is_some_and(|i| !i.is_empty()) {
        return;
    }
    let id = instance_id_attribute(&host.kind).and_then(|k| host.values[k].as_str());
    if let Some(id) = id {
        agent.instance_id = Some(id.to_owned());
    }
}

/// Fresh ids, derived from the old ones and the instance address, for the
/// copy of an agent on another instance of its resource.
fn renumber(agent: &mut Agent, address: &str) {
    let derive = |id: &Uuid| Uuid::new_v5(id, address.as_bytes());
    agent.id = derive(&agent.id);
    for app in &mut agent.apps {
        app.id = derive(&app.id);
    }
    for script in &mut agent.scripts {
        script.log_source_id = derive(&script.log_source_id);
    }
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
        let by_id: Vec<usize> = target
            .and_then(|id| resources.iter().position(|(r, _)| r.values["id"].as_str() == Some(id)))
            .into_iter()
            .collect();
        // Without an id (a plan): the nearest plain resource it depends on
        // that has instances, and then every instance of it, as Coder.
        let targets = if by_id.is_empty() {
            let has_instances = |n: &str| {
                managed_type(n).is_some_and(is_plain)
                    && resources.iter().any(|(r, _)| r.node() == n)
            };
            let nodes = graph.nearest_dependencies(&e.node(), has_instances);
            let host = nodes.first();
            (0..resources.len()).filter(|&i| Some(&resources[i].0.node()) == host).collect()
        } else {
            by_id
        };
        // Metadata of a resource that has no instance (stopped) has no place.
        for i in targets {
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
    // Coder: `auth = "token"` is a token; any other value is instance
    // identity. A missing attribute (hand-written output) is the
    // provider's default, a token.
    let auth = match v["auth"].as_str() {
        None | Some("token") => "token",
        Some(_) => "instance_id",
    };
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
        auth: auth.into(),
        instance_id: None,
        order: int(v, "order"),
        apps: Vec::new(),
        scripts: legacy_scripts(v),
    }
}

/// The deprecated `startup_script` / `shutdown_script` of an agent as the
/// scripts Coder makes of them; they come before any `coder_script`.
fn legacy_scripts(v: &Value) -> Vec<Script> {
    // Blocking when `startup_script_behavior` says so or, with providers
    // older than that attribute, when `login_before_ready` is present and false.
    let blocking = match v["startup_script_behavior"].as_str().filter(|b| !b.is_empty()) {
        Some(behavior) => behavior == "blocking",
        None => v["login_before_ready"] == Value::Bool(false),
    };
    let legacy = |key: &str, name: &str, icon: &str, log: &str, on_start: bool| {
        let body = text(v, key);
        (!body.is_empty()).then(|| Script {
            log_source_id: Uuid::new_v4(),
            display_name: name.into(),
            script: body,
            icon: icon.into(),
            cron: String::new(),
            log_path: log.into(),
            run_on_start: on_start,
            run_on_stop: !on_start,
            start_blocks_login: on_start && blocking,
            timeout_seconds: 0,
        })
    };
    [
        legacy(
            "startup_script",
            "Startup Script",
            "/emojis/25b6.png",
            "coder-startup-script.log",
            true,
        ),
        legacy(
            "shutdown_script",
            "Shutdown Script",
            "/emojis/25c0.png",
            "coder-shutdown-script.log",
            false,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn app(e: &Entry) -> App {
    let v = &e.values;
    let share = text(v, "share");
    // Coder's fallbacks: the slug defaults to the resource name; the display
    // name to the deprecated `name`, then to the slug.
    let slug = Some(text(v, "slug")).filter(|s| !s.is_empty()).unwrap_or_else(|| e.name.clone());
    let display_name = [text(v, "display_name"), text(v, "name")]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| slug.clone());
    let open_in = match text(v, "open_in").to_lowercase().as_str() {
        "tab" => "tab".to_owned(),
        _ => crate::domain::slim_window(),
    };
    App {
        id: v["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(Uuid::new_v4),
        slug,
        display_name,
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
        open_in,
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
