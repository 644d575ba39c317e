//! Command line and environment: every flag has a `PROVISIONERD_*` variable
//! and a default, validated when parsed.
//!
//! This module only describes and validates settings; `main` turns them into
//! the library's own settings types, so the library never sees clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::Tags;

/// provisionerd runs Terraform workspace builds: a control plane and
/// provisioner daemons in one binary.
#[derive(Debug, Parser)]
#[command(name = "provisionerd", version, about)]
pub struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `provisionerd=debug`.
    #[arg(long, env = "PROVISIONERD_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log format: `text` (coloured on a terminal) or `json` (one object a line).
    #[arg(long, env = "PROVISIONERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// YAML file of settings: keys are flag names without `--` (`address`,
    /// `terraform-path`, `tag`), values scalars or lists. Flags win over
    /// environment variables, which win over the file.
    #[arg(long, env = "PROVISIONERD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: REST API, gRPC daemon service and built-in daemons.
    Server(ServerArgs),
    /// Run an external provisioner daemon that connects to a server.
    Start(StartArgs),
    /// Walk through a workspace's life against a running server: push the
    /// example template, create a workspace, follow its build, stop, delete.
    Demo(DemoArgs),
    /// Print the resources of a terraform state or plan as the API shows
    /// them, agents and apps attached (reads `terraform show -json` and
    /// `terraform graph -type=plan` output from any terraform).
    Resources(ResourcesArgs),
    /// Maintain a store: `store copy` moves an installation from SQLite to PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    // The command-line client: login, templates, workspaces (`ws`), ...
    #[command(flatten)]
    Client(crate::cli::ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every table of a SQLite installation into an empty PostgreSQL
    /// database (stop the server first; the copy is one transaction).
    Copy(StoreCopyArgs),
}

#[derive(Debug, Args)]
pub struct StoreCopyArgs {
    /// The SQLite database to copy (`sqlite:///path/to/provisionerd.db`).
    #[arg(long)]
    pub from: String,
    /// The empty PostgreSQL database to copy into (`postgres://user:pass@host:port/db`).
    #[arg(long, hide_env_values = true)]
    pub to: String,
    /// Rows per insert.
    #[arg(long, default_value_t = crate::store::copy::DEFAULT_BATCH)]
    pub batch_size: usize,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("show").required(true).args(["state", "plan"])))]
