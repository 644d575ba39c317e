//! Installs HashiCorp's terraform release into a daemon's cache directory
//! when the daemon finds no usable terraform (`--terraform-version`), as
//! Coder's provisioner does.
//!
//! The download follows HashiCorp's release layout
//! (`{mirror}/{V}/terraform_{V}_linux_{arch}.zip` and
//! `terraform_{V}_SHA256SUMS`), the same as `scripts/install-terraform`. The
//! archive must match the SUMS file, and when `gpg` is installed the SUMS
//! file's detached signature must verify against HashiCorp's release key
//! (vendored as `deploy/hashicorp.asc`, or another key for a re-signed
//! mirror). Anything that does not match is refused before a byte lands in
//! the cache. The binary is written to a temporary file beside its final
//! name and renamed over it, so daemons sharing a cache directory never see
//! (or run) a half-written terraform.
//!
//! This module does not decide when to install: [`resolve`] is called once
//! at start, before the daemon connects.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::executor::{self, ExecError, Version};

/// HashiCorp's releases site, the default mirror.
pub const DEFAULT_MIRROR: &str = "https://releases.hashicorp.com/terraform";

/// HashiCorp's release signing key, fingerprint
/// C874 011F 0AB4 0511 0D02 1055 3436 5D94 72D7 468F.
pub const HASHICORP_KEY: &str = include_str!("../../deploy/hashicorp.asc");

/// The largest archive or binary accepted: terraform's zip is about 30 MB
/// and its binary about 90 MB; a mirror cannot make the daemon fill memory
/// or disk beyond this.
const MAX_BYTES: u64 = 512 << 20;

/// What to install and from where.
#[derive(Debug, Clone)]
pub struct Install {
    /// Release version, `X.Y.Z` (checked by [`parse_version`]).
    pub version: String,
    /// Base URL of a copy of HashiCorp's release layout.
    pub mirror: String,
    /// Where versions are installed (`{dir}/{version}/terraform`).
    pub dir: PathBuf,
    /// An armored OpenPGP public key that signs the SUMS file instead of
    /// HashiCorp's (for a mirror that re-signs releases).
    pub signing_key: Option<PathBuf>,
}

/// Why terraform could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot download {url}: {detail}")]
    Download { url: String, detail: String },
    #[error("refusing terraform {version} from {mirror}: {detail}; nothing was installed")]
    Refused { version: String, mirror: String, detail: String },
    #[error("cannot install terraform into {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot read the signing key {}: {source}", path.display())]
    Key { path: PathBuf, source: std::io::Error },
    #[error("terraform was installed to {} but does not run: {source}", path.display())]
    Check { path: PathBuf, source: ExecError },
}

/// Checks a `--terraform-version` value: it becomes part of URLs and paths.
pub fn parse_version(s: &str) -> Result<String, String> {
    let (core, pre) = s.split_once('-').unwrap_or((s, ""));
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let pre_ok = pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    if parts.len() == 3 && parts.iter().all(numeric) && pre_ok && !s.ends_with('-') {
        Ok(s.to_owned())
    } else {
        Err(format!("terraform version {s:?} is not of the form X.Y.Z (e.g. 1.9.8)"))
    }
}

/// HashiCorp's name for this machine's architecture.
fn release_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        _ => "amd64",
    }
}

/// The terraform to run: `path` when it runs and is recent enough, else
/// the version `install` names, installed into the cache when it is not
/// there yet. Returns the executable and its version.
pub async fn resolve(
    path: &Path,
    install: Option<&Install>,
) -> Result<(PathBuf, Version), ResolveError> {
    let found = executor::version(path).await;
    let (Err(e), Some(install)) = (&found, install) else {
        return found.map(|v| (path.to_owned(), v)).map_err(ResolveError::Exec);
    };
    tracing::info!(error = %e, version = %install.version, "no usable terraform: installing one");
    let installed = install.ensure().await?;
    let version = executor::version(&installed)
        .await
        .map_err(|source| InstallError::Check { path: installed.clone(), source })?;
    Ok((installed, version))
}

/// Why no terraform could be found or installed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Exec(ExecError),
    #[error(transparent)]
    Install(#[from] InstallError),
}

impl Install {
    /// Where this version's binary lives.
    pub fn target(&self) -> PathBuf {
        self.dir.join(&self.version).join("terraform")
    }

