//! What Coder-style templates declare with the `coder` provider and a build
//! reports inside its resources: agents with their apps, scripts and
//! metadata, in the shape the seeds' `WorkspaceAgent` JSON takes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A `coder_agent`, attached to the resource it runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    pub operating_system: String,
    pub architecture: String,
    #[serde(default)]
    pub directory: String,
    /// The agent's `env`, with the `coder_env` of this agent merged in.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub connection_timeout_seconds: i64,
    #[serde(default)]
    pub troubleshooting_url: String,
    #[serde(default)]
    pub motd_file: String,
    /// `vscode`, `vscode_insiders`, `web_terminal`, `ssh_helper`,
    /// `port_forwarding_helper`: the built-in apps the agent shows.
    #[serde(default)]
    pub display_apps: Vec<String>,
    #[serde(default)]
    pub metadata: Vec<AgentMetadata>,
    /// How the agent authenticates: `token`, or `instance_id` when a
    /// `coder_agent_instance` names its instance.
    pub auth: String,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub apps: Vec<App>,
    #[serde(default)]
    pub scripts: Vec<Script>,
}

/// A `metadata` block of an agent: a script the agent runs and shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMetadata {
    pub key: String,
    pub display_name: String,
    pub script: String,
    pub interval: i64,
    pub timeout: i64,
    pub order: i64,
}

/// A `coder_app`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub command: String,
    pub url: String,
    pub icon: String,
    pub subdomain: bool,
    /// `owner`, `authenticated` or `public`.
    pub sharing_level: String,
    pub external: bool,
    pub healthcheck: Option<Healthcheck>,
    pub order: i64,
    pub hidden: bool,
    /// Where a client opens the app: `slim-window` (Coder's default) or `tab`.
    #[serde(default = "slim_window")]
    pub open_in: String,
}

/// The `open_in` of apps stored before it was read.
pub fn slim_window() -> String {
    "slim-window".into()
}

/// An app's `healthcheck` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub url: String,
    pub interval: i64,
    pub threshold: i64,
}

/// A `coder_script`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The agent log source the script's output goes to.
    pub log_source_id: Uuid,
    pub display_name: String,
    pub script: String,
    pub icon: String,
    pub cron: String,
    pub log_path: String,
    pub run_on_start: bool,
    pub run_on_stop: bool,
    pub start_blocks_login: bool,
    pub timeout_seconds: i64,
}
