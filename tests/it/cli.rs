//! The command-line client as a person or a script uses it: the real
//! `provisionerd` binary run as a subprocess (no terminal) against a real
//! server, with its own config directory. Asserts exit codes, what it
//! prints, the stored session and what the server holds afterwards.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{self, Opts, TestServer, EMAIL, PASSWORD};

/// The client binary with a private config directory.
struct Cli {
    config: TempDir,
    url: String,
}

/// What one run of the client did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(url: &str) -> Self {
        Self { config: tempfile::tempdir().expect("config dir"), url: url.to_owned() }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"));
        cmd.args(args)
            .env("XDG_CONFIG_HOME", self.config.path())
            .env_remove("PROVISIONERD_URL")
            .env_remove("PROVISIONERD_SESSION_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs the client to its end with `stdin` as its input.
    async fn run_with(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self.command(args).spawn().expect("spawn the client");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("write stdin");
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("provisionerd {args:?} did not finish in 120s"))
            .expect("client output");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!run.stdout.contains('\x1b'), "escape codes without a terminal: {run:?}");
        run
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, "").await
    }

    /// Runs and expects exit code `code`.
    async fn expect(&self, code: i32, args: &[&str]) -> Run {
        let run = self.run(args).await;
        assert_eq!(run.code, code, "provisionerd {args:?}: {run:#?}");
        run
    }

    async fn login(&self) {
        let args = ["login", &self.url, "--email", EMAIL, "--password-stdin", "--first-user"];
        let run = self.run_with(&args, &format!("{PASSWORD}\n")).await;
        assert_eq!(run.code, 0, "{run:#?}");
    }

    fn file(&self, name: &str) -> PathBuf {
        self.config.path().join("provisionerd").join(name)
    }
}

/// A template with a required parameter (no default) and a terraform
/// resource whose provisioner prints it.
pub fn parameter_template(command: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("template dir");
    let tf = format!(
        r#"terraform {{
  required_providers {{
    coder = {{ source = "coder/coder" }}
  }}
}}

data "coder_parameter" "size" {{
  name        = "size"
  type        = "string"
  description = "How big the box is"
  option {{
    name  = "Small"
    value = "small"
  }}
  option {{
    name  = "Large"
    value = "large"
  }}
}}

