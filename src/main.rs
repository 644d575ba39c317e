//! The `provisionerd` binary: parse the command line, set up tracing, wire
//! signals to cancellation tokens, and call into the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use provisionerd::config::{self, Cli, Command, DaemonArgs, ResourcesArgs, ServerArgs, StartArgs};
use provisionerd::domain::Provisioner;
use provisionerd::server::{self, ServerConfig, ServerSettings, TlsFiles};
use provisionerd::worker::lifecycle::StopPolicy;
use provisionerd::worker::{self, Shutdown, WorkerSettings};

fn main() -> ExitCode {
    // A terraform watchdog is this binary re-exec'd: it must start before
    // the runtime's threads and never parse the command line.
    provisionerd::terraform::watchdog::run_if_asked();
    if let Ok(exe) = std::env::current_exe() {
        provisionerd::terraform::watchdog::use_exe(&exe);
    }
    // Before the runtime's threads: the file's settings become environment
    // variables (see `config::apply_config_file`).
    let args: Vec<_> = std::env::args_os().collect();
    if let Err(e) = config::apply_config_file(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    run()
}

#[tokio::main]
async fn run() -> ExitCode {
    let cli = Cli::parse();
    // Client commands print for a person: no tracing output on stderr.
    if let Command::Client(cmd) = cli.command {
        return provisionerd::cli::run(cmd).await;
    }
    init_logging(&cli);
    let json = cli.log_format == config::LogFormat::Json;
    let result = match cli.command {
        Command::Server(args) => run_server(args).await,
        Command::Start(args) => run_daemon(args).await,
        Command::Demo(args) => provisionerd::demo::run(args).await,
        Command::Resources(args) => print_resources(&args),
        Command::Store(config::StoreCommand::Copy(args)) => copy_store(&args).await,
        Command::Client(_) => unreachable!("client commands returned above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // In JSON every line of stderr is an object, the last one too.
            if json {
                tracing::error!(error = format!("{e:#}"), "exiting on an error");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: text, coloured only on a terminal without `NO_COLOR`,
/// or JSON, one object a line with the time, level, message, target and the
/// fields of the spans it happened in (job, daemon).
fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        config::LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(true).with_span_list(true).init()
        }
        config::LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            fmt.with_ansi(colour).init()
        }
    }
}

/// `provisionerd resources`: converts files and prints JSON on stdout.
fn print_resources(args: &ResourcesArgs) -> anyhow::Result<()> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let path = args.state.as_ref().or(args.plan.as_ref()).context("give --state or --plan")?;
    let show: serde_json::Value = serde_json::from_str(&read(path)?)
        .with_context(|| format!("{} is not JSON from terraform show -json", path.display()))?;
    let resources = provisionerd::terraform::convert::convert(&show, &read(&args.graph)?)
        .with_context(|| format!("cannot convert {}", path.display()))?;
    let now = chrono::Utc::now();
    let json: Vec<_> = resources
        .iter()
        .map(|r| {
            provisionerd::server::api::resources::render(
                uuid::Uuid::new_v4(),
                uuid::Uuid::nil(),
                now,
                "start",
                r,
            )
        })
        .collect();
    if !args.import {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    // What an import stores next to its resources, read as the daemon reads
    // it; a preset's id derives from the nil version here, as there is none.
    use provisionerd::server::api::resources::{external_auth, parameter, preset};
    let convert = provisionerd::terraform::convert::parameters;
    let parameters =
        convert(&show).with_context(|| format!("cannot convert {}", path.display()))?;
    let auth = provisionerd::terraform::convert::external_auth(&show)
        .with_context(|| format!("cannot convert {}", path.display()))?;
    let presets = provisionerd::terraform::convert::presets(&show)
        .with_context(|| format!("cannot convert {}", path.display()))?;
    let all = serde_json::json!({
        "resources": json,
        "parameters": parameters.iter().map(parameter).collect::<Vec<_>>(),
        "external_auth_providers": auth.iter().map(external_auth).collect::<Vec<_>>(),
        "presets": presets.iter().map(|p| preset(uuid::Uuid::nil(), p)).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(())
}

/// `provisionerd store copy`: prints what it copied, table by table.
async fn copy_store(args: &config::StoreCopyArgs) -> anyhow::Result<()> {
    let copied = provisionerd::store::copy::copy(&args.from, &args.to, args.batch_size)
        .await
        .context("store copy failed; the target database was left as it was")?;
    for (table, rows) in &copied.tables {
        println!("{table}: {rows} rows");
    }
    println!("copy complete: start the server with --database-url set to the target");
    Ok(())
}

/// First SIGINT/SIGTERM drains, the second aborts running jobs, the third
/// exits at once.
fn spawn_signal_handler(shutdown: Shutdown) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        for count in 1.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            match count {
                1 => {
                    provisionerd::notify::stopping("shutting down: finishing running jobs");
                    tracing::info!(
                        "shutdown requested: finishing running jobs (signal again to cancel them)"
                    );
                    shutdown.drain.cancel();
                }
                2 => {
                    tracing::warn!(
                        "second signal: canceling running jobs (signal again to exit now)"
                    );
                    shutdown.abort.cancel();
                }
                _ => {
                    let killed = provisionerd::terraform::executor::kill_all();
                    tracing::error!(
                        killed,
                        "third signal: killed running terraform process groups; exiting now"
                    );
                    std::process::exit(130);
                }
            }
        }
    });
}