pub struct ResourcesArgs {
    /// `terraform show -json` of a state.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// `terraform show -json <planfile>` of a saved plan.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// `terraform graph -type=plan` of the same configuration.
    #[arg(long)]
    pub graph: PathBuf,
    /// Print everything an import finds, as an object: `resources` (the
    /// list printed without this flag), `parameters`,
    /// `external_auth_providers` and `presets`, each in the API's shape.
    #[arg(long)]
    pub import: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address the HTTP API and the gRPC daemon service listen on (one port).
    #[arg(long, env = "PROVISIONERD_ADDRESS", default_value = "127.0.0.1:3000")]
    pub address: SocketAddr,
    /// Directory for the embedded SQLite database.
    #[arg(long, env = "PROVISIONERD_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// Database URL; overrides --data-dir (`sqlite:///path/db.sqlite`).
    #[arg(long, env = "PROVISIONERD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Pre-shared key external daemons authenticate with. Without it only
    /// the built-in daemons can connect.
    #[arg(long, env = "PROVISIONERD_PSK", hide_env_values = true, value_parser = parse_psk)]
    pub psk: Option<String>,
    /// Serve HTTPS and gRPC over TLS with this certificate (PEM); needs --tls-key.
    #[arg(long, env = "PROVISIONERD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PROVISIONERD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Number of in-process provisioner daemons.
    #[arg(long, env = "PROVISIONERD_BUILTIN_DAEMONS", default_value_t = 1)]
    pub builtin_daemons: u32,
    /// How often daemons report their running jobs as alive.
    #[arg(long, env = "PROVISIONERD_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub heartbeat_interval: Duration,
    /// A running job whose daemon was silent this long is failed.
    #[arg(long, env = "PROVISIONERD_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub heartbeat_timeout: Duration,
    /// A job no daemon took within this long is failed.
    #[arg(long, env = "PROVISIONERD_PENDING_TIMEOUT", default_value = "30m", value_parser = parse_positive_duration)]
    pub pending_timeout: Duration,
    /// A job offered to a daemon that does not acknowledge it within this
    /// long goes back to the queue for another daemon.
    #[arg(long, env = "PROVISIONERD_OFFER_ACK_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub offer_ack_timeout: Duration,
    /// How often the server pings daemon connections (HTTP/2 keepalive).
    #[arg(long, env = "PROVISIONERD_KEEPALIVE_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub keepalive_interval: Duration,
    /// A daemon connection whose ping is not answered within this long is closed.
    #[arg(long, env = "PROVISIONERD_KEEPALIVE_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration)]
    pub keepalive_timeout: Duration,
    /// How often the scheduler queues the autostart and autostop builds
    /// workspace schedules owe.
    #[arg(long, env = "PROVISIONERD_AUTOBUILD_POLL_INTERVAL", default_value = "1m", value_parser = parse_positive_duration)]
    pub autobuild_poll_interval: Duration,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// URL of the provisionerd server. Repeat it (or list several,
    /// comma-separated) for replicas of one control plane: the daemon
    /// connects to the first, and to the next when it loses one.
    #[arg(long = "url", env = "PROVISIONERD_URL", value_delimiter = ',', default_value = "http://127.0.0.1:3000", value_parser = parse_server_url)]
    pub urls: Vec<String>,
    /// Pre-shared key (the server's --psk).
    #[arg(long, env = "PROVISIONERD_PSK", hide_env_values = true, value_parser = parse_psk)]
    pub psk: Option<String>,
    /// Provisioner key (from POST /api/v2/organizations/{org}/provisionerkeys);
    /// the daemon gets the key's tags.
    #[arg(long, env = "PROVISIONERD_KEY", hide_env_values = true, conflicts_with = "psk")]
    pub key: Option<String>,
    /// CA certificate (PEM) to trust for an https:// server URL; without it
    /// the bundled web PKI roots are used.
    #[arg(long, env = "PROVISIONERD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Daemon name shown in the API; defaults to the host name.
    #[arg(long, env = "PROVISIONERD_NAME")]
    pub name: Option<String>,
    /// Tags this daemon offers, `key=value`, repeatable. Without any, the
    /// daemon takes untagged (organization-scoped) jobs.
    #[arg(long = "tag", env = "PROVISIONERD_TAGS", value_delimiter = ',', value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Serve `/healthz` and `/readyz` on this address (e.g. 127.0.0.1:3001).
    #[arg(long, env = "PROVISIONERD_HEALTH_ADDRESS")]
    pub health_address: Option<SocketAddr>,
    /// `/healthz` fails once the server has been silent this long.
    #[arg(long, env = "PROVISIONERD_HEALTH_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub health_timeout: Duration,
    /// Exit after this many jobs (for ephemeral daemons).
    #[arg(long, env = "PROVISIONERD_MAX_JOBS")]
    pub max_jobs: Option<u64>,
    /// Exit after this long without a job (e.g. 10m).
    #[arg(long, env = "PROVISIONERD_IDLE_TIMEOUT", value_parser = parse_positive_duration)]
    pub idle_timeout: Option<Duration>,
    /// After the first SIGTERM, how long running jobs may take before they
    /// are canceled.
    #[arg(long, env = "PROVISIONERD_DRAIN_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// Settings shared by built-in and external daemons.
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// The terraform executable (default: `terraform` on PATH).
    #[arg(long, env = "PROVISIONERD_TERRAFORM_PATH", default_value = "terraform")]
    pub terraform_path: PathBuf,
    /// Time between SIGINT and SIGKILL when a job is canceled (e.g. 60s, 2m).
    #[arg(long, env = "PROVISIONERD_CANCEL_GRACE", default_value = "60s", value_parser = parse_positive_duration)]
    pub cancel_grace: Duration,
    /// Jobs one daemon runs at the same time.
    #[arg(long, env = "PROVISIONERD_CONCURRENCY", default_value_t = 1)]
    pub concurrency: u32,
    /// Parent of per-job work directories (default: the system temp dir).
    #[arg(long, env = "PROVISIONERD_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Where template archives and terraform plugins are cached
    /// (default: a `provisionerd-cache` directory in the system temp dir).
    #[arg(long, env = "PROVISIONERD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// When no usable terraform is found at --terraform-path, install this
    /// HashiCorp release (e.g. 1.9.8) into the cache dir, verified.
    #[arg(long, env = "PROVISIONERD_TERRAFORM_VERSION", value_parser = crate::terraform::install::parse_version)]
    pub terraform_version: Option<String>,
    /// Where --terraform-version downloads from: a copy of HashiCorp's
    /// release layout ({mirror}/{V}/terraform_{V}_linux_{arch}.zip).
    #[arg(long, env = "PROVISIONERD_TERRAFORM_MIRROR", default_value = crate::terraform::install::DEFAULT_MIRROR)]
    pub terraform_mirror: String,
    /// The OpenPGP public key (armored) that must sign the mirror's
    /// SHA256SUMS when gpg is installed (default: HashiCorp's, built in).
    #[arg(long, env = "PROVISIONERD_TERRAFORM_SIGNING_KEY")]
    pub terraform_signing_key: Option<PathBuf>,
}

