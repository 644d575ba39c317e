//! `provisionerd store copy`: moves an installation from SQLite to
//! PostgreSQL, table by table, every row as it is (ids, timestamps, log
//! line ids, states), so the API reads the same things back from the new
//! store. Both databases are first brought to the current schema by their
//! own migrations (as a server does at start). The target must be empty;
//! rows are read from one SQLite read transaction (a consistent snapshot)
//! in batches by rowid and written in multi-row inserts inside one
//! PostgreSQL transaction, so a failed copy leaves the target empty and
//! can simply be run again. The copy refuses a source holding rows in a
//! table it does not know, rather than silently leaving them behind.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Row, SqliteConnection};
use uuid::Uuid;

use super::{Result, StoreError};

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    /// TEXT holding a UUID → uuid.
    Id,
    /// RFC 3339 TEXT → timestamptz.
    Time,
    /// INTEGER 0/1 → boolean.
    Bool,
    /// INTEGER → bigint.
    Int8,
    /// INTEGER → integer.
    Int4,
    /// BLOB → bytea.
    Bytes,
    /// TEXT → bytea of its UTF-8 (log output, which may hold NUL there).
    TextBytes,
    /// TEXT holding JSON → jsonb.
    Json,
}

/// A table to copy: its columns in PostgreSQL, each with the SQLite
/// expression that gives it (a column name, or a computed value).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, &'static str, Kind)],
}

use Kind::{Bool, Bytes, Id, Int4, Int8, Json, Text, TextBytes, Time};

/// Every table of an installation, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "organizations",
        columns: &[
            ("id", "id", Id),
            ("name", "name", Text),
            ("display_name", "display_name", Text),
            ("is_default", "is_default", Bool),
            ("created_at", "created_at", Time),
        ],
    },
    Table {
        name: "users",
        columns: &[
            ("id", "id", Id),
            ("username", "username", Text),
            ("email", "email", Text),
            ("name", "name", Text),
            ("password_hash", "password_hash", Text),
            ("rbac_roles", "rbac_roles", Text),
            ("created_at", "created_at", Time),
        ],
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", "id", Text),
            ("user_id", "user_id", Id),
            ("hashed_secret", "hashed_secret", Bytes),
            ("created_at", "created_at", Time),
            ("expires_at", "expires_at", Time),
        ],
    },
    Table {
        name: "files",
        columns: &[
            ("id", "id", Id),
            ("hash", "hash", Text),
            ("mimetype", "mimetype", Text),
            ("data", "data", Bytes),
            ("created_by", "created_by", Id),
            ("created_at", "created_at", Time),
        ],
    },
    Table {
        name: "provisioner_jobs",
        columns: &[
            ("id", "id", Id),
            ("job_type", "job_type", Text),
            ("provisioner", "provisioner", Text),
            ("organization_id", "organization_id", Id),
            ("initiator_id", "initiator_id", Id),
            ("file_id", "file_id", Id),
            ("input", "input", Text),
            ("tags", "tags", Json),
            ("created_at", "created_at", Time),
            ("updated_at", "updated_at", Time),
            ("started_at", "started_at", Time),
            ("canceled_at", "canceled_at", Time),
            ("completed_at", "completed_at", Time),
            ("worker_id", "worker_id", Id),
            ("worker_name", "worker_name", Text),
            ("error", "error", Text),
            ("error_code", "error_code", Text),
            ("late_result_at", "late_result_at", Time),
        ],
    },
    Table {
        name: "provisioner_job_log_keys",
        columns: &[
            ("key", "key", Int8),
            ("job_id", "job_id", Id),
            // PostgreSQL keeps a job's highest stored seq on its key row
            // (SQLite reads it from the lines).
            (
                "last_seq",
                "COALESCE((SELECT MAX(l.seq) FROM provisioner_job_log_lines l WHERE l.job = t.key), 0)",
                Int8,
            ),
            (
                "prev_seq",
                "COALESCE((SELECT MAX(l.seq) FROM provisioner_job_log_lines l WHERE l.job = t.key), 0)",
                Int8,
            ),
        ],
    },
    Table {
        name: "provisioner_job_log_lines",
        columns: &[
            ("id", "id", Int8),
            ("job", "job", Int8),
            ("seq", "seq", Int8),
            ("created_at", "created_at", Time),
            ("source", "source", Text),
            ("level", "level", Text),
            ("stage", "stage", Text),
            ("output", "output", TextBytes),
        ],
    },
    Table {
        name: "templates",
        columns: &[
            ("id", "id", Id),
            ("organization_id", "organization_id", Id),
            ("name", "name", Text),
            ("display_name", "display_name", Text),
            ("description", "description", Text),
            ("active_version_id", "active_version_id", Id),
            ("created_by", "created_by", Id),
            ("created_at", "created_at", Time),
            ("updated_at", "updated_at", Time),
        ],
    },
    Table {
        name: "template_versions",
        columns: &[
            ("id", "id", Id),
            ("template_id", "template_id", Id),
            ("organization_id", "organization_id", Id),
            ("name", "name", Text),
            ("message", "message", Text),
            ("job_id", "job_id", Id),
            ("created_by", "created_by", Id),
            ("created_at", "created_at", Time),
            ("updated_at", "updated_at", Time),
        ],
    },
    Table {
        name: "template_version_imports",
        columns: &[("job_id", "job_id", Id), ("result", "result", Text)],
    },
    Table {
        name: "workspaces",
        columns: &[
            ("id", "id", Id),
            ("organization_id", "organization_id", Id),
            ("owner_id", "owner_id", Id),
            ("template_id", "template_id", Id),
            ("name", "name", Text),
            ("deleted", "deleted", Bool),
            ("autostart_schedule", "autostart_schedule", Text),
            ("ttl_ms", "ttl_ms", Int8),
            ("dormant_at", "dormant_at", Time),
            ("automatic_updates", "automatic_updates", Text),
            ("favorite", "favorite", Bool),
            ("last_used_at", "last_used_at", Time),
            ("created_at", "created_at", Time),
            ("updated_at", "updated_at", Time),
        ],
    },
    Table {
        name: "workspace_builds",
        columns: &[
            ("id", "id", Id),
            ("workspace_id", "workspace_id", Id),
            ("build_number", "build_number", Int4),
            ("transition", "transition", Text),
            ("template_version_id", "template_version_id", Id),
            ("initiator_id", "initiator_id", Id),
            ("reason", "reason", Text),
            ("provisioner_state", "provisioner_state", Bytes),
            ("job_id", "job_id", Id),
            ("deadline", "deadline", Time),
            ("max_deadline", "max_deadline", Time),
            ("daily_cost", "daily_cost", Int4),
            ("rich_parameters", "rich_parameters", Text),
            ("created_at", "created_at", Time),
            ("updated_at", "updated_at", Time),
        ],
    },
    Table {
        name: "workspace_resources",
        columns: &[
            ("id", "id", Id),
            ("job_id", "job_id", Id),
            ("transition", "transition", Text),
            ("created_at", "created_at", Time),
            ("position", "position", Int4),
            ("resource", "resource", Text),
        ],
    },
    Table {
        name: "workspace_agents",
        columns: &[("agent_id", "agent_id", Id), ("job_id", "job_id", Id)],
    },
    Table {
        name: "provisioner_job_timings",
        columns: &[
            ("job_id", "job_id", Id),
            ("position", "position", Int4),
            ("started_at", "started_at", Time),
            ("ended_at", "ended_at", Time),
            ("stage", "stage", Text),
            ("source", "source", Text),
            ("action", "action", Text),
            ("resource", "resource", Text),
        ],
    },
    Table {
        name: "provisioner_keys",
        columns: &[
            ("id", "id", Id),
            ("organization_id", "organization_id", Id),
            ("name", "name", Text),
            ("hashed_secret", "hashed_secret", Bytes),
            ("tags", "tags", Text),
            ("created_at", "created_at", Time),
        ],
    },
];

