//! The opening of a session: the daemon's hello (who it is, what it runs,
//! which protocol version it speaks, which jobs it still runs) and the
//! server's welcome (the heartbeat interval, and the daemon's id on the
//! server).

use std::time::Duration;

use uuid::Uuid;

use super::{parse_id, proto, BadMessage, ProtocolVersion};
use crate::domain::{Provisioner, Tags};

/// A daemon's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The id the daemon claims (stable for its process's lifetime).
    pub daemon_id: Uuid,
    pub name: String,
    /// The daemon's release (`CARGO_PKG_VERSION`), for the daemon list.
    pub version: String,
    pub protocol: ProtocolVersion,
    pub tags: Tags,
    pub provisioners: Vec<Provisioner>,
    /// Jobs the daemon still runs (after a reconnect).
    pub running_job_ids: Vec<Uuid>,
}

/// The server's welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// How often the daemon should send heartbeats.
    pub heartbeat_interval: Duration,
    /// The daemon's id on the server (scoped by its credential), as its
    /// jobs and the daemon list show it. The daemon only logs it, so it is
    /// kept as sent.
    pub daemon_id: String,
    /// The server's protocol version (`None` from a server before 1.0).
    pub protocol: Option<ProtocolVersion>,
}

/// The hello a daemon sends.
pub fn hello_to_proto(h: Hello) -> proto::daemon_message::Msg {
    let hello = proto::Hello {
        daemon_id: h.daemon_id.to_string(),
        name: h.name,
        version: h.version,
        tags: h.tags.into_iter().collect(),
        provisioners: h.provisioners.iter().map(ToString::to_string).collect(),
        running_job_ids: h.running_job_ids.iter().map(Uuid::to_string).collect(),
        protocol: Some(h.protocol.into()),
    };
    proto::daemon_message::Msg::Hello(hello)
}

/// Reads a hello. The server checks the version first
/// ([`super::check_daemon_version`]): a hello of another major version may
/// not read as this one's.
pub fn hello_from_proto(h: proto::Hello) -> Result<Hello, BadMessage> {
    let provisioners = h
        .provisioners
        .iter()
        .map(|p| p.parse::<Provisioner>().map_err(|e| BadMessage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let running_job_ids = h
        .running_job_ids
        .iter()
        .map(|j| parse_id(j, "running_job_ids"))
        .collect::<Result<Vec<_>, _>>()?;
    let protocol =
        h.protocol.map(ProtocolVersion::from).ok_or_else(|| BadMessage("no protocol".into()))?;
    Ok(Hello {
        daemon_id: parse_id(&h.daemon_id, "daemon_id")?,
        name: h.name,
        version: h.version,
        protocol,
        tags: h.tags.into_iter().collect(),
        provisioners,
        running_job_ids,
    })
}

/// Reads the server's welcome. An interval under 100 ms reads as 100 ms, so
/// a bad server cannot make the daemon spin.
pub fn welcome_from_proto(w: proto::Welcome) -> Welcome {
    Welcome {
        heartbeat_interval: Duration::from_millis(u64::from(w.heartbeat_interval_ms.max(100))),
        daemon_id: w.daemon_id,
        protocol: w.protocol.map(ProtocolVersion::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{welcome, PROTOCOL_VERSION};

    #[test]
    fn hellos_round_trip() {
        let hello = Hello {
            daemon_id: Uuid::new_v4(),
            name: "builder-1".into(),
            version: "0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            tags: [("scope".to_owned(), "organization".to_owned())].into_iter().collect(),
            provisioners: vec![Provisioner::Terraform, Provisioner::Echo],
            running_job_ids: vec![Uuid::new_v4(), Uuid::new_v4()],
        };
        let proto::daemon_message::Msg::Hello(sent) = hello_to_proto(hello.clone()) else {
            panic!("a hello")
        };
        assert_eq!(hello_from_proto(sent.clone()), Ok(hello));
        let bad = proto::Hello { provisioners: vec!["chef".into()], ..sent.clone() };
        assert!(hello_from_proto(bad).is_err());
        let bad = proto::Hello { running_job_ids: vec!["x".into()], ..sent };
        assert!(hello_from_proto(bad).expect_err("ids").0.contains("running_job_ids"));
    }

    #[test]
    fn welcomes_round_trip() {
        let id = Uuid::new_v4();
        let proto::server_message::Msg::Welcome(sent) = welcome(Duration::from_secs(3), id) else {
            panic!("a welcome")
        };
        let w = Welcome {
            heartbeat_interval: Duration::from_secs(3),
            daemon_id: id.to_string(),
            protocol: Some(PROTOCOL_VERSION),
        };
        assert_eq!(welcome_from_proto(sent.clone()), w);
        let fast = proto::Welcome { heartbeat_interval_ms: 1, ..sent };
        assert_eq!(welcome_from_proto(fast).heartbeat_interval, Duration::from_millis(100));
    }
}