fn worker_settings(url: String, daemon: &DaemonArgs) -> WorkerSettings {
    let mut s = WorkerSettings::new(url);
    s.terraform_path = daemon.terraform_path.clone();
    s.cancel_grace = daemon.cancel_grace;
    s.concurrency = daemon.concurrency.max(1);
    if let Some(dir) = &daemon.work_dir {
        s.work_dir = dir.clone();
    }
    if let Some(dir) = &daemon.cache_dir {
        s.cache_dir = dir.clone();
    }
    s
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    if args.heartbeat_timeout <= args.heartbeat_interval {
        anyhow::bail!(
            "--heartbeat-timeout ({:?}) must be longer than --heartbeat-interval ({:?})",
            args.heartbeat_timeout,
            args.heartbeat_interval
        );
    }
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| {
                format!("failed to create data dir {}", args.data_dir.display())
            })?;
            format!("sqlite://{}", args.data_dir.join("provisionerd.db").display())
        }
    };
    let store = provisionerd::store::open(&url)
        .await
        .with_context(|| format!("failed to open the database {}", redact_url(&url)))?;
    let mut builtin = worker_settings(String::new(), &args.daemon);
    builtin.provisioners = vec![Provisioner::Echo];
    // --terraform-version installs terraform when none is found.
    let install = args.daemon.terraform_install(&builtin.cache_dir);
    match provisionerd::terraform::install::resolve(&builtin.terraform_path, install.as_ref()).await
    {
        Ok((path, version)) => {
            builtin.terraform_path = path;
            tracing::info!(%version, "built-in daemons run terraform");
            builtin.provisioners.insert(0, Provisioner::Terraform);
        }
        Err(e) if args.builtin_daemons > 0 => {
            tracing::warn!(error = %e, "built-in daemons will only run echo jobs")
        }
        Err(_) => {}
    }
    let listener = tokio::net::TcpListener::bind(args.address)
        .await
        .with_context(|| format!("failed to listen on {}", args.address))?;
    let shutdown = Shutdown::default();
    spawn_signal_handler(shutdown.clone());
    let config = ServerConfig {
        store,
        psk: args.psk,
        builtin_daemons: args.builtin_daemons,
        builtin,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles { cert, key }),
        settings: ServerSettings {
            heartbeat_interval: args.heartbeat_interval,
            heartbeat_timeout: args.heartbeat_timeout,
            pending_timeout: args.pending_timeout,
            offer_ack_timeout: args.offer_ack_timeout,
            keepalive_interval: args.keepalive_interval,
            keepalive_timeout: args.keepalive_timeout,
            autobuild_poll_interval: args.autobuild_poll_interval,
            ..ServerSettings::default()
        },
    };
    // The server stops on the first signal; its built-in daemons drain and
    // are canceled if they do not finish within the shutdown grace.
    let stop: CancellationToken = shutdown.drain.clone();
    // Listening: connections that come now wait in the backlog until the
    // router takes them, so systemd may start what depends on the API.
    provisionerd::notify::ready(&format!("listening on {}", args.address));
    provisionerd::notify::spawn_watchdog(stop.clone());
    let result = server::run(listener, config, stop).await;
    provisionerd::notify::stopping("stopped");
    result
}

async fn run_daemon(args: StartArgs) -> anyhow::Result<()> {
    // Clap gives at least one URL (the default); the rest are fallbacks.
    let mut urls = args.urls.into_iter();
    let mut settings = worker_settings(urls.next().unwrap_or_default(), &args.daemon);
    settings.fallback_urls = urls.collect();
    settings.credentials.psk = args.psk;
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("failed to read --ca-cert {}", path.display()))?;
        settings.ca_pem = Some(pem);
    }
    settings.credentials.key = args.key;
    settings.tags = config::tags_from(&args.tags);
    if let Some(name) = args.name {
        settings.name = name;
    }
    settings.stop = StopPolicy {
        max_jobs: args.max_jobs,
        idle_timeout: args.idle_timeout,
        drain_timeout: Some(args.drain_timeout),
        ..StopPolicy::default()
    };
    // --terraform-version installs terraform when none is found.
    let install = args.daemon.terraform_install(&settings.cache_dir);
    let (path, version) =
        provisionerd::terraform::install::resolve(&settings.terraform_path, install.as_ref())
            .await?;
    settings.terraform_path = path;
    tracing::info!(%version, path = %settings.terraform_path.display(), "found terraform");
    let shutdown = Shutdown::default();
    spawn_signal_handler(shutdown.clone());
    let probes = CancellationToken::new();
    if let Some(address) = args.health_address {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen on --health-address {address}"))?;
        tracing::info!(%address, "serving /healthz and /readyz");
        let (health, timeout, stop) =
            (settings.health.clone(), args.health_timeout, probes.clone());
        tokio::spawn(async move {
            if let Err(e) = provisionerd::probes::serve(listener, health, timeout, stop).await {
                tracing::error!(error = %e, "health endpoint failed");
            }
        });
    }
    let watchdog = CancellationToken::new();
    provisionerd::notify::spawn_watchdog(watchdog.clone());
    spawn_ready_when_connected(settings.health.clone(), watchdog.clone());
    // Every line the daemon logs carries its name (a span field in JSON).
    let span = tracing::info_span!("daemon", daemon = %settings.name);
    let result = tracing::Instrument::instrument(worker::run(settings, shutdown), span).await;
    probes.cancel();
    watchdog.cancel();
    provisionerd::notify::stopping("stopped");
    Ok(result?)
}

/// Tells systemd the daemon is ready once it first connects to its server
/// (the health state is plain atomics: looked at every 100 ms until then).
fn spawn_ready_when_connected(
    health: provisionerd::worker::health::Health,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            if health.ready() {
                provisionerd::notify::ready("connected to the server");
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            }
        }
    });
}

/// Hides a password in a database URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}
