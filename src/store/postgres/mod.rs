//! The PostgreSQL backend, for several server replicas on one database:
//! migrations from `migrations/postgres` applied under an advisory lock,
//! native column types, and row locks where SQLite takes its write lock.
//! Acquire picks a job with `FOR UPDATE SKIP LOCKED`, so daemons on any
//! replica never take the same job and never wait on each other's picks;
//! a job's or workspace's state changes lock its row `FOR UPDATE`, read it,
//! ask `domain::job_state` and write what it decided.
//!
//! Decoding lives in `rows`, the queue's operations in `jobs`, workspaces
//! and builds in `builds`, run timings in `timings`; this file has the connection setup and the
//! simpler tables.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use uuid::Uuid;

use super::stored;
use super::{
    ApiKey, AppendedLogs, BuildPage, CancelResult, CompleteResult, File, LogBatch, LogRange,
    Organization, ProvisionerKey, Result, Store, StoreError, Template, TemplateVersion, User,
    Workspace, WorkspaceFilter,
};
use crate::domain::job_state::Reporter;
use crate::domain::{
    ImportResult, Job, JobOutcome, Role, StoredLog, StoredResource, WorkspaceBuild,
};

mod builds;
mod daemons;
mod jobs;
mod migrations;
mod rows;
#[cfg(test)]
pub mod testdb;
mod timings;
mod views;

use rows::clock;

/// The URL of database `name` on the server `url` names: `url` with its
/// path replaced and its query kept. The test harnesses and the bench make
/// a scratch database per server this way.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// PostgreSQL's SQLSTATEs of a server that cannot store writes:
/// disk_full, insufficient_resources, read_only_sql_transaction.
const UNWRITABLE_STATES: [&str; 3] = ["53100", "53000", "25006"];

/// Maps sqlx errors, turning unique violations into `Conflict` and a lack
/// of space into `Unwritable`.
fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_owned())
        }
        sqlx::Error::Database(d)
            if d.code().is_some_and(|c| UNWRITABLE_STATES.contains(&c.as_ref())) =>
        {
            StoreError::Unwritable(d.message().to_owned())
        }
        _ => StoreError::Database(e),
    }
}

/// Ends a transaction: commits after success, and after an error rolls
/// back before returning. A dropped transaction rolls back only when its
/// connection is next used, and until then the rows it locked stay locked:
/// acquire's `SKIP LOCKED` would pass over a job a failed completion had
/// locked, and other writers would wait on it.
async fn finish<T>(tx: sqlx::PgTransaction<'static>, r: Result<T>) -> Result<T> {
    match r {
        Ok(v) => {
            tx.commit().await.map_err(db)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed transaction");
            }
            Err(e)
        }
    }
}

