//! Daemon authentication: which pre-shared keys the gRPC service accepts.
//!
//! Keys are kept only as sha256 digests and compared in constant time. The
//! server always holds one random internal key for its built-in daemons; an
//! operator adds an external key with `--psk`. Per-organization provisioner
//! keys will join here.

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// Metadata header carrying a pre-shared key.
pub const PSK_HEADER: &str = "x-provisionerd-psk";
/// Metadata header carrying a provisioner key (`<key id>.<secret>`).
pub const KEY_HEADER: &str = "x-provisionerd-key";

/// The set of accepted daemon keys.
#[derive(Clone)]
pub struct DaemonAuth {
    digests: Arc<Vec<[u8; 32]>>,
}

impl std::fmt::Debug for DaemonAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonAuth").field("keys", &self.digests.len()).finish()
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
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self { digests: Arc::new(keys.into_iter().map(digest).collect()) }
    }

    /// Accepts the request when its key matches one of ours.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(given) = metadata.get(PSK_HEADER).and_then(|v| v.to_str().ok()) else {
            return Err(Status::unauthenticated(format!(
                "missing {PSK_HEADER}: start the daemon with --psk (the server's --psk)"
            )));
        };
        let given = digest(given);
        // Compare against every key so timing does not tell which one matched.
        let matched = self.digests.iter().fold(0u8, |acc, d| acc | d.ct_eq(&given).unwrap_u8());
        if matched == 1 {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid pre-shared key"))
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
        let auth = DaemonAuth::new(["alpha", "beta"]);
        assert!(auth.check(&md(Some("alpha"))).is_ok());
        assert!(auth.check(&md(Some("beta"))).is_ok());
        assert_eq!(
            auth.check(&md(Some("gamma"))).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(auth.check(&md(None)).map_err(|s| s.code()), Err(tonic::Code::Unauthenticated));
    }
}
