//! A job's run timings on PostgreSQL (`provisioner_job_timings`): written
//! with the job's completion, in its transaction and in the order
//! reported, and read back by job.

use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::db;
use crate::domain::ProvisionerTiming;
use crate::store::{Result, StoreError};

/// Rows per statement (8 parameters each, well under PostgreSQL's 65535).
const CHUNK: usize = 500;

/// Stores `timings` as the job's (a job completes once).
pub async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    job_id: Uuid,
    timings: &[ProvisionerTiming],
) -> Result<()> {
    for (chunk_no, chunk) in timings.chunks(CHUNK).enumerate() {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO provisioner_job_timings
             (job_id, position, started_at, ended_at, stage, source, action, resource) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut row, (i, t)| {
            let position = i32::try_from(chunk_no * CHUNK + i).unwrap_or(i32::MAX);
            row.push_bind(job_id)
                .push_bind(position)
                .push_bind(t.started_at)
                .push_bind(t.ended_at)
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
pub async fn of_job(pool: &PgPool, job_id: Uuid) -> Result<Vec<ProvisionerTiming>> {
    let rows = sqlx::query(
        "SELECT started_at, ended_at, stage, source, action, resource
         FROM provisioner_job_timings WHERE job_id = $1 ORDER BY position",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("timing: {e}"));
            let stage: String = r.try_get("stage").map_err(|e| corrupt(&e))?;
            Ok(ProvisionerTiming {
                started_at: r.try_get("started_at").map_err(|e| corrupt(&e))?,
                ended_at: r.try_get("ended_at").map_err(|e| corrupt(&e))?,
                stage: stage.parse().map_err(|e| corrupt(&e))?,
                source: r.try_get("source").map_err(|e| corrupt(&e))?,
                action: r.try_get("action").map_err(|e| corrupt(&e))?,
                resource: r.try_get("resource").map_err(|e| corrupt(&e))?,
            })
        })
        .collect()
}