impl DaemonArgs {
    /// The terraform install `--terraform-version` asks for, into
    /// `{cache_dir}/terraform`.
    pub fn terraform_install(
        &self,
        cache_dir: &std::path::Path,
    ) -> Option<crate::terraform::install::Install> {
        Some(crate::terraform::install::Install {
            version: self.terraform_version.clone()?,
            mirror: self.terraform_mirror.clone(),
            dir: cache_dir.join("terraform"),
            signing_key: self.terraform_signing_key.clone(),
        })
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// URL of a running provisionerd server.
    #[arg(long, env = "PROVISIONERD_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Template directory to push.
    #[arg(long, default_value = "testdata/templates/basic")]
    pub template: PathBuf,
    /// Email of the first user the demo creates (or logs in as).
    #[arg(long, default_value = "admin@example.com")]
    pub email: String,
    /// Password of that user.
    #[arg(
        long,
        env = "PROVISIONERD_DEMO_PASSWORD",
        default_value = "demo-password-123",
        hide_env_values = true
    )]
    pub password: String,
}

/// Parses `key=value`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("tag {s:?} is not of the form key=value")),
    }
}

/// Accepts an `http://` or `https://` server URL (spaces around it, as
/// after a comma in a list, are dropped).
pub fn parse_server_url(s: &str) -> Result<String, String> {
    let url = s.trim();
    if url.is_empty() {
        return Err("a server URL is empty: give each server as http://host:port, \
                    several separated by commas without an empty one"
            .into());
    }
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!(
            "server URL {url:?} must start with http:// or https:// (e.g. http://server-1:3000)"
        ));
    }
    Ok(url.to_owned())
}

/// Accepts a pre-shared key unless it is empty or whitespace.
pub fn parse_psk(s: &str) -> Result<String, String> {
    crate::server::daemon_keys::validate_psk(s).map(|()| s.to_owned())
}

