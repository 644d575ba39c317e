//! The use cases' one error type, and the one translation of store and
//! access errors into it. A use case answers what went wrong in domain
//! terms; `server/api/error.rs` alone turns that into HTTP, and a scheduler
//! can log it as is.
//!
//! A database outage (`StoreError::Database`, `Migrate`, `Corrupt`) is
//! [`Error::Internal`], whose text is for the server's log only: callers
//! answer it as an opaque failure, never as "no such template". Only a
//! `NotFound` on an id the request refers to becomes a validation error,
//! through [`referenced`].

use crate::app::access::AccessError;
use crate::store::StoreError;

/// One field of a request that breaks a rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub field: String,
    pub detail: String,
}

/// A refusal the caller can act on: what was refused, why, and which fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub detail: String,
    pub validations: Vec<Validation>,
}

impl Refusal {
    fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::default() }
    }
}

/// What a use case can end in besides success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The resource does not exist, or the caller may not learn that it does.
    #[error("not found")]
    NotFound,
    /// The caller can see the resource but may not do this.
    #[error("{}", .0.message)]
    Forbidden(Refusal),
    /// The request breaks a rule: one or more fields, or the request as a whole.
    #[error("{}: {}", .0.message, .0.detail)]
    Invalid(Refusal),
    /// The request clashes with the current state (an active build, a name taken).
    #[error("{}: {}", .0.message, .0.detail)]
    Conflict(Refusal),
    /// The resource existed and was deleted (a workspace): `410 Gone`.
    #[error("{}", .0.message)]
    Gone(Refusal),
    /// The store cannot take writes right now (no space); it recovers by itself.
    #[error("the database cannot store writes: {0}")]
    Unavailable(String),
    /// Anything the caller cannot act on (a database outage, a bug). The text
    /// is for the server's log, never for the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An invalid request, as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Invalid(Refusal::new(message))
    }

    /// One invalid field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::bad_request("Validation failed.").detail(detail.clone()).field(field, detail)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(Refusal::new(message))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(Refusal::new(message))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::Gone(Refusal::new(message))
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    fn refusal_mut(&mut self) -> Option<&mut Refusal> {
        match self {
            Self::Forbidden(r) | Self::Invalid(r) | Self::Conflict(r) | Self::Gone(r) => Some(r),
            _ => None,
        }
    }

    /// Sets what to do about a refusal (other errors are left as they are).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        if let Some(r) = self.refusal_mut() {
            r.detail = detail.into();
        }
        self
    }

    /// Adds a field to a refusal (other errors are left as they are).
    pub fn field(mut self, field: &str, detail: impl Into<String>) -> Self {
        if let Some(r) = self.refusal_mut() {
            r.validations.push(Validation { field: field.to_owned(), detail: detail.into() });
        }
        self
    }

    /// The fields a refusal names (none for other errors).
    pub fn validations(&self) -> &[Validation] {
        match self {
            Self::Forbidden(r) | Self::Invalid(r) | Self::Conflict(r) | Self::Gone(r) => {
                &r.validations
            }
            _ => &[],
        }
    }
}

/// The one translation of store errors.
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(detail) => {
                Self::conflict("The request conflicts with the current state.").detail(detail)
            }
            StoreError::Unwritable(why) => Self::Unavailable(why),
            other => Self::internal(other),
        }
    }
}

impl From<AccessError> for Error {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Hidden => Self::NotFound,
            AccessError::Forbidden { message, remedy } => {
                Self::Forbidden(Refusal::new(message)).detail(remedy)
            }
        }
    }
}

/// A lookup of an id the request refers to: a missing row is the caller's
/// mistake (a 400 naming `field`), any other store failure stays what it is.
pub fn referenced<T>(found: crate::store::Result<T>, field: &str, detail: &str) -> Result<T> {
    match found {
        Err(StoreError::NotFound) => Err(Error::invalid(field, detail)),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_internal_and_only_not_found_is_the_callers_mistake() {
        let outage = StoreError::Database(sqlx::Error::Protocol("no such table: templates".into()));
        let got = referenced::<()>(Err(outage), "template_id", "no such template");
        assert!(matches!(got, Err(Error::Internal(_))), "{got:?}");
        let corrupt = referenced::<()>(Err(StoreError::Corrupt("x".into())), "f", "d");
        assert!(matches!(corrupt, Err(Error::Internal(_))));
        let missing =
            referenced::<()>(Err(StoreError::NotFound), "template_id", "no such template");
        let Err(Error::Invalid(r)) = missing else { panic!("want invalid, got {missing:?}") };
        assert_eq!(r.validations[0].field, "template_id");
        assert!(matches!(
            Error::from(StoreError::Unwritable("full".into())),
            Error::Unavailable(_)
        ));
    }
}
