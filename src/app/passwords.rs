//! Password hashes: argon2 PHC strings, computed and checked on blocking
//! threads in a bounded pool, so a burst of logins neither stalls the async
//! workers nor takes every CPU. Used by the user use cases and the login.

use std::sync::LazyLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use tokio::sync::Semaphore;

use super::{Error, Result};

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Error::internal)
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
async fn in_hash_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _slot = HASHING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(work).await.map_err(Error::internal)
}

/// [`hash_password`] off the async worker threads, in the bounded pool.
pub async fn hash_password_pooled(password: &str) -> Result<String> {
    let password = password.to_owned();
    in_hash_pool(move || hash_password(&password)).await?
}

/// [`verify_password`] off the async worker threads, in the bounded pool.
pub async fn verify_password_pooled(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    in_hash_pool(move || verify_password(&password, &hash)).await
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
