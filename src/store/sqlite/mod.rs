//! The SQLite backend: one database file, WAL journal, migrations from
//! `migrations/sqlite`. Read-then-write operations run in `BEGIN IMMEDIATE`
//! transactions, which take SQLite's write lock up front, so two daemons can
//! never acquire the same job and a workspace never gets two active builds.
//!
//! Decoding lives in `rows`, the queue's operations in `jobs`, run timings
//! in `timings`; this file has
//! the connection setup and the simpler tables.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
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
mod keys;
mod migrations;
mod rows;
#[cfg(test)]
mod stored_format;
mod timings;
mod views;

use rows::{now, ts};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection kept for the queue's writes: queueing (new builds and
    /// template versions), acquiring, releasing, log lines, heartbeats,
    /// cancelling and completing jobs. SQLite lets one connection write at a
    /// time; writers on several connections wait for each other in SQLite's
    /// busy handler, which sleeps 1, 2, 5, 10 ms and more between tries,
    /// while on one connection they queue in turn without sleeping. And
    /// SQLite drops a connection's page cache whenever another one wrote
    /// since its last transaction, so a writer of its own keeps the pages it
    /// appends to cached.
    writer: SqlitePool,
    /// Why the last write was refused for lack of space (`Unwritable`), until
    /// a write stores rows again; `/readyz` answers 503 meanwhile.
    unwritable: Arc<Mutex<Option<String>>>,
}

/// SQLite's primary result codes of a database that cannot store writes:
/// read-only files, I/O errors (ENOSPC while growing the WAL or a
/// checkpoint), and SQLITE_FULL ("database or disk is full").
const UNWRITABLE_CODES: [i32; 3] = [8, 10, 13];

/// Bytes the readiness probe stores and deletes again: enough that a disk
/// without room for a few builds fails it.
const PROBE_BYTES: i64 = 64 * 1024;

/// Maps sqlx errors, turning unique violations into `Conflict` and a lack
/// of space into `Unwritable`.
fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_owned())
        }
        sqlx::Error::Database(d)
            if d.code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| UNWRITABLE_CODES.contains(&(c & 0xff))) =>
        {
            StoreError::Unwritable(d.message().to_owned())
        }
        _ => StoreError::Database(e),
    }
}

/// Whether a connection goes back to the pool after use. sqlx counts the
/// transactions it opened; when SQLite ended one by itself (it rolls back
/// on SQLITE_FULL and I/O errors), sqlx's ROLLBACK then fails, its count
/// stays above zero, and every later `begin` on that connection failed with
/// "attempted to call begin_with at non-zero transaction depth" until a
/// restart. Such a connection is closed instead, and the pool opens a fresh
/// one. A count above zero can also be a dropped transaction whose rollback
/// sqlx queued but has not run yet: a ping lets it run before the count is
/// read again, so an ordinary rollback does not cost the connection (and a
/// connection outside any transaction, the usual case, costs nothing).
async fn reusable(conn: &mut sqlx::SqliteConnection) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(clean)
}

/// A pool whose connections are checked by [`reusable`] when released.
fn checked_pool_options() -> SqlitePoolOptions {
    pool_options().after_release(|conn, _| Box::pin(reusable(conn)))
}

/// A pool that hands out connections without a test query first: the
/// database is in this process, so a connection cannot have gone away, and
/// the ping cost every query a second round trip to sqlx's connection thread.
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().test_before_acquire(false)
}

