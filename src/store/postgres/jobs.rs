//! The job queue in PostgreSQL: insert, acquire, release, logs, heartbeats,
//! cancel and completion. Acquire takes the oldest job a daemon matches with
//! `FOR UPDATE SKIP LOCKED`; every other state change locks the job's row
//! `FOR UPDATE`, reads it, asks `domain::job_state` what to do and writes
//! what it decided, in one transaction. No rule of the state machine is
//! written here.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::rows::{self, clock};
use super::{db, finish, found};
use crate::domain::job_state::{self, BuildHistory, Completion, Effect, NewerBuild, Reporter};
use crate::domain::{
    ImportResult, Job, JobOutcome, JobType, Resource, StoredLog, Transition, WorkspaceBuild,
    SCOPE_KEYS,
};
use crate::store::{
    stored, AcquireRequest, AppendedLogs, CancelResult, CompleteResult, LogBatch, LogRange, Result,
    StoreError,
};

type Tx = Transaction<'static, Postgres>;

/// A newer build of a workspace: number, id, its job's start, its state.
type NewerRow = (i32, Uuid, Option<DateTime<Utc>>, Vec<u8>);

pub async fn insert_job(tx: &mut Tx, j: &Job) -> Result<()> {
    sqlx::query(
        "INSERT INTO provisioner_jobs (id, job_type, provisioner, organization_id, initiator_id, file_id, input, tags,
            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)",
    )
    .bind(j.id)
    .bind(j.job_type.as_str())
    .bind(j.provisioner.as_str())
    .bind(j.organization_id)
    .bind(j.initiator_id)
    .bind(j.file_id)
    .bind(rows::to_json(&j.input, stored::encode_job_input)?)
    .bind(rows::to_json(&j.tags, stored::encode_tags)?)
    .bind(j.created_at)
    .bind(j.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    // The small key the job's log rows name it by, and its last seq.
    sqlx::query("INSERT INTO provisioner_job_log_keys (job_id) VALUES ($1)")
        .bind(j.id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Reads a job and locks its row until the transaction ends.
async fn lock_job(tx: &mut Tx, id: Uuid) -> Result<sqlx::postgres::PgRow> {
    let row = sqlx::query("SELECT * FROM provisioner_jobs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    found(row)
}

pub async fn queue_position(pool: &PgPool, job_id: Uuid) -> Result<(i64, i64)> {
    let (position, size): (i64, i64) = sqlx::query_as(
        "SELECT
           CASE WHEN j.started_at IS NULL AND j.completed_at IS NULL AND j.canceled_at IS NULL
             THEN (SELECT 1 + COUNT(*) FROM provisioner_jobs p
                   WHERE p.started_at IS NULL AND p.completed_at IS NULL AND p.canceled_at IS NULL
                     AND (p.created_at, p.id) < (j.created_at, j.id))
             ELSE 0 END,
           (SELECT COUNT(*) FROM provisioner_jobs
            WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL)
         FROM provisioner_jobs j WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    Ok((position, size))
}

/// Hands the oldest pending job a daemon can take to it, in one statement:
/// one whose provisioner it offers (`$1`) and whose every tag it has (the
/// daemon's tags `$2` contain the job's), and, when the job has no tags
/// beyond its scope keys (`$4`), only if the daemon has none either (`$3`),
/// as `domain::tags_satisfy` says.
///
/// As on SQLite, matching runs over the distinct (tags, provisioner) runs
/// of the `provisioner_jobs_runs` index rather than job by job: `runs`
/// steps from one run to the next with one seek each (a row comparison is
/// an index condition here), `takeable` keeps the runs the daemon matches,
/// and the oldest job of each is one more seek. So jobs no connected daemon
/// can take, however many, never cost an acquire a scan. `SKIP LOCKED`
/// passes over jobs another daemon is taking right now instead of waiting
/// for it. The oldest job of a run is sought by `(tags, provisioner) >= …`
/// in index order and checked to be of the run afterwards: with the run's
/// tags as equalities the planner walked the age-ordered index instead,
/// filtering every job ahead (PostgreSQL 15).
const ACQUIRE_SQL: &str = "
WITH RECURSIVE runs(tags, provisioner) AS (
    (SELECT tags, provisioner FROM provisioner_jobs
     WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
     ORDER BY tags, provisioner LIMIT 1)
    UNION ALL
    SELECT n.tags, n.provisioner FROM runs AS r
    CROSS JOIN LATERAL (
        SELECT tags, provisioner FROM provisioner_jobs
        WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
          AND (tags, provisioner) > (r.tags, r.provisioner)
        ORDER BY tags, provisioner LIMIT 1) AS n
),
takeable AS (
    SELECT tags, provisioner FROM runs
    WHERE provisioner = ANY($1)
      AND $2::jsonb @> tags
      AND ($3 OR EXISTS (SELECT 1 FROM jsonb_object_keys(runs.tags) AS k WHERE k <> ALL($4)))
)
UPDATE provisioner_jobs SET started_at = $5, updated_at = $5, worker_id = $6, worker_name = $7
WHERE id = (
    SELECT j.id FROM takeable AS k
    CROSS JOIN LATERAL (
        SELECT id, created_at, tags, provisioner FROM provisioner_jobs
        WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL
          AND (tags, provisioner) >= (k.tags, k.provisioner)
        ORDER BY tags, provisioner, created_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED) AS j
    WHERE j.tags = k.tags AND j.provisioner = k.provisioner
    ORDER BY j.created_at, j.id
    LIMIT 1)
RETURNING *";

pub async fn acquire(pool: &PgPool, req: &AcquireRequest) -> Result<Option<Job>> {
    let provisioners: Vec<&str> = req.provisioners.iter().map(|p| p.as_str()).collect();
    let plain_daemon = req.tags.keys().all(|k| SCOPE_KEYS.contains(&k.as_str()));
    let row = sqlx::query(ACQUIRE_SQL)
        .bind(provisioners)
        .bind(rows::to_json(&req.tags, stored::encode_tags)?)
        .bind(plain_daemon)
        .bind(SCOPE_KEYS.as_slice())
        .bind(clock())
        .bind(req.worker_id)
        .bind(&req.worker_name)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::job).transpose()
}

pub async fn release(pool: &PgPool, job_id: Uuid, worker_id: Uuid) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    let r: Result<()> = async {
        let job = rows::job(&lock_job(&mut tx, job_id).await?)?;
        if let Some(next) = job_state::release(&job, worker_id, clock()) {
            write_job(&mut tx, &next).await?;
        }
        Ok(())
    }
    .await;
    finish(tx, r).await
}

/// Writes the columns of a job's row that change over its life, as a
/// `job_state` decision left them.
async fn write_job(tx: &mut Tx, j: &Job) -> Result<()> {
    sqlx::query(
        "UPDATE provisioner_jobs SET started_at = $1, canceled_at = $2, completed_at = $3, worker_id = $4,
            worker_name = $5, error = $6, error_code = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(j.started_at)
    .bind(j.canceled_at)
    .bind(j.completed_at)
    .bind(j.worker_id)
    .bind(&j.worker_name)
    .bind(&j.error)
    .bind(&j.error_code)
    .bind(j.updated_at)
    .bind(j.id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Stores a batch in one statement. Its first part raises the job's
/// `last_seq` and keeps the value before (`prev_seq`); that update locks the
/// job's key row until the statement commits, so a concurrent batch of the
/// same job waits, then reads the raised value (PostgreSQL re-reads an
/// updated row), and the ids of a job's lines rise with their seqs and
/// become visible in that order, which followers reading "after id N" need.
/// The lines go as one array per column.
const APPEND_SQL: &str = "
WITH k AS (
    UPDATE provisioner_job_log_keys SET prev_seq = last_seq, last_seq = GREATEST(last_seq, $2)
    WHERE job_id = $1
    RETURNING key, prev_seq
)
INSERT INTO provisioner_job_log_lines (job, seq, created_at, source, level, stage, output)
SELECT k.key, l.seq, l.created_at, l.source, l.level, l.stage, l.output
FROM k, UNNEST($3::bigint[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::bytea[])
    WITH ORDINALITY AS l(seq, created_at, source, level, stage, output, n)
WHERE l.seq > k.prev_seq
ORDER BY l.n
RETURNING id, seq";

pub async fn append_logs(pool: &PgPool, batch: LogBatch) -> Result<AppendedLogs> {
    // Each sequence number once, in order. Of these the store keeps those
    // above the job's highest stored one: a resent batch overlaps the stored
    // lines by a prefix.
    let mut lines = batch.lines;
    lines.sort_by_key(|(seq, _)| *seq);
    lines.dedup_by_key(|(seq, _)| *seq);
    let job_id = batch.job_id;
    let Some(batch_max) = lines.last().map(|(seq, _)| *seq) else {
        return Ok(AppendedLogs { up_to_seq: max_seq(pool, job_id).await?, stored: Vec::new() });
    };
    let seqs: Vec<i64> = lines.iter().map(|(s, _)| *s).collect();
    let times: Vec<DateTime<Utc>> = lines.iter().map(|(_, l)| l.created_at).collect();
    let sources: Vec<&str> = lines.iter().map(|(_, l)| l.source.as_str()).collect();
    let levels: Vec<&str> = lines.iter().map(|(_, l)| l.level.as_str()).collect();
    let stages: Vec<&str> = lines.iter().map(|(_, l)| l.stage.as_str()).collect();
    let outputs: Vec<&[u8]> = lines.iter().map(|(_, l)| l.output.as_bytes()).collect();
    let mut ids: Vec<(i64, i64)> = sqlx::query_as(APPEND_SQL)
        .bind(job_id)
        .bind(batch_max)
        .bind(seqs)
        .bind(times)
        .bind(sources)
        .bind(levels)
        .bind(stages)
        .bind(outputs)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    if ids.is_empty() {
        // Nothing new, or no such job (which `max_seq` reports).
        return Ok(AppendedLogs { up_to_seq: max_seq(pool, job_id).await?, stored: Vec::new() });
    }
    ids.sort_unstable();
    // The lines stored are the batch's suffix above the stored seq.
    let skip = lines.len().checked_sub(ids.len()).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "stored {} of {} log lines of job {job_id}",
            ids.len(),
            lines.len()
        ))
    })?;
    let stored = lines
        .into_iter()
        .skip(skip)
        .zip(ids)
        .map(|((seq, mut line), (id, stored_seq))| {
            debug_assert_eq!(seq, stored_seq);
            // As a read gives it back: the column keeps microseconds.
            line.created_at = chrono::SubsecRound::trunc_subsecs(line.created_at, 6);
            StoredLog { id, job_id, seq, line }
        })
        .collect();
    Ok(AppendedLogs { up_to_seq: batch_max.max(0), stored })
}

/// The highest sequence number stored for a job's logs (0 for none).
async fn max_seq(pool: &PgPool, job_id: Uuid) -> Result<i64> {
    let max: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM provisioner_job_log_keys WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(pool)
            .await
            .map_err(db)?;
    found(max)
}

pub async fn logs(pool: &PgPool, job_id: Uuid, range: LogRange) -> Result<Vec<StoredLog>> {
    let rows = sqlx::query(
        "SELECT l.*, k.job_id FROM provisioner_job_log_keys AS k
         JOIN provisioner_job_log_lines AS l ON l.job = k.key
         WHERE k.job_id = $1 AND ($2::bigint IS NULL OR l.id > $2) AND ($3::bigint IS NULL OR l.id < $3)
         ORDER BY l.id LIMIT $4",
    )
    .bind(job_id)
    .bind(range.after)
    .bind(range.before)
    .bind(range.limit)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(rows::log).collect()
}

pub async fn heartbeat(pool: &PgPool, worker_id: Uuid, job_ids: &[Uuid]) -> Result<()> {
    sqlx::query(
        "UPDATE provisioner_jobs SET updated_at = $1
         WHERE id = ANY($2) AND worker_id = $3 AND completed_at IS NULL",
    )
    .bind(clock())
    .bind(job_ids)
    .bind(worker_id)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub async fn cancel(pool: &PgPool, job_id: Uuid) -> Result<CancelResult> {
    let mut tx = pool.begin().await.map_err(db)?;
    let r = async {
        let job = rows::job(&lock_job(&mut tx, job_id).await?)?;
        let decision = job_state::cancel(&job, clock());
        if let Some(next) = &decision.job {
            write_job(&mut tx, next).await?;
        }
        Ok(decision.result)
    }
    .await;
    finish(tx, r).await
}

/// Completes a job, as [`job_state::complete`] decides; `by` is
/// [`Reporter::Server`] for the server's own failures.
pub async fn complete(
    pool: &PgPool,
    job_id: Uuid,
    by: Reporter,
    outcome: &JobOutcome,
) -> Result<CompleteResult> {
    let mut tx = pool.begin().await.map_err(db)?;
    let r = async {
        let row = lock_job(&mut tx, job_id).await?;
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
                match (effect, &outcome.import) {
                    (Effect::Build, _) => complete_build(&mut tx, &next, outcome, now).await?,
                    (Effect::Import, Some(import)) => {
                        complete_import(&mut tx, job_id, outcome, import, now).await?;
                    }
                    (Effect::Import | Effect::Nothing, _) => {}
                }
                CompleteResult::Completed
            }
        };
        Ok(result)
    }
    .await;
    finish(tx, r).await
}

/// Stores an import's planned resources (start and stop) and findings.
async fn complete_import(
    tx: &mut Tx,
    job_id: Uuid,
    outcome: &JobOutcome,
    import: &ImportResult,
    now: DateTime<Utc>,
) -> Result<()> {
    insert_resources(tx, job_id, Transition::Start, &outcome.resources, now).await?;
    insert_resources(tx, job_id, Transition::Stop, &import.stop_resources, now).await?;
    sqlx::query("INSERT INTO template_version_imports (job_id, result) VALUES ($1, $2)")
        .bind(job_id)
        .bind(rows::to_json(import, stored::encode_import)?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

async fn build_of_job(tx: &mut Tx, job_id: Uuid) -> Result<WorkspaceBuild> {
    let row = sqlx::query("SELECT * FROM workspace_builds WHERE job_id = $1")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    rows::build(&found(row)?)
}

async fn set_build_state(
    tx: &mut Tx,
    build_id: Uuid,
    state: &[u8],
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE workspace_builds SET provisioner_state = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(state)
    .bind(now)
    .bind(build_id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Applies a completed build job's outcome to its build and workspace:
/// `job` is the job row as just written. The workspace's ttl is read here,
/// in the completion's transaction, so the deadline commits with it.
async fn complete_build(
    tx: &mut Tx,
    job: &Job,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> Result<()> {
    let job_id = job.id;
    let build = build_of_job(tx, job_id).await?;
    let ttl_ms: Option<i64> = sqlx::query_scalar("SELECT ttl_ms FROM workspaces WHERE id = $1")
        .bind(build.workspace_id)
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
        "UPDATE workspace_builds SET deadline = COALESCE($1, deadline), updated_at = $2 WHERE id = $3",
    )
    .bind(decision.deadline)
    .bind(now)
    .bind(build.id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    insert_resources(tx, job_id, decision.resources, &outcome.resources, now).await?;
    if decision.workspace_deleted {
        sqlx::query("UPDATE workspaces SET deleted = true, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(build.workspace_id)
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
    tx: &mut Tx,
    job: &Job,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> Result<CompleteResult> {
    let mut build = None;
    let mut newer = Vec::new();
    if job.job_type == JobType::WorkspaceBuild {
        let b = build_of_job(tx, job.id).await?;
        let rows: Vec<NewerRow> = sqlx::query_as(
            "SELECT b.build_number, b.id, j.started_at, b.provisioner_state
             FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
             WHERE b.workspace_id = $1 AND b.build_number > $2 ORDER BY b.build_number",
        )
        .bind(b.workspace_id)
        .bind(b.build_number)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        for (build_number, id, started_at, provisioner_state) in rows {
            newer.push(NewerBuild {
                id,
                build_number,
                started: started_at.is_some(),
                provisioner_state,
            });
        }
        build = Some(b);
    }
    let history = build.as_ref().map(|build| BuildHistory { build, newer: &newer });
    let decision = job_state::late_result(job, history, outcome, now);
    if let Some((state, builds)) = &decision.state {
        for id in builds {
            set_build_state(tx, *id, state, now).await?;
        }
    }
    if let Some(transition) = decision.resources {
        insert_resources(tx, job.id, transition, &outcome.resources, now).await?;
    }
    write_job(tx, &decision.job).await?;
    // The run happened: its timings are kept like its state.
    super::timings::insert(tx, job.id, &outcome.timings).await?;
    sqlx::query("UPDATE provisioner_jobs SET late_result_at = $1 WHERE id = $2")
        .bind(decision.job.updated_at)
        .bind(job.id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    // The same words in the build's log, after the daemon's last line.
    let line = &decision.log;
    sqlx::query(
        "WITH k AS (
             UPDATE provisioner_job_log_keys SET prev_seq = last_seq, last_seq = last_seq + 1
             WHERE job_id = $6 RETURNING key, last_seq)
         INSERT INTO provisioner_job_log_lines (job, seq, created_at, source, level, stage, output)
         SELECT k.key, k.last_seq, $1, $2, $3, $4, $5 FROM k",
    )
    .bind(line.created_at)
    .bind(line.source.as_str())
    .bind(line.level.as_str())
    .bind(&line.stage)
    .bind(line.output.as_bytes())
    .bind(job.id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(decision.result)
}

async fn insert_resources(
    tx: &mut Tx,
    job_id: Uuid,
    transition: Transition,
    resources: &[Resource],
    now: DateTime<Utc>,
) -> Result<()> {
    if resources.is_empty() {
        return Ok(());
    }
    // One statement for all of them, in their order.
    let ids: Vec<Uuid> = resources.iter().map(|_| Uuid::new_v4()).collect();
    let positions: Vec<i32> = (0..).take(resources.len()).collect();
    let bodies: Vec<String> = resources
        .iter()
        .map(|r| rows::to_json(r, stored::encode_resource))
        .collect::<Result<_>>()?;
    sqlx::query(
        "INSERT INTO workspace_resources (id, job_id, transition, created_at, position, resource)
         SELECT r.id, $2, $3, $4, r.position, r.resource
         FROM UNNEST($1::uuid[], $5::int[], $6::text[]) AS r(id, position, resource)",
    )
    .bind(ids)
    .bind(job_id)
    .bind(transition.as_str())
    .bind(now)
    .bind(positions)
    .bind(bodies)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    // Indexed by agent id for `GET /workspaceagents/{id}`.
    let agents: Vec<Uuid> = resources.iter().flat_map(|r| r.agents.iter().map(|a| a.id)).collect();
    if !agents.is_empty() {
        sqlx::query(
            "INSERT INTO workspace_agents (agent_id, job_id)
             SELECT DISTINCT a, $2 FROM UNNEST($1::uuid[]) AS a ON CONFLICT DO NOTHING",
        )
        .bind(agents)
        .bind(job_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ACQUIRE_SQL;
    use crate::domain::{default_tags, Provisioner, SCOPE_KEYS};
    use crate::store::conformance::fixture::{acquire_req, fixture, queue_import, tags};
    use crate::store::Store;

    /// The most rows any step of a plan (`EXPLAIN (ANALYZE, FORMAT JSON)`)
    /// read and threw away.
    fn most_rows_filtered(node: &serde_json::Value) -> i64 {
        let own = node.get("Rows Removed by Filter").and_then(|v| v.as_i64()).unwrap_or(0);
        let children = node.get("Plans").and_then(|p| p.as_array()).into_iter().flatten();
        children.map(most_rows_filtered).fold(own, i64::max)
    }

    /// 2,000 queued jobs for a pool no daemon serves, ahead of one an
    /// untagged daemon can take: acquire seeks past them (no step of its
    /// plan reads and drops more than a handful of rows) and takes that one.
    #[tokio::test]
    async fn acquire_seeks_past_jobs_it_cannot_take() {
        let (url, _guard) = super::super::testdb::fresh_database().await;
        let store = super::super::PgStore::open(&url).await.expect("store");
        let f = fixture(&store).await;
        let nobody = queue_import(&store, &f, tags(&[("pool", "nobody")]), Provisioner::Echo).await;
        sqlx::query(
            "INSERT INTO provisioner_jobs (id, job_type, provisioner, organization_id,
                 initiator_id, file_id, input, tags, created_at, updated_at)
             SELECT gen_random_uuid(), job_type, provisioner, organization_id, initiator_id,
                 file_id, input, tags, created_at + i * interval '1 microsecond', updated_at
             FROM provisioner_jobs, generate_series(1, 1999) AS i WHERE id = $1",
        )
        .bind(nobody.id)
        .execute(&store.pool)
        .await
        .expect("copies");
        let mine = queue_import(&store, &f, default_tags(), Provisioner::Echo).await;
        sqlx::query("ANALYZE provisioner_jobs").execute(&store.pool).await.expect("analyze");

        let req = acquire_req(uuid::Uuid::new_v4());
        let mut tx = store.pool.begin().await.expect("begin");
        let (plan,): (serde_json::Value,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) {ACQUIRE_SQL}"
        )))
        .bind(vec!["echo"])
        .bind(serde_json::json!({"scope": "organization"}))
        .bind(true)
        .bind(SCOPE_KEYS.as_slice())
        .bind(chrono::Utc::now())
        .bind(req.worker_id)
        .bind(&req.worker_name)
        .fetch_one(&mut *tx)
        .await
        .expect("plan");
        tx.rollback().await.expect("rollback");
        let root = &plan[0]["Plan"];
        assert!(most_rows_filtered(root) < 10, "{plan:#}");

        let got = store.acquire_job(&req).await.expect("acquire").map(|j| j.id);
        assert_eq!(got, Some(mine.id), "the one job it can take");
    }
}
