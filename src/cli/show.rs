//! `ws show`: a workspace as a tree of its resources, their metadata, and
//! their agents with their apps; or, with `--output json`, the API's
//! workspace object.

use serde_json::Value;

use super::args::Format;
use super::output::{ago, colors, json, paint, Tone};
use crate::sdk::{Workspace, WorkspaceResource};

/// A line and the lines under it.
struct Node {
    label: String,
    children: Vec<Node>,
}

fn leaf(label: String) -> Node {
    Node { label, children: Vec::new() }
}

fn render(nodes: &[Node], prefix: &str, out: &mut Vec<String>) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        out.push(format!("{prefix}{}{}", if last { "└─ " } else { "├─ " }, n.label));
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        render(&n.children, &deeper, out);
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn agent(a: &Value) -> Node {
    let mut label = format!("agent {}", text(a, "name"));
    let (os, arch) = (text(a, "operating_system"), text(a, "architecture"));
    if !os.is_empty() {
        label.push_str(&format!(" ({os}/{arch})"));
    }
    let apps = a.get("apps").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let children = apps
        .iter()
        .map(|app| {
            let name = match text(app, "display_name") {
                "" => text(app, "slug"),
                d => d,
            };
            let target = match (text(app, "url"), text(app, "command")) {
                ("", "") => String::new(),
                ("", cmd) => format!(": {cmd}"),
                (url, _) => format!(": {url}"),
            };
            leaf(format!("app {name}{target}"))
        })
        .collect();
    Node { label, children }
}

fn resource(r: &WorkspaceResource) -> Node {
    let mut children: Vec<Node> = r
        .metadata
        .iter()
        .map(|m| {
            let value = if m.sensitive { "********" } else { m.value.as_str() };
            leaf(format!("{} = {value}", m.key))
        })
        .collect();
    children.extend(r.agents.iter().map(agent));
    Node { label: format!("{}.{}", r.resource_type, r.name), children }
}

pub fn workspace(w: &Workspace, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(w);
    }
    let color = colors();
    let b = &w.latest_build;
    say!("{}", paint(color, Tone::Bold, &format!("{}/{}", w.owner_name, w.name)));
    let outdated = if w.outdated { " (outdated: `provisionerd ws update` updates it)" } else { "" };
    say!("  template: {}{outdated}", w.template_name);
    say!(
        "  status:   {} (build #{} {}, {} {})",
        b.status,
        b.build_number,
        b.transition,
        b.job.status,
        ago(b.updated_at)
    );
    if let Some(e) = b.job.error.as_deref().filter(|e| !e.is_empty()) {
        say!("  error:    {}", paint(color, Tone::Bad, e));
    }
    let nodes: Vec<Node> = b.resources.iter().filter(|r| !r.hide).map(resource).collect();
    if nodes.is_empty() {
        say!("  no resources");
        return Ok(());
    }
    let mut lines = Vec::new();
    render(&nodes, "  ", &mut lines);
    for l in lines {
        say!("{l}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agents sit under their resource and apps under their agent.
    #[test]
    fn the_tree_nests_agents_and_apps() {
        let a = serde_json::json!({
            "name": "main", "operating_system": "linux", "architecture": "amd64",
            "apps": [{"slug": "code", "display_name": "VS Code", "url": "http://localhost:8080"}],
        });
        let nodes = vec![
            Node { label: "docker_container.dev".into(), children: vec![agent(&a)] },
            leaf("docker_volume.home".into()),
        ];
        let mut lines = Vec::new();
        render(&nodes, "", &mut lines);
        assert_eq!(
            lines,
            [
                "├─ docker_container.dev",
                "│  └─ agent main (linux/amd64)",
                "│     └─ app VS Code: http://localhost:8080",
                "└─ docker_volume.home",
            ]
        );
    }
}
