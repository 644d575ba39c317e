//! Who may do what: the one place where a request's permission is decided,
//! from the caller's site roles and the resource's owner, after Coder's
//! built-in roles (`coderd/rbac/roles.go`) and handlers.
//!
//! - `owner`: everything.
//! - `template-admin`: templates, template versions and files (everyone's),
//!   provisioner keys and daemons, raw provisioner state and custom state on
//!   builds; reads every user and every workspace, but builds none but their
//!   own.
//! - `user-admin`: reads users, creates them, and changes roles, but may only
//!   hand out (or take away) `member`, which everyone has anyway.
//! - `member` (everyone): their own workspaces, builds and files; reads
//!   templates and the versions that belong to a template.
//!
//! A denial is [`AccessError::Hidden`] where Coder answers 404 (the caller may
//! not read the resource, so may not learn it exists) and
//! [`AccessError::Forbidden`] where it answers 403 (the caller can see the
//! resource, or there is no single resource to hide). The decision is pure:
//! it knows no HTTP, no store and no request. The use cases (`app/`) ask it
//! for a [`Subject`] (a user, or the server itself, which may do anything)
//! before they act; `app::Error` carries a denial and `api/error.rs` turns
//! that into a response.

use uuid::Uuid;

use crate::domain::Role;
use crate::store::User;

/// The caller, as far as permissions go.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: Uuid,
    pub roles: &'a [Role],
}

impl<'a> Actor<'a> {
    pub fn of(user: &'a User) -> Self {
        Self { id: user.id, roles: &user.roles }
    }

    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    fn is_owner(&self) -> bool {
        self.has(Role::Owner)
    }

    /// Owners and template admins manage templates (Coder: update on the
    /// template object).
    fn manages_templates(&self) -> bool {
        self.is_owner() || self.has(Role::TemplateAdmin)
    }

    fn manages_users(&self) -> bool {
        self.is_owner() || self.has(Role::UserAdmin)
    }
}

/// Who runs a use case.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A signed-in user, whose roles decide.
    User(Actor<'a>),
    /// The server itself (a scheduler, the reaper, the daemon service): no
    /// role applies, it may do everything.
    System,
}

impl Subject<'_> {
    /// Whether the subject may do `action` to `resource`.
    pub fn may(self, action: Action, resource: Resource) -> Result<(), AccessError> {
        match self {
            Subject::User(actor) => check(actor, action, resource),
            Subject::System => Ok(()),
        }
    }

    /// The user, when a user runs the use case.
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Subject::User(actor) => Some(actor.id),
            Subject::System => None,
        }
    }
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
}

/// What the caller wants to do it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A user account (create: any new user).
    User { id: Uuid },
    /// Granting (`Create`) or taking away (`Delete`) a site role.
    RoleAssignment { role: Role },
    /// A workspace, and with it its builds, logs, resources and parameters.
    /// `Update` starts, stops or cancels; `Delete` runs a delete build.
    Workspace { owner: Uuid },
    /// A workspace build's raw terraform state: reading it, or (`Update`)
    /// giving a build a hand-written state or orphaning a workspace.
    ProvisionerState,
    /// A template (and adding versions to it or promoting one).
    Template,
    /// A template version; one that belongs to no template yet is a
    /// template admin's work in progress.
    TemplateVersion { has_template: bool },
    /// An uploaded archive.
    File { uploader: Uuid },
    /// Provisioner keys and the list of connected daemons (Coder treats a
    /// key as a provisioner daemon object).
    ProvisionerDaemon,
    /// Deployment settings; a build's debug log level needs read access.
    DeploymentConfig,
    /// An organization (every user is a member of every one).
    Organization,
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The caller may not know the resource exists: answer as if it did not.
    #[error("resource not found or not visible to the caller")]
    Hidden,
    /// The caller may not do this; `message` says what, `remedy` what to do.
    #[error("{message}")]
    Forbidden { message: &'static str, remedy: &'static str },
}

const ASK_OWNER: &str = "ask an owner to do it, or to give you a role that may";

fn forbidden(message: &'static str) -> AccessError {
    AccessError::Forbidden { message, remedy: ASK_OWNER }
}

fn allow(ok: bool, denied: AccessError) -> Result<(), AccessError> {
    if ok {
        Ok(())
    } else {
        Err(denied)
    }
}