resource "terraform_data" "box" {{
  input = data.coder_parameter.size.value
  provisioner "local-exec" {{
    command = "{command}"
  }}
}}
"#
    );
    std::fs::write(dir.path().join("main.tf"), tf).expect("write main.tf");
    dir
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Login (creating the first user), push with an import followed live,
/// create with a parameter, list as JSON, stop, logs, delete, logout;
/// confirmation and missing parameters are usage errors without a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_lifecycle_through_the_cli() {
    let server = TestServer::start(Opts::default()).await;
    let cli = Cli::new(&server.url);
    let no_user =
        cli.run_with(&["login", &server.url, "--email", EMAIL, "--password-stdin"], PASSWORD).await;
    assert_eq!(no_user.code, 1, "{no_user:#?}");
    assert!(no_user.stderr.contains("--first-user"), "{no_user:#?}");
    assert!(!cli.file("session").exists(), "a failed login stores nothing");
    cli.login().await;
    for name in ["url", "session"] {
        let mode = std::fs::metadata(cli.file(name)).expect(name).permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is private");
    }
    let who = cli.expect(0, &["whoami"]).await;
    assert!(who.stdout.contains(EMAIL) && who.stdout.contains("owner"), "{who:#?}");

    let template = parameter_template("echo box is ${self.input}");
    let dir = path_str(template.path());
    let refused = cli.expect(2, &["templates", "push", "boxes", "-d", dir]).await;
    assert!(refused.stderr.contains("--yes"), "{refused:#?}");
    let pushed = cli.expect(0, &["templates", "push", "boxes", "-d", dir, "--yes"]).await;
    for shown in ["==> ⧗ Setting up", "=== ✔ Setting up [", "succeeded in", "created template"]
    {
        assert!(pushed.stdout.contains(shown), "{shown:?} missing: {pushed:#?}");
    }
    let listed = cli.expect(0, &["templates", "list", "-o", "json"]).await;
    let templates: Vec<provisionerd::sdk::Template> =
        serde_json::from_str(&listed.stdout).expect("templates as the API's JSON");
    assert_eq!(templates.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["boxes"]);

    let missing = cli.expect(2, &["ws", "create", "box1", "-t", "boxes", "-y"]).await;
    assert!(
        missing.stderr.contains("size (string): How big the box is; one of: small, large"),
        "{missing:#?}"
    );
    let created = cli
        .expect(0, &["ws", "create", "box1", "-t", "boxes", "--parameter", "size=large", "-y"])
        .await;
    for shown in [
        "==> ⧗ Queued",
        "=== ✔ Queued [",
        "==> ⧗ Starting workspace",
        "box is large",
        "✔ build #1 (start) succeeded in",
    ] {
        assert!(created.stdout.contains(shown), "{shown:?} missing: {created:#?}");
    }
    let list = cli.expect(0, &["ws", "list", "-o", "json"]).await;
    let workspaces: Vec<provisionerd::sdk::Workspace> =
        serde_json::from_str(&list.stdout).expect("workspaces as the API's JSON");
    assert_eq!(workspaces.len(), 1, "{list:#?}");
    assert_eq!(
        (workspaces[0].name.as_str(), workspaces[0].latest_build.status.as_str()),
        ("box1", "running")
    );
    let table = cli.expect(0, &["ws", "list"]).await;
    assert!(table.stdout.contains("box1") && table.stdout.contains("running"), "{table:#?}");

    let owner = &workspaces[0].owner_name;
    let stopped = cli.expect(0, &["ws", "stop", &format!("{owner}/box1"), "--yes"]).await;
    assert!(stopped.stdout.contains("✔ build #2 (stop) succeeded"), "{stopped:#?}");
    let logs = cli.expect(0, &["ws", "logs", "box1", "--build", "1"]).await;
    assert!(logs.stdout.contains("box is large"), "{logs:#?}");
    let builds = cli.expect(0, &["ws", "builds", "box1", "-o", "json"]).await;
    let builds: Vec<provisionerd::sdk::WorkspaceBuild> =
        serde_json::from_str(&builds.stdout).expect("builds as JSON");
    assert_eq!(builds.len(), 2);

    // The server's refusal: exit 1 with its message and validations.
    let refused = cli
        .expect(1, &["ws", "create", "box2", "-t", "boxes", "--parameter", "size=huge", "-y"])
        .await;
    assert!(refused.stderr.contains("size") && refused.stderr.contains("(400)"), "{refused:#?}");

    // A new active version makes the workspace outdated; update moves it.
    let v2 = cli.expect(0, &["templates", "push", "boxes", "-d", dir, "-y", "-m", "v2"]).await;
    assert!(v2.stdout.contains("is now active"), "{v2:#?}");
    let shown = cli.expect(0, &["ws", "show", "box1", "-o", "json"]).await;
    let w: provisionerd::sdk::Workspace = serde_json::from_str(&shown.stdout).expect("json");
    assert!(w.outdated, "{shown:#?}");
    let updated = cli.expect(0, &["ws", "update", "box1", "-y"]).await;
    assert!(updated.stdout.contains("✔ build #3 (start) succeeded"), "{updated:#?}");
    let restarted = cli.expect(0, &["ws", "restart", "box1", "-y"]).await;
    for shown in ["✔ build #4 (stop) succeeded", "✔ build #5 (start) succeeded"] {
        assert!(restarted.stdout.contains(shown), "{shown:?} missing: {restarted:#?}");
    }
    let kept =
        cli.expect(0, &["templates", "push", "boxes", "-d", dir, "-y", "--activate=false"]).await;
    assert!(kept.stdout.contains("active version is unchanged"), "{kept:#?}");
    let versions = cli.expect(0, &["templates", "versions", "boxes", "-o", "json"]).await;
    let versions: Vec<provisionerd::sdk::TemplateVersion> =
        serde_json::from_str(&versions.stdout).expect("versions as JSON");
    assert_eq!(versions.len(), 3);
    let table = cli.expect(0, &["templates", "versions", "boxes"]).await;
    assert_eq!(table.stdout.matches("active").count(), 1, "{table:#?}");

    // Logging in with a token (an API key or another session).
    let other = Cli::new(&server.url);
    let c = server.client().await;
    other.expect(0, &["login", &server.url, "--token", c.token()]).await;
    let who = other.expect(0, &["whoami", "-o", "json"]).await;
    assert!(who.stdout.contains(EMAIL), "{who:#?}");

    let unknown = cli.expect(1, &["ws", "show", "nope"]).await;
    assert!(unknown.stderr.contains("workspace \"nope\" not found"), "{unknown:#?}");
    let unknown = cli.expect(1, &["ws", "create", "x", "-t", "nope", "-y"]).await;
    assert!(unknown.stderr.contains("template \"nope\" not found"), "{unknown:#?}");
    cli.expect(0, &["ws", "delete", "box1", "-y"]).await;
    assert!(c.workspaces(None, None).await.expect("list").workspaces.is_empty());

    let bash = cli.expect(0, &["completion", "bash"]).await;
    assert!(bash.stdout.contains("provisionerd"), "{bash:#?}");
    cli.expect(2, &["ws", "bogus"]).await;

    // The environment overrides the stored session.
    let mut bad = cli.command(&["whoami"]);
    bad.env("PROVISIONERD_SESSION_TOKEN", "not-a-token");
    let out = bad.output().await.expect("whoami");
    assert_eq!(out.status.code(), Some(1), "a bad token from the environment is used");
    cli.expect(0, &["logout"]).await;
    assert!(!cli.file("session").exists(), "logout forgets the session");
    let out = cli.expect(1, &["whoami"]).await;
    assert!(out.stderr.contains("not logged in"), "{out:#?}");
}

