//! The connected-daemons registry on PostgreSQL (see `store/daemons.rs`),
//! and the broadcast channel between replicas: `NOTIFY` on one channel,
//! read by a `PgListener` on a connection of its own that reconnects by
//! itself when the connection drops.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgListener, PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use super::{db, PgStore};
use crate::store::daemons::{decode_list, encode_list};
use crate::store::stored;
use crate::store::{Broadcast, DaemonRow, Listener, Replicas, Result, StoreError};

/// The NOTIFY channel every replica listens on.
const CHANNEL: &str = "provisionerd_events";

#[async_trait::async_trait]
impl Replicas for PgStore {
    fn broadcast(&self) -> Option<Arc<dyn Broadcast>> {
        Some(Arc::new(PgBroadcast { pool: self.pool.clone() }))
    }

    async fn register_daemon(&self, d: &DaemonRow) -> Result<()> {
        let tags = stored::encode_tags(&d.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO provisioner_daemons (id, session_id, replica_id, name, version, tags,
                 provisioners, connected_at, last_seen_at, jobs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id,
                 replica_id = excluded.replica_id, name = excluded.name,
                 version = excluded.version, tags = excluded.tags,
                 provisioners = excluded.provisioners, connected_at = excluded.connected_at,
                 last_seen_at = excluded.last_seen_at, jobs = excluded.jobs",
        )
        .bind(d.id)
        .bind(d.session_id)
        .bind(d.replica_id)
        .bind(&d.name)
        .bind(&d.version)
        .bind(tags)
        .bind(encode_list(&d.provisioners))
        .bind(d.connected_at)
        .bind(d.last_seen_at)
        .bind(encode_list(&d.jobs))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn daemon_seen(
        &self,
        id: Uuid,
        session_id: Uuid,
        at: DateTime<Utc>,
        jobs: &[Uuid],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE provisioner_daemons SET last_seen_at = $1, jobs = $2
             WHERE id = $3 AND session_id = $4",
        )
        .bind(at)
        .bind(encode_list(jobs))
        .bind(id)
        .bind(session_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn unregister_daemon(&self, id: Uuid, session_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM provisioner_daemons WHERE id = $1 AND session_id = $2")
            .bind(id)
            .bind(session_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn daemons_seen_since(&self, since: DateTime<Utc>) -> Result<Vec<DaemonRow>> {
        let rows = sqlx::query(
            "SELECT * FROM provisioner_daemons WHERE last_seen_at >= $1 ORDER BY name, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(daemon).collect()
    }

    async fn expire_daemons(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM provisioner_daemons WHERE last_seen_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

fn daemon(row: &PgRow) -> Result<DaemonRow> {
    fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        row.try_get::<T, _>(col).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
    }
    Ok(DaemonRow {
        id: get(row, "id")?,
        session_id: get(row, "session_id")?,
        replica_id: get(row, "replica_id")?,
        name: get(row, "name")?,
        version: get(row, "version")?,
        tags: stored::decode_tags(&get::<String>(row, "tags")?)
            .map_err(|e| StoreError::Corrupt(format!("column tags: {e}")))?,
        provisioners: decode_list(&get::<String>(row, "provisioners")?)?,
        connected_at: get(row, "connected_at")?,
        last_seen_at: get(row, "last_seen_at")?,
        jobs: decode_list(&get::<String>(row, "jobs")?)?,
    })
}

/// NOTIFY through the store's pool.
struct PgBroadcast {
    pool: PgPool,
}

#[async_trait::async_trait]
impl Broadcast for PgBroadcast {
    async fn send(&self, texts: &[String]) -> Result<()> {
        // One statement for the whole batch; NOTIFY keeps their order.
        sqlx::query(
            "SELECT pg_notify($1, t) FROM UNNEST($2::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
        )
        .bind(CHANNEL)
        .bind(texts)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn listen(&self) -> Result<Box<dyn Listener>> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(db)?;
        listener.listen(CHANNEL).await.map_err(db)?;
        Ok(Box::new(PgTexts { listener }))
    }
}

struct PgTexts {
    listener: PgListener,
}

#[async_trait::async_trait]
impl Listener for PgTexts {
    async fn recv(&mut self) -> Result<Option<String>> {
        let next = self.listener.try_recv().await.map_err(db)?;
        Ok(next.map(|n| n.payload().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::open;
    use crate::store::postgres::testdb::fresh_database;

    /// Texts sent through one store reach listeners of another store on the
    /// same database (another replica), in order, and the sender's own.
    #[tokio::test]
    async fn broadcast_reaches_every_replica_in_order() {
        let (url, scratch) = fresh_database().await;
        let (a, b) = (open(&url).await.expect("open a"), open(&url).await.expect("open b"));
        let mut on_a = a.broadcast().expect("pg broadcasts").listen().await.expect("listen a");
        let mut on_b = b.broadcast().expect("pg broadcasts").listen().await.expect("listen b");
        let texts: Vec<String> = (0..50).map(|i| format!("text {i}")).collect();
        a.broadcast().expect("pg").send(&texts).await.expect("send");
        for listener in [&mut on_a, &mut on_b] {
            let mut got = Vec::new();
            while got.len() < texts.len() {
                let next = tokio::time::timeout(Duration::from_secs(10), listener.recv())
                    .await
                    .expect("a text within 10s")
                    .expect("recv");
                got.extend(next);
            }
            assert_eq!(got, texts);
        }
        drop((on_a, on_b, a, b));
        drop(scratch);
    }
}