/// Whether `actor` may do `action` to `resource`.
pub fn check(actor: Actor<'_>, action: Action, resource: Resource) -> Result<(), AccessError> {
    use Action::*;
    match resource {
        Resource::User { id } => match action {
            Read => allow(id == actor.id || reads_all_users(actor), AccessError::Hidden),
            _ => allow(
                actor.manages_users(),
                forbidden("Only owners and user admins can manage users."),
            ),
        },
        // Owners grant and take away every role. A user admin may only
        // assign `member` (Coder's assignRoles), which is implicit, so no
        // stored role at all.
        Resource::RoleAssignment { role: _ } => allow(
            actor.is_owner(),
            if actor.manages_users() {
                forbidden("Only an owner can grant or take away this role.")
            } else {
                forbidden("Only owners and user admins can change roles.")
            },
        ),
        Resource::Workspace { owner } => workspace(actor, action, owner),
        Resource::ProvisionerState => match action {
            Read => allow(actor.manages_templates(), AccessError::Hidden),
            _ => allow(
                actor.manages_templates(),
                forbidden("Only template managers may provide custom state"),
            ),
        },
        Resource::Template => match action {
            Read => Ok(()),
            _ => allow(
                actor.manages_templates(),
                forbidden("Only owners and template admins can create or change templates."),
            ),
        },
        Resource::TemplateVersion { has_template } => match action {
            Read => allow(has_template || actor.manages_templates(), AccessError::Hidden),
            _ => allow(
                actor.manages_templates(),
                forbidden("Only owners and template admins can create or change templates."),
            ),
        },
        Resource::File { uploader } => match action {
            Create => Ok(()),
            _ => allow(uploader == actor.id || actor.manages_templates(), AccessError::Hidden),
        },
        Resource::ProvisionerDaemon => allow(
            actor.manages_templates(),
            forbidden("Only owners and template admins can manage provisioner keys and daemons."),
        ),
        Resource::DeploymentConfig => allow(
            actor.is_owner(),
            forbidden("Only owners can read or change the deployment's settings."),
        ),
        Resource::Organization => match action {
            Read => Ok(()),
            _ => Err(forbidden("Organizations cannot be changed through this API.")),
        },
    }
}

fn workspace(actor: Actor<'_>, action: Action, owner: Uuid) -> Result<(), AccessError> {
    let own = owner == actor.id;
    let readable = own || reads_all_workspaces(actor);
    let may = own || actor.is_owner();
    match action {
        Action::Read => allow(readable, AccessError::Hidden),
        Action::Create => allow(may, forbidden("You may only create workspaces for yourself.")),
        // Coder's wsbuilder: 403 when the caller can read the workspace, so
        // may know it exists, and 404 otherwise.
        Action::Update if readable => {
            allow(may, forbidden("You do not have permission to update this workspace."))
        }
        Action::Delete if readable => {
            allow(may, forbidden("You do not have permission to delete this workspace."))
        }
        Action::Update | Action::Delete => allow(may, AccessError::Hidden),
    }
}

/// Whether the caller sees every workspace (owners and template admins), or
/// only their own.
pub fn reads_all_workspaces(actor: Actor<'_>) -> bool {
    actor.manages_templates()
}

/// Whether the caller may look up any user: Coder gives user read to owners,
/// template admins and user admins; members read only themselves.
pub fn reads_all_users(actor: Actor<'_>) -> bool {
    actor.manages_templates() || actor.manages_users()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const ME: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);

    fn actor(roles: &[Role]) -> Actor<'_> {
        Actor { id: ME, roles }
    }

    /// 'y' allowed, 'h' hidden (404), 'f' forbidden (403).
    fn outcome(roles: &[Role], action: Action, resource: Resource) -> char {
        match check(actor(roles), action, resource) {
            Ok(()) => 'y',
            Err(AccessError::Hidden) => 'h',
            Err(AccessError::Forbidden { .. }) => 'f',
        }
    }

    /// Each row: the resource and action, then the outcome for member,
    /// template admin, user admin and owner.
    #[test]
    fn the_role_table() {
        use Resource as R;
        let table: &[(Action, Resource, &str)] = &[
            (Read, R::User { id: ME }, "yyyy"),
            (Read, R::User { id: OTHER }, "hyyy"),
            (Create, R::User { id: OTHER }, "ffyy"),
            (Update, R::User { id: OTHER }, "ffyy"),
            (Create, R::RoleAssignment { role: Role::TemplateAdmin }, "fffy"),
            (Delete, R::RoleAssignment { role: Role::Owner }, "fffy"),
            (Read, R::Workspace { owner: ME }, "yyyy"),
            (Update, R::Workspace { owner: ME }, "yyyy"),
            (Delete, R::Workspace { owner: ME }, "yyyy"),
            (Create, R::Workspace { owner: ME }, "yyyy"),
            (Read, R::Workspace { owner: OTHER }, "hyhy"),
            (Update, R::Workspace { owner: OTHER }, "hfhy"),
            (Delete, R::Workspace { owner: OTHER }, "hfhy"),
            (Create, R::Workspace { owner: OTHER }, "fffy"),
            (Read, R::ProvisionerState, "hyhy"),
            (Update, R::ProvisionerState, "fyfy"),
            (Read, R::Template, "yyyy"),
            (Create, R::Template, "fyfy"),
            (Update, R::Template, "fyfy"),
            (Read, R::TemplateVersion { has_template: true }, "yyyy"),
            (Read, R::TemplateVersion { has_template: false }, "hyhy"),
            (Create, R::TemplateVersion { has_template: false }, "fyfy"),
            (Create, R::File { uploader: ME }, "yyyy"),
            (Read, R::File { uploader: ME }, "yyyy"),
            (Read, R::File { uploader: OTHER }, "hyhy"),
            (Read, R::ProvisionerDaemon, "fyfy"),
            (Create, R::ProvisionerDaemon, "fyfy"),
            (Delete, R::ProvisionerDaemon, "fyfy"),
            (Read, R::DeploymentConfig, "fffy"),
            (Read, R::Organization, "yyyy"),
        ];
        let roles: [&[Role]; 4] = [&[], &[Role::TemplateAdmin], &[Role::UserAdmin], &[Role::Owner]];
        for (action, resource, want) in table {
            let got: String = roles.iter().map(|r| outcome(r, *action, *resource)).collect();
            assert_eq!(&got, want, "{action:?} {resource:?} as member, tadmin, uadmin, owner");
        }
    }
}
