//! Users' authentication: argon2 password hashes, and session tokens of the
//! form `<id>-<secret>` whose secret is stored only as a sha256 digest and
//! compared in constant time. The [`Caller`] extractor turns the
//! `Coder-Session-Token` header (or cookie) into the calling user.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::server::access::{self, Action, Actor, Resource};
use crate::server::AppState;
use crate::store::{ApiKey, StoreError, User};

pub const TOKEN_HEADER: &str = "Coder-Session-Token";
const TOKEN_COOKIE: &str = "coder_session_token";

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// Password hashes computed at once, process-wide: half the CPUs (at least
/// one), so a burst of logins leaves CPU for everything else. An argon2 hash
/// takes tens of milliseconds and 19 MiB, and on an async worker thread it
/// stalled every request on that thread (300 concurrent logins held
/// `/healthz` for 2.2 s).
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Semaphore::new((cpus / 2).max(1))
});

/// Runs `work` on a blocking thread once a hashing slot is free.
async fn in_hash_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = HASHING.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)
}

/// [`hash_password`] off the async worker threads, in the bounded pool.
pub async fn hash_password_pooled(password: &str) -> Result<String, ApiError> {
    let password = password.to_owned();
    in_hash_pool(move || hash_password(&password)).await?
}

/// [`verify_password`] off the async worker threads, in the bounded pool.
pub async fn verify_password_pooled(password: &str, hash: &str) -> Result<bool, ApiError> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    in_hash_pool(move || verify_password(&password, &hash)).await
}

/// Creates a session for `user` and returns its token.
pub async fn new_session(state: &AppState, user: &User) -> Result<String, ApiError> {
    let (id, secret) = {
        let mut rng = rand::thread_rng();
        (Alphanumeric.sample_string(&mut rng, 10), Alphanumeric.sample_string(&mut rng, 22))
    };
    let now = Utc::now();
    let key = ApiKey {
        id: id.clone(),
        user_id: user.id,
        hashed_secret: Sha256::digest(secret.as_bytes()).to_vec(),
        created_at: now,
        expires_at: now + state.settings.session_lifetime,
    };
    state.store.insert_api_key(&key).await?;
    Ok(format!("{id}-{secret}"))
}

/// The authenticated user making the request, and their key id.
pub struct Caller {
    pub user: User,
    pub key_id: String,
}

impl Caller {
    /// The caller as `access` sees them.
    pub fn actor(&self) -> Actor<'_> {
        Actor::of(&self.user)
    }

    /// Whether the caller may do `action` to `resource` (see `access`).
    pub fn may(&self, action: Action, resource: Resource) -> Result<(), ApiError> {
        Ok(access::check(self.actor(), action, resource)?)
    }
}

fn token_from(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let cookies = parts.headers.get(axum::http::header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == TOKEN_COOKIE).then(|| v.to_owned())
    })
}

fn invalid() -> ApiError {
    ApiError::unauthorized("Invalid session token.")
        .detail("log in again with POST /api/v2/users/login and send the new token")
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = token_from(parts) else {
            return Err(ApiError::unauthorized(format!(
                "You must be authenticated: send the {TOKEN_HEADER} header."
            )));
        };
        let (id, secret) = token.split_once('-').ok_or_else(invalid)?;
        let key = match state.store.api_key(id).await {
            Ok(key) => key,
            Err(StoreError::NotFound) => return Err(invalid()),
            Err(e) => return Err(e.into()),
        };
        let digest = Sha256::digest(secret.as_bytes());
        if !bool::from(key.hashed_secret.as_slice().ct_eq(digest.as_slice()))
            || key.expires_at < Utc::now()
        {
            return Err(invalid());
        }
        let user = state.store.user_by_id(key.user_id).await?;
        Ok(Caller { user, key_id: key.id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("hunter2-but-longer").expect("hash");
        assert!(hash.starts_with("$argon2"));
        assert!(verify_password("hunter2-but-longer", &hash));
        assert!(!verify_password("hunter3-but-longer", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