/// The longest duration any flag takes. Longer values would overflow the
/// clock arithmetic of timers and deadlines (and mean "never" anyway).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses `250ms`, `30s`, `5m`, `1h` or a bare number of seconds, up to
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("duration {s:?} must start with a whole number (e.g. 30s, 250ms, 5m, 1h)")
    })?;
    let (scale, millis) = match unit {
        "ms" => (1, true),
        "" | "s" => (1, false),
        "m" => (60, false),
        "h" => (3600, false),
        other => {
            return Err(format!("unknown duration unit {other:?} in {s:?} (use ms, s, m or h)"))
        }
    };
    let too_long =
        || format!("duration {s:?} is too long (at most {}h)", MAX_DURATION.as_secs() / 3600);
    let d = match (n.checked_mul(scale), millis) {
        (Some(n), true) => Duration::from_millis(n),
        (Some(n), false) => Duration::from_secs(n),
        (None, _) => return Err(too_long()),
    };
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

/// [`parse_duration`] for settings that drive timers and timeouts, which a
/// zero would turn into a panic (`tokio::time::interval`) or a busy loop.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero (e.g. 5s or 250ms)"));
    }
    Ok(d)
}

/// Collects `--tag` pairs, falling back to the default tags when none are given.
pub fn tags_from(pairs: &[(String, String)]) -> Tags {
    if pairs.is_empty() {
        return crate::domain::default_tags();
    }
    pairs.iter().cloned().collect()
}

/// The `--config` file named on the command line (or in
/// `PROVISIONERD_CONFIG`), if any.
fn config_file(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("PROVISIONERD_CONFIG").map(PathBuf::from)
}

