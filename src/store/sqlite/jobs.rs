//! The job queue in SQLite: insert, acquire, release, logs, heartbeats,
//! cancel and completion. Every state change runs in a `BEGIN IMMEDIATE`
//! transaction that reads the rows, asks `domain::job_state` what to do and
//! writes what it decided, so the read that decides and the write that acts
//! see the same database. No rule of the state machine is written here.

use chrono::SubsecRound;
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::rows::{self, clock, now, ts};
use super::{db, found};
use crate::domain::job_state::{self, BuildHistory, Completion, Effect, NewerBuild, Reporter};
use crate::domain::{
    ImportResult, Job, JobOutcome, JobType, Resource, StoredLog, Transition, WorkspaceBuild,
    SCOPE_KEYS,
};
use crate::store::{
    stored, AcquireRequest, AppendedLogs, CancelResult, CompleteResult, LogBatch, LogRange, Result,
    StoreError,
};

/// JSON for a query parameter (not a stored column: those have their
/// formats in `store::stored`).
fn param_json<T: serde::Serialize>(v: &T) -> Result<String> {
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
    .bind(rows::to_json(&j.input, stored::encode_job_input)?)
    .bind(rows::to_json(&j.tags, stored::encode_tags)?)
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
/// from one run to the next with one seek each (two at most: the next
/// provisioner under the same tags, else the next tags; a row-value
/// `(tags, provisioner) > (?, ?)` seeks on `tags` alone, so it read every
/// job of the current run: 1.9 ms per acquire with 15,000 jobs queued in
/// one run, against 12 µs now), `takeable` keeps the runs
/// the daemon matches, and the oldest job of each is one more seek. So jobs
/// no connected daemon can take, however many, never hide one it can (a
/// scan of the oldest N jobs did, until the pending timeout).
///
/// Choosing and taking the job is one statement: SQLite runs a statement
/// atomically under the write lock, so no `BEGIN IMMEDIATE` transaction is
/// needed, and the taken row comes back with it (one round trip to sqlx's
/// connection thread instead of five).
const ACQUIRE_SQL: &str = "
WITH RECURSIVE runs(tags, provisioner) AS (
    SELECT * FROM (
        SELECT tags, provisioner FROM provisioner_jobs
        WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
        ORDER BY tags, provisioner LIMIT 1)
    UNION ALL
    SELECT n.tags, n.provisioner FROM runs AS r
    JOIN provisioner_jobs AS n ON n.rowid = COALESCE(
        (SELECT rowid FROM provisioner_jobs
         WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
           AND tags = r.tags AND provisioner > r.provisioner
         ORDER BY tags, provisioner LIMIT 1),
        (SELECT rowid FROM provisioner_jobs
         WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
           AND tags > r.tags
         ORDER BY tags, provisioner LIMIT 1))
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
UPDATE provisioner_jobs SET started_at = ?5, updated_at = ?5, worker_id = ?6, worker_name = ?7
WHERE rowid = (
    SELECT j.rowid FROM takeable AS k
    JOIN provisioner_jobs AS j ON j.rowid = (
        SELECT rowid FROM provisioner_jobs
        WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
          AND tags = k.tags AND provisioner = k.provisioner
        ORDER BY created_at, id LIMIT 1)
    ORDER BY j.created_at, j.id LIMIT 1)
RETURNING *";

pub async fn acquire(pool: &SqlitePool, req: &AcquireRequest) -> Result<Option<Job>> {
    let provisioners: Vec<&str> = req.provisioners.iter().map(|p| p.as_str()).collect();
    let plain_daemon = req.tags.keys().all(|k| SCOPE_KEYS.contains(&k.as_str()));
    let row = sqlx::query(ACQUIRE_SQL)
        .bind(param_json(&provisioners)?)
        .bind(rows::to_json(&req.tags, stored::encode_tags)?)
        .bind(plain_daemon)
        .bind(param_json(&SCOPE_KEYS)?)
        .bind(now())
        .bind(req.worker_id.to_string())
        .bind(&req.worker_name)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::job).transpose()
}

pub async fn release(pool: &SqlitePool, job_id: Uuid, worker_id: Uuid) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let job = job_in(&mut tx, job_id).await?;
    if let Some(next) = job_state::release(&job, worker_id, clock()) {
        write_job(&mut tx, &next).await?;
        tx.commit().await.map_err(db)?;
    }
    Ok(())
}