    /// Installs the version unless an earlier start (of this or another
    /// daemon sharing the cache) already did; returns the binary's path.
    pub async fn ensure(&self) -> Result<PathBuf, InstallError> {
        let target = self.target();
        if executor::version(&target).await.is_ok() {
            tracing::info!(path = %target.display(), "using terraform installed earlier");
            return Ok(target);
        }
        // One download per cache: daemons starting together wait for the
        // first, then use what it installed.
        let _lock = self.lock().await?;
        if executor::version(&target).await.is_ok() {
            tracing::info!(path = %target.display(), "using terraform another daemon installed");
            return Ok(target);
        }
        let zip_name = format!("terraform_{}_linux_{}.zip", self.version, release_arch());
        let sums_name = format!("terraform_{}_SHA256SUMS", self.version);
        let base = format!("{}/{}", self.mirror.trim_end_matches('/'), self.version);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| InstallError::Download { url: base.clone(), detail: e.to_string() })?;
        let sums = fetch(&client, &format!("{base}/{sums_name}")).await?.ok_or_else(|| {
            self.refused(format!("the mirror has no {sums_name} (is the version right?)"))
        })?;
        self.check_signature(&client, &base, &sums_name, &sums).await?;
        let want = sums_entry(&sums, &zip_name)
            .ok_or_else(|| self.refused(format!("{sums_name} lists no {zip_name}")))?;
        let zip = fetch(&client, &format!("{base}/{zip_name}"))
            .await?
            .ok_or_else(|| self.refused(format!("the mirror has no {zip_name}")))?;
        let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&zip));
        if !got.eq_ignore_ascii_case(&want) {
            return Err(
                self.refused(format!("{zip_name} has sha256 {got} but {sums_name} says {want}"))
            );
        }
        let dest = target.clone();
        let refused = |detail: String| self.refused(detail);
        tokio::task::spawn_blocking(move || unpack(&zip, &dest))
            .await
            .map_err(|e| refused(format!("unpacking panicked: {e}")))?
            .map_err(|e| match e {
                Unpack::Io(source) => InstallError::Io { path: target.clone(), source },
                Unpack::Bad(detail) => refused(format!("{zip_name}: {detail}")),
            })?;
        tracing::info!(version = %self.version, sha256 = %got, path = %target.display(), "installed terraform");
        Ok(target)
    }

    /// An exclusive lock on `{dir}/{version}/.lock`, held until dropped.
    async fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, InstallError> {
        let dir = self.dir.join(&self.version);
        let path = dir.join(".lock");
        let io = |source| InstallError::Io { path: path.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let locked = tokio::task::spawn_blocking(move || {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, errno)| std::io::Error::from(errno))
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        locked.map_err(io)
    }

    fn refused(&self, detail: String) -> InstallError {
        InstallError::Refused { version: self.version.clone(), mirror: self.mirror.clone(), detail }
    }

    /// With gpg installed, the SUMS file must carry a good signature by the
    /// key; without gpg the checksum is all that is checked, said in the log.
    async fn check_signature(
        &self,
        client: &reqwest::Client,
        base: &str,
        sums_name: &str,
        sums: &[u8],
    ) -> Result<(), InstallError> {
        if !gpg_installed().await {
            tracing::warn!(
                "gpg is not installed: the SHA256SUMS signature is not checked, only the checksums"
            );
            return Ok(());
        }
        let key = match &self.signing_key {
            Some(path) => std::fs::read(path)
                .map_err(|source| InstallError::Key { path: path.clone(), source })?,
            None => HASHICORP_KEY.as_bytes().to_vec(),
        };
        // HashiCorp publishes the signature by this key under its short id
        // as well as the plain name; a mirror may copy either.
        let mut signature = None;
        for name in [format!("{sums_name}.72D7468F.sig"), format!("{sums_name}.sig")] {
            if let Some(sig) = fetch(client, &format!("{base}/{name}")).await? {
                signature = Some(sig);
                break;
            }
        }
        let signature = signature
            .ok_or_else(|| self.refused(format!("the mirror has no signature {sums_name}.sig")))?;
        verify_signature(&key, &signature, sums)
            .await
            .map_err(|detail| self.refused(format!("the signature of {sums_name} {detail}")))
    }
}

/// The body of `url`, `None` on 404, an error on anything else.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Option<Vec<u8>>, InstallError> {
    let failed = |detail: String| InstallError::Download { url: url.to_owned(), detail };
    let mut response = client.get(url).send().await.map_err(|e| failed(e.to_string()))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_BYTES {
            return Err(failed(format!("larger than {} MiB", MAX_BYTES >> 20)));
        }
    }
    Ok(Some(body))
}

/// The checksum a SUMS file gives for `name` (`<hex>  <name>` lines, the
/// name possibly marked binary with `*`).
fn sums_entry(sums: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(sums).lines().find_map(|line| {
        let (sum, file) = line.split_once(char::is_whitespace)?;
        let file = file.trim_start();
        (file.strip_prefix('*').unwrap_or(file) == name && sum.len() == 64).then(|| sum.to_owned())
    })
}

