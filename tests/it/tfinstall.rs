//! `--terraform-version`: a daemon that finds no terraform installs
//! HashiCorp's release from a mirror into its cache dir, checked against
//! the SHA256SUMS file and (with gpg installed) the file's signature, and
//! refuses anything that does not match, installing nothing.
//!
//! The mirror is a static file server on loopback with HashiCorp's layout.
//! Its "release" is a small script that runs the test terraform, zipped and
//! listed in a SUMS file signed by a key made for the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "../common/release_mirror.rs"]
mod release_mirror;
use release_mirror::{gpg, gpg_installed, release_arch, serve_dir, signing_key};

use crate::daemons::DaemonProcess;
use crate::harness::*;

const VERSION: &str = "1.9.8";

/// A HashiCorp-style release mirror on loopback, with a signing key when
/// gpg is installed.
struct Mirror {
    dir: tempfile::TempDir,
    url: String,
    /// gpg home with a secret signing key, and its armored public key.
    signer: Option<(tempfile::TempDir, PathBuf)>,
}

impl Mirror {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("mirror dir");
        let url = serve_dir(dir.path().to_owned());
        let signer = gpg_installed().then(|| signing_key("release"));
        Self { dir, url, signer }
    }

    fn release_dir(&self) -> PathBuf {
        self.dir.path().join(VERSION)
    }

    fn zip_path(&self) -> PathBuf {
        self.release_dir().join(format!("terraform_{VERSION}_linux_{}.zip", release_arch()))
    }

    fn sums_path(&self) -> PathBuf {
        self.release_dir().join(format!("terraform_{VERSION}_SHA256SUMS"))
    }

    /// Writes the zip (a `terraform` that runs `script`) without touching
    /// the SUMS file.
    fn write_zip(&self, script: &str) {
        std::fs::create_dir_all(self.release_dir()).expect("release dir");
        let file = std::fs::File::create(self.zip_path()).expect("create zip");
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o755);
        zip.start_file("terraform", options).expect("zip entry");
        zip.write_all(script.as_bytes()).expect("zip write");
        zip.finish().expect("zip finish");
    }

    /// Lists the current zip in the SUMS file and signs it.
    fn write_sums(&self) {
        use sha2::Digest;
        let sum = hex::encode(sha2::Sha256::digest(std::fs::read(self.zip_path()).expect("zip")));
        let name = self.zip_path().file_name().expect("name").to_string_lossy().into_owned();
        let other = format!("terraform_{VERSION}_darwin_arm64.zip");
        std::fs::write(self.sums_path(), format!("{}  {other}\n{sum}  {name}\n", "0".repeat(64)))
            .expect("write sums");
        if let Some((home, _)) = &self.signer {
            let sig = format!("{}.sig", self.sums_path().display());
            let _ = std::fs::remove_file(&sig);
            let sums = self.sums_path();
            gpg(home.path(), &["--detach-sign", "-o", &sig, sums.to_str().expect("utf-8")]);
        }
    }

    /// A release whose terraform runs the test terraform.
    fn publish(&self) {
        self.write_zip(&format!("#!/bin/sh\nexec '{}' \"$@\"\n", terraform().display()));
        self.write_sums();
    }

    /// The daemon's settings for this mirror, as a `--config` file.
    fn config(&self, dir: &Path) -> PathBuf {
        let mut yaml =
            format!("terraform-version: \"{VERSION}\"\nterraform-mirror: {}\n", self.url);
        if let Some((_, key)) = &self.signer {
            yaml.push_str(&format!("terraform-signing-key: {}\n", key.display()));
        }
        let path = dir.join("provisionerd.yaml");
        std::fs::write(&path, yaml).expect("write config");
        path
    }
}

fn installed(cache: &Path) -> PathBuf {
    cache.join("terraform").join(VERSION).join("terraform")
}

