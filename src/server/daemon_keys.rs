//! Daemon keys: which pre-shared keys the gRPC service accepts, and the
//! identity a daemon gets from the credential it proved. (User sessions and
//! passwords are `api/auth.rs`; the metadata headers keys travel in are
//! part of the protocol, in [`crate::protocol`].)
//!
//! Keys are kept only as sha256 digests and compared in constant time. The
//! server always holds one random internal key for its built-in daemons; an
//! operator adds an external key with `--psk`. Provisioner keys live in the
//! store and are checked by `grpc.rs`; all three end up as a [`Credential`].
//!
//! A daemon's id on the server is scoped by its credential
//! ([`Credential::daemon_id`]): a daemon cannot take the identity, the jobs or
//! the registry entry of a daemon that authenticated with another credential,
//! whatever id it claims in its hello.

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use tonic::metadata::MetadataMap;
use tonic::Status;
use uuid::Uuid;

use crate::protocol::PSK_HEADER;

/// Namespace of the UUIDv5 ids daemons get on the server (fixed forever:
/// changing it would orphan the jobs of every connected daemon).
const DAEMON_ID_NAMESPACE: Uuid = Uuid::from_u128(0xa831ef83_792b_4002_87c0_d70236ab1b84);

/// The credential a daemon proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The server's random internal key: its built-in daemons.
    Internal,
    /// The operator's `--psk`.
    Psk,
    /// A provisioner key, by its id.
    Key(Uuid),
}

impl Credential {
    /// The daemon's id on the server: a UUIDv5 of the credential and the id
    /// the daemon claims in its hello. Jobs record it as their worker and
    /// the daemon registry is keyed by it, so only a daemon with the same
    /// credential and the same claimed id (a reconnect) is the same daemon.
    /// The labels are stable across server restarts (the internal key is
    /// not, but the built-in daemons restart with the server anyway), so an
    /// external daemon resumes its jobs on a restarted server.
    pub fn daemon_id(&self, claimed: Uuid) -> Uuid {
        let name = match self {
            Credential::Internal => format!("internal/{claimed}"),
            Credential::Psk => format!("psk/{claimed}"),
            Credential::Key(key) => format!("key/{key}/{claimed}"),
        };
        Uuid::new_v5(&DAEMON_ID_NAMESPACE, name.as_bytes())
    }
}

/// Refuses a pre-shared key that is empty or only whitespace: the server
/// would accept any daemon that sends the same nothing.
pub fn validate_psk(psk: &str) -> Result<(), String> {
    if psk.trim().is_empty() {
        return Err("the pre-shared key (--psk, PROVISIONERD_PSK) is empty or whitespace, \
                    which would let any daemon in: set the same long random secret \
                    (e.g. `openssl rand -hex 32`) on the server and its daemons, or leave it \
                    unset on the server so only its built-in daemons connect"
            .into());
    }
    Ok(())
}

/// The set of accepted daemon keys.
#[derive(Clone)]
pub struct DaemonAuth {
    keys: Arc<Vec<([u8; 32], Credential)>>,
}

impl std::fmt::Debug for DaemonAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonAuth").field("keys", &self.keys.len()).finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `secret` hashes to `hashed` (sha256), compared in constant time.
pub fn secret_matches(secret: &str, hashed: &[u8]) -> bool {
    digest(secret).ct_eq(hashed).into()
}

/// A fresh random key, hex encoded.
pub fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl DaemonAuth {
    /// The built-in daemons' key and the operator's `--psk`, if any (checked
    /// with [`validate_psk`] before).
    pub fn new(internal: &str, psk: Option<&str>) -> Self {
        let keys = std::iter::once((digest(internal), Credential::Internal))
            .chain(psk.map(|p| (digest(p), Credential::Psk)))
            .collect();
        Self { keys: Arc::new(keys) }
    }

    /// Accepts the request when its key matches one of ours, and says which.
    pub fn check(&self, metadata: &MetadataMap) -> Result<Credential, Status> {
        let Some(given) = metadata.get(PSK_HEADER).and_then(|v| v.to_str().ok()) else {
            return Err(Status::unauthenticated(format!(
                "missing {PSK_HEADER}: start the daemon with --psk (the server's --psk)"
            )));
        };
        let given = digest(given);
        // Compare against every key, and pick the match without a branch, so
        // timing does not tell which one matched.
        let mut matched = u8::MAX;
        for (i, (d, _)) in self.keys.iter().enumerate() {
            let i = u8::try_from(i).unwrap_or(u8::MAX);
            matched.conditional_assign(&i, d.ct_eq(&given));
        }
        match self.keys.get(usize::from(matched)) {
            Some((_, credential)) => Ok(*credential),
            None => Err(Status::unauthenticated("invalid pre-shared key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(key: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(k) = key {
            m.insert(PSK_HEADER, k.parse().expect("ascii"));
        }
        m
    }

    #[test]
    fn accepts_only_known_keys() {
        let auth = DaemonAuth::new("alpha", Some("beta"));
        assert_eq!(auth.check(&md(Some("alpha"))).ok(), Some(Credential::Internal));
        assert_eq!(auth.check(&md(Some("beta"))).ok(), Some(Credential::Psk));
        assert_eq!(
            auth.check(&md(Some("gamma"))).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(auth.check(&md(None)).map_err(|s| s.code()), Err(tonic::Code::Unauthenticated));
        let internal_only = DaemonAuth::new("alpha", None);
        assert!(internal_only.check(&md(Some("beta"))).is_err(), "no --psk, no external key");
    }

    #[test]
    fn daemon_ids_are_scoped_by_credential() {
        let claimed = Uuid::new_v4();
        let key = Uuid::new_v4();
        let ids = [
            Credential::Internal.daemon_id(claimed),
            Credential::Psk.daemon_id(claimed),
            Credential::Key(key).daemon_id(claimed),
            Credential::Key(Uuid::new_v4()).daemon_id(claimed),
        ];
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "one claimed id, four credentials, four daemons");
        assert!(!ids.contains(&claimed), "the claimed id itself is never an owner");
        assert_eq!(
            Credential::Key(key).daemon_id(claimed),
            ids[2],
            "a reconnect is the same daemon"
        );
        assert_ne!(Credential::Psk.daemon_id(Uuid::new_v4()), ids[1]);
    }

    #[test]
    fn empty_or_blank_psk_is_refused() {
        for psk in ["", "   ", "\t\n"] {
            let err = validate_psk(psk).expect_err(psk);
            assert!(err.contains("empty or whitespace") && err.contains("--psk"), "{err}");
        }
        assert!(validate_psk("a-real-secret").is_ok());
    }
}