fn found<T>(row: Option<T>) -> Result<T> {
    row.ok_or(StoreError::NotFound)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`)
    /// and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        migrations::migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// Runs a user insert statement binding every column; returns the rows inserted.
    async fn insert_user_with<'e, E>(&self, exec: E, sql: &'static str, u: &User) -> Result<u64>
    where
        E: sqlx::PgExecutor<'e>,
    {
        let done = sqlx::query(sql)
            .bind(u.id)
            .bind(&u.username)
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(stored::encode_roles(&u.roles))
            .bind(u.created_at)
            .execute(exec)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn one<T, A>(
        &self,
        sql: &'static str,
        arg: A,
        decode: fn(&PgRow) -> Result<T>,
    ) -> Result<T>
    where
        A: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'static,
    {
        let row = sqlx::query(sql).bind(arg).fetch_optional(&self.pool).await.map_err(db)?;
        decode(&found(row)?)
    }

    /// Attaches a version to a template unless another template owns it.
    async fn claim_version(
        tx: &mut sqlx::PgTransaction<'_>,
        template_id: Uuid,
        version_id: Uuid,
    ) -> Result<()> {
        let claimed = sqlx::query(
            "UPDATE template_versions SET template_id = $1
             WHERE id = $2 AND (template_id IS NULL OR template_id = $1)",
        )
        .bind(template_id)
        .bind(version_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "the template version belongs to another template".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn count_users(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n)
    }

    async fn insert_user(&self, u: &User) -> Result<()> {
        let sql =
            "INSERT INTO users (id, username, email, name, password_hash, rbac_roles, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)";
        self.insert_user_with(&self.pool, sql, u).await.map(|_| ())
    }

    async fn insert_first_user(&self, u: &User) -> Result<()> {
        // `WHERE NOT EXISTS` alone would let two racing setups both see an
        // empty table; the table lock makes the second wait and see the first.
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let sql =
            "INSERT INTO users (id, username, email, name, password_hash, rbac_roles, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM users)";
        let inserted = self.insert_user_with(&mut *tx, sql, u).await;
        match finish(tx, inserted).await? {
            0 => Err(StoreError::Conflict("a first user exists already".into())),
            _ => Ok(()),
        }
    }

    async fn user_by_id(&self, id: Uuid) -> Result<User> {
        self.one("SELECT * FROM users WHERE id = $1", id, rows::user).await
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        self.one(
            "SELECT * FROM users WHERE lower(username) = lower($1)",
            username.to_owned(),
            rows::user,
        )
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<User> {
        self.one("SELECT * FROM users WHERE lower(email) = lower($1)", email.to_owned(), rows::user)
            .await
    }

    async fn set_user_roles(&self, id: Uuid, roles: &[Role]) -> Result<()> {
        let done = sqlx::query("UPDATE users SET rbac_roles = $1 WHERE id = $2")
            .bind(stored::encode_roles(roles))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (id, user_id, hashed_secret, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&k.id)
            .bind(k.user_id)
            .bind(&k.hashed_secret)
            .bind(k.created_at)
            .bind(k.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<ApiKey> {
        self.one("SELECT * FROM api_keys WHERE id = $1", id.to_owned(), rows::api_key).await
    }

    async fn delete_api_key(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn default_organization(&self) -> Result<Organization> {
        // The partial unique index on is_default makes a racing second
        // insert (another replica's) a no-op.
        sqlx::query(
            "INSERT INTO organizations (id, name, display_name, is_default, created_at)
             VALUES ($1, 'coder', 'Coder', true, $2) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::new_v4())
        .bind(clock())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let row = sqlx::query("SELECT * FROM organizations WHERE is_default")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        rows::organization(&row)
    }

    async fn organization_by_id(&self, id: Uuid) -> Result<Organization> {
        self.one("SELECT * FROM organizations WHERE id = $1", id, rows::organization).await
    }

    async fn organization_by_name(&self, name: &str) -> Result<Organization> {
        self.one(
            "SELECT * FROM organizations WHERE lower(name) = lower($1)",
            name.to_owned(),
            rows::organization,
        )
        .await
    }

    async fn organizations_of_user(&self, _user_id: Uuid) -> Result<Vec<Organization>> {
        // Every user belongs to the default organization.
        Ok(vec![self.default_organization().await?])
    }

    async fn insert_provisioner_key(&self, k: &ProvisionerKey) -> Result<()> {
        let tags = rows::to_json(&k.tags, stored::encode_tags)?;
        sqlx::query(
            "INSERT INTO provisioner_keys (id, organization_id, name, hashed_secret, tags, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(k.id)
        .bind(k.organization_id)
        .bind(&k.name)
        .bind(&k.hashed_secret)
        .bind(tags)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn provisioner_key(&self, id: Uuid) -> Result<ProvisionerKey> {
        self.one("SELECT * FROM provisioner_keys WHERE id = $1", id, rows::provisioner_key).await
    }

    async fn provisioner_keys(&self, organization_id: Uuid) -> Result<Vec<ProvisionerKey>> {
        let rows =
            sqlx::query("SELECT * FROM provisioner_keys WHERE organization_id = $1 ORDER BY name")
                .bind(organization_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter().map(rows::provisioner_key).collect()
    }

    async fn delete_provisioner_key(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<ProvisionerKey> {
        let row = sqlx::query(
            "DELETE FROM provisioner_keys WHERE organization_id = $1 AND name = $2 RETURNING *",
        )
        .bind(organization_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        rows::provisioner_key(&found(row)?)
    }

    async fn insert_file(&self, f: &File) -> Result<Uuid> {
        sqlx::query(
            "INSERT INTO files (id, hash, mimetype, data, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (hash, created_by) DO NOTHING",
        )
        .bind(f.id)
        .bind(&f.hash)
        .bind(&f.mimetype)
        .bind(&f.data)
        .bind(f.created_by)
        .bind(f.created_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let id: Uuid =
            sqlx::query_scalar("SELECT id FROM files WHERE hash = $1 AND created_by = $2")
                .bind(&f.hash)
                .bind(f.created_by)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok(id)
    }

    async fn file(&self, id: Uuid) -> Result<File> {
        self.one("SELECT * FROM files WHERE id = $1", id, rows::file).await
    }

    async fn file_info(&self, id: Uuid) -> Result<(String, i64)> {
        let row: Option<(String, i32)> =
            sqlx::query_as("SELECT hash, length(data) FROM files WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        found(row).map(|(hash, size)| (hash, i64::from(size)))
    }

    async fn insert_template_version(&self, v: &TemplateVersion, job: &Job) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let r: Result<()> = async {
        jobs::insert_job(&mut tx, job).await?;
        sqlx::query(
            "INSERT INTO template_versions (id, template_id, organization_id, name, message, job_id, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(v.id)
        .bind(v.template_id)
        .bind(v.organization_id)
        .bind(&v.name)
        .bind(&v.message)
        .bind(v.job_id)
        .bind(v.created_by)
        .bind(v.created_at)
        .bind(v.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
            Ok(())
        }
        .await;
        finish(tx, r).await
    }

    async fn template_version(&self, id: Uuid) -> Result<TemplateVersion> {
        self.one("SELECT * FROM template_versions WHERE id = $1", id, rows::template_version).await
    }

    async fn template_versions_of_template(
        &self,
        template_id: Uuid,
    ) -> Result<Vec<TemplateVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM template_versions WHERE template_id = $1 ORDER BY created_at, id",
        )
        .bind(template_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::template_version).collect()
    }

    async fn insert_template(&self, t: &Template) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let r: Result<()> = async {
        sqlx::query(
            "INSERT INTO templates (id, organization_id, name, display_name, description, active_version_id, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.id)
        .bind(t.organization_id)
        .bind(&t.name)
        .bind(&t.display_name)
        .bind(&t.description)
        .bind(t.active_version_id)
        .bind(t.created_by)
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // A version backs at most one template: never take one over.
        Self::claim_version(&mut tx, t.id, t.active_version_id).await?;
            Ok(())
        }
        .await;
        finish(tx, r).await
    }

    async fn template(&self, id: Uuid) -> Result<Template> {
        self.one("SELECT * FROM templates WHERE id = $1", id, rows::template).await
    }

    async fn template_by_name(&self, organization_id: Uuid, name: &str) -> Result<Template> {
        let row = sqlx::query(
            "SELECT * FROM templates WHERE organization_id = $1 AND lower(name) = lower($2)",
        )
        .bind(organization_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        rows::template(&found(row)?)
    }

    async fn templates_of_organization(&self, organization_id: Uuid) -> Result<Vec<Template>> {
        let rows = sqlx::query("SELECT * FROM templates WHERE organization_id = $1 ORDER BY name")
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::template).collect()
    }

    async fn set_active_version(&self, template_id: Uuid, version_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let r: Result<()> = async {
            let done = sqlx::query(
                "UPDATE templates SET active_version_id = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(version_id)
            .bind(clock())
            .bind(template_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            // As in `insert_template`: a version another template owns stays there.
            Self::claim_version(&mut tx, template_id, version_id).await?;
            Ok(())
        }
        .await;
        finish(tx, r).await
    }

    async fn insert_workspace(
        &self,
        ws: &Workspace,
        build: &WorkspaceBuild,
        job: &Job,
    ) -> Result<()> {
        builds::insert_workspace(&self.pool, ws, build, job).await
    }

    async fn workspace(&self, id: Uuid) -> Result<Workspace> {
        self.one("SELECT * FROM workspaces WHERE id = $1", id, rows::workspace).await
    }

    async fn workspace_by_owner_and_name(&self, owner_id: Uuid, name: &str) -> Result<Workspace> {
        let row = sqlx::query(
            "SELECT * FROM workspaces WHERE owner_id = $1 AND lower(name) = lower($2) AND NOT deleted",
        )
        .bind(owner_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        rows::workspace(&found(row)?)
    }

    async fn workspaces(&self, filter: &WorkspaceFilter) -> Result<(Vec<Workspace>, i64)> {
        builds::workspaces(&self.pool, filter).await
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<()> {
        builds::update_workspace(&self.pool, ws).await
    }

    async fn autobuild_candidates(&self) -> Result<Vec<Workspace>> {
        builds::autobuild_candidates(&self.pool).await
    }

    async fn set_build_deadline(
        &self,
        build_id: Uuid,
        deadline: Option<chrono::DateTime<chrono::Utc>>,
        max_deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()> {
        builds::set_build_deadline(&self.pool, build_id, deadline, max_deadline).await
    }

    async fn insert_build(&self, build: &WorkspaceBuild, job: &Job) -> Result<()> {
        builds::insert_build(&self.pool, build, job).await
    }

    async fn build(&self, id: Uuid) -> Result<WorkspaceBuild> {
        self.one("SELECT * FROM workspace_builds WHERE id = $1", id, rows::build).await
    }

    async fn build_by_job(&self, job_id: Uuid) -> Result<WorkspaceBuild> {
        self.one("SELECT * FROM workspace_builds WHERE job_id = $1", job_id, rows::build).await
    }

    async fn build_by_number(&self, workspace_id: Uuid, number: i32) -> Result<WorkspaceBuild> {
        let row = sqlx::query(
            "SELECT * FROM workspace_builds WHERE workspace_id = $1 AND build_number = $2",
        )
        .bind(workspace_id)
        .bind(number)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        rows::build(&found(row)?)
    }

    async fn latest_build(&self, workspace_id: Uuid) -> Result<WorkspaceBuild> {
        self.one(
            "SELECT * FROM workspace_builds WHERE workspace_id = $1 ORDER BY build_number DESC LIMIT 1",
            workspace_id,
            rows::build,
        )
        .await
    }

    async fn builds_of_workspace(
        &self,
        workspace_id: Uuid,
        page: &BuildPage,
    ) -> Result<Vec<WorkspaceBuild>> {
        builds::builds_of_workspace(&self.pool, workspace_id, page).await
    }

    async fn workspace_views(&self, ids: &[Uuid]) -> Result<Vec<super::WorkspaceView>> {
        views::workspace_views(&self.pool, ids).await
    }

    async fn build_views(&self, ids: &[Uuid]) -> Result<Vec<super::BuildView>> {
        views::build_views(&self.pool, ids).await
    }

    async fn job(&self, id: Uuid) -> Result<Job> {
        self.one("SELECT * FROM provisioner_jobs WHERE id = $1", id, rows::job).await
    }

    async fn queue_position(&self, job_id: Uuid) -> Result<(i64, i64)> {
        jobs::queue_position(&self.pool, job_id).await
    }

    async fn queue_positions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, (i64, i64)>> {
        views::queue_positions(&self.pool, ids).await
    }

    async fn acquire_job(&self, req: &super::AcquireRequest) -> Result<Option<Job>> {
        jobs::acquire(&self.pool, req).await
    }

    async fn release_job(&self, job_id: Uuid, worker_id: Uuid) -> Result<()> {
        jobs::release(&self.pool, job_id, worker_id).await
    }

    async fn append_logs(&self, batch: LogBatch) -> Result<AppendedLogs> {
        jobs::append_logs(&self.pool, batch).await
    }

    async fn logs(&self, job_id: Uuid, range: LogRange) -> Result<Vec<StoredLog>> {
        jobs::logs(&self.pool, job_id, range).await
    }

    async fn heartbeat(&self, worker_id: Uuid, job_ids: &[Uuid]) -> Result<()> {
        jobs::heartbeat(&self.pool, worker_id, job_ids).await
    }

    async fn cancel_job(&self, job_id: Uuid) -> Result<CancelResult> {
        jobs::cancel(&self.pool, job_id).await
    }

    async fn complete_job(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
        outcome: &JobOutcome,
    ) -> Result<CompleteResult> {
        jobs::complete(&self.pool, job_id, Reporter::Daemon(worker_id), outcome).await
    }

    async fn fail_job(
        &self,
        job_id: Uuid,
        error: &str,
        error_code: Option<&str>,
    ) -> Result<CompleteResult> {
        let outcome = JobOutcome {
            error: Some(error.to_owned()),
            error_code: error_code.map(str::to_owned),
            ..JobOutcome::default()
        };
        jobs::complete(&self.pool, job_id, Reporter::Server, &outcome).await
    }

    async fn build_of_agent(&self, agent_id: Uuid) -> Result<WorkspaceBuild> {
        self.one(
            "SELECT b.* FROM workspace_agents a JOIN workspace_builds b ON b.job_id = a.job_id
             WHERE a.agent_id = $1 ORDER BY b.created_at DESC, b.build_number DESC LIMIT 1",
            agent_id,
            rows::build,
        )
        .await
    }

    async fn resources_of_job(&self, job_id: Uuid) -> Result<Vec<StoredResource>> {
        let rows = sqlx::query(
            "SELECT * FROM workspace_resources WHERE job_id = $1 ORDER BY transition, position",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::resource).collect()
    }

    async fn job_timings(&self, job_id: Uuid) -> Result<Vec<crate::domain::ProvisionerTiming>> {
        timings::of_job(&self.pool, job_id).await
    }

    async fn import_result(&self, job_id: Uuid) -> Result<Option<ImportResult>> {
        let row = sqlx::query("SELECT result FROM template_version_imports WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| {
            let text: String = r.try_get("result").map_err(db)?;
            stored::decode_import(&text)
                .map_err(|e| StoreError::Corrupt(format!("import result of job {job_id}: {e}")))
        })
        .transpose()
    }

    async fn stale_jobs(&self, before: chrono::DateTime<chrono::Utc>) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT * FROM provisioner_jobs
             WHERE started_at IS NOT NULL AND completed_at IS NULL AND updated_at < $1",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::job).collect()
    }

    async fn pending_jobs_before(&self, before: chrono::DateTime<chrono::Utc>) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT * FROM provisioner_jobs
             WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL AND created_at < $1",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::job).collect()
    }
}