/// SQLite tables that hold nothing to move: migration bookkeeping, the
/// AUTOINCREMENT counters (PostgreSQL's sequences are set instead) and the
/// free-space probe's scratch row.
/// Tables with nothing to move: bookkeeping, and the connected daemons
/// (each server's sessions write their own rows; old ones only expire).
const NOT_COPIED: &[&str] =
    &["_sqlx_migrations", "sqlite_sequence", "store_write_probe", "provisioner_daemons"];

/// PostgreSQL sequences to move past the copied ids, so new rows get new ones.
const SEQUENCES: &[(&str, &str)] =
    &[("provisioner_job_log_keys", "key"), ("provisioner_job_log_lines", "id")];

/// Rows per INSERT: well under PostgreSQL's 65535 parameters for the
/// widest table (18 columns).
pub const DEFAULT_BATCH: usize = 500;

/// What a copy moved: rows per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Copied {
    pub tables: Vec<(&'static str, u64)>,
}

/// One value on its way from SQLite to PostgreSQL.
enum Value {
    Text(Option<String>),
    Uuid(Option<Uuid>),
    Time(Option<DateTime<Utc>>),
    Bool(bool),
    Int8(Option<i64>),
    Int4(Option<i32>),
    Bytes(Option<Vec<u8>>),
    Json(Option<sqlx::types::Json<serde_json::Value>>),
}

fn corrupt(table: &str, col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{col} in the source: {e}"))
}

