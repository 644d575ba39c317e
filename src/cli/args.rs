//! The client subcommands' flags (`login`, `templates`, `workspaces`, ...),
//! flattened into the binary's command line by `config::Command::Client`.
//! Parsing only; what each does lives in the sibling modules.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Log in to a provisionerd server and remember the session.
    Login(LoginArgs),
    /// Log out: end the session on the server and forget it here.
    Logout,
    /// Show who you are logged in as, and where.
    Whoami(OutputArgs),
    /// Push, list and inspect templates.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Create, start, stop, follow and delete workspaces.
    #[command(subcommand, visible_alias = "ws")]
    Workspaces(WorkspacesCommand),
    /// Print a shell completion script (e.g. `source <(provisionerd completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's URL, e.g. http://127.0.0.1:3000 (default: the last one
    /// logged in to, or `PROVISIONERD_URL`).
    pub url: Option<String>,
    /// Email to log in with (prompted for on a terminal).
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from standard input (for scripts).
    #[arg(long, conflicts_with = "token")]
    pub password_stdin: bool,
    /// Use this session token or API key instead of a password.
    #[arg(long)]
    pub token: Option<String>,
    /// When the server has no user yet, create the first one (owner) with
    /// these credentials, without asking.
    #[arg(long)]
    pub first_user: bool,
    /// Username of the first user (default: the email's local part).
    #[arg(long)]
    pub username: Option<String>,
}

/// `--output` of the listing commands.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Output format: a table for people or JSON in the API's shapes.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `-y/--yes`.
#[derive(Debug, Args, Clone, Copy)]
pub struct YesArgs {
    /// Do not ask for confirmation (required without a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Upload a directory as a new version of a template and import it;
    /// creates the template when it is new.
    Push(PushArgs),
    /// List the templates.
    List(OutputArgs),
    /// List a template's versions.
    Versions {
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Template name.
    pub name: String,
    /// Directory with the template's terraform files.
    #[arg(short, long, default_value = ".")]
    pub directory: PathBuf,
    /// A terraform variable's value, `name=value` (repeatable).
    #[arg(long = "variable", value_parser = crate::config::parse_tag)]
    pub variables: Vec<(String, String)>,
    /// Make the new version the active one (`--activate=false` keeps the old).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub activate: bool,
    /// Provisioner that imports the version.
    #[arg(long, default_value = "terraform", hide = true)]
    pub provisioner: String,
    /// Message of the version.
    #[arg(short, long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub yes: YesArgs,
}

#[derive(Debug, Subcommand)]
pub enum WorkspacesCommand {
    /// Create a workspace from a template and follow its first build.
    Create(CreateArgs),
    /// List workspaces.
    #[command(visible_alias = "ls")]
    List(OutputArgs),
    /// Show a workspace with its resources, agents and apps.
    Show {
        /// `name` or `owner/name`.
        workspace: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Start a workspace and follow the build.
    Start(TargetArgs),
    /// Stop a workspace and follow the build.
    Stop(TargetArgs),
    /// Stop then start a workspace.
    Restart(TargetArgs),
    /// Rebuild a workspace on its template's active version.
    Update(TargetArgs),
    /// Delete a workspace (destroys its resources).
    Delete {
        #[command(flatten)]
        target: TargetArgs,
        /// Delete the workspace without destroying its resources.
        #[arg(long)]
        orphan: bool,
    },
    /// Cancel the workspace's running or pending build.
    Cancel(TargetArgs),
    /// List a workspace's builds.
    Builds {
        workspace: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a build's logs (the latest build unless --build is given).
    Logs {
        workspace: String,
        /// Follow the build until it ends.
        #[arg(short, long)]
        follow: bool,
        /// Build number.
        #[arg(long)]
        build: Option<i32>,
    },
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// `name` or `owner/name`.
    pub workspace: String,
    #[command(flatten)]
    pub yes: YesArgs,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Workspace name (or `owner/name` to create it for another user).
    pub name: String,
    /// Template name.
    #[arg(short, long)]
    pub template: String,
    /// A parameter's value, `name=value` (repeatable); missing ones are
    /// asked for on a terminal.
    #[arg(long = "parameter", value_parser = crate::config::parse_tag)]
    pub parameters: Vec<(String, String)>,
    #[command(flatten)]
    pub yes: YesArgs,
}
