//! Pages of workspaces and builds as the API shows them, read in a fixed
//! number of queries whatever the page size (no query per row): the names
//! are joined, jobs and resources are read for the whole page by id, and
//! queue positions come from one window over the pending jobs. Ids travel
//! as one JSON array bound to `json_each`, so a page of any size is one
//! statement with one parameter.

use std::collections::HashMap;

use sqlx::SqlitePool;
use uuid::Uuid;

use super::{db, rows};
use crate::domain::StoredResource;
use crate::store::sql::LATEST_BUILD_ID;
use crate::store::{BuildView, Result, StoreError, WorkspaceView};

/// The ids as the JSON array `json_each` reads.
fn id_array(ids: &[Uuid]) -> Result<String> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Puts rows keyed by id back in the order of `ids`, leaving out unknown ones.
fn in_order<T>(ids: &[Uuid], mut found: HashMap<Uuid, T>) -> Vec<T> {
    ids.iter().filter_map(|id| found.remove(id)).collect()
}

pub async fn workspace_views(pool: &SqlitePool, ids: &[Uuid]) -> Result<Vec<WorkspaceView>> {
    let sql = format!(
        "SELECT w.*, o.username AS owner_username, org.name AS organization_name,
            t.name AS template_name, t.display_name AS template_display_name,
            t.active_version_id AS template_active_version_id,
            {LATEST_BUILD_ID} AS latest_build_id
         FROM workspaces w
         JOIN users o ON o.id = w.owner_id
         JOIN organizations org ON org.id = w.organization_id
         JOIN templates t ON t.id = w.template_id
         WHERE w.id IN (SELECT value FROM json_each(?))",
    );
    // Safe: the only text added is the constant `LATEST_BUILD_ID`; ids are bound.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id_array(ids)?)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let view = rows::workspace_view(row)?;
        found.insert(view.workspace.id, view);
    }
    Ok(in_order(ids, found))
}

/// Four queries: the builds with their names, their jobs, their resources
/// and the queue positions of their jobs. The build's state is not read
/// (the API never shows it; it can be large): `provisioner_state` is empty.
pub async fn build_views(pool: &SqlitePool, ids: &[Uuid]) -> Result<Vec<BuildView>> {
    let ids_json = id_array(ids)?;
    let build_rows = sqlx::query(
        "SELECT b.id, b.workspace_id, b.build_number, b.transition, b.template_version_id,
            b.initiator_id, b.reason, x'' AS provisioner_state, b.job_id, b.deadline,
            b.max_deadline, b.daily_cost, b.rich_parameters, b.created_at, b.updated_at,
            w.name AS workspace_name, w.owner_id AS owner_id, o.username AS owner_username,
            COALESCE(i.username, '') AS initiator_username, v.name AS template_version_name,
            t.id AS template_id, t.name AS template_name,
            t.display_name AS template_display_name
         FROM workspace_builds b
         JOIN workspaces w ON w.id = b.workspace_id
         JOIN templates t ON t.id = w.template_id
         JOIN users o ON o.id = w.owner_id
         LEFT JOIN users i ON i.id = b.initiator_id
         JOIN template_versions v ON v.id = b.template_version_id
         WHERE b.id IN (SELECT value FROM json_each(?))",
    )
    .bind(&ids_json)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let job_rows = sqlx::query(
        "SELECT j.* FROM provisioner_jobs j
         WHERE j.id IN (SELECT b.job_id FROM workspace_builds b
                        WHERE b.id IN (SELECT value FROM json_each(?)))",
    )
    .bind(&ids_json)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut jobs = HashMap::with_capacity(job_rows.len());
    for row in &job_rows {
        let job = rows::job(row)?;
        jobs.insert(job.id, job);
    }
    let resource_rows = sqlx::query(
        "SELECT r.* FROM workspace_resources r
         WHERE r.job_id IN (SELECT b.job_id FROM workspace_builds b
                            WHERE b.id IN (SELECT value FROM json_each(?)))
         ORDER BY r.job_id, r.transition, r.position",
    )
    .bind(&ids_json)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut resources: HashMap<Uuid, Vec<StoredResource>> = HashMap::new();
    for row in &resource_rows {
        let r = rows::resource(row)?;
        resources.entry(r.job_id).or_default().push(r);
    }
    let job_ids: Vec<Uuid> = jobs.keys().copied().collect();
    let mut queue = queue_positions(pool, &job_ids).await?;
    let mut found = HashMap::with_capacity(build_rows.len());
    for row in &build_rows {
        let build = rows::build(row)?;
        let job = jobs.remove(&build.job_id).ok_or_else(|| {
            StoreError::Corrupt(format!("build {} has no job {}", build.id, build.job_id))
        })?;
        let mut view = rows::build_view(row, build, job)?;
        view.resources = resources.remove(&view.job.id).unwrap_or_default();
        view.queue = queue.remove(&view.job.id).unwrap_or((0, 0));
        found.insert(view.build.id, view);
    }
    Ok(in_order(ids, found))
}

/// One statement: the pending jobs numbered in queue order (oldest first,
/// ties by id, as `queue_position` counts), joined to the jobs asked for.
pub async fn queue_positions(
    pool: &SqlitePool,
    job_ids: &[Uuid],
) -> Result<HashMap<Uuid, (i64, i64)>> {
    let rows = sqlx::query(
        "WITH pending AS (
            SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS position,
                   COUNT(*) OVER () AS size
            FROM provisioner_jobs
            WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL)
         SELECT j.id AS id, COALESCE(p.position, 0) AS position,
                COALESCE((SELECT size FROM pending LIMIT 1), 0) AS size
         FROM provisioner_jobs j LEFT JOIN pending p ON p.id = j.id
         WHERE j.id IN (SELECT value FROM json_each(?))",
    )
    .bind(id_array(job_ids)?)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::queue_position).collect()
}
