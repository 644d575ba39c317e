//! The protocol version a daemon says hello with, and the server's rule:
//! it serves daemons of its own major version only. Minor versions of one
//! major version add only what the other side may ignore, so any two of
//! them work together; another major version (or a hello without a version,
//! from a release before versions) is refused with a message naming both
//! versions and saying what to upgrade.

use tonic::metadata::MetadataValue;
use tonic::Status;

use super::{proto, PROTOCOL_HEADER};

/// A protocol version: major.minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolVersion {
    pub major: u32,
    pub minor: u32,
}

/// The version this build speaks. Bump the minor version for an addition
/// the other side may ignore, the major version for anything else, and say
/// in `provisionerd.proto` which version each change belongs to.
///
/// 1.1: a completion carries the run's timings (`Complete.timings`).
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl From<ProtocolVersion> for proto::ProtocolVersion {
    fn from(v: ProtocolVersion) -> Self {
        proto::ProtocolVersion { major: v.major, minor: v.minor }
    }
}

impl From<proto::ProtocolVersion> for ProtocolVersion {
    fn from(v: proto::ProtocolVersion) -> Self {
        ProtocolVersion { major: v.major, minor: v.minor }
    }
}

/// A daemon whose protocol this server does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct VersionMismatch {
    /// The daemon's version; `None` for a daemon older than versions.
    pub daemon: Option<ProtocolVersion>,
    pub server: ProtocolVersion,
}

impl std::fmt::Display for VersionMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let server = self.server;
        match self.daemon {
            Some(daemon) => write!(
                f,
                "daemon speaks provisionerd protocol {daemon}, this server speaks {server}; \
                 upgrade the daemon or the server so their major versions match"
            ),
            None => write!(
                f,
                "daemon speaks no provisionerd protocol version (a release from before \
                 protocol 1.0), this server speaks {server}; upgrade the daemon so its major \
                 version matches"
            ),
        }
    }
}

/// The server's check of a hello's version: the daemon's version when the
/// server can serve it.
pub fn check_daemon_version(hello: &proto::Hello) -> Result<ProtocolVersion, VersionMismatch> {
    let server = PROTOCOL_VERSION;
    match hello.protocol.map(ProtocolVersion::from) {
        Some(daemon) if daemon.major == server.major => Ok(daemon),
        daemon => Err(VersionMismatch { daemon, server }),
    }
}

/// The status a refused daemon gets: FAILED_PRECONDITION with the message
/// and the server's version in [`PROTOCOL_HEADER`].
impl From<VersionMismatch> for Status {
    fn from(m: VersionMismatch) -> Self {
        let mut status = Status::failed_precondition(m.to_string());
        if let Ok(v) = MetadataValue::try_from(m.server.to_string()) {
            status.metadata_mut().insert(PROTOCOL_HEADER, v);
        }
        status
    }
}

/// Whether a session's opening failed because the server does not speak
/// this daemon's protocol version (then retrying cannot help).
pub fn is_version_refusal(status: &Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition
        && status.metadata().get(PROTOCOL_HEADER).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(v: Option<(u32, u32)>) -> proto::Hello {
        let protocol = v.map(|(major, minor)| proto::ProtocolVersion { major, minor });
        proto::Hello { protocol, ..Default::default() }
    }

    #[test]
    fn the_server_serves_its_own_major_version_only() {
        let ours = PROTOCOL_VERSION;
        let newer_minor = (ours.major, ours.minor + 3);
        assert_eq!(
            check_daemon_version(&hello(Some(newer_minor))),
            Ok(ProtocolVersion { major: newer_minor.0, minor: newer_minor.1 })
        );
        assert!(check_daemon_version(&hello(Some((ours.major, 0)))).is_ok());
        let refused = check_daemon_version(&hello(Some((ours.major + 1, 0)))).expect_err("major");
        let text = refused.to_string();
        assert!(text.contains(&format!("protocol {}.0", ours.major + 1)), "{text}");
        assert!(text.contains(&format!("this server speaks {ours}")), "{text}");
        let status = Status::from(refused);
        assert!(is_version_refusal(&status), "{status:?}");
        assert!(!is_version_refusal(&Status::failed_precondition("another refusal")));
        let old = check_daemon_version(&hello(None)).expect_err("no version").to_string();
        assert!(
            old.contains("no provisionerd protocol version") && old.contains("upgrade"),
            "{old}"
        );
    }

    #[test]
    fn versions_round_trip() {
        let v = ProtocolVersion { major: 3, minor: 7 };
        assert_eq!(ProtocolVersion::from(proto::ProtocolVersion::from(v)), v);
        assert_eq!(v.to_string(), "3.7");
    }
}
