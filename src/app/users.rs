//! Users and organizations: first-user setup, creating users, changing
//! their site roles, and reading users and organizations. Who may do what
//! is `access`'s call; sessions and logins stay with the HTTP layer
//! (`server/api/auth.rs`), which owns tokens and the login limiter.

use chrono::Utc;
use uuid::Uuid;

use super::access::{Action, Resource, Subject};
use super::passwords::hash_password_pooled;
use super::{validate, App, Error, Result};
use crate::domain::Role;
use crate::store::{Organization, StoreError, User};

/// Shortest password accepted.
const MIN_PASSWORD: usize = 8;

/// A user to create, as the request gives it.
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password: String,
    pub name: String,
}

/// Coder's rules: the username is a name (`validate::name`), the real name
/// at most 128 characters without surrounding whitespace.
fn validate_user(req: &NewUser) -> Result<()> {
    validate::name("username", &req.username)?;
    validate::email("email", &req.email)?;
    validate::real_name("name", &req.name)?;
    if req.password.len() < MIN_PASSWORD {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// The site roles a request names, in `Role::ALL` order; `member` is
/// implicit, so naming it changes nothing.
fn parse_roles(names: &[String]) -> Result<Vec<Role>> {
    let mut wanted = Vec::new();
    for name in names {
        match name.parse::<Role>() {
            Ok(role) => wanted.push(role),
            Err(_) if name == "member" => {}
            Err(_) => {
                return Err(Error::invalid(
                    "roles",
                    format!(
                        "unknown role {name:?}: use owner, template-admin, user-admin or member"
                    ),
                ))
            }
        }
    }
    Ok(Role::ALL.into_iter().filter(|r| wanted.contains(r)).collect())
}

impl App<'_> {
    async fn insert_user(&self, req: NewUser, is_owner: bool) -> Result<User> {
        validate_user(&req)?;
        let user = User {
            id: Uuid::new_v4(),
            username: req.username,
            email: req.email,
            name: req.name,
            password_hash: hash_password_pooled(&req.password).await?,
            roles: if is_owner { vec![Role::Owner] } else { Vec::new() },
            created_at: Utc::now(),
        };
        // The first user (the owner) is inserted only while no user exists,
        // in one statement, so racing setups cannot both win.
        let (inserted, taken) = if is_owner {
            (
                self.store.insert_first_user(&user).await,
                "The initial user has already been created.",
            )
        } else {
            (
                self.store.insert_user(&user).await,
                "A user with that username or email already exists.",
            )
        };
        match inserted {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(Error::conflict(taken)),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the first user, an owner, while there is none; anyone may.
    pub async fn create_first_user(&self, req: NewUser) -> Result<(User, Organization)> {
        if self.store.count_users().await? > 0 {
            return Err(Error::conflict("The initial user has already been created."));
        }
        let org = self.store.default_organization().await?;
        Ok((self.insert_user(req, true).await?, org))
    }

    /// Creates a user with no site role (owners and user admins).
    pub async fn create_user(
        &self,
        who: Subject<'_>,
        req: NewUser,
    ) -> Result<(User, Organization)> {
        who.may(Action::Create, Resource::User { id: Uuid::nil() })?;
        let org = self.store.default_organization().await?;
        Ok((self.insert_user(req, false).await?, org))
    }

    /// The user `param` names (`me`, an id or a username), if the subject
    /// may read them, with the organization they belong to.
    pub async fn user(
        &self,
        who: Subject<'_>,
        me: &User,
        param: &str,
    ) -> Result<(User, Organization)> {
        let user = self.user_by_ref(me, param).await?;
        who.may(Action::Read, Resource::User { id: user.id })?;
        let org = self.store.default_organization().await?;
        Ok((user, org))
    }

    /// Replaces the site roles of the user `param` names; each role granted
    /// or taken away must be one the subject may assign, and nobody changes
    /// their own.
    pub async fn set_roles(
        &self,
        who: Subject<'_>,
        me: &User,
        param: &str,
        roles: &[String],
    ) -> Result<(User, Organization)> {
        let target = self.user_by_ref(me, param).await?;
        who.may(Action::Read, Resource::User { id: target.id })?;
        if who.user_id() == Some(target.id) {
            return Err(Error::bad_request("You cannot change your own roles.")
                .detail("ask another owner or user admin to change them"));
        }
        who.may(Action::Update, Resource::User { id: target.id })?;
        let wanted = parse_roles(roles)?;
        for role in Role::ALL {
            match (target.roles.contains(&role), wanted.contains(&role)) {
                (false, true) => who.may(Action::Create, Resource::RoleAssignment { role })?,
                (true, false) => who.may(Action::Delete, Resource::RoleAssignment { role })?,
                _ => {}
            }
        }
        self.store.set_user_roles(target.id, &wanted).await?;
        let user = self.store.user_by_id(target.id).await?;
        let org = self.store.default_organization().await?;
        Ok((user, org))
    }

    /// The organizations of the user `param` names.
    pub async fn organizations_of(
        &self,
        who: Subject<'_>,
        me: &User,
        param: &str,
    ) -> Result<Vec<Organization>> {
        let user = self.user_by_ref(me, param).await?;
        who.may(Action::Read, Resource::User { id: user.id })?;
        Ok(self.store.organizations_of_user(user.id).await?)
    }

    /// An organization (every user is a member of every one).
    pub async fn organization(&self, who: Subject<'_>, param: &str) -> Result<Organization> {
        who.may(Action::Read, Resource::Organization)?;
        self.organization_by_ref(param).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_a_fixed_order_without_member_or_duplicates() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = parse_roles(&names(&["user-admin", "member", "owner", "user-admin"]));
        assert_eq!(got.expect("valid"), vec![Role::Owner, Role::UserAdmin]);
        assert!(parse_roles(&[]).expect("none").is_empty());
        let err = parse_roles(&names(&["owner", "root"])).expect_err("unknown role");
        let Error::Invalid(refusal) = &err else { panic!("want invalid, got {err:?}") };
        assert_eq!(refusal.validations[0].field, "roles");
        assert!(refusal.detail.contains("\"root\""), "{}", refusal.detail);
    }
}