/// Runs `provisionerd start` until it gives up before connecting; returns
/// its stderr.
async fn start_failing(mirror: &Mirror, dir: &Path) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .arg("start")
        .args(["--url", "http://127.0.0.1:9", "--psk", "unused-psk-0123456789"])
        .arg("--terraform-path")
        .arg(dir.join("no-terraform-here"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--config")
        .arg(mirror.config(dir))
        .env("NO_COLOR", "1")
        .env_remove("PROVISIONERD_CONFIG")
        .env_remove("PROVISIONERD_TERRAFORM_PATH")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the daemon gives up within a minute")
        .expect("run provisionerd");
    assert!(!out.status.success(), "the daemon started with a refused terraform");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing at the final path and no temporary file beside it.
fn assert_nothing_installed(cache: &Path) {
    assert!(!installed(cache).exists(), "a refused terraform was installed");
    let dir = cache.join("terraform").join(VERSION);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n != ".lock").collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "leftovers in {}: {left:?}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_installs_terraform_it_lacks_and_builds_with_it() {
    let mirror = Mirror::new();
    mirror.publish();
    let psk = "install-test-psk-0123456789";
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.into()), ..Opts::default() })
            .await;
    let c = server.client().await;
    let config = mirror.config(server.path());
    let missing = server.path().join("no-terraform-here");
    let extra = [
        "--terraform-path",
        missing.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ];
    let daemon = DaemonProcess::spawn_with(&server.url, psk, &["pool=ext"], server.path(), &extra);
    daemon.wait_for_log("installed terraform").await;
    let binary = installed(&server.path().join("cache"));
    assert!(binary.is_file(), "no terraform at {}", binary.display());
    if mirror.signer.is_none() {
        assert!(daemon.log_text().contains("signature is not checked"), "{}", daemon.log_text());
    }

    // A real build runs with the installed terraform.
    let (template, _) =
        create_template(&c, &template_dir("basic"), "terraform", tagged(&[("pool", "ext")])).await;
    let ws = create_workspace(&c, template).await;
    let b = wait_build(&c, ws.latest_build.id, Duration::from_secs(180)).await;
    assert_eq!(b.status, "running", "{b:?}");
    assert!(b.job.worker_id.is_some(), "the external daemon ran it: {b:?}");
    daemon.stop().await;

    // The next start finds it in the cache: no download even with the
    // mirror gone.
    std::fs::remove_dir_all(mirror.release_dir()).expect("empty the mirror");
    let daemon = DaemonProcess::spawn_with(&server.url, psk, &["pool=ext"], server.path(), &extra);
    daemon.wait_for_log("using terraform installed earlier").await;
    daemon.wait_for_log("connected to server").await;
    daemon.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_refuses_a_tampered_terraform_and_installs_nothing() {
    let mirror = Mirror::new();
    mirror.publish();
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");

    // The archive is swapped, the SUMS file left as it was.
    mirror.write_zip("#!/bin/sh\necho evil\n");
    let err = start_failing(&mirror, dir.path()).await;
    assert!(err.contains(&format!("refusing terraform {VERSION} from {}", mirror.url)), "{err}");
    assert!(err.contains("has sha256") && err.contains("nothing was installed"), "{err}");
    assert_nothing_installed(&cache);

    let Some((_, key)) = &mirror.signer else {
        eprintln!("gpg not installed: the signature cases are skipped");
        return;
    };
    // The archive and the SUMS file are swapped together: only the
    // signature can tell.
    let signature = std::fs::read(format!("{}.sig", mirror.sums_path().display())).expect("sig");
    mirror.write_sums();
    std::fs::write(format!("{}.sig", mirror.sums_path().display()), signature).expect("old sig");
    let err = start_failing(&mirror, dir.path()).await;
    assert!(err.contains("signature of") && err.contains("does not verify"), "{err}");
    assert_nothing_installed(&cache);

    // A SUMS file signed by another key is refused just the same.
    let (other, _) = signing_key("someone-else");
    let sums = mirror.sums_path();
    let sig = format!("{}.sig", sums.display());
    std::fs::remove_file(&sig).expect("remove sig");
    gpg(other.path(), &["--detach-sign", "-o", &sig, sums.to_str().expect("utf-8")]);
    let err = start_failing(&mirror, dir.path()).await;
    assert!(err.contains("does not verify"), "{err}");
    assert_nothing_installed(&cache);

    // No signature at all: refused while gpg is there to check one.
    std::fs::remove_file(&sig).expect("remove sig");
    let err = start_failing(&mirror, dir.path()).await;
    assert!(err.contains("has no signature"), "{err}");
    assert_nothing_installed(&cache);
    assert!(key.exists());
}

/// Daemons starting together on one cache dir each install (or reuse) the
/// release; the binary they end up with is whole, and no temporary file is
/// left beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_sharing_a_cache_install_without_corrupting_it() {
    let mirror = Mirror::new();
    mirror.publish();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = mirror.config(dir.path());
    let missing = dir.path().join("no-terraform-here");
    let extra = [
        "--terraform-path",
        missing.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ];
    // Nothing listens at the URL: the daemons resolve terraform, then keep
    // retrying the connection until they are dropped (killed).
    let daemons: Vec<_> = (0..3)
        .map(|_| {
            DaemonProcess::spawn_with(
                "http://127.0.0.1:9",
                "psk-0123456789ab",
                &[],
                dir.path(),
                &extra,
            )
        })
        .collect();
    for daemon in &daemons {
        daemon.wait_for_log("found terraform").await;
    }
    let downloads: usize = daemons.iter().map(|d| d.log_count("installed terraform")).sum();
    assert_eq!(downloads, 1, "one daemon downloads, the others wait for it");
    drop(daemons);
    let cache = dir.path().join("cache");
    let want = format!("#!/bin/sh\nexec '{}' \"$@\"\n", terraform().display());
    assert_eq!(std::fs::read_to_string(installed(&cache)).expect("installed"), want);
    let names: Vec<_> = std::fs::read_dir(cache.join("terraform").join(VERSION))
        .expect("version dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "leftovers beside the binary: {names:?}");
    assert!(names.contains(&".lock".into()), "{names:?}");
}
