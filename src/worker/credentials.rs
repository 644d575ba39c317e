//! How a daemon proves itself to the server: a pre-shared key or a
//! provisioner key, sent as request metadata. Secrets never show in `Debug`
//! output or logs.

use tonic::metadata::MetadataValue;

use crate::protocol::{KEY_HEADER, PSK_HEADER};

/// The daemon's secret(s).
#[derive(Clone, Default)]
pub struct Credentials {
    pub psk: Option<String>,
    pub key: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("Credentials")
            .field("psk", &redact(&self.psk))
            .field("key", &redact(&self.key))
            .finish()
    }
}

impl Credentials {
    /// Adds the secrets to a request's metadata.
    pub fn apply<T>(&self, request: &mut tonic::Request<T>) -> Result<(), tonic::Status> {
        for (header, value) in [(PSK_HEADER, &self.psk), (KEY_HEADER, &self.key)] {
            if let Some(value) = value {
                let value = MetadataValue::try_from(value.as_str()).map_err(|_| {
                    tonic::Status::invalid_argument(format!("{header} is not printable ASCII"))
                })?;
                request.metadata_mut().insert(header, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials { psk: Some("hunter2".into()), key: None };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && shown.contains("***"), "{shown}");
    }
}
