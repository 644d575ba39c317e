//! Several server replicas on one PostgreSQL database: work queued through
//! one replica runs on a daemon connected to another, a cancel reaches the
//! daemon wherever it is, log followers on any replica get every line in
//! order, both replicas list the same daemons and accept the same session
//! token, and replicas starting together on an empty database both come up.
//!
//! These tests always need PostgreSQL, whatever `PROVISIONERD_TEST_STORE`
//! says: the server `PROVISIONERD_TEST_DATABASE_URL` names (`scripts/test`
//! starts one), or, without it, a throwaway cluster they start themselves
//! with `scripts/test-postgres`, as the store's PostgreSQL tests do. They
//! run in the default (SQLite) run of the suite and skip themselves in the
//! `PROVISIONERD_TEST_STORE=postgres` run, which would only repeat them.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use provisionerd::sdk::Client;

/// A new, empty database on the test PostgreSQL server; `None` (after
/// saying why) in the suite's PostgreSQL run, where these tests already ran.
async fn fresh_database() -> Option<String> {
    if postgres_store() {
        eprintln!(
            "skipped: the replica tests always run on PostgreSQL, in the default run of the suite"
        );
        return None;
    }
    Some(new_postgres_database().await)
}

/// A replica on `db` with this many built-in daemons (0: API only).
async fn replica(db: &str, builtin_daemons: u32) -> TestServer {
    TestServer::start(Opts {
        builtin_daemons,
        database_url: Some(db.to_owned()),
        ..Opts::default()
    })
    .await
}

/// A client of `server` with another replica's session token.
fn same_session(server: &TestServer, of: &Client) -> Client {
    Client::anonymous(reqwest::Client::new(), &server.url).with_token(of.token())
}

/// A template whose builds print `lines` numbered lines, a few at a time.
fn counting_template(lines: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let tf = format!(
        r#"resource "terraform_data" "count" {{
  provisioner "local-exec" {{
    command = "for i in $(seq 1 {lines}); do echo counted-$i; [ $((i % 20)) -eq 0 ] && sleep 0.1; done; true"
  }}
}}
"#
    );
    std::fs::write(dir.path().join("main.tf"), tf).expect("write main.tf");
    dir
}

/// A build created through replica A, which has no daemons, runs on the
/// daemon connected to replica B; both replicas list that daemon, and the
/// session token A issued works on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_created_on_one_replica_runs_on_a_daemon_of_another() {
    let Some(db) = fresh_database().await else { return };
    let api_only = replica(&db, 0).await;
    let with_daemon = replica(&db, 1).await;
    let ca = api_only.client().await;
    let cb = same_session(&with_daemon, &ca);
    assert_eq!(cb.user("me").await.expect("A's token on B").email, EMAIL);

    let listed = wait_for("both replicas to list B's daemon", Duration::from_secs(20), || async {
        let (a, b) = (ca.daemons("coder").await.ok()?, cb.daemons("coder").await.ok()?);
        let ids = |l: &[provisionerd::sdk::ProvisionerDaemon]| {
            l.iter().map(|d| (d.id, d.name.clone())).collect::<Vec<_>>()
        };
        (a.len() == 1 && ids(&a) == ids(&b)).then_some(a)
    })
    .await;
    assert!(listed[0].name.ends_with("-builtin-0"), "{listed:?}");

    let script = json!({ "logs": [{ "output": "from the other replica" }] });
    let dir = echo_template(&script);
    let (template, version) = create_template(&ca, dir.path(), "echo", plain).await;
    assert_eq!(version.job.status, "succeeded", "the import ran on B's daemon");
    let ws = create_workspace(&ca, template).await;
    let b = wait_build(&ca, ws.latest_build.id, Duration::from_secs(30)).await;
    assert_eq!(b.status, "running", "{b:?}");
    assert!(log_outputs(&ca, b.id).await.iter().any(|l| l == "from the other replica"));
    let seen = cb.build(b.id).await.expect("the build through B");
    assert_eq!(seen.job.status, "succeeded");
    with_daemon.stop().await;
    api_only.stop().await;
}

