//! The dependency graph `terraform graph -type=plan` prints, read from its
//! DOT text. Terraform writes a small, regular subset of DOT (quoted node
//! names, `a -> b` edges, attribute lists, nested `subgraph` braces), so a
//! tokenizer for exactly that is enough; a full Graphviz parser would bring a
//! grammar engine for the same result.
//!
//! An edge `"a" -> "b"` means a depends on b. Resource nodes are named
//! `[root] <address without instance keys> (expand)`.

use std::collections::{BTreeMap, BTreeSet};

/// Nodes and who depends on whom.
#[derive(Debug, Default)]
pub struct Graph {
    /// node → the nodes that depend on it (edge sources).
    dependents: BTreeMap<String, BTreeSet<String>>,
    /// node → the nodes it depends on (edge targets).
    dependencies: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("terraform graph output is not a DOT digraph")]
    NotADigraph,
    #[error("terraform graph output has an unterminated quoted name")]
    Unterminated,
    #[error("terraform graph output has an edge without a target after {0:?}")]
    DanglingEdge(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Id(String),
    Arrow,
    Other(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>, GraphError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '"' => {
                let mut id = String::new();
                loop {
                    match chars.next() {
                        None => return Err(GraphError::Unterminated),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => id.push(escaped),
                            Some(other) => {
                                id.push('\\');
                                id.push(other);
                            }
                            None => return Err(GraphError::Unterminated),
                        },
                        Some(other) => id.push(other),
                    }
                }
                tokens.push(Token::Id(id));
            }
            '-' if chars.peek() == Some(&'>') => {
                chars.next();
                tokens.push(Token::Arrow);
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut id = c.to_string();
                while let Some(&n) = chars.peek() {
                    if !(n.is_alphanumeric() || n == '_' || n == '.') {
                        break;
                    }
                    id.push(n);
                    chars.next();
                }
                tokens.push(Token::Id(id));
            }
            other => tokens.push(Token::Other(other)),
        }
    }
    Ok(tokens)
}

impl Graph {
    /// Reads `terraform graph` output.
    pub fn parse(text: &str) -> Result<Graph, GraphError> {
        let tokens = tokenize(text)?;
        if !matches!(tokens.first(), Some(Token::Id(k)) if k == "digraph") {
            return Err(GraphError::NotADigraph);
        }
        let mut graph = Graph::default();
        let mut depth = 0usize;
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                Token::Other('[') => depth += 1,
                Token::Other(']') => depth = depth.saturating_sub(1),
                Token::Id(from) if depth == 0 && tokens.get(i + 1) == Some(&Token::Arrow) => {
                    let Some(Token::Id(to)) = tokens.get(i + 2) else {
                        return Err(GraphError::DanglingEdge(from.clone()));
                    };
                    graph.add_edge(from, to);
                    // `a -> b -> c` chains continue from b.
                    i += 2;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        Ok(graph)
    }

    fn add_edge(&mut self, from: &str, to: &str) {
        self.dependents.entry(to.to_owned()).or_default().insert(from.to_owned());
        self.dependencies.entry(from.to_owned()).or_default().insert(to.to_owned());
    }

    /// The nodes that depend on `node`, directly or not, at the smallest
    /// distance where `wanted` holds, sorted by name. Empty when no
    /// dependent satisfies `wanted`.
    pub fn nearest_dependents(&self, node: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        nearest(&self.dependents, node, wanted)
    }

    /// The nodes `node` depends on, directly or not, at the smallest
    /// distance where `wanted` holds, sorted by name. Terraform prints a
    /// transitively reduced graph, so a dependency that is also reachable
    /// through another one has no direct edge: "directly" is not enough.
    pub fn nearest_dependencies(&self, node: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        nearest(&self.dependencies, node, wanted)
    }
}

/// Breadth-first search along `edges` from `start`.
fn nearest(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut frontier = vec![start.to_owned()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for n in &frontier {
            for d in edges.get(n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    next.push(d.clone());
                }
            }
        }
        let mut found: Vec<String> = next.iter().filter(|n| wanted(n)).cloned().collect();
        if !found.is_empty() {
            found.sort();
            return found;
        }
        frontier = next;
    }
    Vec::new()
}

/// The graph node of a resource instance's address: instance keys removed
/// (`module.a[0].aws_instance.b["x"]` → `[root] module.a.aws_instance.b (expand)`).
pub fn node_of(address: &str) -> String {
    let mut plain = String::with_capacity(address.len());
    let mut in_key = false;
    let mut in_string = false;
    let mut escaped = false;
    for c in address.chars() {
        match c {
            _ if in_string => {
                in_string = c != '"' || escaped;
                escaped = c == '\\' && !escaped;
            }
            '"' if in_key => in_string = true,
            '[' => in_key = true,
            ']' => in_key = false,
            _ if in_key => {}
            _ => plain.push(c),
        }
    }
    format!("[root] {plain} (expand)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"digraph {
	compound = "true"
	newrank = "true"
	subgraph "root" {
		"[root] coder_agent.main (expand)" [label = "coder_agent.main", shape = "box"]
		"[root] provider[\"registry.terraform.io/coder/coder\"]" [label = "provider[\"registry.terraform.io/coder/coder\"]", shape = "diamond"]
		"[root] coder_agent.main (expand)" -> "[root] provider[\"registry.terraform.io/coder/coder\"]"
		"[root] local.boot (expand)" -> "[root] coder_agent.main (expand)"
		"[root] terraform_data.disk (expand)" -> "[root] local.boot (expand)"
		"[root] terraform_data.vm (expand)" -> "[root] local.boot (expand)"
		"[root] terraform_data.far (expand)" -> "[root] terraform_data.vm (expand)"
	}
}
"#;

    #[test]
    fn nearest_dependents_through_non_resource_nodes() {
        let g = Graph::parse(SAMPLE).expect("parse");
        let is_data = |n: &str| n.starts_with("[root] terraform_data.");
        assert_eq!(
            g.nearest_dependents("[root] coder_agent.main (expand)", is_data),
            ["[root] terraform_data.disk (expand)", "[root] terraform_data.vm (expand)"]
        );
        assert!(g.nearest_dependents("[root] terraform_data.far (expand)", is_data).is_empty());
        let is_provider = |n: &str| n.contains("provider[");
        assert_eq!(
            g.nearest_dependencies("[root] terraform_data.far (expand)", is_provider),
            ["[root] provider[\"registry.terraform.io/coder/coder\"]"]
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(Graph::parse("{}").expect_err("not a digraph"), GraphError::NotADigraph);
        assert_eq!(
            Graph::parse("digraph { \"a").expect_err("unterminated"),
            GraphError::Unterminated
        );
        assert!(matches!(Graph::parse("digraph { \"a\" -> }"), Err(GraphError::DanglingEdge(_))));
    }

    #[test]
    fn instance_keys_are_dropped() {
        assert_eq!(node_of("aws_instance.b[1]"), "[root] aws_instance.b (expand)");
        assert_eq!(node_of(r#"module.a[0].x.y["k]\"z"]"#), "[root] module.a.x.y (expand)");
    }
}