/// A template terraform refuses and a build that fails both exit 1 with
/// terraform's error shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_1_with_terraforms_error() {
    let server = TestServer::start(Opts::default()).await;
    let cli = Cli::new(&server.url);
    cli.login().await;
    let broken = tempfile::tempdir().expect("dir");
    std::fs::write(
        broken.path().join("main.tf"),
        "resource \"terraform_data\" \"x\" {\n  bogus = 1\n}\n",
    )
    .expect("write");
    let run =
        cli.expect(1, &["templates", "push", "broken", "-d", path_str(broken.path()), "-y"]).await;
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("Unsupported argument"), "terraform's error is shown: {run:#?}");
    assert!(run.stdout.contains("✘ import of broken"), "{run:#?}");

    let failing = parameter_template("echo about to fail; exit 3");
    cli.expect(0, &["templates", "push", "failing", "-d", path_str(failing.path()), "-y"]).await;
    let run = cli
        .expect(1, &["ws", "create", "f1", "-t", "failing", "--parameter", "size=small", "-y"])
        .await;
    assert!(run.stdout.contains("about to fail"), "{run:#?}");
    assert!(run.stdout.contains("✘ build #1 (start) failed after"), "{run:#?}");
    assert!(run.stderr.contains("exit status 3") || run.stderr.contains("exit"), "{run:#?}");
}

/// Ctrl-C (SIGINT) while following detaches: exit 130, a hint how to
/// follow again or cancel, and the build still running on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_detaches_and_the_build_continues() {
    let server = TestServer::start(Opts::default()).await;
    let cli = Cli::new(&server.url);
    cli.login().await;
    let slow = harness::template_dir("slow");
    cli.expect(0, &["templates", "push", "slow", "-d", path_str(&slow), "-y"]).await;
    let mut child =
        cli.command(&["ws", "create", "s1", "-t", "slow", "-y"]).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("slow step started") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the build's output shows within 60s");
    assert!(seen, "the build's lines are followed live");
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the client exits after Ctrl-C")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("detached") && stderr.contains("ws cancel"), "{stderr}");
    let c = server.client().await;
    let w = c.workspace_by_owner_and_name("me", "s1").await.expect("workspace");
    assert_eq!(w.latest_build.job.status, "running", "the build goes on after detaching");
    // Following again replays the lines and waits for the end, which the
    // cancel brings: a canceled build exits 1.
    let mut again = cli.command(&["ws", "logs", "-f", "s1"]).spawn().expect("spawn");
    let mut lines = BufReader::new(again.stdout.take().expect("stdout")).lines();
    let replayed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("slow step started") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the replayed lines show within 60s");
    assert!(replayed, "logs -f replays the build's lines");
    let cancel = cli.expect(0, &["ws", "cancel", "s1", "-y"]).await;
    assert!(cancel.stdout.contains("canceling build #1"), "{cancel:#?}");
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        let mut rest = Vec::new();
        while let Some(line) = lines.next_line().await.expect("read") {
            rest.push(line);
        }
        rest.join("\n")
    })
    .await
    .expect("logs -f ends with the build");
    let status = again.wait().await.expect("logs -f exits");
    assert_eq!(status.code(), Some(1), "a canceled build exits 1: {rest}");
    assert!(rest.contains("✘ build #1 (start) canceled after"), "{rest}");
    let done = harness::wait_build(&c, w.latest_build.id, Duration::from_secs(60)).await;
    assert_eq!(done.job.status, "canceled");
}