fn read(row: &SqliteRow, table: &str, col: &str, kind: Kind) -> Result<Value> {
    let err = |e: sqlx::Error| corrupt(table, col, e);
    let text = || row.try_get::<Option<String>, _>(col).map_err(err);
    Ok(match kind {
        Text => Value::Text(text()?),
        Id => Value::Uuid(
            text()?.map(|s| Uuid::parse_str(&s)).transpose().map_err(|e| corrupt(table, col, e))?,
        ),
        Time => Value::Time(
            text()?
                .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| corrupt(table, col, e))?,
        ),
        Bool => Value::Bool(row.try_get::<i64, _>(col).map_err(err)? != 0),
        Int8 => Value::Int8(row.try_get(col).map_err(err)?),
        Int4 => Value::Int4(
            row.try_get::<Option<i64>, _>(col)
                .map_err(err)?
                .map(i32::try_from)
                .transpose()
                .map_err(|e| corrupt(table, col, e))?,
        ),
        Bytes => Value::Bytes(row.try_get(col).map_err(err)?),
        TextBytes => Value::Bytes(text()?.map(String::into_bytes)),
        Json => Value::Json(
            text()?
                .map(|s| serde_json::from_str(&s).map(sqlx::types::Json))
                .transpose()
                .map_err(|e| corrupt(table, col, e))?,
        ),
    })
}

/// The path of a `sqlite://` URL (or a plain path), which must exist: a
/// copy never creates an empty source.
fn sqlite_path(url: &str) -> Result<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    if url.contains("://") && !url.starts_with("sqlite://") {
        return Err(StoreError::Unsupported(format!(
            "--from must be a SQLite database (sqlite:///path/to/provisionerd.db), not {}",
            url.split_once("://").map_or(url, |(s, _)| s)
        )));
    }
    if !std::path::Path::new(path).is_file() {
        return Err(StoreError::Unsupported(format!(
            "--from: no SQLite database at {path}; give the file the server used \
             (<data-dir>/provisionerd.db or its --database-url)"
        )));
    }
    Ok(path)
}

/// Copies the SQLite installation at `from` into the empty PostgreSQL
/// database at `to`, `batch` rows per insert.
pub async fn copy(from: &str, to: &str, batch: usize) -> Result<Copied> {
    let path = sqlite_path(from)?;
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(StoreError::Unsupported(
            "--to must be a PostgreSQL URL (postgres://user:pass@host:port/db)".into(),
        ));
    }
    // Both schemas current, by each backend's own migrations.
    drop(super::sqlite::SqliteStore::open(from).await?);
    drop(super::postgres::PgStore::open(to).await?);
    let source = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut src = SqliteConnection::connect_with(&source).await?;
    let mut dst = PgConnection::connect_with(&PgConnectOptions::from_str(to)?).await?;
    check_tables(&mut src).await?;
    check_empty(&mut dst).await?;
    // A deferred transaction reads one snapshot throughout.
    let mut snapshot = src.begin().await?;
    let mut tx = dst.begin().await?;
    let mut copied = Copied::default();
    for table in TABLES {
        let n = copy_table(&mut snapshot, &mut tx, table, batch.max(1)).await?;
        tracing::info!(table = table.name, rows = n, "copied");
        copied.tables.push((table.name, n));
    }
    for (table, col) in SEQUENCES {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), \
             COALESCE((SELECT MAX({col}) FROM {table}), 0) + 1, false)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    snapshot.rollback().await?;
    Ok(copied)
}

/// Refuses a source with rows in a table this copy does not know.
async fn check_tables(src: &mut SqliteConnection) -> Result<()> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut *src)
            .await?;
    for name in names {
        if NOT_COPIED.contains(&name.as_str()) || TABLES.iter().any(|t| t.name == name) {
            continue;
        }
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", name.replace('"', "\"\""));
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *src).await?;
        if rows > 0 {
            return Err(StoreError::Unsupported(format!(
                "the source has {rows} rows in table {name}, which this version of \
                 `store copy` does not know how to copy; use the provisionerd release \
                 that created the database"
            )));
        }
    }
    Ok(())
}

/// Refuses a target that holds any row already.
async fn check_empty(dst: &mut PgConnection) -> Result<()> {
    for table in TABLES {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name);
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *dst).await?;
        if rows > 0 {
            return Err(StoreError::Conflict(format!(
                "the target database is not empty (table {} has {rows} rows); \
                 `store copy` only copies into an empty database: create a new one \
                 (e.g. `createdb provisionerd`) and give its URL to --to",
                table.name
            )));
        }
    }
    Ok(())
}

