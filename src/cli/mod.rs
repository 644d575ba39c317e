//! The command-line client: `login`, `logout`, `whoami`, `templates`,
//! `workspaces` (`ws`) and `completion`. It talks to a server only through
//! the typed SDK ([`crate::sdk`]), as any other client would.
//!
//! Exit codes: 0 when the command did what was asked, 1 when the server
//! refused, a build failed or was canceled, or a name is unknown, 2 for
//! usage errors (clap's, a missing `--yes` or parameter without a
//! terminal), 130 when Ctrl-C detached from a build that goes on.

/// `println!` that ends the process quietly when stdout is closed (a
/// `| head`), instead of panicking on the broken pipe.
macro_rules! say {
    ($($t:tt)*) => { $crate::cli::output::say(format_args!($($t)*)) };
}

pub mod args;
mod follow;
mod login;
mod output;
mod params;
mod session;
mod show;
mod templates;
mod workspaces;

use std::process::ExitCode;

pub use args::ClientCommand;

/// An error the user fixes by changing the command line: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Ctrl-C while following a build: the build continues; exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("detached from the build")]
pub struct Detached;

/// Runs a client command and maps its outcome to the exit code.
pub async fn run(cmd: ClientCommand) -> ExitCode {
    match dispatch(cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Detached>() => ExitCode::from(130),
        Err(e) => {
            eprintln!("{}", output::render_error(&e));
            if e.is::<Usage>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn dispatch(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Login(a) => login::login(a).await,
        ClientCommand::Logout => login::logout().await,
        ClientCommand::Whoami(o) => login::whoami(o).await,
        ClientCommand::Templates(t) => templates::run(t).await,
        ClientCommand::Workspaces(w) => workspaces::run(w).await,
        ClientCommand::Completion { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::config::Cli::command();
            clap_complete::generate(shell, &mut cmd, "provisionerd", &mut std::io::stdout());
            Ok(())
        }
    }
}
