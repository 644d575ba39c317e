//! The command-line client on a real terminal: a tmux session on a
//! private socket runs the binary as a person would, keys are typed with
//! `send-keys` and the screen is read with `capture-pane`. Covers the
//! login prompts (the password never shows), the first-user offer, a
//! confirmation, a followed build with its stage headers and spinner, and
//! Ctrl-C detaching while the build goes on.

use std::process::Command;
use std::time::Duration;

use crate::harness::{self, Opts, TestServer, EMAIL, PASSWORD};

/// A tmux server of its own, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(env: &[(&str, &str)]) -> Self {
        let socket = format!("provisionerd-cli-{}", uuid::Uuid::new_v4().simple());
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50"]);
        for (k, v) in env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        cmd.args(["bash", "--norc", "--noprofile"]).env("TERM", "xterm-256color");
        let status = cmd.status().expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    /// Types a line and presses Enter.
    fn type_line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    /// The visible screen with its colours as escape codes.
    fn colored_screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-e"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J", "-S", "-"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`, returning the screen.
    async fn wait_for(&self, text: &str, timeout: Duration) -> String {
        harness::wait_for(&format!("{text:?} on the terminal"), timeout, || async {
            let screen = self.screen();
            screen.contains(text).then_some(screen)
        })
        .await
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_and_follows_a_build_on_a_terminal() {
    let server = TestServer::start(Opts::default()).await;
    let config = tempfile::tempdir().expect("config");
    let bin = env!("CARGO_BIN_EXE_provisionerd");
    let config_dir = config.path().to_str().expect("utf-8");
    let tf_config = std::env::var("TF_CLI_CONFIG_FILE").unwrap_or_default();
    let tmux = Tmux::start(&[("XDG_CONFIG_HOME", config_dir), ("TF_CLI_CONFIG_FILE", &tf_config)]);
    let long = Duration::from_secs(60);

    tmux.type_line(&format!("{bin} login {}", server.url));
    tmux.wait_for("Email:", long).await;
    tmux.type_line(EMAIL);
    tmux.wait_for("Password:", long).await;
    tmux.type_line(PASSWORD);
    tmux.wait_for("no user yet", long).await;
    tmux.type_line("y");
    tmux.wait_for("Username [owner]:", long).await;
    tmux.type_line("");
    let screen = tmux.wait_for("logged in to", long).await;
    assert!(!screen.contains(PASSWORD), "the password showed on the terminal:\n{screen}");

    // Missing parameters are asked for, with description and options.
    let boxes = crate::cli::parameter_template("echo box is ${self.input}");
    tmux.type_line(&format!("{bin} templates push boxes -d {} -y", boxes.path().display()));
    tmux.wait_for("created template boxes", long).await;
    tmux.type_line(&format!("{bin} ws create p1 -t boxes"));
    let screen = tmux.wait_for("value:", long).await;
    assert!(screen.contains("How big the box is"), "the description shows:\n{screen}");
    assert!(screen.contains("2) Large (large)"), "the options show:\n{screen}");
    tmux.type_line("2");
    tmux.wait_for("Create workspace p1 from template boxes? [y/N]", long).await;
    tmux.type_line("y");
    tmux.wait_for("box is large", long).await;
    tmux.wait_for("✔ build #1 (start) succeeded", long).await;

    // Colours on a terminal, none with NO_COLOR. The end markers are
    // computed by the shell so the typed command line does not match them.
    tmux.type_line(&format!("clear; {bin} ws logs p1; echo colored-$((1+1))"));
    tmux.wait_for("colored-2", long).await;
    let colored = tmux.colored_screen();
    assert!(colored.contains("\x1b[1m"), "headers are bold on a terminal:\n{colored}");
    tmux.type_line(&format!("clear; NO_COLOR=1 {bin} ws logs p1; echo plain-$((1+1))"));
    tmux.wait_for("plain-2", long).await;
    let plain = tmux.colored_screen();
    assert!(plain.contains("=== ✔ Setting up"), "{plain}");
    assert!(!plain.contains("\x1b[1m") && !plain.contains("\x1b[3"), "NO_COLOR:\n{plain}");

    let slow = harness::template_dir("slow");
    tmux.type_line(&format!("{bin} templates push slow -d {} -y", slow.display()));
    tmux.wait_for("created template slow", long).await;
    tmux.type_line(&format!("{bin} ws create s1 -t slow"));
    tmux.wait_for("Create workspace s1 from template slow? [y/N]", long).await;
    tmux.type_line("y");
    let screen = tmux.wait_for("slow step started", long).await;
    assert!(screen.contains("==> ⧗ Setting up"), "stage headers show:\n{screen}");
    assert!(screen.contains("=== ✔ Setting up ["), "a stage's time shows when it ends:\n{screen}");
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("detached", long).await;
    assert!(screen.contains("ws logs -f owner/s1"), "how to follow again:\n{screen}");

    let c = server.client().await;
    let w = c.workspace_by_owner_and_name("me", "s1").await.expect("workspace");
    assert_eq!(w.latest_build.job.status, "running", "the build goes on after Ctrl-C");
    c.cancel_build(w.latest_build.id).await.expect("cancel");
    harness::wait_build(&c, w.latest_build.id, long).await;
}
