//! Faults real terraform does not produce on demand, injected with the fakes
//! in `testdata/fake-terraform`: a terraform that ignores SIGINT, one that
//! crashes mid-apply. And, with real terraform, what its environment holds.

use std::time::Duration;

use crate::daemons::DaemonProcess;
use crate::harness::*;

fn any_template() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("main.tf"), "# used with a fake terraform\n").expect("write");
    dir
}

async fn log_text(c: &provisionerd::sdk::Client, build_id: uuid::Uuid) -> Vec<String> {
    log_outputs(c, build_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_ignoring_sigint_is_killed_after_the_grace() {
    let opts = Opts {
        terraform: Some(fake_terraform("terraform-ignores-sigint")),
        cancel_grace: Duration::from_secs(1),
        // Heartbeats as slow as in production: a cancel that waited for the
        // next heartbeat would miss the one-second bound below.
        heartbeat_interval: Duration::from_secs(5),
        ..Opts::default()
    };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let dir = any_template();
    let (template, _) = create_template(&c, dir.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let needle = format!("CODER_WORKSPACE_ID={}", ws.id);
    let build_id = ws.latest_build.id;
    wait_for("the fake apply to start", Duration::from_secs(30), || async {
        log_text(&c, build_id).await.iter().any(|l| l.contains("fake apply started")).then_some(())
    })
    .await;
    let marker = std::env::temp_dir().join(format!("fake-terraform-sigint-{}", ws.id));
    let _ = std::fs::remove_file(&marker);
    let asked = std::time::SystemTime::now();
    assert_eq!(cancel_build(&c, build_id).await, 200);
    let b = wait_build(&c, build_id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "canceled", "{b:?}");
    let got: u128 = std::fs::read_to_string(&marker)
        .expect("the fake recorded SIGINT")
        .trim()
        .parse()
        .expect("nanos");
    let asked = asked.duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let _ = std::fs::remove_file(&marker);
    let delay = Duration::from_nanos(got.saturating_sub(asked) as u64);
    eprintln!("cancel request to SIGINT in terraform: {delay:?}");
    assert!(
        delay < Duration::from_secs(1),
        "SIGINT reached terraform {delay:?} after the cancel request"
    );
    let logs = log_text(&c, build_id).await;
    assert!(
        logs.iter().any(|l| l.contains("killed after ignoring SIGINT")),
        "the last line says terraform was killed: {logs:?}"
    );
    wait_for("the fake and its background child to be gone", Duration::from_secs(10), || async {
        processes_with_env(&needle).is_empty().then_some(())
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_terraform_fails_the_build_and_keeps_partial_state() {
    let opts =
        Opts { terraform: Some(fake_terraform("terraform-crashes-on-start")), ..Opts::default() };
    let server = TestServer::start(opts).await;
    let c = server.client().await;
    let dir = any_template();
    let (template, _) = create_template(&c, dir.path(), "terraform", plain).await;
    let ws = create_workspace(&c, template).await;
    let build_id = ws.latest_build.id;
    let b = wait_build(&c, build_id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "failed", "{b:?}");
    let error = b.job.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("terraform apply failed") && error.contains("killed by signal 9"),
        "{error}"
    );
    let state = build_state(&c, build_id).await;
    assert!(state.contains("partial-state-before-crash"), "the partial state was stored: {state}");

    let next = build(&c, ws.id, "stop").await;
    let next = wait_build(&c, next.id, Duration::from_secs(30)).await;
    assert_eq!(next.status, "stopped", "a build runs after the crash: {next:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_never_sees_the_daemons_secrets() {
    let psk = format!("env-test-psk-{}", uuid::Uuid::new_v4().simple());
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.clone()), ..Opts::default() })
            .await;
    let c = server.client().await;
    let env = [
        ("PROVISIONERD_SOMETHING", "daemon-only-value"),
        ("CODER_AGENT_TOKEN", "agent-token-of-the-host"),
        ("PGPASSWORD", "database-password"),
        ("UNRELATED_SETTING", "passes-through"),
    ];
    let daemon = DaemonProcess::spawn_env(&server.url, &psk, &[], server.path(), &[], &env);
    let dump = server.path().join("terraform-env.txt");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("main.tf"),
        r#"variable "dump" {
  type = string
}

resource "terraform_data" "env" {
  provisioner "local-exec" {
    command = "env > ${var.dump}"
  }
}
"#,
    )
    .expect("write");
    let dump_path = dump.display().to_string();
    let vars = with_vars(&[("dump", &dump_path)]);
    let (template, _) = create_template(&c, dir.path(), "terraform", vars).await;
    let ws = create_workspace(&c, template).await;
    let b = wait_build(&c, ws.latest_build.id, Duration::from_secs(120)).await;
    assert_eq!(b.status, "running", "{b:?}");
    let seen = std::fs::read_to_string(&dump).expect("environment dump");
    assert!(seen.lines().any(|l| l == "TF_IN_AUTOMATION=1"));
    assert!(seen.lines().any(|l| l == format!("CODER_WORKSPACE_ID={}", ws.id)));
    assert!(
        seen.lines().any(|l| l == "UNRELATED_SETTING=passes-through"),
        "the rest of the environment passes"
    );
    assert!(
        !seen.lines().any(|l| l.starts_with("PROVISIONERD_")),
        "no PROVISIONERD_* variable: {seen}"
    );
    assert!(!seen.contains(&psk), "the PSK is nowhere in terraform's environment");
    for secret in ["agent-token-of-the-host", "database-password"] {
        assert!(!seen.contains(secret), "{secret} leaked into terraform's environment");
    }
    daemon.stop().await;
    server.stop().await;
}