fn found<T>(row: Option<T>) -> Result<T> {
    row.ok_or(StoreError::NotFound)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`,
    /// `sqlite:path`, or a plain path) and runs migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let path =
            url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let options = if path == ":memory:" {
            SqliteConnectOptions::from_str("sqlite::memory:")?
        } else {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(e.into()))?;
                }
            }
            SqliteConnectOptions::new().filename(path).create_if_missing(true)
        };
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if path == ":memory:" {
            // Every connection would open a database of its own.
            let pool = pool_options().max_connections(1).connect_with(options).await?;
            migrations::migrator().run(&pool).await?;
            let unwritable = Arc::default();
            return Ok(Self { writer: pool.clone(), pool, unwritable });
        }
        let pool = checked_pool_options().max_connections(8).connect_with(options.clone()).await?;
        migrations::migrator().run(&pool).await?;
        let writer = checked_pool_options()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(Self { pool, writer, unwritable: Arc::default() })
    }

    /// Notes a write's outcome for [`Store::check_writable`]: a write refused
    /// for lack of space marks the store unwritable; one that stored rows
    /// (`stored`) marks it writable again.
    fn watch<T>(&self, r: Result<T>, stored: bool) -> Result<T> {
        let mut state = self.unwritable.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Err(StoreError::Unwritable(why)) => {
                if state.is_none() {
                    tracing::error!(error = %why, "the database refused a write: free disk space on its volume; writes resume by themselves");
                }
                *state = Some(why.clone());
            }
            Ok(_) if stored && state.is_some() => {
                tracing::info!("the database stores writes again");
                *state = None;
            }
            _ => {}
        }
        r
    }

    /// Stores [`PROBE_BYTES`] in a row of their own and deletes them again.
    async fn probe_write(&self) -> Result<()> {
        sqlx::query("INSERT INTO store_write_probe (pad) VALUES (zeroblob(?))")
            .bind(PROBE_BYTES)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM store_write_probe").execute(&self.writer).await.map_err(db)?;
        Ok(())
    }

    /// Runs a user insert statement binding every column; returns the rows inserted.
    async fn insert_user_with(&self, sql: &'static str, u: &User) -> Result<u64> {
        let done = sqlx::query(sql)
            .bind(u.id.to_string())
            .bind(&u.username)
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(stored::encode_roles(&u.roles))
            .bind(ts(u.created_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    /// A template version and its import job, in one transaction.
    async fn insert_template_version_tx(&self, v: &TemplateVersion, job: &Job) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        jobs::insert_job(&mut tx, job).await?;
        sqlx::query(
            "INSERT INTO template_versions (id, template_id, organization_id, name, message, job_id, created_by, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(v.id.to_string())
        .bind(v.template_id.map(|t| t.to_string()))
        .bind(v.organization_id.to_string())
        .bind(&v.name)
        .bind(&v.message)
        .bind(v.job_id.to_string())
        .bind(v.created_by.to_string())
        .bind(ts(v.created_at))
        .bind(ts(v.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn one<T>(
        &self,
        sql: &'static str,
        id: String,
        decode: fn(&sqlx::sqlite::SqliteRow) -> Result<T>,
    ) -> Result<T> {
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await.map_err(db)?;
        decode(&found(row)?)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn check_writable(&self) -> Result<()> {
        let blocked = self.unwritable.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if blocked.is_none() {
            return Ok(());
        }
        let probe = self.probe_write().await;
        self.watch(probe, true)
    }

    #[tracing::instrument(skip_all)]
    async fn count_users(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n)
    }

    #[tracing::instrument(skip_all)]
    async fn insert_user(&self, u: &User) -> Result<()> {
        let sql =
            "INSERT INTO users (id, username, email, name, password_hash, rbac_roles, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)";
        self.insert_user_with(sql, u).await.map(|_| ())
    }

    #[tracing::instrument(skip_all)]
    async fn insert_first_user(&self, u: &User) -> Result<()> {
        let sql =
            "INSERT INTO users (id, username, email, name, password_hash, rbac_roles, created_at)
                   SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)";
        match self.insert_user_with(sql, u).await? {
            0 => Err(StoreError::Conflict("a first user exists already".into())),
            _ => Ok(()),
        }
    }

    async fn user_by_id(&self, id: Uuid) -> Result<User> {
        self.one("SELECT * FROM users WHERE id = ?", id.to_string(), rows::user).await
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        self.one(
            "SELECT * FROM users WHERE lower(username) = lower(?)",
            username.to_owned(),
            rows::user,
        )
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<User> {
        self.one("SELECT * FROM users WHERE lower(email) = lower(?)", email.to_owned(), rows::user)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn set_user_roles(&self, id: Uuid, roles: &[Role]) -> Result<()> {
        let done = sqlx::query("UPDATE users SET rbac_roles = ? WHERE id = ?")
            .bind(stored::encode_roles(roles))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (id, user_id, hashed_secret, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&k.id)
            .bind(k.user_id.to_string())
            .bind(&k.hashed_secret)
            .bind(ts(k.created_at))
            .bind(ts(k.expires_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<ApiKey> {
        self.one("SELECT * FROM api_keys WHERE id = ?", id.to_owned(), rows::api_key).await
    }

    async fn delete_api_key(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn default_organization(&self) -> Result<Organization> {
        sqlx::query(
            "INSERT INTO organizations (id, name, display_name, is_default, created_at)
             SELECT ?, 'coder', 'Coder', 1, ? WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE is_default = 1)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let row = sqlx::query("SELECT * FROM organizations WHERE is_default = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        rows::organization(&row)
    }

    async fn organization_by_id(&self, id: Uuid) -> Result<Organization> {
        self.one("SELECT * FROM organizations WHERE id = ?", id.to_string(), rows::organization)
            .await
    }

    async fn organization_by_name(&self, name: &str) -> Result<Organization> {
        self.one(
            "SELECT * FROM organizations WHERE lower(name) = lower(?)",
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
        keys::insert(&self.pool, k).await
    }

    async fn provisioner_key(&self, id: Uuid) -> Result<ProvisionerKey> {
        keys::by_id(&self.pool, id).await
    }

    async fn provisioner_keys(&self, organization_id: Uuid) -> Result<Vec<ProvisionerKey>> {
        keys::of_organization(&self.pool, organization_id).await
    }

    async fn delete_provisioner_key(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<ProvisionerKey> {
        keys::delete(&self.pool, organization_id, name).await
    }

    #[tracing::instrument(skip_all)]
    async fn insert_file(&self, f: &File) -> Result<Uuid> {
        sqlx::query(
            "INSERT INTO files (id, hash, mimetype, data, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (hash, created_by) DO NOTHING",
        )
        .bind(f.id.to_string())
        .bind(&f.hash)
        .bind(&f.mimetype)
        .bind(&f.data)
        .bind(f.created_by.to_string())
        .bind(ts(f.created_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let id: String =
            sqlx::query_scalar("SELECT id FROM files WHERE hash = ? AND created_by = ?")
                .bind(&f.hash)
                .bind(f.created_by.to_string())
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        id.parse().map_err(|e| StoreError::Corrupt(format!("file id: {e}")))
    }

    async fn file_info(&self, id: Uuid) -> Result<(String, i64)> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT hash, length(data) FROM files WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        found(row)
    }

    async fn file(&self, id: Uuid) -> Result<File> {
        self.one("SELECT * FROM files WHERE id = ?", id.to_string(), rows::file).await
    }

    #[tracing::instrument(skip_all)]
    async fn insert_template_version(&self, v: &TemplateVersion, job: &Job) -> Result<()> {
        let r = self.insert_template_version_tx(v, job).await;
        self.watch(r, true)
    }

    async fn template_version(&self, id: Uuid) -> Result<TemplateVersion> {
        self.one(
            "SELECT * FROM template_versions WHERE id = ?",
            id.to_string(),
            rows::template_version,
        )
        .await
    }

    async fn template_versions_of_template(
        &self,
        template_id: Uuid,
    ) -> Result<Vec<TemplateVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM template_versions WHERE template_id = ? ORDER BY created_at",
        )
        .bind(template_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::template_version).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn insert_template(&self, t: &Template) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO templates (id, organization_id, name, display_name, description, active_version_id, created_by, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(t.organization_id.to_string())
        .bind(&t.name)
        .bind(&t.display_name)
        .bind(&t.description)
        .bind(t.active_version_id.to_string())
        .bind(t.created_by.to_string())
        .bind(ts(t.created_at))
        .bind(ts(t.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // A version backs at most one template: never take one over.
        let claimed = sqlx::query(
            "UPDATE template_versions SET template_id = ?1
             WHERE id = ?2 AND (template_id IS NULL OR template_id = ?1)",
        )
        .bind(t.id.to_string())
        .bind(t.active_version_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "the template version belongs to another template".into(),
            ));
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn template(&self, id: Uuid) -> Result<Template> {
        self.one("SELECT * FROM templates WHERE id = ?", id.to_string(), rows::template).await
    }

    async fn template_by_name(&self, organization_id: Uuid, name: &str) -> Result<Template> {
        let row = sqlx::query(
            "SELECT * FROM templates WHERE organization_id = ? AND lower(name) = lower(?)",
        )
        .bind(organization_id.to_string())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        rows::template(&found(row)?)
    }

    async fn templates_of_organization(&self, organization_id: Uuid) -> Result<Vec<Template>> {
        let rows = sqlx::query("SELECT * FROM templates WHERE organization_id = ? ORDER BY name")
            .bind(organization_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::template).collect()
    }

    async fn set_active_version(&self, template_id: Uuid, version_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done =
            sqlx::query("UPDATE templates SET active_version_id = ?, updated_at = ? WHERE id = ?")
                .bind(version_id.to_string())
                .bind(now())
                .bind(template_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // As in `insert_template`: a version another template owns stays there.
        let claimed = sqlx::query(
            "UPDATE template_versions SET template_id = ?1
             WHERE id = ?2 AND (template_id IS NULL OR template_id = ?1)",
        )
        .bind(template_id.to_string())
        .bind(version_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "the template version belongs to another template".into(),
            ));
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn insert_workspace(
        &self,
        ws: &Workspace,
        build: &WorkspaceBuild,
        job: &Job,
    ) -> Result<()> {
        let r = builds::insert_workspace(&self.writer, ws, build, job).await;
        self.watch(r, true)
    }

    async fn workspace(&self, id: Uuid) -> Result<Workspace> {
        self.one("SELECT * FROM workspaces WHERE id = ?", id.to_string(), rows::workspace).await
    }

    async fn workspace_by_owner_and_name(&self, owner_id: Uuid, name: &str) -> Result<Workspace> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE owner_id = ? AND lower(name) = lower(?) AND deleted = 0")
            .bind(owner_id.to_string())
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        rows::workspace(&found(row)?)
    }

    async fn workspaces(&self, filter: &WorkspaceFilter) -> Result<(Vec<Workspace>, i64)> {
        builds::workspaces(&self.pool, filter).await
    }

    #[tracing::instrument(skip_all)]
    async fn update_workspace(&self, ws: &Workspace) -> Result<()> {
        let r = builds::update_workspace(&self.writer, ws).await;
        self.watch(r, true)
    }

    #[tracing::instrument(skip_all)]
    async fn autobuild_candidates(&self) -> Result<Vec<Workspace>> {
        builds::autobuild_candidates(&self.pool).await
    }

    #[tracing::instrument(skip_all)]
    async fn set_build_deadline(
        &self,
        build_id: Uuid,
        deadline: Option<chrono::DateTime<chrono::Utc>>,
        max_deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()> {
        let r = builds::set_build_deadline(&self.writer, build_id, deadline, max_deadline).await;
        self.watch(r, true)
    }

    async fn insert_build(&self, build: &WorkspaceBuild, job: &Job) -> Result<()> {
        let r = builds::insert_build(&self.writer, build, job).await;
        self.watch(r, true)
    }

    async fn build(&self, id: Uuid) -> Result<WorkspaceBuild> {
        self.one("SELECT * FROM workspace_builds WHERE id = ?", id.to_string(), rows::build).await
    }

    async fn build_by_job(&self, job_id: Uuid) -> Result<WorkspaceBuild> {
        self.one("SELECT * FROM workspace_builds WHERE job_id = ?", job_id.to_string(), rows::build)
            .await
    }

    async fn build_by_number(&self, workspace_id: Uuid, number: i32) -> Result<WorkspaceBuild> {
        let row = sqlx::query(
            "SELECT * FROM workspace_builds WHERE workspace_id = ? AND build_number = ?",
        )
        .bind(workspace_id.to_string())
        .bind(number)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        rows::build(&found(row)?)
    }

    async fn latest_build(&self, workspace_id: Uuid) -> Result<WorkspaceBuild> {
        self.one(
            "SELECT * FROM workspace_builds WHERE workspace_id = ? ORDER BY build_number DESC LIMIT 1",
            workspace_id.to_string(),
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
        self.one("SELECT * FROM provisioner_jobs WHERE id = ?", id.to_string(), rows::job).await
    }

    async fn queue_position(&self, job_id: Uuid) -> Result<(i64, i64)> {
        jobs::queue_position(&self.pool, job_id).await
    }

    async fn queue_positions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, (i64, i64)>> {
        views::queue_positions(&self.pool, ids).await
    }

    async fn acquire_job(&self, req: &super::AcquireRequest) -> Result<Option<Job>> {
        let r = jobs::acquire(&self.writer, req).await;
        self.watch(r, false)
    }

    async fn release_job(&self, job_id: Uuid, worker_id: Uuid) -> Result<()> {
        let r = jobs::release(&self.writer, job_id, worker_id).await;
        self.watch(r, false)
    }

    async fn append_logs(&self, batch: LogBatch) -> Result<AppendedLogs> {
        let r = jobs::append_logs(&self.writer, batch).await;
        self.watch(r, false)
    }

    async fn logs(&self, job_id: Uuid, range: LogRange) -> Result<Vec<StoredLog>> {
        jobs::logs(&self.pool, job_id, range).await
    }

    async fn heartbeat(&self, worker_id: Uuid, job_ids: &[Uuid]) -> Result<()> {
        let r = jobs::heartbeat(&self.writer, worker_id, job_ids).await;
        self.watch(r, false)
    }

    async fn cancel_job(&self, job_id: Uuid) -> Result<CancelResult> {
        let r = jobs::cancel(&self.writer, job_id).await;
        self.watch(r, false)
    }

    async fn complete_job(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
        outcome: &JobOutcome,
    ) -> Result<CompleteResult> {
        let r = jobs::complete(&self.writer, job_id, Reporter::Daemon(worker_id), outcome).await;
        self.watch(r, false)
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
        let r = jobs::complete(&self.writer, job_id, Reporter::Server, &outcome).await;
        self.watch(r, false)
    }

    async fn build_of_agent(&self, agent_id: Uuid) -> Result<WorkspaceBuild> {
        builds::build_of_agent(&self.pool, agent_id).await
    }

    async fn resources_of_job(&self, job_id: Uuid) -> Result<Vec<StoredResource>> {
        builds::resources_of_job(&self.pool, job_id).await
    }

    async fn job_timings(&self, job_id: Uuid) -> Result<Vec<crate::domain::ProvisionerTiming>> {
        timings::of_job(&self.pool, job_id).await
    }

    async fn import_result(&self, job_id: Uuid) -> Result<Option<ImportResult>> {
        let row = sqlx::query("SELECT result FROM template_version_imports WHERE job_id = ?")
            .bind(job_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| {
            let text: String = r.get("result");
            stored::decode_import(&text)
                .map_err(|e| StoreError::Corrupt(format!("import result of job {job_id}: {e}")))
        })
        .transpose()
    }

    async fn stale_jobs(&self, before: chrono::DateTime<chrono::Utc>) -> Result<Vec<Job>> {
        jobs::stale_jobs(&self.pool, before).await
    }

    async fn pending_jobs_before(&self, before: chrono::DateTime<chrono::Utc>) -> Result<Vec<Job>> {
        jobs::pending_jobs_before(&self.pool, before).await
    }
}