async fn copy_table(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    table: &Table,
    batch: usize,
) -> Result<u64> {
    let exprs: Vec<String> =
        table.columns.iter().map(|(col, expr, _)| format!("{expr} AS {col}")).collect();
    let select = format!(
        "SELECT t.rowid AS copy_rowid, {} FROM {} AS t WHERE t.rowid > ? ORDER BY t.rowid LIMIT ?",
        exprs.join(", "),
        table.name
    );
    let names: Vec<&str> = table.columns.iter().map(|(col, _, _)| *col).collect();
    let insert = format!("INSERT INTO {} ({}) ", table.name, names.join(", "));
    let mut after = i64::MIN;
    let mut total = 0u64;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(after)
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .fetch_all(&mut *src)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("copy_rowid")?;
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut one = Vec::with_capacity(table.columns.len());
            for (col, _, kind) in table.columns {
                one.push(read(row, table.name, col, *kind)?);
            }
            values.push(one);
        }
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(insert.as_str());
        q.push_values(values, |mut b, row| {
            for v in row {
                match v {
                    Value::Text(v) => b.push_bind(v),
                    Value::Uuid(v) => b.push_bind(v),
                    Value::Time(v) => b.push_bind(v),
                    Value::Bool(v) => b.push_bind(v),
                    Value::Int8(v) => b.push_bind(v),
                    Value::Int4(v) => b.push_bind(v),
                    Value::Bytes(v) => b.push_bind(v),
                    Value::Json(v) => b.push_bind(v),
                };
            }
        });
        total += q.build().execute(&mut *dst).await?.rows_affected();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table a migrated SQLite database has is copied or named as
    /// holding nothing to copy, and the copy reads every column of each
    /// (a migration that adds a table or a column must extend the copy).
    #[tokio::test]
    async fn every_table_and_column_of_the_schema_is_copied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.sqlite");
        let url = format!("sqlite://{}", path.display());
        drop(super::super::sqlite::SqliteStore::open(&url).await.expect("open"));
        let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
            .await
            .expect("connect");
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut conn)
                .await
                .expect("tables");
        for name in &names {
            if NOT_COPIED.contains(&name.as_str()) {
                continue;
            }
            let table = TABLES.iter().find(|t| t.name == name);
            let table = table.unwrap_or_else(|| panic!("table {name} is not copied"));
            let sql = format!("SELECT name FROM pragma_table_info('{name}') ORDER BY cid");
            let cols: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await
                .expect("columns");
            for col in &cols {
                assert!(
                    table.columns.iter().any(|(_, expr, _)| expr == col),
                    "column {name}.{col} is not copied"
                );
            }
        }
        assert_eq!(names.len() - NOT_COPIED.len(), TABLES.len(), "{names:?}");
    }

    /// A real-sized log, 100,000 lines of one job, crosses in batches: every
    /// line once, in order, with its id, and the job's next line still gets
    /// a higher id than every copied one.
    #[tokio::test]
    async fn a_hundred_thousand_line_log_is_copied_whole() {
        use crate::domain::{default_tags, Provisioner};
        use crate::store::conformance::fixture::{fixture, line, queue_import, take};
        use crate::store::{LogBatch, LogRange, Store};
        const LINES: i64 = 100_000;
        let dir = tempfile::tempdir().expect("temp dir");
        let from = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let source = super::super::sqlite::SqliteStore::open(&from).await.expect("open");
        let f = fixture(&source).await;
        let job = queue_import(&source, &f, default_tags(), Provisioner::Echo).await;
        take(&source, job.id).await;
        for first in (1..=LINES).step_by(5_000) {
            let lines =
                (first..first + 5_000).map(|seq| (seq, line(&format!("line {seq}")))).collect();
            source.append_logs(LogBatch { job_id: job.id, lines }).await.expect("append");
        }
        let before = source.logs(job.id, LogRange::default()).await.expect("source logs");
        assert_eq!(before.len(), LINES as usize);
        drop(source);

        let (to, _guard) = super::super::postgres::testdb::fresh_database().await;
        let copied = copy(&from, &to, DEFAULT_BATCH).await.expect("copy");
        let lines = copied.tables.iter().find(|(t, _)| *t == "provisioner_job_log_lines");
        assert_eq!(lines.map(|(_, n)| *n), Some(LINES as u64), "{:?}", copied.tables);
        let target = super::super::postgres::PgStore::open(&to).await.expect("open target");
        let after = target.logs(job.id, LogRange::default()).await.expect("target logs");
        let key = |l: &crate::domain::StoredLog| (l.id, l.line.output.clone());
        assert!(after.iter().map(key).eq(before.iter().map(key)), "the copied log differs");
        let next = vec![(LINES + 1, line("one more"))];
        let stored = target.append_logs(LogBatch { job_id: job.id, lines: next }).await;
        let last = before.last().map(|l| l.id).unwrap_or_default();
        let stored = stored.expect("append").stored;
        assert!(!stored.is_empty() && stored.iter().all(|l| l.id > last), "{stored:?}");
    }
}
