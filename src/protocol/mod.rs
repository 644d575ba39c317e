//! The daemon protocol, one module for both of its sides: the generated
//! [`proto`] types, the metadata header names, the protocol version, and
//! every conversion between proto messages and domain types, in both
//! directions. The server's service (`server/grpc.rs`, `server/offer.rs`)
//! and the daemon's client (`worker/session.rs`, `worker/job.rs`,
//! `worker/cache.rs`) call these functions; no other module reads or fills
//! in a proto field, so the two sides cannot read the wire differently.
//!
//! It decides nothing about jobs: a message it cannot read is a
//! [`BadMessage`], which the server turns into a protocol violation and the
//! daemon into a failed job or a lost session.

mod complete;
mod enums;
mod hello;
mod logs;
mod messages;
mod offer;
mod version;

pub use complete::{complete_from_proto, complete_to_proto, Completion};
pub use enums::Wire;
pub use hello::{hello_from_proto, hello_to_proto, welcome_from_proto, Hello, Welcome};
pub use logs::{log_from_proto, log_to_proto};
pub use messages::{
    ack, acquire, batch_up_to, cancel, complete_ack, download_from_proto, download_to_proto,
    file_chunks, heartbeat, heartbeat_ack, heartbeat_ids, logs, logs_ack, offer, reject, welcome,
    Download,
};
pub use offer::{
    offer_from_proto, offer_to_proto, BuildInput, ImportInput, JobOffer, OfferInput, OfferedFile,
};
pub use version::{
    check_daemon_version, is_version_refusal, ProtocolVersion, VersionMismatch, PROTOCOL_VERSION,
};

/// Generated protocol types (`proto/provisionerd/v1`). Only this module's
/// functions look inside them; the rest of the crate uses them as opaque
/// messages to send and receive.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("provisionerd.v1");
}

/// Largest message either side sends or accepts, the same for the server's
/// service and the daemon's client (tonic's default of 4 MiB would refuse a
/// state past 4 MiB). The largest messages are a job offer (the previous
/// state) and a completion (the new state plus the resources, whose
/// attributes repeat much of it): 64 MiB carries a completion of a state
/// past 20 MiB, and still bounds what one message may make a peer allocate.
/// A completion that does not fit is cut down by [`complete_to_proto`],
/// never sent to fail over and over.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Metadata header carrying a pre-shared key.
pub const PSK_HEADER: &str = "x-provisionerd-psk";
/// Metadata header carrying a provisioner key (`<key id>.<secret>`).
pub const KEY_HEADER: &str = "x-provisionerd-key";
/// Response header of a version refusal: the server's protocol version.
/// Every major version keeps it, so a daemon of any version can tell a
/// refusal of its version from any other failure.
pub const PROTOCOL_HEADER: &str = "x-provisionerd-protocol";

/// A message (or a field of one) the reader cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadMessage(pub String);

/// Reads an id field.
pub fn parse_id(s: &str, field: &str) -> Result<uuid::Uuid, BadMessage> {
    s.parse().map_err(|_| BadMessage(format!("{field}: {s:?} is not a UUID")))
}
