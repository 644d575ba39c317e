//! Test helpers shared by `tests/deploy.rs` (the `scripts/install-terraform`
//! checks) and `tests/it/tfinstall.rs` (the daemon's own install): a
//! HashiCorp-style release mirror served from a directory on loopback, and
//! throwaway gpg signing keys. Included with `#[path]` by both test crates.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// A static file server on loopback for `dir`, one request a connection,
/// in a thread that lives as long as the test process.
pub fn serve_dir(dir: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
            let body = (!path.contains("..")).then(|| std::fs::read(dir.join(path)).ok()).flatten();
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", b"not found\n".to_vec()),
            };
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    url
}

/// The architecture in HashiCorp's release file names.
pub fn release_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

pub fn gpg_installed() -> bool {
    std::process::Command::new("gpg").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Runs gpg on the keyring in `home`; a failure fails the test.
pub fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("gpg")
        .args(["--batch", "--homedir"])
        .arg(home)
        .args(args)
        .output()
        .expect("run gpg");
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A throwaway signing key in its own gpg home: the home and the path of
/// the armored public key.
pub fn signing_key(name: &str) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().expect("gpg home");
    let uid = format!("{name} <{name}@example.com>");
    gpg(home.path(), &["--passphrase", "", "--quick-gen-key", &uid, "ed25519", "sign", "never"]);
    let public = gpg(home.path(), &["--armor", "--export", &uid]);
    let path = home.path().join("public.asc");
    std::fs::write(&path, public.stdout).expect("write public key");
    (home, path)
}
