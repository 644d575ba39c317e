//! Provisioner keys in SQLite: the rows behind `Store`'s provisioner-key
//! methods (a key's secret is stored only as its digest; see
//! `server/daemon_keys.rs` for how it is checked).

use sqlx::SqlitePool;
use uuid::Uuid;

use super::rows::{self, ts};
use super::{db, found};
use crate::store::{stored, ProvisionerKey, Result};

pub async fn insert(pool: &SqlitePool, k: &ProvisionerKey) -> Result<()> {
    let tags = rows::to_json(&k.tags, stored::encode_tags)?;
    sqlx::query(
        "INSERT INTO provisioner_keys (id, organization_id, name, hashed_secret, tags, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(k.id.to_string())
    .bind(k.organization_id.to_string())
    .bind(&k.name)
    .bind(&k.hashed_secret)
    .bind(tags)
    .bind(ts(k.created_at))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub async fn by_id(pool: &SqlitePool, id: Uuid) -> Result<ProvisionerKey> {
    let row = sqlx::query("SELECT * FROM provisioner_keys WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    rows::provisioner_key(&found(row)?)
}

pub async fn of_organization(
    pool: &SqlitePool,
    organization_id: Uuid,
) -> Result<Vec<ProvisionerKey>> {
    let rows =
        sqlx::query("SELECT * FROM provisioner_keys WHERE organization_id = ? ORDER BY name")
            .bind(organization_id.to_string())
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(rows::provisioner_key).collect()
}

pub async fn delete(
    pool: &SqlitePool,
    organization_id: Uuid,
    name: &str,
) -> Result<ProvisionerKey> {
    let row = sqlx::query(
        "DELETE FROM provisioner_keys WHERE organization_id = ? AND name = ? RETURNING *",
    )
    .bind(organization_id.to_string())
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    rows::provisioner_key(&found(row)?)
}
