//! Workspaces and their builds in PostgreSQL. A build is always inserted
//! with its job in one transaction that first locks the workspace's row
//! (so two replicas creating builds of one workspace take turns), reads its
//! latest build and checks it against `domain::job_state`'s one-active-build
//! rule.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::rows::clock;
use super::{db, finish, jobs, rows};
use crate::domain::{job_state, Job, WorkspaceBuild};
use crate::store::sql::{LATEST_OUTDATED, LATEST_STATUS};
use crate::store::{stored, BuildPage, Result, StoreError, Workspace, WorkspaceFilter};

pub async fn insert_workspace(
    pool: &PgPool,
    ws: &Workspace,
    build: &WorkspaceBuild,
    job: &Job,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    let r: Result<()> = async {
    sqlx::query(
        "INSERT INTO workspaces (id, organization_id, owner_id, template_id, name, deleted, autostart_schedule, ttl_ms,
            dormant_at, automatic_updates, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(ws.id)
    .bind(ws.organization_id)
    .bind(ws.owner_id)
    .bind(ws.template_id)
    .bind(&ws.name)
    .bind(ws.deleted)
    .bind(&ws.autostart_schedule)
    .bind(ws.ttl_ms)
    .bind(ws.dormant_at)
    .bind(ws.automatic_updates.as_str())
    .bind(ws.created_at)
    .bind(ws.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    jobs::insert_job(&mut tx, job).await?;
    insert_build_row(&mut tx, build).await?;
        Ok(())
    }
    .await;
    finish(tx, r).await
}

pub async fn insert_build(pool: &PgPool, build: &WorkspaceBuild, job: &Job) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    let r: Result<()> = async {
        // The workspace's row lock serializes build inserts of one workspace.
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE")
                .bind(build.workspace_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if exists.is_some() {
            // The workspace's latest build and its job, read under that lock.
            let latest = sqlx::query(
                "SELECT b.build_number AS latest_build_number, j.* FROM workspace_builds b
             JOIN provisioner_jobs j ON j.id = b.job_id
             WHERE b.workspace_id = $1 ORDER BY b.build_number DESC LIMIT 1",
            )
            .bind(build.workspace_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(row) = latest {
                let (number, job) = rows::latest_build(&row)?;
                let conflict = |e: &dyn std::fmt::Display| StoreError::Conflict(e.to_string());
                job_state::ensure_no_active_build(number, &job).map_err(|e| conflict(&e))?;
                job_state::ensure_build_number_free(number, build.build_number)
                    .map_err(|e| conflict(&e))?;
            }
        }
        // An unknown workspace is refused by the build row's foreign key.
        jobs::insert_job(&mut tx, job).await?;
        insert_build_row(&mut tx, build).await?;
        Ok(())
    }
    .await;
    finish(tx, r).await
}

async fn insert_build_row(
    tx: &mut Transaction<'static, Postgres>,
    b: &WorkspaceBuild,
) -> Result<()> {
    let params = rows::to_json(&b.rich_parameters[..], stored::encode_parameters)?;
    sqlx::query(
        "INSERT INTO workspace_builds (id, workspace_id, build_number, transition, template_version_id, initiator_id,
            reason, provisioner_state, job_id, deadline, max_deadline, daily_cost, rich_parameters, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(b.id)
    .bind(b.workspace_id)
    .bind(b.build_number)
    .bind(b.transition.as_str())
    .bind(b.template_version_id)
    .bind(b.initiator_id)
    .bind(b.reason.as_str())
    .bind(&b.provisioner_state)
    .bind(b.job_id)
    .bind(b.deadline)
    .bind(b.max_deadline)
    .bind(b.daily_cost)
    .bind(params)
    .bind(b.created_at)
    .bind(b.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

type PgQuery = sqlx::query::Query<'static, Postgres, <Postgres as sqlx::Database>::Arguments>;

/// Binds `$1`..`$9` of `where_clause` below.
fn bind_filter(q: PgQuery, f: &WorkspaceFilter) -> PgQuery {
    q.bind(f.owner_id)
        .bind(f.include_deleted || f.only_deleted)
        .bind(f.only_deleted)
        .bind(f.owner_username.clone())
        .bind(f.name_contains.clone())
        .bind(f.template_name.clone())
        .bind(f.dormant)
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.outdated)
}

pub async fn workspaces(pool: &PgPool, f: &WorkspaceFilter) -> Result<(Vec<Workspace>, i64)> {
    // A part of the name matches literally (no LIKE wildcards), as SQLite's instr.
    let where_clause = format!(
        "($1::uuid IS NULL OR w.owner_id = $1)
        AND ($2::boolean OR NOT w.deleted) AND (NOT $3::boolean OR w.deleted)
        AND ($4::text IS NULL OR w.owner_id IN (SELECT id FROM users WHERE lower(username) = lower($4)))
        AND ($5::text IS NULL OR strpos(lower(w.name), lower($5)) > 0)
        AND ($6::text IS NULL OR w.template_id IN (SELECT id FROM templates WHERE lower(name) = lower($6)))
        AND ($7::boolean IS NULL OR (w.dormant_at IS NOT NULL) = $7)
        AND ($8::text IS NULL OR {LATEST_STATUS} = $8)
        AND ($9::boolean IS NULL OR {LATEST_OUTDATED} = $9)"
    );
    // The page and the total in one query: the count is a window over the
    // filtered rows, computed before LIMIT cuts them. The requester's own
    // favorites first, then oldest first; without a requester, no favorites.
    let list_sql = format!(
        "SELECT w.*, COUNT(*) OVER () AS total FROM workspaces w WHERE {where_clause}
         ORDER BY (w.favorite AND w.owner_id IS NOT DISTINCT FROM $10) DESC, w.created_at, w.id
         LIMIT $11 OFFSET $12"
    );
    let rows = bind_filter(sqlx::query(sqlx::AssertSqlSafe(list_sql)), f)
        .bind(f.requester)
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    let total = match rows.first() {
        Some(row) => sqlx::Row::try_get::<i64, _>(row, "total").map_err(db)?,
        // An empty page (or one past the end) still reports the total.
        None => {
            let count_sql = format!("SELECT COUNT(*) AS n FROM workspaces w WHERE {where_clause}");
            let row = bind_filter(sqlx::query(sqlx::AssertSqlSafe(count_sql)), f)
                .fetch_one(pool)
                .await
                .map_err(db)?;
            sqlx::Row::try_get::<i64, _>(&row, "n").map_err(db)?
        }
    };
    let list = rows.iter().map(rows::workspace).collect::<Result<_>>()?;
    Ok((list, total))
}

pub async fn builds_of_workspace(
    pool: &PgPool,
    workspace_id: Uuid,
    page: &BuildPage,
) -> Result<Vec<WorkspaceBuild>> {
    // `since` and `after_number` both exclude their boundary, as Coder's.
    let rows = sqlx::query(
        "SELECT * FROM workspace_builds WHERE workspace_id = $1
         AND ($2::timestamptz IS NULL OR created_at > $2)
         AND ($3::bigint IS NULL OR build_number > $3)
         ORDER BY build_number DESC LIMIT $4 OFFSET $5",
    )
    .bind(workspace_id)
    .bind(page.since)
    .bind(page.after_number)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::build).collect()
}

/// Writes a live workspace's settings; a rename onto a live name of the
/// owner's breaks `workspaces_live_name`, which `db` turns into `Conflict`.
pub async fn update_workspace(pool: &PgPool, ws: &Workspace) -> Result<()> {
    let done = sqlx::query(
        "UPDATE workspaces SET name = $1, autostart_schedule = $2, ttl_ms = $3, dormant_at = $4,
            automatic_updates = $5, favorite = $6, last_used_at = $7, updated_at = $8
         WHERE id = $9 AND NOT deleted",
    )
    .bind(&ws.name)
    .bind(&ws.autostart_schedule)
    .bind(ws.ttl_ms)
    .bind(ws.dormant_at)
    .bind(ws.automatic_updates.as_str())
    .bind(ws.favorite)
    .bind(ws.last_used_at)
    .bind(ws.updated_at)
    .bind(ws.id)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn autobuild_candidates(pool: &PgPool) -> Result<Vec<Workspace>> {
    let rows = sqlx::query(
        "SELECT * FROM workspaces w WHERE NOT w.deleted AND w.dormant_at IS NULL
            AND (w.autostart_schedule IS NOT NULL OR EXISTS (
                SELECT 1 FROM workspace_builds b WHERE b.workspace_id = w.id AND b.deadline IS NOT NULL))
         ORDER BY w.created_at, w.id",
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::workspace).collect()
}

pub async fn set_build_deadline(
    pool: &PgPool,
    build_id: Uuid,
    deadline: Option<DateTime<Utc>>,
    max_deadline: Option<DateTime<Utc>>,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE workspace_builds SET deadline = $1, max_deadline = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(deadline)
    .bind(max_deadline)
    .bind(clock())
    .bind(build_id)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
