//! Where the client keeps its session: `url` and `session` files under
//! `$XDG_CONFIG_HOME/provisionerd/` (mode 0600, directory 0700), with
//! `PROVISIONERD_URL` and `PROVISIONERD_SESSION_TOKEN` overriding them.
//! Only this module reads or writes those files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::sdk::Client;

pub const URL_ENV: &str = "PROVISIONERD_URL";
pub const TOKEN_ENV: &str = "PROVISIONERD_SESSION_TOKEN";

/// The client's config directory.
pub fn dir() -> anyhow::Result<PathBuf> {
    // `dirs` reads XDG_CONFIG_HOME and falls back to ~/.config.
    let base = dirs::config_dir()
        .context("cannot find a config directory: set XDG_CONFIG_HOME or HOME")?;
    Ok(base.join("provisionerd"))
}

fn read(name: &str) -> anyhow::Result<Option<String>> {
    let path = dir()?.join(name);
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a file readable by its owner only, also when it existed before
/// with looser permissions.
fn write(name: &str, value: &str) -> anyhow::Result<()> {
    let dir = dir()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(value.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The server URL: the environment's, else the stored one.
pub fn url() -> anyhow::Result<Option<String>> {
    match std::env::var(URL_ENV) {
        Ok(u) if !u.trim().is_empty() => Ok(Some(u.trim().to_owned())),
        _ => read("url"),
    }
}

/// The session token: the environment's, else the stored one.
pub fn token() -> anyhow::Result<Option<String>> {
    match std::env::var(TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
        _ => read("session"),
    }
}

/// Remembers a login.
pub fn save(url: &str, token: &str) -> anyhow::Result<()> {
    write("url", url)?;
    write("session", token)
}

/// Forgets the session token (the URL stays, for the next login).
pub fn forget() -> anyhow::Result<bool> {
    let path = dir()?.join("session");
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// An HTTP client for the API.
pub fn http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot set up the HTTP client")
}

/// A client logged in with the stored (or overridden) session.
pub fn client() -> anyhow::Result<Client> {
    let (Some(url), Some(token)) = (url()?, token()?) else {
        bail!("you are not logged in: run `provisionerd login <url>` first");
    };
    Ok(Client::anonymous(http()?, &url).with_token(&token))
}
