//! Workspaces and their builds in SQLite. A build is always inserted with
//! its job in one `BEGIN IMMEDIATE` transaction that first reads the
//! workspace's latest build and checks it against `domain::job_state`'s
//! one-active-build rule.

use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::rows::{self, ts};
use super::{db, jobs};
use crate::domain::{job_state, Job, WorkspaceBuild};
use crate::store::{stored, BuildPage, Result, StoreError, Workspace, WorkspaceFilter};

pub async fn insert_workspace(
    pool: &SqlitePool,
    ws: &Workspace,
    build: &WorkspaceBuild,
    job: &Job,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::query(
        "INSERT INTO workspaces (id, organization_id, owner_id, template_id, name, deleted, autostart_schedule, ttl_ms, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ws.id.to_string())
    .bind(ws.organization_id.to_string())
    .bind(ws.owner_id.to_string())
    .bind(ws.template_id.to_string())
    .bind(&ws.name)
    .bind(ws.deleted)
    .bind(&ws.autostart_schedule)
    .bind(ws.ttl_ms)
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
    let owner = f.owner_id.map(|o| o.to_string());
    let where_clause = "(? IS NULL OR owner_id = ?) AND (? OR deleted = 0)";
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM workspaces WHERE {where_clause}"
    )))
    .bind(&owner)
    .bind(&owner)
    .bind(f.include_deleted)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM workspaces WHERE {where_clause} ORDER BY created_at, id LIMIT ? OFFSET ?"
    )))
    .bind(&owner)
    .bind(&owner)
    .bind(f.include_deleted)
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