/// A cancel sent to the replica without daemons reaches the daemon on the
/// other one, which stops terraform: nothing of the job is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_one_replica_stops_terraform_on_the_other() {
    let Some(db) = fresh_database().await else { return };
    let runner = replica(&db, 1).await;
    let api_only = replica(&db, 0).await;
    let ca = runner.client().await;
    let cb = same_session(&api_only, &ca);
    let (template, _) = create_template(&cb, &template_dir("slow"), "terraform", plain).await;
    let ws = create_workspace(&cb, template).await;
    let build_id = ws.latest_build.id;
    let needle = format!("CODER_WORKSPACE_ID={}", ws.id);
    wait_for("the slow step to start", Duration::from_secs(60), || async {
        let logs = cb.build_logs(build_id, Default::default()).await.ok()?;
        logs.iter().any(|l| l.output.contains("slow step started")).then_some(())
    })
    .await;
    assert!(!processes_with_env(&needle).is_empty(), "terraform runs");
    assert_eq!(cancel_build(&cb, build_id).await, 200);
    let b = wait_build(&cb, build_id, Duration::from_secs(30)).await;
    assert_eq!(b.job.status, "canceled", "{b:?}");
    wait_for("every process of the job to exit", Duration::from_secs(15), || async {
        processes_with_env(&needle).is_empty().then_some(())
    })
    .await;
    api_only.stop().await;
    runner.stop().await;
}

/// A follower on the replica that does not run the build gets every line,
/// once, in order, as the replica that stored them lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_followed_through_the_other_replica_arrive_complete_and_in_order() {
    let Some(db) = fresh_database().await else { return };
    let runner = replica(&db, 1).await;
    let api_only = replica(&db, 0).await;
    let ca = runner.client().await;
    let cb = same_session(&api_only, &ca);
    let dir = counting_template(300);
    let (template, _) = create_template(&ca, dir.path(), "terraform", plain).await;
    let ws = create_workspace(&ca, template).await;
    let build_id = ws.latest_build.id;
    let mut followed = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        cb.follow_build_logs(build_id, None, |l| followed.push((l.id, l.output.into_owned()))),
    )
    .await
    .expect("the follow ends when the build does")
    .expect("follow through the other replica");
    let b = ca.build(build_id).await.expect("build");
    assert_eq!(b.job.status, "succeeded", "{b:?}");
    let stored: Vec<(i64, String)> = ca
        .build_logs(build_id, Default::default())
        .await
        .expect("logs")
        .into_iter()
        .map(|l| (l.id, l.output.into_owned()))
        .collect();
    assert_eq!(followed, stored, "the follower got every stored line once, in order");
    let counted: Vec<&str> = followed
        .iter()
        .map(|(_, o)| o.as_str())
        .filter(|o| o.contains("exec): counted-"))
        .collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("counted-{i}")).collect();
    assert_eq!(counted.len(), 300, "{counted:?}");
    for (line, want) in counted.iter().zip(&expected) {
        assert!(line.ends_with(want.as_str()), "{line} should be {want}");
    }
    api_only.stop().await;
    runner.stop().await;
}

/// A provisioner key deleted through one replica ends the session of the
/// daemon that uses it on the other, and both replicas stop listing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_disconnects_its_daemon_on_the_other() {
    let Some(db) = fresh_database().await else { return };
    let a = replica(&db, 0).await;
    let b = replica(&db, 0).await;
    let ca = a.client().await;
    let cb = same_session(&b, &ca);
    let req = provisionerd::sdk::CreateProvisionerKeyRequest {
        name: "edge".into(),
        tags: tags(&[("pool", "edge")]),
    };
    let key = ca.create_key("coder", &req).await.expect("create key").key;
    let daemon =
        crate::daemons::DaemonProcess::spawn_with(&b.url, "", &[], b.path(), &["--key", &key]);
    wait_for("both replicas to list the keyed daemon", Duration::from_secs(20), || async {
        let (la, lb) = (ca.daemons("coder").await.ok()?, cb.daemons("coder").await.ok()?);
        (la.len() == 1 && lb.len() == 1).then_some(())
    })
    .await;
    ca.delete_key("coder", "edge").await.expect("delete the key through A");
    daemon.wait_for_log("rejected this daemon's credentials").await;
    wait_for("neither replica to list it", Duration::from_secs(20), || async {
        let (la, lb) = (ca.daemons("coder").await.ok()?, cb.daemons("coder").await.ok()?);
        (la.is_empty() && lb.is_empty()).then_some(())
    })
    .await;
    b.stop().await;
    a.stop().await;
}

/// Two replicas started at the same moment on an empty database both
/// migrate (one waits for the other's lock) and serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_an_empty_database_both_come_up() {
    let Some(db) = fresh_database().await else { return };
    let (a, b) = tokio::join!(replica(&db, 0), replica(&db, 0));
    let (ca, cb) = tokio::join!(a.client(), b.client());
    assert_eq!(ca.user("me").await.expect("me on A").email, EMAIL);
    assert_eq!(cb.user("me").await.expect("me on B").email, EMAIL);
    b.stop().await;
    a.stop().await;
}