/// Writes the columns of a job's row that change over its life, as a
/// `job_state` decision left them.
async fn write_job(tx: &mut Transaction<'static, Sqlite>, j: &Job) -> Result<()> {
    sqlx::query(
        "UPDATE provisioner_jobs SET started_at = ?, canceled_at = ?, completed_at = ?, worker_id = ?,
            worker_name = ?, error = ?, error_code = ?, updated_at = ? WHERE id = ?",
    )
    .bind(j.started_at.map(ts))
    .bind(j.canceled_at.map(ts))
    .bind(j.completed_at.map(ts))
    .bind(j.worker_id.map(|w| w.to_string()))
    .bind(&j.worker_name)
    .bind(&j.error)
    .bind(&j.error_code)
    .bind(ts(j.updated_at))
    .bind(j.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
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
    .bind(param_json(&rows)?)
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
    let decision = job_state::cancel(&job, clock());
    if let Some(next) = &decision.job {
        write_job(&mut tx, next).await?;
        tx.commit().await.map_err(db)?;
    }
    Ok(decision.result)
}

/// Completes a job, as [`job_state::complete`] decides; `by` is
/// [`Reporter::Server`] for the server's own failures.
pub async fn complete(
    pool: &SqlitePool,
    job_id: Uuid,
    by: Reporter,
    outcome: &JobOutcome,
) -> Result<CompleteResult> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let row = sqlx::query("SELECT * FROM provisioner_jobs WHERE id = ?")
        .bind(job_id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let row = found(row)?;
    let (job, late_recorded) = (rows::job(&row)?, rows::late_result_recorded(&row)?);
    let now = clock();
    let completion = job_state::complete(&job, late_recorded, by, outcome, now)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let result = match completion {
        Completion::AlreadyCompleted => return Ok(CompleteResult::AlreadyCompleted),
        Completion::Late => complete_late(&mut tx, &job, outcome, now).await?,
        Completion::Complete { job: next, effect } => {
            write_job(&mut tx, &next).await?;
            super::timings::insert(&mut tx, job_id, &outcome.timings).await?;
            let now = ts(now);
            match (effect, &outcome.import) {
                (Effect::Build, _) => complete_build(&mut tx, &next, outcome, &now).await?,
                (Effect::Import, Some(import)) => {
                    complete_import(&mut tx, job_id, outcome, import, &now).await?;
                }
                (Effect::Import | Effect::Nothing, _) => {}
            }
            CompleteResult::Completed
        }
    };
    tx.commit().await.map_err(db)?;
    Ok(result)
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
        .bind(rows::to_json(import, stored::encode_import)?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

async fn build_of_job(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: Uuid,
) -> Result<WorkspaceBuild> {
    let row = sqlx::query("SELECT * FROM workspace_builds WHERE job_id = ?")
        .bind(job_id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    rows::build(&found(row)?)
}

async fn set_build_state(
    tx: &mut Transaction<'static, Sqlite>,
    build_id: Uuid,
    state: &[u8],
    now: &str,
) -> Result<()> {
    sqlx::query("UPDATE workspace_builds SET provisioner_state = ?, updated_at = ? WHERE id = ?")
        .bind(state)
        .bind(now)
        .bind(build_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Applies a completed build job's outcome to its build and workspace:
/// `job` is the job row as just written. The workspace's ttl is read here,
/// in the completion's transaction, so the deadline commits with it.
async fn complete_build(
    tx: &mut Transaction<'static, Sqlite>,
    job: &Job,
    outcome: &JobOutcome,
    now: &str,
) -> Result<()> {
    let job_id = job.id;
    let build = build_of_job(tx, job_id).await?;
    let ttl_ms: Option<i64> = sqlx::query_scalar("SELECT ttl_ms FROM workspaces WHERE id = ?")
        .bind(build.workspace_id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?
        .flatten();
    let decision = job_state::complete_build(&build, job, outcome, ttl_ms);
    if let Some(state) = decision.state {
        set_build_state(tx, build.id, state, now).await?;
    }
    // Always touched: a build row whose `updated_at` is before its job's
    // completion was read before the completion (see `api/json.rs`).
    sqlx::query(
        "UPDATE workspace_builds SET deadline = COALESCE(?, deadline), updated_at = ? WHERE id = ?",
    )
    .bind(decision.deadline.map(ts))
    .bind(now)
    .bind(build.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    insert_resources(tx, job_id, decision.resources, &outcome.resources, now).await?;
    if decision.workspace_deleted {
        sqlx::query("UPDATE workspaces SET deleted = 1, updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(build.workspace_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Records a result that came after the server gave up on the job, as
/// [`job_state::late_result`] decides from the job's build and the newer
/// builds of its workspace.
async fn complete_late(
    tx: &mut Transaction<'static, Sqlite>,
    job: &Job,
    outcome: &JobOutcome,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CompleteResult> {
    let mut build = None;
    let mut newer = Vec::new();
    if job.job_type == JobType::WorkspaceBuild {
        let b = build_of_job(tx, job.id).await?;
        let rows: Vec<(i64, String, Option<String>, Vec<u8>)> = sqlx::query_as(
            "SELECT b.build_number, b.id, j.started_at, b.provisioner_state
             FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
             WHERE b.workspace_id = ? AND b.build_number > ? ORDER BY b.build_number",
        )
        .bind(b.workspace_id.to_string())
        .bind(b.build_number)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        for (number, id, started_at, provisioner_state) in rows {
            newer.push(NewerBuild {
                id: id.parse().map_err(|e| StoreError::Corrupt(format!("build id: {e}")))?,
                build_number: i32::try_from(number)
                    .map_err(|e| StoreError::Corrupt(format!("build number: {e}")))?,
                started: started_at.is_some(),
                provisioner_state,
            });
        }
        build = Some(b);
    }
    let history = build.as_ref().map(|build| BuildHistory { build, newer: &newer });
    let decision = job_state::late_result(job, history, outcome, now);
    let now = ts(now);
    if let Some((state, builds)) = &decision.state {
        for id in builds {
            set_build_state(tx, *id, state, &now).await?;
        }
    }
    if let Some(transition) = decision.resources {
        insert_resources(tx, job.id, transition, &outcome.resources, &now).await?;
    }
    write_job(tx, &decision.job).await?;
    // The run happened: its timings are kept like its state.
    super::timings::insert(tx, job.id, &outcome.timings).await?;
    sqlx::query("UPDATE provisioner_jobs SET late_result_at = ? WHERE id = ?")
        .bind(ts(decision.job.updated_at))
        .bind(job.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    // The same words in the build's log, after the daemon's last line.
    let line = &decision.log;
    sqlx::query(
        "INSERT INTO provisioner_job_log_lines (job, seq, created_at, source, level, stage, output)
         SELECT k.key, COALESCE((SELECT MAX(seq) FROM provisioner_job_log_lines WHERE job = k.key), 0) + 1,
                ?, ?, ?, ?, ?
         FROM provisioner_job_log_keys AS k WHERE k.job_id = ?",
    )
    .bind(ts(line.created_at))
    .bind(line.source.as_str())
    .bind(line.level.as_str())
    .bind(&line.stage)
    .bind(&line.output)
    .bind(job.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(decision.result)
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
        .bind(rows::to_json(r, stored::encode_resource)?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        // Indexed by agent id for `GET /workspaceagents/{id}`; an agent on
        // every instance of a counted resource has its own id already.
        for agent in &r.agents {
            sqlx::query("INSERT OR IGNORE INTO workspace_agents (agent_id, job_id) VALUES (?, ?)")
                .bind(agent.id.to_string())
                .bind(job_id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
    }
    Ok(())
}

/// Started, not completed jobs not heard of since `before`.
pub async fn stale_jobs(
    pool: &SqlitePool,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Job>> {
    let rows = sqlx::query(
        "SELECT * FROM provisioner_jobs WHERE started_at IS NOT NULL AND completed_at IS NULL AND updated_at < ?",
    )
    .bind(ts(before))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::job).collect()
}

/// Jobs still pending, created before `before`.
pub async fn pending_jobs_before(
    pool: &SqlitePool,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Job>> {
    let rows = sqlx::query(
        "SELECT * FROM provisioner_jobs
         WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL AND created_at < ?",
    )
    .bind(ts(before))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::job).collect()
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
                .bind("2026-01-01T00:00:00.000000Z")
                .bind("00000000-0000-0000-0000-000000000000")
                .bind("plan")
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
        // The step to the next run seeks on both columns: a seek on `tags`
        // alone reads every queued job of the run it leaves.
        assert!(
            steps.iter().any(|d| d.contains("provisioner_jobs_queue (tags=? AND provisioner>?)")),
            "{steps:#?}"
        );
    }
}
