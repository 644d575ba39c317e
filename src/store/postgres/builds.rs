//! Workspaces and their builds in PostgreSQL. A build is always inserted
//! with its job in one transaction that first locks the workspace's row
//! (so two replicas creating builds of one workspace take turns), reads its
//! latest build and checks it against `domain::job_state`'s one-active-build
//! rule.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{db, finish, jobs, rows};
use crate::domain::{job_state, Job, WorkspaceBuild};
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
        "INSERT INTO workspaces (id, organization_id, owner_id, template_id, name, deleted, autostart_schedule, ttl_ms, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(ws.id)
    .bind(ws.organization_id)
    .bind(ws.owner_id)
    .bind(ws.template_id)
    .bind(&ws.name)
    .bind(ws.deleted)
    .bind(&ws.autostart_schedule)
    .bind(ws.ttl_ms)
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

pub async fn workspaces(pool: &PgPool, f: &WorkspaceFilter) -> Result<(Vec<Workspace>, i64)> {
    // The page and the total in one query: the count is a window over the
    // filtered rows, computed before LIMIT cuts them.
    let rows = sqlx::query(
        "SELECT *, COUNT(*) OVER () AS total FROM workspaces
         WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2 OR NOT deleted)
         ORDER BY created_at, id LIMIT $3 OFFSET $4",
    )
    .bind(f.owner_id)
    .bind(f.include_deleted)
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let total = match rows.first() {
        Some(row) => sqlx::Row::try_get::<i64, _>(row, "total").map_err(db)?,
        // An empty page (or one past the end) still reports the total.
        None => sqlx::query_scalar(
            "SELECT COUNT(*) FROM workspaces WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2 OR NOT deleted)",
        )
        .bind(f.owner_id)
        .bind(f.include_deleted)
        .fetch_one(pool)
        .await
        .map_err(db)?,
    };
    let list = rows.iter().map(rows::workspace).collect::<Result<_>>()?;
    Ok((list, total))
}

pub async fn builds_of_workspace(
    pool: &PgPool,
    workspace_id: Uuid,
    page: &BuildPage,
) -> Result<Vec<WorkspaceBuild>> {
    let rows = sqlx::query(
        "SELECT * FROM workspace_builds WHERE workspace_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)
         ORDER BY build_number DESC LIMIT $3 OFFSET $4",
    )
    .bind(workspace_id)
    .bind(page.since)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::build).collect()
}
