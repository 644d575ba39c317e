//! Users' sessions (password hashes are `app/passwords.rs`): session tokens of the
//! form `<id>-<secret>` whose secret is stored only as a sha256 digest and
//! compared in constant time. The [`Caller`] extractor turns the
//! `Coder-Session-Token` header (or cookie) into the calling user.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::app::access::{Actor, Subject};
use crate::server::AppState;
use crate::store::{ApiKey, StoreError, User};

pub const TOKEN_HEADER: &str = "Coder-Session-Token";
const TOKEN_COOKIE: &str = "coder_session_token";

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

    /// The caller as the use cases see them.
    pub fn subject(&self) -> Subject<'_> {
        Subject::User(self.actor())
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