async fn gpg_installed() -> bool {
    tokio::process::Command::new("gpg")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Verifies a detached signature with gpg in a throwaway home holding only
/// `key`, so neither the user's keyring nor an agent is involved.
async fn verify_signature(key: &[u8], signature: &[u8], signed: &[u8]) -> Result<(), String> {
    let home = tempfile::tempdir().map_err(|e| format!("cannot be checked: {e}"))?;
    let file = |name: &str, bytes: &[u8]| {
        let path = home.path().join(name);
        std::fs::write(&path, bytes).map(|()| path).map_err(|e| format!("cannot be checked: {e}"))
    };
    let (key, sig, sums) =
        (file("key.asc", key)?, file("sums.sig", signature)?, file("sums", signed)?);
    let keyring = home.path().join("keyring.gpg");
    let gpg = |args: &[&std::ffi::OsStr]| {
        let mut cmd = tokio::process::Command::new("gpg");
        cmd.args(["--batch", "--no-autostart", "--homedir"]).arg(home.path()).args(args);
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        cmd
    };
    let dearmor = gpg(&["--dearmor".as_ref(), "-o".as_ref(), keyring.as_os_str(), key.as_os_str()])
        .output()
        .await
        .map_err(|e| format!("cannot be checked: gpg: {e}"))?;
    if !dearmor.status.success() {
        return Err(format!(
            "cannot be checked: the signing key is not an OpenPGP key ({})",
            stderr(&dearmor)
        ));
    }
    let verify = gpg(&[
        "--no-default-keyring".as_ref(),
        "--keyring".as_ref(),
        keyring.as_os_str(),
        "--trust-model".as_ref(),
        "always".as_ref(),
        "--status-fd".as_ref(),
        "1".as_ref(),
        "--verify".as_ref(),
        sig.as_os_str(),
        sums.as_os_str(),
    ])
    .output()
    .await
    .map_err(|e| format!("cannot be checked: gpg: {e}"))?;
    let status = String::from_utf8_lossy(&verify.stdout);
    if verify.status.success() && status.contains("[GNUPG:] VALIDSIG") {
        Ok(())
    } else {
        Err(format!("does not verify against the signing key ({})", stderr(&verify)))
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).split_whitespace().collect::<Vec<_>>().join(" ")
}

enum Unpack {
    Io(std::io::Error),
    Bad(String),
}

/// Writes the archive's `terraform` entry to `dest`: into a temporary file
/// in the same directory first, made executable and synced, then renamed
/// over `dest` (atomic, so a concurrent reader sees the old or the new
/// file, never a part).
fn unpack(zip: &[u8], dest: &Path) -> Result<(), Unpack> {
    use std::os::unix::fs::PermissionsExt;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| Unpack::Bad(e.to_string()))?;
    let mut entry = archive
        .by_name("terraform")
        .map_err(|_| Unpack::Bad("no terraform binary in it".into()))?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Unpack::Io)?;
    let mut tmp =
        tempfile::Builder::new().prefix(".terraform.").tempfile_in(dir).map_err(Unpack::Io)?;
    let mut limited = (&mut entry).take(MAX_BYTES + 1);
    let written = std::io::copy(&mut limited, tmp.as_file_mut()).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Unpack::Bad(e.to_string()),
        _ => Unpack::Io(e),
    })?;
    if written > MAX_BYTES {
        return Err(Unpack::Bad(format!("the binary is larger than {} MiB", MAX_BYTES >> 20)));
    }
    tmp.as_file_mut().flush().map_err(Unpack::Io)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o755)).map_err(Unpack::Io)?;
    tmp.as_file().sync_all().map_err(Unpack::Io)?;
    // Closed before the rename: a file still open for writing cannot be
    // executed (ETXTBSY), and another daemon may run it the moment it has
    // its final name.
    let closed = tmp.into_temp_path();
    closed.persist(dest).map_err(|e| Unpack::Io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked_before_they_reach_urls() {
        for good in ["1.9.8", "1.10.0-rc1", "1.6.0-alpha20230816"] {
            assert_eq!(parse_version(good).as_deref(), Ok(good));
        }
        for bad in ["", "1.9", "1.9.8/../x", "../1.9.8", "1.9.8-", "v1.9.8", "1.9.8-a/b", "1..8"] {
            assert!(parse_version(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sums_entries_are_found_by_exact_name() {
        let sums = format!(
            "{a}  terraform_1.9.8_linux_amd64.zip.sig\n{b} *terraform_1.9.8_linux_amd64.zip\n",
            a = "a".repeat(64),
            b = "b".repeat(64)
        );
        assert_eq!(
            sums_entry(sums.as_bytes(), "terraform_1.9.8_linux_amd64.zip"),
            Some("b".repeat(64))
        );
        assert_eq!(sums_entry(sums.as_bytes(), "terraform_1.9.8_linux_arm64.zip"), None);
    }

    #[test]
    fn the_vendored_key_is_hashicorps() {
        assert!(HASHICORP_KEY.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        assert!(HASHICORP_KEY.trim_end().ends_with("-----END PGP PUBLIC KEY BLOCK-----"));
    }
}
