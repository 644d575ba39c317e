//! A job's run timings on SQLite (`provisioner_job_timings`): written with
//! the job's completion, in its transaction and in the order reported,
//! and read back by job.

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::db;
use super::rows::ts;
use crate::domain::ProvisionerTiming;
use crate::store::{Result, StoreError};

/// Rows per statement (8 values each, well under SQLite's variable limit).
const CHUNK: usize = 500;

/// Stores `timings` as the job's, after any it has (a late result's come
/// after none: a job completes once).
pub async fn insert(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: Uuid,
    timings: &[ProvisionerTiming],
) -> Result<()> {
    for (chunk_no, chunk) in timings.chunks(CHUNK).enumerate() {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO provisioner_job_timings
             (job_id, position, started_at, ended_at, stage, source, action, resource) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut row, (i, t)| {
            let position = (chunk_no * CHUNK + i) as i64;
            row.push_bind(job_id.to_string())
                .push_bind(position)
                .push_bind(ts(t.started_at))
                .push_bind(ts(t.ended_at))
                .push_bind(t.stage.as_str())
                .push_bind(t.source.clone())
                .push_bind(t.action.clone())
                .push_bind(t.resource.clone());
        });
        q.build().execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}

/// The job's timings in the order its daemon reported them.
pub async fn of_job(pool: &SqlitePool, job_id: Uuid) -> Result<Vec<ProvisionerTiming>> {
    let rows = sqlx::query(
        "SELECT started_at, ended_at, stage, source, action, resource
         FROM provisioner_job_timings WHERE job_id = ? ORDER BY position",
    )
    .bind(job_id.to_string())
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("timing: {e}"));
            let text = |col: &str| r.try_get::<String, _>(col).map_err(|e| corrupt(&e));
            let time = |col: &str| {
                chrono::DateTime::parse_from_rfc3339(&text(col)?)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|e| corrupt(&e))
            };
            Ok(ProvisionerTiming {
                started_at: time("started_at")?,
                ended_at: time("ended_at")?,
                stage: text("stage")?.parse().map_err(|e| corrupt(&e))?,
                source: text("source")?,
                action: text("action")?,
                resource: text("resource")?,
            })
        })
        .collect()
}
