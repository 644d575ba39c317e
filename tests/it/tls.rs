//! TLS on the server's port (REST and gRPC) with a generated certificate,
//! and a daemon that trusts it through `--ca-cert`.

use std::time::Duration;

use provisionerd::server::TlsFiles;
use serde_json::json;

use crate::daemons::DaemonProcess;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_for_the_api_and_the_daemon_connection() {
    let certs = tempfile::tempdir().expect("dir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(&key, generated.key_pair.serialize_pem()).expect("write key");

    let psk = format!("tls-test-{}", uuid::Uuid::new_v4().simple());
    let tls = TlsFiles { cert: cert.clone(), key };
    let server =
        TestServer::start(Opts { psk: Some(psk.clone()), tls: Some(tls), ..Opts::default() }).await;
    assert!(server.url.starts_with("https://"));

    let untrusted = reqwest::Client::new().get(format!("{}/healthz", server.url)).send().await;
    assert!(untrusted.is_err(), "a client that does not trust the certificate is refused");
    let ca = reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).expect("ca");
    let http = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
    let c = provisionerd::sdk::Client::login_with(http, &server.url, EMAIL, PASSWORD)
        .await
        .expect("login over TLS");

    // The built-in daemon (on its loopback listener) runs untagged work...
    let echo = echo_template(&json!({}));
    let (template, _) = create_template(&c, echo.path(), "echo", plain).await;
    let ws = create_workspace(&c, template).await;
    let b = wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "running", "{b:?}");

    // ...and an external daemon reaches the server over TLS with the CA.
    let ca_arg = cert.display().to_string();
    let daemon = DaemonProcess::spawn_with(
        &server.url,
        &psk,
        &["pool=tls"],
        server.path(),
        &["--ca-cert", &ca_arg],
    );
    let (with_tags, _) = create_template(&c, echo.path(), "echo", tagged(&[("pool", "tls")])).await;
    let ws = create_workspace(&c, with_tags).await;
    let b = wait_build(&c, ws.latest_build.id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "running", "{b:?}");
    daemon.stop().await;
    server.stop().await;
}
