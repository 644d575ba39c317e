//! Workspaces and their builds in SQLite. A build is always inserted with
//! its job in one `BEGIN IMMEDIATE` transaction that first reads the
//! workspace's latest build and checks it against `domain::job_state`'s
//! one-active-build rule.

use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::rows::{self, ts};
use super::{db, jobs};
use crate::domain::{job_state, Job, StoredResource, WorkspaceBuild};
use crate::store::sql::{LATEST_OUTDATED, LATEST_STATUS};
use crate::store::{stored, BuildPage, Result, StoreError, Workspace, WorkspaceFilter};

pub async fn insert_workspace(
    pool: &SqlitePool,
    ws: &Workspace,
    build: &WorkspaceBuild,
    job: &Job,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::query(
        "INSERT INTO workspaces (id, organization_id, owner_id, template_id, name, deleted, autostart_schedule, ttl_ms,
            dormant_at, automatic_updates, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ws.id.to_string())
    .bind(ws.organization_id.to_string())
    .bind(ws.owner_id.to_string())
    .bind(ws.template_id.to_string())
    .bind(&ws.name)
    .bind(ws.deleted)
    .bind(&ws.autostart_schedule)
    .bind(ws.ttl_ms)
    .bind(ws.dormant_at.map(ts))
    .bind(ws.automatic_updates.as_str())
    .bind(ts(ws.created_at))
    .bind(ts(ws.updated_at))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    jobs::insert_job(&mut tx, job).await?;
    insert_build_row(&mut tx, build).await?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

pub async fn insert_build(pool: &SqlitePool, build: &WorkspaceBuild, job: &Job) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    // The workspace's latest build and its job, read under the write lock.
    let latest = sqlx::query(
        "SELECT b.build_number AS latest_build_number, j.* FROM workspace_builds b
         JOIN provisioner_jobs j ON j.id = b.job_id
         WHERE b.workspace_id = ? ORDER BY b.build_number DESC LIMIT 1",
    )
    .bind(build.workspace_id.to_string())
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
    jobs::insert_job(&mut tx, job).await?;
    insert_build_row(&mut tx, build).await?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

async fn insert_build_row(tx: &mut Transaction<'static, Sqlite>, b: &WorkspaceBuild) -> Result<()> {
    let params = rows::to_json(&b.rich_parameters[..], stored::encode_parameters)?;
    sqlx::query(
        "INSERT INTO workspace_builds (id, workspace_id, build_number, transition, template_version_id, initiator_id,
            reason, provisioner_state, job_id, deadline, max_deadline, daily_cost, rich_parameters, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(b.id.to_string())
    .bind(b.workspace_id.to_string())
    .bind(b.build_number)
    .bind(b.transition.as_str())
    .bind(b.template_version_id.to_string())
    .bind(b.initiator_id.to_string())
    .bind(b.reason.as_str())
    .bind(&b.provisioner_state)
    .bind(b.job_id.to_string())
    .bind(b.deadline.map(ts))
    .bind(b.max_deadline.map(ts))
    .bind(b.daily_cost)
    .bind(params)
    .bind(ts(b.created_at))
    .bind(ts(b.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

pub async fn workspaces(pool: &SqlitePool, f: &WorkspaceFilter) -> Result<(Vec<Workspace>, i64)> {
    let where_clause = format!(
        "(?1 IS NULL OR w.owner_id = ?1)
        AND (?2 OR w.deleted = 0) AND (NOT ?3 OR w.deleted = 1)
        AND (?4 IS NULL OR w.owner_id IN (SELECT id FROM users WHERE lower(username) = lower(?4)))
        AND (?5 IS NULL OR instr(lower(w.name), lower(?5)) > 0)
        AND (?6 IS NULL OR w.template_id IN (SELECT id FROM templates WHERE lower(name) = lower(?6)))
        AND (?7 IS NULL OR (w.dormant_at IS NOT NULL) = ?7)
        AND (?8 IS NULL OR {LATEST_STATUS} = ?8)
        AND (?9 IS NULL OR {LATEST_OUTDATED} = ?9)"
    );
    type Q = sqlx::query::Query<'static, Sqlite, <Sqlite as sqlx::Database>::Arguments>;
    let bind = |q: Q| {
        q.bind(f.owner_id.map(|o| o.to_string()))
            .bind(f.include_deleted || f.only_deleted)
            .bind(f.only_deleted)
            .bind(f.owner_username.clone())
            .bind(f.name_contains.clone())
            .bind(f.template_name.clone())
            .bind(f.dormant)
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.outdated)
            .bind(f.requester.map(|r| r.to_string()))
    };
    // `?10 IS ?10` only names the requester, bound for the list's order, so
    // both queries take the same parameters.
    let count_sql =
        format!("SELECT COUNT(*) AS n FROM workspaces w WHERE {where_clause} AND ?10 IS ?10");
    let count: i64 = bind(sqlx::query(sqlx::AssertSqlSafe(count_sql)))
        .fetch_one(pool)
        .await
        .map_err(db)?
        .try_get("n")
        .map_err(db)?;
    // The requester's own favorites first, then oldest first.
    let list_sql = format!(
        "SELECT w.* FROM workspaces w WHERE {where_clause}
         ORDER BY (w.favorite = 1 AND w.owner_id IS ?10) DESC, w.created_at, w.id LIMIT ?11 OFFSET ?12"
    );
    let rows = bind(sqlx::query(sqlx::AssertSqlSafe(list_sql)))
        .bind(f.limit.unwrap_or(-1))
        .bind(f.offset)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    let list = rows.iter().map(rows::workspace).collect::<Result<_>>()?;
    Ok((list, count))
}

pub async fn builds_of_workspace(
    pool: &SqlitePool,
    workspace_id: Uuid,
    page: &BuildPage,
) -> Result<Vec<WorkspaceBuild>> {
    let rows = sqlx::query(
        "SELECT * FROM workspace_builds WHERE workspace_id = ? AND (? IS NULL OR created_at > ?)
         AND (? IS NULL OR build_number > ?)
         ORDER BY build_number DESC LIMIT ? OFFSET ?",
    )
    .bind(workspace_id.to_string())
    .bind(page.since.map(ts))
    .bind(page.since.map(ts))
    .bind(page.after_number)
    .bind(page.after_number)
    .bind(page.limit.unwrap_or(-1))
    .bind(page.offset)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::build).collect()
}

pub async fn update_workspace(pool: &SqlitePool, ws: &Workspace) -> Result<()> {
    let done = sqlx::query(
        "UPDATE workspaces SET name = ?, autostart_schedule = ?, ttl_ms = ?, dormant_at = ?,
            automatic_updates = ?, favorite = ?, last_used_at = ?, updated_at = ?
         WHERE id = ? AND deleted = 0",
    )
    .bind(&ws.name)
    .bind(&ws.autostart_schedule)
    .bind(ws.ttl_ms)
    .bind(ws.dormant_at.map(ts))
    .bind(ws.automatic_updates.as_str())
    .bind(ws.favorite)
    .bind(ws.last_used_at.map(ts))
    .bind(ts(ws.updated_at))
    .bind(ws.id.to_string())
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn autobuild_candidates(pool: &SqlitePool) -> Result<Vec<Workspace>> {
    let rows = sqlx::query(
        "SELECT * FROM workspaces w WHERE w.deleted = 0 AND w.dormant_at IS NULL
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
    pool: &SqlitePool,
    build_id: Uuid,
    deadline: Option<DateTime<Utc>>,
    max_deadline: Option<DateTime<Utc>>,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE workspace_builds SET deadline = ?, max_deadline = ?, updated_at = ? WHERE id = ?",
    )
    .bind(deadline.map(ts))
    .bind(max_deadline.map(ts))
    .bind(rows::now())
    .bind(build_id.to_string())
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The newest build whose job reported the agent (`Store::build_of_agent`).
pub async fn build_of_agent(pool: &SqlitePool, agent_id: Uuid) -> Result<WorkspaceBuild> {
    let row = sqlx::query(
        "SELECT b.* FROM workspace_agents a JOIN workspace_builds b ON b.job_id = a.job_id
         WHERE a.agent_id = ? ORDER BY b.created_at DESC, b.build_number DESC LIMIT 1",
    )
    .bind(agent_id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    rows::build(&row.ok_or(StoreError::NotFound)?)
}

/// A job's resources, by transition, in the order terraform reported them.
pub async fn resources_of_job(pool: &SqlitePool, job_id: Uuid) -> Result<Vec<StoredResource>> {
    let rows = sqlx::query(
        "SELECT * FROM workspace_resources WHERE job_id = ? ORDER BY transition, position",
    )
    .bind(job_id.to_string())
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::resource).collect()
}
