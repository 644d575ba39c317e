//! The job queue in SQLite: insert, acquire, release, logs, heartbeats,
//! cancel and completion. Every state change runs in a `BEGIN IMMEDIATE`
//! transaction, so the read that decides and the write that acts see the
//! same database.

use chrono::SubsecRound;
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::rows::{self, now};
use super::{db, found};
use crate::domain::{
    ImportResult, Job, JobOutcome, JobType, LogLevel, LogSource, Resource, StoredLog, Transition,
    DAEMON_LOST, SCOPE_KEYS,
};
use crate::store::{
    AcquireRequest, AppendedLogs, CancelResult, CompleteResult, LogBatch, LogRange, Result,
    StoreError,
};

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub async fn insert_job(tx: &mut Transaction<'static, Sqlite>, j: &Job) -> Result<()> {
    sqlx::query(
        "INSERT INTO provisioner_jobs (id, job_type, provisioner, organization_id, initiator_id, file_id, input, tags,
            created_at, updated_at, started_at, canceled_at, completed_at, worker_id, worker_name, error, error_code)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .bind(j.id.to_string())
    .bind(j.job_type.as_str())
    .bind(j.provisioner.as_str())
    .bind(j.organization_id.to_string())
    .bind(j.initiator_id.to_string())
    .bind(j.file_id.to_string())
    .bind(to_json(&j.input)?)
    .bind(to_json(&j.tags)?)
    .bind(rows::ts(j.created_at))
    .bind(rows::ts(j.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    // The small key the job's log rows name it by.
    sqlx::query("INSERT INTO provisioner_job_log_keys (job_id) VALUES (?)")
        .bind(j.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

async fn job_in(tx: &mut Transaction<'static, Sqlite>, id: Uuid) -> Result<Job> {
    let row = sqlx::query("SELECT * FROM provisioner_jobs WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    rows::job(&found(row)?)
}

pub async fn queue_position(pool: &SqlitePool, job_id: Uuid) -> Result<(i64, i64)> {
    let (position, size): (i64, i64) = sqlx::query_as(
        "SELECT
           COALESCE((SELECT 1 + COUNT(*) FROM provisioner_jobs p
                     WHERE p.started_at IS NULL AND p.completed_at IS NULL AND p.canceled_at IS NULL
                       AND (p.created_at < j.created_at OR (p.created_at = j.created_at AND p.id < j.id))
                     HAVING j.started_at IS NULL AND j.completed_at IS NULL AND j.canceled_at IS NULL), 0),
           (SELECT COUNT(*) FROM provisioner_jobs
            WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL)
         FROM provisioner_jobs j WHERE j.id = ?",
    )
    .bind(job_id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    Ok((position, size))
}

/// Picks the oldest pending job a daemon can take: one whose provisioner it
/// offers and whose every tag it has, and, when the job has no tags beyond
/// its scope, only if the daemon has none either (`domain::tags_satisfy`).
///
/// Matching runs in SQL over the distinct (tags, provisioner) runs of the
/// `provisioner_jobs_queue` index rather than job by job: `runs` skips
/// from one run to the next with one seek each, `takeable` keeps the runs
/// the daemon matches, and the oldest job of each is one more seek. So jobs
/// no connected daemon can take, however many, never hide one it can (a
/// scan of the oldest N jobs did, until the pending timeout).
const ACQUIRE_SQL: &str = "
WITH RECURSIVE runs(tags, provisioner) AS (
    SELECT * FROM (
        SELECT tags, provisioner FROM provisioner_jobs
        WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
        ORDER BY tags, provisioner LIMIT 1)
    UNION ALL
    SELECT n.tags, n.provisioner FROM runs AS r
    JOIN provisioner_jobs AS n ON n.rowid = (
        SELECT rowid FROM provisioner_jobs
        WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
          AND (tags, provisioner) > (r.tags, r.provisioner)
        ORDER BY tags, provisioner LIMIT 1)
),
takeable AS (
    SELECT tags, provisioner FROM runs
    WHERE provisioner IN (SELECT value FROM json_each(?1))
      AND NOT EXISTS (
          SELECT 1 FROM json_each(runs.tags) AS t
          WHERE NOT EXISTS (
              SELECT 1 FROM json_each(?2) AS d WHERE d.key = t.key AND d.value = t.value))
      AND (?3 OR EXISTS (
          SELECT 1 FROM json_each(runs.tags) AS t
          WHERE t.key NOT IN (SELECT value FROM json_each(?4))))
)
SELECT j.id FROM takeable AS k
JOIN provisioner_jobs AS j ON j.rowid = (
    SELECT rowid FROM provisioner_jobs
    WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
      AND tags = k.tags AND provisioner = k.provisioner
    ORDER BY created_at, id LIMIT 1)
ORDER BY j.created_at, j.id LIMIT 1";

pub async fn acquire(pool: &SqlitePool, req: &AcquireRequest) -> Result<Option<Job>> {
    let provisioners: Vec<&str> = req.provisioners.iter().map(|p| p.as_str()).collect();
    let plain_daemon = req.tags.keys().all(|k| SCOPE_KEYS.contains(&k.as_str()));
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let chosen: Option<String> = sqlx::query_scalar(ACQUIRE_SQL)
        .bind(to_json(&provisioners)?)
        .bind(to_json(&req.tags)?)
        .bind(plain_daemon)
        .bind(to_json(&SCOPE_KEYS)?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let Some(job_id) = chosen else { return Ok(None) };
    let job_id: Uuid = job_id.parse().map_err(|e| StoreError::Corrupt(format!("job id: {e}")))?;
    let now = now();
    sqlx::query("UPDATE provisioner_jobs SET started_at = ?, updated_at = ?, worker_id = ?, worker_name = ? WHERE id = ?")
        .bind(&now)
        .bind(&now)
        .bind(req.worker_id.to_string())
        .bind(&req.worker_name)
        .bind(job_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let job = job_in(&mut tx, job_id).await?;
    tx.commit().await.map_err(db)?;
    Ok(Some(job))
}

pub async fn release(pool: &SqlitePool, job_id: Uuid, worker_id: Uuid) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let job = job_in(&mut tx, job_id).await?;
    if job.completed_at.is_some() || job.worker_id != Some(worker_id) {
        return Ok(());
    }
    let now = now();
    let sql = if job.canceled_at.is_some() {
        "UPDATE provisioner_jobs SET completed_at = ?, updated_at = ?1 WHERE id = ?2"
    } else {
        "UPDATE provisioner_jobs SET started_at = NULL, worker_id = NULL, worker_name = NULL, updated_at = ?1 WHERE id = ?2"
    };
    sqlx::query(sql).bind(&now).bind(job_id.to_string()).execute(&mut *tx).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

pub async fn append_logs(pool: &SqlitePool, batch: LogBatch) -> Result<AppendedLogs> {
    let job = batch.job_id.to_string();
    // Each sequence number once, in order. Of these the store keeps those
    // above the job's highest stored one: a resent batch overlaps the stored
    // lines by a prefix.
    let mut lines = batch.lines;
    lines.sort_by_key(|(seq, _)| *seq);
    lines.dedup_by_key(|(seq, _)| *seq);
    let Some(batch_max) = lines.last().map(|(seq, _)| *seq) else {
        return Ok(AppendedLogs { up_to_seq: max_seq(pool, &job).await?, stored: Vec::new() });
    };
    // One statement of fixed text, run on its own (SQLite makes a statement
    // atomic and holds the write lock throughout, so the highest seq it reads
    // is still the highest when it inserts): SQLite prepares it once, and the
    // batch costs one round trip to sqlx's connection thread. The lines go as
    // one JSON array bound once. The last-seq subquery looks the key up again
    // rather than naming `k.key`: that would correlate it with the outer row,
    // and SQLite would run it once per line instead of once.
    let rows: Vec<_> = lines
        .iter()
        .map(|(seq, l)| {
            (seq, rows::ts(l.created_at), l.source.as_str(), l.level.as_str(), &l.stage, &l.output)
        })
        .collect();
    let done = sqlx::query(
        "INSERT INTO provisioner_job_log_lines (job, seq, created_at, source, level, stage, output)
         SELECT k.key, l.value ->> 0, l.value ->> 1, l.value ->> 2, l.value ->> 3, l.value ->> 4, l.value ->> 5
         FROM provisioner_job_log_keys AS k, jsonb_each(?2) AS l
         WHERE k.job_id = ?1 AND l.value ->> 0 > COALESCE((SELECT seq FROM provisioner_job_log_lines
             WHERE job = (SELECT key FROM provisioner_job_log_keys WHERE job_id = ?1)
             ORDER BY id DESC LIMIT 1), 0)
         ORDER BY l.key",
    )
    .bind(&job)
    .bind(to_json(&rows)?)
    .execute(pool)
    .await
    .map_err(db)?;
    let count = done.rows_affected();
    if count == 0 {
        return Ok(AppendedLogs { up_to_seq: max_seq(pool, &job).await?, stored: Vec::new() });
    }
    // The lines stored are the batch's suffix above the stored seq; the
    // statement held the write lock, so their ids are consecutive, in array
    // order, ending at the last one inserted.
    let skip =
        lines.len().checked_sub(usize::try_from(count).unwrap_or(usize::MAX)).ok_or_else(|| {
            StoreError::Corrupt(format!("stored {count} of {} log lines of job {job}", lines.len()))
        })?;
    let first_id = done.last_insert_rowid() - i64::try_from(count).unwrap_or(i64::MAX) + 1;
    let job_id = batch.job_id;
    let stored = lines
        .into_iter()
        .skip(skip)
        .zip(first_id..)
        .map(|((seq, mut line), id)| {
            // As a read gives it back: the column keeps microseconds.
            line.created_at = line.created_at.trunc_subsecs(6);
            StoredLog { id, job_id, seq, line }
        })
        .collect();
    Ok(AppendedLogs { up_to_seq: batch_max, stored })
}

/// The highest sequence number stored for a job's logs (0 for none): its
/// last line's, since a job's lines are stored in rising seq order.
async fn max_seq(pool: &SqlitePool, job: &str) -> Result<i64> {
    let max: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT (SELECT seq FROM provisioner_job_log_lines WHERE job = k.key ORDER BY id DESC LIMIT 1)
         FROM provisioner_job_log_keys AS k WHERE k.job_id = ?",
    )
    .bind(job)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(found(max)?.unwrap_or(0))
}

pub async fn logs(pool: &SqlitePool, job_id: Uuid, range: LogRange) -> Result<Vec<StoredLog>> {
    // Only the bounds that are set go into the SQL: `(? IS NULL OR id > ?)`
    // kept SQLite from seeking, so every follower poll scanned the job's
    // whole log (quadratic over a chatty build, scripts/bench).
    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SELECT l.*, k.job_id FROM provisioner_job_log_keys AS k
         JOIN provisioner_job_log_lines AS l ON l.job = k.key WHERE k.job_id = ",
    );
    q.push_bind(job_id.to_string());
    if let Some(after) = range.after {
        q.push(" AND l.id > ").push_bind(after);
    }
    if let Some(before) = range.before {
        q.push(" AND l.id < ").push_bind(before);
    }
    q.push(" ORDER BY l.id");
    if let Some(limit) = range.limit {
        q.push(" LIMIT ").push_bind(limit);
    }
    let rows = q.build().fetch_all(pool).await.map_err(db)?;
    rows.iter().map(rows::log).collect()
}

pub async fn heartbeat(pool: &SqlitePool, worker_id: Uuid, job_ids: &[Uuid]) -> Result<()> {
    let now = now();
    for id in job_ids {
        sqlx::query("UPDATE provisioner_jobs SET updated_at = ? WHERE id = ? AND worker_id = ? AND completed_at IS NULL")
            .bind(&now)
            .bind(id.to_string())
            .bind(worker_id.to_string())
            .execute(pool)
            .await
            .map_err(db)?;
    }
    Ok(())
}

pub async fn cancel(pool: &SqlitePool, job_id: Uuid) -> Result<CancelResult> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let job = job_in(&mut tx, job_id).await?;
    let now = now();
    let (sql, result) = match (job.completed_at, job.canceled_at, job.started_at) {
        (Some(_), _, _) | (None, Some(_), _) => return Ok(CancelResult::AlreadyDone),
        (None, None, None) => (
            "UPDATE provisioner_jobs SET canceled_at = ?1, completed_at = ?1, updated_at = ?1 WHERE id = ?2",
            CancelResult::CanceledPending,
        ),
        (None, None, Some(_)) => (
            "UPDATE provisioner_jobs SET canceled_at = ?1, updated_at = ?1 WHERE id = ?2",
            CancelResult::Canceling,
        ),
    };
    sqlx::query(sql).bind(&now).bind(job_id.to_string()).execute(&mut *tx).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(result)
}

/// Completes a job; `worker` is `None` for the server's own failures.
pub async fn complete(
    pool: &SqlitePool,
    job_id: Uuid,
    worker: Option<Uuid>,
    outcome: &JobOutcome,
) -> Result<CompleteResult> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let job = job_in(&mut tx, job_id).await?;
    if job.completed_at.is_some() {
        if worker.is_some()
            && job.worker_id == worker
            && is_first_late_result(&mut tx, &job).await?
        {
            let result = complete_late(&mut tx, &job, outcome).await?;
            tx.commit().await.map_err(db)?;
            return Ok(result);
        }
        return Ok(CompleteResult::AlreadyCompleted);
    }
    if worker.is_some() && job.worker_id != worker {
        return Err(StoreError::Conflict(format!("job {job_id} is not owned by this daemon")));
    }
    let now = now();
    let canceled_at = match (job.canceled_at, outcome.canceled) {
        (Some(t), _) => Some(rows::ts(t)),
        (None, true) => Some(now.clone()),
        (None, false) => None,
    };
    sqlx::query(
        "UPDATE provisioner_jobs SET completed_at = ?, updated_at = ?, canceled_at = ?, error = ?, error_code = ? WHERE id = ?",
    )
    .bind(&now)
    .bind(&now)
    .bind(canceled_at)
    .bind(&outcome.error)
    .bind(&outcome.error_code)
    .bind(job_id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    match (job.job_type, &outcome.import) {
        (JobType::WorkspaceBuild, _) => complete_build(&mut tx, job_id, outcome, &now).await?,
        (JobType::TemplateVersionImport, Some(import)) => {
            complete_import(&mut tx, job_id, outcome, import, &now).await?;
        }
        _ => {}
    }
    tx.commit().await.map_err(db)?;
    Ok(CompleteResult::Completed)
}

/// Whether the job was failed by the server as [`DAEMON_LOST`] and its
/// daemon's result has not come yet.
async fn is_first_late_result(tx: &mut Transaction<'static, Sqlite>, job: &Job) -> Result<bool> {
    if job.error_code.as_deref() != Some(DAEMON_LOST) {
        return Ok(false);
    }
    let late: Option<Option<String>> =
        sqlx::query_scalar("SELECT late_result_at FROM provisioner_jobs WHERE id = ?")
            .bind(job.id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
    Ok(matches!(late, Some(None)))
}

/// Records a result that came after the server gave up on the job. The job
/// stays failed (its build may already have been retried), but the state the
/// daemon reports describes real resources: it is stored on the build, and
/// on newer builds of the workspace that have not started (they copied the
/// state this one started from), so the next build works on what exists.
/// A newer build that has started works from the old state already: its
/// state stands, and the conflict is recorded on this build.
async fn complete_late(
    tx: &mut Transaction<'static, Sqlite>,
    job: &Job,
    outcome: &JobOutcome,
) -> Result<CompleteResult> {
    let now = now();
    let result = match &outcome.error {
        _ if outcome.canceled => "canceled".to_owned(),
        Some(e) => format!("failed: {e}"),
        None => "succeeded".to_owned(),
    };
    let late = format!(
        "the daemon reported the job's result after the server had given up on it ({result})"
    );
    let (note, conflict) = if job.job_type != JobType::WorkspaceBuild {
        (format!("{late}; the result was dropped"), false)
    } else {
        let row = sqlx::query("SELECT * FROM workspace_builds WHERE job_id = ?")
            .bind(job.id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        let build = rows::build(&found(row)?)?;
        // Newer builds of the workspace: whether they started, and the state
        // they were created with.
        let newer: Vec<(i64, String, Option<String>, Vec<u8>)> = sqlx::query_as(
            "SELECT b.build_number, b.id, j.started_at, b.provisioner_state
             FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
             WHERE b.workspace_id = ? AND b.build_number > ? ORDER BY b.build_number",
        )
        .bind(build.workspace_id.to_string())
        .bind(build.build_number)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let started = newer.iter().find(|(_, _, started_at, _)| started_at.is_some());
        match (&outcome.state, started) {
            (None, _) => (
                format!("{late}; it carried no state, so the build's previous state stands"),
                false,
            ),
            (Some(state), started) => {
                sqlx::query("UPDATE workspace_builds SET provisioner_state = ?, updated_at = ? WHERE id = ?")
                    .bind(state)
                    .bind(&now)
                    .bind(build.id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                insert_resources(tx, job.id, build.transition, &outcome.resources, &now).await?;
                match started {
                    Some((number, ..)) => (
                        format!(
                            "conflict: {late}, but build #{number} of the workspace had already started \
                             from the older state; the reported state is kept on this build only \
                             (GET /api/v2/workspacebuilds/{}/state): resources it describes may \
                             need to be reconciled by hand",
                            build.id
                        ),
                        true,
                    ),
                    None => {
                        // Pending newer builds inherit it, unless they were
                        // given a state of their own.
                        for (_, id, _, copied) in &newer {
                            if *copied == build.provisioner_state {
                                sqlx::query("UPDATE workspace_builds SET provisioner_state = ?, updated_at = ? WHERE id = ?")
                                    .bind(state)
                                    .bind(&now)
                                    .bind(id)
                                    .execute(&mut **tx)
                                    .await
                                    .map_err(db)?;
                            }
                        }
                        (format!("{late}; the state it reported was kept for the workspace"), false)
                    }
                }
            }
        }
    };
    let error = match &job.error {
        Some(e) => format!("{e}; {note}"),
        None => note.clone(),
    };
    sqlx::query("UPDATE provisioner_jobs SET late_result_at = ?1, updated_at = ?1, error = ?2 WHERE id = ?3")
        .bind(&now)
        .bind(&error)
        .bind(job.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    // The same words in the build's log, after the daemon's last line.
    let level = if conflict { LogLevel::Error } else { LogLevel::Warn };
    sqlx::query(
        "INSERT INTO provisioner_job_log_lines (job, seq, created_at, source, level, stage, output)
         SELECT k.key, COALESCE((SELECT MAX(seq) FROM provisioner_job_log_lines WHERE job = k.key), 0) + 1,
                ?, ?, ?, 'Late result', ?
         FROM provisioner_job_log_keys AS k WHERE k.job_id = ?",
    )
    .bind(&now)
    .bind(LogSource::ProvisionerDaemon.as_str())
    .bind(level.as_str())
    .bind(&note)
    .bind(job.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(CompleteResult::Late { note, conflict })
}

/// Stores an import's planned resources (start and stop) and findings.
async fn complete_import(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: Uuid,
    outcome: &JobOutcome,
    import: &ImportResult,
    now: &str,
) -> Result<()> {
    insert_resources(tx, job_id, Transition::Start, &outcome.resources, now).await?;
    insert_resources(tx, job_id, Transition::Stop, &import.stop_resources, now).await?;
    sqlx::query("INSERT INTO template_version_imports (job_id, result) VALUES (?, ?)")
        .bind(job_id.to_string())
        .bind(to_json(import)?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

async fn insert_resources(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: Uuid,
    transition: Transition,
    resources: &[Resource],
    now: &str,
) -> Result<()> {
    for (position, r) in resources.iter().enumerate() {
        sqlx::query(
            "INSERT INTO workspace_resources (id, job_id, transition, created_at, position, resource) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(job_id.to_string())
        .bind(transition.as_str())
        .bind(now)
        .bind(position as i64)
        .bind(to_json(r)?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

async fn complete_build(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: Uuid,
    outcome: &JobOutcome,
    now: &str,
) -> Result<()> {
    let row = sqlx::query("SELECT * FROM workspace_builds WHERE job_id = ?")
        .bind(job_id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    let build = rows::build(&found(row)?)?;
    if let Some(state) = &outcome.state {
        sqlx::query(
            "UPDATE workspace_builds SET provisioner_state = ?, updated_at = ? WHERE id = ?",
        )
        .bind(state)
        .bind(now)
        .bind(build.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    insert_resources(tx, job_id, build.transition, &outcome.resources, now).await?;
    let succeeded = outcome.error.is_none() && !outcome.canceled;
    if build.transition == Transition::Delete && succeeded {
        sqlx::query("UPDATE workspaces SET deleted = 1, updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(build.workspace_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ACQUIRE_SQL;

    /// Acquire reads the queue through `provisioner_jobs_queue` only: every
    /// access to the jobs table is an index seek or a row by its rowid, never
    /// a scan of the table or of the pending jobs in queue order.
    #[tokio::test]
    async fn acquire_seeks_the_queue_index() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.db");
        let store = super::super::SqliteStore::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("open");
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {ACQUIRE_SQL}")))
                .bind(r#"["echo"]"#)
                .bind(r#"{"scope":"organization"}"#)
                .bind(true)
                .bind(r#"["scope","owner"]"#)
                .fetch_all(&store.pool)
                .await
                .expect("plan");
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
        let jobs: Vec<&&str> = steps
            .iter()
            .filter(|d| d.contains("provisioner_jobs") || d.contains(" n ") || d.contains(" j "))
            .collect();
        assert!(!jobs.is_empty(), "{steps:#?}");
        for step in &jobs {
            let indexed = step.contains("USING COVERING INDEX provisioner_jobs_queue")
                || step.contains("USING INDEX provisioner_jobs_queue")
                || step.contains("USING INTEGER PRIMARY KEY");
            assert!(indexed, "step {step:?} of {steps:#?}");
        }
    }
}
