//! Provisioner keys and the list of connected daemons, per organization:
//! creating a key (its secret is returned once and stored only as a
//! sha256), listing keys (never the secret), deleting one (which ends the
//! sessions of daemons using it). Owners and template admins only: to
//! Coder a key is a provisioner daemon.

use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::access::{Action, Resource, Subject};
use super::{validate, App, Error, Result};
use crate::domain::{with_default_scope, Tags};
use crate::server::daemons::{Connected, Registry};
use crate::server::Event;
use crate::store::{ProvisionerKey, StoreError};

impl App<'_> {
    /// Creates a provisioner key; returns it with the token daemons present
    /// (`<id>.<secret>`), the only time the secret leaves the server.
    pub async fn create_key(
        &self,
        who: Subject<'_>,
        organization: &str,
        name: String,
        tags: Tags,
    ) -> Result<(ProvisionerKey, String)> {
        who.may(Action::Create, Resource::ProvisionerDaemon)?;
        let org = self.organization_by_ref(organization).await?;
        validate::name("name", &name)?;
        validate::tags("tags", &tags)?;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let secret = hex::encode(secret);
        let key = ProvisionerKey {
            id: Uuid::new_v4(),
            organization_id: org.id,
            name,
            hashed_secret: Sha256::digest(secret.as_bytes()).to_vec(),
            tags: with_default_scope(tags),
            created_at: Utc::now(),
        };
        match self.store.insert_provisioner_key(&key).await {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::conflict(format!(
                    "A provisioner key named {:?} already exists.",
                    key.name
                )))
            }
            other => other?,
        }
        let token = format!("{}.{secret}", key.id);
        Ok((key, token))
    }

    /// The organization's keys (rendered without their secrets' digests).
    pub async fn keys(&self, who: Subject<'_>, organization: &str) -> Result<Vec<ProvisionerKey>> {
        who.may(Action::Read, Resource::ProvisionerDaemon)?;
        let org = self.organization_by_ref(organization).await?;
        Ok(self.store.provisioner_keys(org.id).await?)
    }

    /// Deletes the organization's key of that name; daemons using it are
    /// disconnected (`KeyRevoked`).
    pub async fn delete_key(&self, who: Subject<'_>, organization: &str, name: &str) -> Result<()> {
        who.may(Action::Delete, Resource::ProvisionerDaemon)?;
        let org = self.organization_by_ref(organization).await?;
        let key = self.store.delete_provisioner_key(org.id, name).await?;
        self.events.publish(Event::KeyRevoked(key.id));
        Ok(())
    }

    /// The daemons connected to any server on this store that serve the
    /// organization.
    pub async fn daemons(
        &self,
        who: Subject<'_>,
        organization: &str,
        registry: &Registry,
    ) -> Result<Vec<Connected>> {
        who.may(Action::Read, Resource::ProvisionerDaemon)?;
        self.organization_by_ref(organization).await?;
        Ok(registry.current().await)
    }
}
