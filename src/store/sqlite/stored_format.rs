//! The SQLite backend against a database as the store wrote it before the
//! JSON columns had types of their own: rows holding `store::stored`'s
//! fixtures byte for byte read back through the `Store` trait, and what the
//! store writes for the same values is the same bytes, so an existing
//! database keeps working and keeps its format.

use sqlx::Row;
use uuid::Uuid;

use super::{jobs, SqliteStore};
use crate::domain::job_state::Reporter;
use crate::domain::{Job, JobOutcome, Provisioner, Role};
use crate::store::stored::tests::{IMPORT, INPUT_IMPORT, RESOURCE, ROLES, TAGS};
use crate::store::stored::{decode_import, decode_resource, decode_tags};
use crate::store::{AcquireRequest, CompleteResult, Store};

const T: &str = "2026-01-01T00:00:00.000000Z";

async fn exec(store: &SqliteStore, sql: &'static str, binds: &[&str]) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&store.pool).await.expect(sql);
}

async fn column(store: &SqliteStore, sql: &'static str, id: Uuid) -> String {
    let row = sqlx::query(sql).bind(id.to_string()).fetch_one(&store.pool).await.expect(sql);
    row.get(0)
}

#[tokio::test]
async fn json_columns_of_an_existing_database_read_and_write_the_same_bytes() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("old.db");
    let store = SqliteStore::open(path.to_str().expect("utf-8 path")).await.expect("open");
    let (user, file, old_job) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (user_s, file_s, old_s) = (user.to_string(), file.to_string(), old_job.to_string());
    exec(
        &store,
        "INSERT INTO users (id, username, email, name, password_hash, rbac_roles, created_at)
         VALUES (?, 'boss', 'boss@example.com', '', 'x', ?, ?)",
        &[&user_s, ROLES, T],
    )
    .await;
    exec(
        &store,
        "INSERT INTO files (id, hash, mimetype, data, created_by, created_at)
         VALUES (?, 'ab', 'application/x-tar', x'00', ?, ?)",
        &[&file_s, &user_s, T],
    )
    .await;
    exec(
        &store,
        "INSERT INTO provisioner_jobs (id, job_type, provisioner, organization_id, initiator_id,
            file_id, input, tags, created_at, updated_at, started_at, completed_at)
         VALUES (?1, 'template_version_import', 'echo', ?2, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?6)",
        &[&old_s, &user_s, &file_s, INPUT_IMPORT, TAGS, T],
    )
    .await;
    exec(&store, "INSERT INTO provisioner_job_log_keys (job_id) VALUES (?)", &[&old_s]).await;
    exec(
        &store,
        "INSERT INTO workspace_resources (id, job_id, transition, created_at, position, resource)
         VALUES (?, ?, 'start', ?, 0, ?)",
        &[&Uuid::new_v4().to_string(), &old_s, T, RESOURCE],
    )
    .await;
    exec(
        &store,
        "INSERT INTO template_version_imports (job_id, result) VALUES (?, ?)",
        &[&old_s, IMPORT],
    )
    .await;

    // Read through the store, every value is there.
    let roles = store.user_by_id(user).await.expect("user").roles;
    assert_eq!(roles, [Role::Owner, Role::TemplateAdmin, Role::UserAdmin]);
    let old = store.job(old_job).await.expect("job");
    assert_eq!(old.tags, decode_tags(TAGS).expect("tags"));
    assert_eq!(old.input["kind"], "template_version_import");
    assert_eq!(old.input["user_variable_values"][0]["name"], "v");
    let resources = store.resources_of_job(old_job).await.expect("resources");
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].resource, decode_resource(RESOURCE).expect("resource"));
    let import = store.import_result(old_job).await.expect("import").expect("found");
    assert_eq!(import, decode_import(IMPORT).expect("import"));

    // Written again by the store, the same values are the same bytes.
    let mut job = Job { id: Uuid::new_v4(), ..old };
    (job.started_at, job.completed_at, job.worker_id, job.worker_name) = (None, None, None, None);
    let mut tx = store.writer.begin().await.expect("begin");
    jobs::insert_job(&mut tx, &job).await.expect("insert job");
    tx.commit().await.expect("commit");
    let sql = "SELECT input FROM provisioner_jobs WHERE id = ?";
    assert_eq!(column(&store, sql, job.id).await, INPUT_IMPORT);
    let sql = "SELECT tags FROM provisioner_jobs WHERE id = ?";
    assert_eq!(column(&store, sql, job.id).await, TAGS);
    let worker = Uuid::new_v4();
    let req = AcquireRequest {
        worker_id: worker,
        worker_name: "w".into(),
        tags: job.tags.clone(),
        provisioners: vec![Provisioner::Echo],
    };
    let got = store.acquire_job(&req).await.expect("acquire").expect("the job");
    assert_eq!(got.id, job.id);
    let outcome = JobOutcome {
        resources: vec![resources[0].resource.clone()],
        import: Some(import),
        ..JobOutcome::default()
    };
    let done = jobs::complete(&store.writer, job.id, Reporter::Daemon(worker), &outcome).await;
    assert_eq!(done.expect("complete"), CompleteResult::Completed);
    let sql = "SELECT resource FROM workspace_resources WHERE job_id = ?";
    assert_eq!(column(&store, sql, job.id).await, RESOURCE);
    let sql = "SELECT result FROM template_version_imports WHERE job_id = ?";
    assert_eq!(column(&store, sql, job.id).await, IMPORT);
    store.set_user_roles(user, &roles).await.expect("roles");
    let sql = "SELECT rbac_roles FROM users WHERE id = ?";
    assert_eq!(column(&store, sql, user).await, ROLES);
}
