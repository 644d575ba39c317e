//! `--config FILE`: every flag can be set in a YAML file, and the order is
//! flags over environment over file. The real binary is run with a
//! terraform path that cannot exist, so the error it exits with names the
//! path that won.

use std::io::Write;

/// Runs `provisionerd start` with `args` and `env`; returns its stderr.
async fn start(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisionerd"))
        .arg("start")
        .args(args)
        .env_remove("PROVISIONERD_TERRAFORM_PATH")
        .env_remove("PROVISIONERD_CONFIG")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run provisionerd");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[tokio::test]
async fn flags_win_over_environment_over_the_file() {
    let f =
        file("terraform-path: /nonexistent/from-file\nurl: http://127.0.0.1:9\ntag: [a=b, c=d]\n");
    let path = f.path().to_str().expect("utf-8 path");

    let (ok, err) = start(&["--config", path], &[]).await;
    assert!(!ok && err.contains("/nonexistent/from-file"), "{err}");

    let env = [("PROVISIONERD_TERRAFORM_PATH", "/nonexistent/from-env")];
    let (ok, err) = start(&["--config", path], &env).await;
    assert!(!ok && err.contains("/nonexistent/from-env") && !err.contains("from-file"), "{err}");

    let flag = ["--config", path, "--terraform-path", "/nonexistent/from-flag"];
    let (ok, err) = start(&flag, &env).await;
    assert!(!ok && err.contains("/nonexistent/from-flag") && !err.contains("from-env"), "{err}");

    // The variable names the file too.
    let (ok, err) = start(&[], &[("PROVISIONERD_CONFIG", path)]).await;
    assert!(!ok && err.contains("/nonexistent/from-file"), "{err}");
}

#[tokio::test]
async fn a_bad_file_is_refused_with_what_is_wrong() {
    let f = file("terraform-paht: /x\n");
    let (ok, err) = start(&["--config", f.path().to_str().expect("path")], &[]).await;
    assert!(!ok && err.contains("unknown setting \"terraform-paht\""), "{err}");

    let f = file("concurrency: {a: 1}\n");
    let (ok, err) = start(&["--config", f.path().to_str().expect("path")], &[]).await;
    assert!(!ok && err.contains("concurrency must be a scalar"), "{err}");

    let (ok, err) = start(&["--config", "/nonexistent/provisionerd.yaml"], &[]).await;
    assert!(!ok && err.contains("cannot read --config"), "{err}");

    // A value of the wrong kind is refused by the flag's own parser.
    let f = file("terraform-path: /nonexistent/t\nconcurrency: many\n");
    let (ok, err) = start(&["--config", f.path().to_str().expect("path")], &[]).await;
    assert!(!ok && err.contains("many"), "{err}");
}
