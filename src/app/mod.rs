//! The use cases: what a user or the server itself can do, with the rules
//! that decide it, and nothing of HTTP or gRPC. Each takes a
//! [`Subject`] (a user with their roles, or [`Subject::System`] for a
//! scheduler or the reaper) and plain inputs, asks `access` whether the
//! subject may, applies the rules (`domain` holds the pure ones), writes
//! through the [`Store`], publishes on the event bus after the write
//! commits, and returns domain values or an [`Error`].
//!
//! - `builds.rs`: queue a build (the one path for every build: REST, a new
//!   workspace's first build, a scheduler), cancel one, read builds.
//! - `workspaces.rs`: create a workspace, read and list them.
//! - `schedules.rs`: a workspace's settings (autostart, ttl, deadline,
//!   dormancy, automatic updates, name) and the scheduler's tick.
//! - `templates.rs`: import a template version, create a template, promote
//!   a version, the "import succeeded" gate.
//! - `jobs.rs`: complete or fail a job (the daemon service and the reaper).
//! - `users.rs`, `provisioners.rs` (keys, the daemon list), `files.rs`:
//!   the rest of the API's writes and guarded reads; `passwords.rs`: argon2.
//! - `access.rs`: who may do what (pure); `validate.rs`: Coder's input
//!   limits; `error.rs`: the error type and the one store-error translation.
//!
//! REST handlers parse a request, call one of these and render the result;
//! none decides a rule.

use uuid::Uuid;

use crate::server::Events;
use crate::store::{Organization, Store, User};

pub mod access;
mod agents;
mod builds;
mod error;
mod files;
mod jobs;
pub mod passwords;
mod provisioners;
pub mod schedules;
mod templates;
mod users;
pub mod validate;
mod workspaces;

pub use access::Subject;
pub use agents::FoundAgent;
pub use builds::{settled_build, BuildRequest};
pub use error::{referenced, Error, Refusal, Result, Validation};
pub use schedules::WorkspaceChange;
pub use templates::{NewTemplate, NewVersion};
pub use users::NewUser;
pub use workspaces::NewWorkspace;

/// The use cases over one store and event bus. Cheap to make: it borrows.
#[derive(Clone, Copy)]
pub struct App<'a> {
    pub store: &'a dyn Store,
    pub events: &'a Events,
}

impl<'a> App<'a> {
    pub fn new(store: &'a dyn Store, events: &'a Events) -> Self {
        Self { store, events }
    }

    /// A user named by `me` (the caller), a UUID or a username.
    pub async fn user_by_ref(&self, me: &User, param: &str) -> Result<User> {
        if param == "me" {
            return Ok(me.clone());
        }
        let found = match param.parse::<Uuid>() {
            Ok(id) => self.store.user_by_id(id).await,
            Err(_) => self.store.user_by_username(param).await,
        };
        Ok(found?)
    }

    /// An organization named by a UUID or a name.
    pub async fn organization_by_ref(&self, param: &str) -> Result<Organization> {
        // Make sure the default organization exists before looking it up by name.
        let default = self.store.default_organization().await?;
        let found = match param.parse::<Uuid>() {
            Ok(id) if id == default.id => return Ok(default),
            Ok(id) => self.store.organization_by_id(id).await,
            Err(_) => self.store.organization_by_name(param).await,
        };
        Ok(found?)
    }
}

#[cfg(test)]
mod tests;