/// The environment variable of each flag (long name) of every subcommand.
fn flag_envs() -> std::collections::HashMap<String, String> {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, out: &mut std::collections::HashMap<String, String>) {
        for arg in cmd.get_arguments() {
            if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                out.insert(long.to_owned(), env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = std::collections::HashMap::new();
    walk(&Cli::command(), &mut out);
    out
}

/// Reads the `--config` file and turns each setting into its flag's
/// environment variable when that variable is not set already, so clap's
/// own order applies: flags, then environment, then the file, then
/// defaults. Must run before any thread starts (it sets variables).
pub fn apply_config_file(args: &[std::ffi::OsString]) -> Result<(), String> {
    use yaml_rust2::{Yaml, YamlLoader};
    let Some(path) = config_file(args) else { return Ok(()) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
    let docs = YamlLoader::load_from_str(&text)
        .map_err(|e| format!("--config {} is not valid YAML: {e}", path.display()))?;
    let Some(doc) = docs.into_iter().next() else { return Ok(()) };
    let Yaml::Hash(map) = doc else {
        return Err(format!(
            "--config {}: expected a mapping of flag names to values",
            path.display()
        ));
    };
    let envs = flag_envs();
    let scalar = |v: &Yaml| match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    for (key, value) in map {
        let Some(name) = key.as_str() else {
            return Err(format!("--config {}: keys are flag names", path.display()));
        };
        let env = envs.get(name).filter(|_| name != "config").ok_or_else(|| {
            format!(
                "--config {}: unknown setting {name:?} (keys are flag names without --)",
                path.display()
            )
        })?;
        let value = match &value {
            Yaml::Array(items) => {
                items.iter().map(scalar).collect::<Option<Vec<_>>>().map(|v| v.join(","))
            }
            other => scalar(other),
        }
        .ok_or_else(|| {
            format!("--config {}: {name} must be a scalar or a list of scalars", path.display())
        })?;
        if std::env::var_os(env).is_none() {
            std::env::set_var(env, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    /// Values whose arithmetic would overflow are refused, not panicked on.
    #[test]
    fn durations_overflowing_are_rejected() {
        for s in ["18446744073709551615h", "99999999999999m", "87601h", "18446744073709551616"] {
            let e = parse_duration(s).expect_err(s);
            assert!(e.contains("too long") || e.contains("whole number"), "{s}: {e}");
        }
        assert_eq!(parse_duration("87600h"), Ok(MAX_DURATION));
    }

    /// Zero intervals and timeouts are refused at parse, naming the flag
    /// (`--heartbeat-interval 0s` used to panic the reaper).
    #[test]
    fn zero_durations_are_rejected_naming_the_flag() {
        use clap::Parser;
        let server = |flag: &str, value: &str| {
            Cli::try_parse_from(["provisionerd", "server", flag, value]).map(|_| ())
        };
        let start = |flag: &str, value: &str| {
            Cli::try_parse_from(["provisionerd", "start", flag, value]).map(|_| ())
        };
        for flag in [
            "--heartbeat-interval",
            "--heartbeat-timeout",
            "--pending-timeout",
            "--cancel-grace",
            "--offer-ack-timeout",
            "--keepalive-interval",
            "--keepalive-timeout",
        ] {
            for zero in ["0s", "0", "0ms", "0h"] {
                let e = server(flag, zero).expect_err(flag).to_string();
                assert!(e.contains(flag) && e.contains("greater than zero"), "{flag} {zero}: {e}");
            }
            if flag != "--cancel-grace" {
                continue;
            }
            let e = start(flag, "0s").expect_err(flag).to_string();
            assert!(e.contains(flag) && e.contains("greater than zero"), "{e}");
        }
        for flag in ["--health-timeout", "--idle-timeout"] {
            let e = start(flag, "0s").expect_err(flag).to_string();
            assert!(e.contains(flag) && e.contains("greater than zero"), "{flag}: {e}");
        }
        server("--heartbeat-interval", "250ms").expect("a positive interval parses");
        start("--drain-timeout", "0s").expect("a zero drain timeout cancels at once");
    }

    #[test]
    fn tags_parse() {
        assert_eq!(parse_tag("os=linux"), Ok(("os".into(), "linux".into())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=x").is_err());
        assert_eq!(tags_from(&[]), crate::domain::default_tags());
    }

    #[test]
    fn empty_psk_is_refused_at_start() {
        use clap::Parser;
        for verb in ["server", "start"] {
            for psk in ["", "   "] {
                let err = Cli::try_parse_from(["provisionerd", verb, "--psk", psk])
                    .expect_err("an empty --psk must not start anything");
                let shown = err.to_string();
                assert!(shown.contains("empty or whitespace"), "{verb} --psk {psk:?}: {shown}");
            }
            let ok = Cli::try_parse_from(["provisionerd", verb, "--psk", "s3cret-value"]);
            assert!(ok.is_ok(), "{verb}: a real key is accepted");
        }
    }

    /// `--url` repeated or comma-separated gives the daemon's servers in
    /// order; an empty entry or a URL without a scheme is refused.
    #[test]
    fn start_takes_several_server_urls() {
        use clap::Parser;
        let urls = |args: &[&str]| -> Result<Vec<String>, clap::Error> {
            let cli = Cli::try_parse_from(["provisionerd", "start"].iter().chain(args))?;
            match cli.command {
                Command::Start(a) => Ok(a.urls),
                _ => unreachable!("parsed as start"),
            }
        };
        let two = vec!["http://server-1:3000".to_owned(), "http://server-2:3000".to_owned()];
        let repeated = urls(&["--url", "http://server-1:3000", "--url", "http://server-2:3000"]);
        assert_eq!(repeated.expect("repeated --url"), two);
        let listed = urls(&["--url", "http://server-1:3000, http://server-2:3000"]);
        assert_eq!(listed.expect("comma-separated"), two);
        assert_eq!(urls(&[]).expect("default"), ["http://127.0.0.1:3000"]);
        for bad in ["http://server-1:3000,,http://server-2:3000", "server-1:3000", ""] {
            let e = urls(&["--url", bad]).expect_err(bad).to_string();
            assert!(e.contains("--url") && e.contains("http://"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn cli_parses() {
        Cli::command_for_test();
    }

    impl Cli {
        fn command_for_test() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
        }
    }
}
