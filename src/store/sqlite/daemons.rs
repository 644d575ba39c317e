//! The connected-daemons registry on SQLite (see `store/daemons.rs`). One
//! server uses a SQLite file, so there is no broadcast channel: the event
//! bus stays in-process. Writes go through the queue's writer connection.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::rows::ts;
use super::{db, SqliteStore};
use crate::store::daemons::{decode_list, encode_list};
use crate::store::stored;
use crate::store::{DaemonRow, Replicas, Result, StoreError};

#[async_trait::async_trait]
impl Replicas for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn register_daemon(&self, d: &DaemonRow) -> Result<()> {
        let tags = stored::encode_tags(&d.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO provisioner_daemons (id, session_id, replica_id, name, version, tags,
                 provisioners, connected_at, last_seen_at, jobs)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id,
                 replica_id = excluded.replica_id, name = excluded.name,
                 version = excluded.version, tags = excluded.tags,
                 provisioners = excluded.provisioners, connected_at = excluded.connected_at,
                 last_seen_at = excluded.last_seen_at, jobs = excluded.jobs",
        )
        .bind(d.id.to_string())
        .bind(d.session_id.to_string())
        .bind(d.replica_id.to_string())
        .bind(&d.name)
        .bind(&d.version)
        .bind(tags)
        .bind(encode_list(&d.provisioners))
        .bind(ts(d.connected_at))
        .bind(ts(d.last_seen_at))
        .bind(encode_list(&d.jobs))
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn daemon_seen(
        &self,
        id: Uuid,
        session_id: Uuid,
        at: DateTime<Utc>,
        jobs: &[Uuid],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE provisioner_daemons SET last_seen_at = ?, jobs = ?
             WHERE id = ? AND session_id = ?",
        )
        .bind(ts(at))
        .bind(encode_list(jobs))
        .bind(id.to_string())
        .bind(session_id.to_string())
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn unregister_daemon(&self, id: Uuid, session_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM provisioner_daemons WHERE id = ? AND session_id = ?")
            .bind(id.to_string())
            .bind(session_id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn daemons_seen_since(&self, since: DateTime<Utc>) -> Result<Vec<DaemonRow>> {
        let rows = sqlx::query(
            "SELECT * FROM provisioner_daemons WHERE last_seen_at >= ? ORDER BY name, id",
        )
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(daemon).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn expire_daemons(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM provisioner_daemons WHERE last_seen_at < ?")
            .bind(ts(before))
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

fn daemon(row: &SqliteRow) -> Result<DaemonRow> {
    let text = |col: &str| {
        row.try_get::<String, _>(col).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
    };
    let uuid = |col: &str| {
        text(col)?.parse::<Uuid>().map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
    };
    let time = |col: &str| {
        DateTime::parse_from_rfc3339(&text(col)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
    };
    Ok(DaemonRow {
        id: uuid("id")?,
        session_id: uuid("session_id")?,
        replica_id: uuid("replica_id")?,
        name: text("name")?,
        version: text("version")?,
        tags: stored::decode_tags(&text("tags")?)
            .map_err(|e| StoreError::Corrupt(format!("column tags: {e}")))?,
        provisioners: decode_list(&text("provisioners")?)?,
        connected_at: time("connected_at")?,
        last_seen_at: time("last_seen_at")?,
        jobs: decode_list(&text("jobs")?)?,
    })
}
