//! A job's completion on the wire: the domain's [`JobOutcome`] with its
//! resources (attributes and agents as JSON text) and an import's findings,
//! plus the job id and the seq of the job's last log line, and (since
//! protocol 1.1) the run's timings, in microseconds since the epoch. A
//! completion too big for one message is cut down here, before it is sent.

use chrono::{DateTime, Utc};
use prost::Message;
use uuid::Uuid;

use super::{parse_id, proto, BadMessage, Wire, MAX_MESSAGE_BYTES};
use crate::domain::{ImportResult, JobOutcome, ProvisionerTiming, Resource, ResourceMetadata};

/// A completion as the server reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub job_id: Uuid,
    /// The seq of the job's last log line (0 for none).
    pub last_log_seq: i64,
    pub outcome: JobOutcome,
}

/// The completion a daemon sends, made to fit in one message.
pub fn complete_to_proto(job_id: Uuid, last_log_seq: i64, o: JobOutcome) -> proto::Complete {
    let mut c = proto::Complete {
        job_id: job_id.to_string(),
        state: o.state,
        resources: o.resources.into_iter().map(resource_to_proto).collect(),
        error: o.error,
        error_code: o.error_code,
        canceled: o.canceled,
        last_log_seq,
        timings: o.timings.into_iter().map(timing_to_proto).collect(),
        ..Default::default()
    };
    if let Some(mut import) = o.import {
        let stop = std::mem::take(&mut import.stop_resources);
        c.stop_resources = stop.into_iter().map(resource_to_proto).collect();
        c.import_json = serde_json::to_string(&import).ok();
    }
    fit(&mut c, MAX_MESSAGE_BYTES);
    c
}

/// Reads a daemon's completion.
pub fn complete_from_proto(c: proto::Complete) -> Result<Completion, BadMessage> {
    let job_id = parse_id(&c.job_id, "job_id")?;
    let resources = c.resources.into_iter().map(resource_from_proto).collect::<Result<_, _>>()?;
    let import = match c.import_json {
        None => None,
        Some(text) => {
            let mut import: ImportResult = serde_json::from_str(&text)
                .map_err(|e| BadMessage(format!("bad import result: {e}")))?;
            import.stop_resources =
                c.stop_resources.into_iter().map(resource_from_proto).collect::<Result<_, _>>()?;
            Some(import)
        }
    };
    let outcome = JobOutcome {
        state: c.state,
        resources,
        error: c.error,
        error_code: c.error_code,
        canceled: c.canceled,
        import,
        timings: c.timings.into_iter().filter_map(timing_from_proto).collect(),
    };
    Ok(Completion { job_id, last_log_seq: c.last_log_seq, outcome })
}

/// Makes a completion fit in one message of `max` bytes, so it is not sent
/// only to be refused on every reconnect. Resource attributes go first (the
/// state holds them too); if the state itself is too big, the job fails
/// with an error that says so, and the build keeps its previous state.
fn fit(c: &mut proto::Complete, max: usize) {
    let size = c.encoded_len();
    if size <= max {
        return;
    }
    for r in c.resources.iter_mut().chain(c.stop_resources.iter_mut()) {
        r.attributes_json.clear();
    }
    c.timings.clear();
    if c.encoded_len() <= max {
        tracing::warn!(job = %c.job_id, size, max, "result too large: resource attributes and timings dropped");
        return;
    }
    let state = c.state.take().map_or(0, |s| s.len());
    tracing::warn!(job = %c.job_id, size, state, max, "result too large: reporting a failure");
    *c = proto::Complete {
        job_id: std::mem::take(&mut c.job_id),
        last_log_seq: c.last_log_seq,
        error: Some(format!(
            "the job's result is {} MiB (state {} MiB), more than the {} MiB a daemon can \
             send to the server: the build keeps its previous state, so resources this \
             build created or changed are not recorded; make the state smaller (fewer or \
             smaller resource attributes) and run the build again",
            size >> 20,
            state >> 20,
            max >> 20
        )),
        ..Default::default()
    };
}

fn timing_to_proto(t: ProvisionerTiming) -> proto::ProvisionerTiming {
    proto::ProvisionerTiming {
        started_at_unix_us: t.started_at.timestamp_micros(),
        ended_at_unix_us: t.ended_at.timestamp_micros(),
        stage: t.stage.to_wire(),
        source: t.source,
        action: t.action,
        resource: t.resource,
    }
}

/// A daemon's timing, or `None` for one of a stage this side does not know
/// (a newer minor version may add stages) or with a time out of range: a
/// timing is worth less than the completion it comes with. An end before
/// the start reads as the start.
fn timing_from_proto(t: proto::ProvisionerTiming) -> Option<ProvisionerTiming> {
    let stage = crate::domain::TimingStage::from_wire(t.stage).ok()?;
    let started_at = DateTime::<Utc>::from_timestamp_micros(t.started_at_unix_us)?;
    let ended_at = DateTime::<Utc>::from_timestamp_micros(t.ended_at_unix_us)?.max(started_at);
    Some(ProvisionerTiming {
        started_at,
        ended_at,
        stage,
        source: t.source,
        action: t.action,
        resource: t.resource,
    })
}

fn resource_to_proto(r: Resource) -> proto::Resource {
    proto::Resource {
        name: r.name,
        r#type: r.resource_type,
        module_path: r.module_path,
        hide: r.hide,
        icon: r.icon,
        daily_cost: r.daily_cost,
        instance_type: r.instance_type,
        metadata: r
            .metadata
            .into_iter()
            .map(|m| proto::Metadata { key: m.key, value: m.value, sensitive: m.sensitive })
            .collect(),
        attributes_json: if r.attributes.is_null() {
            String::new()
        } else {
            r.attributes.to_string()
        },
        agents_json: if r.agents.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.agents).unwrap_or_default()
        },
    }
}

fn resource_from_proto(r: proto::Resource) -> Result<Resource, BadMessage> {
    let attributes = if r.attributes_json.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&r.attributes_json)
            .map_err(|e| BadMessage(format!("resource {}: bad attributes: {e}", r.name)))?
    };
    let agents = if r.agents_json.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&r.agents_json)
            .map_err(|e| BadMessage(format!("resource {}: bad agents: {e}", r.name)))?
    };
    Ok(Resource {
        name: r.name,
        resource_type: r.r#type,
        module_path: r.module_path,
        hide: r.hide,
        icon: r.icon,
        daily_cost: r.daily_cost,
        instance_type: r.instance_type,
        metadata: r
            .metadata
            .into_iter()
            .map(|m| ResourceMetadata { key: m.key, value: m.value, sensitive: m.sensitive })
            .collect(),
        attributes,
        agents,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{TemplateParameter, TemplateVariable};

    fn resource(name: &str, attrs: usize) -> Resource {
        let agent = json!({
            "id": Uuid::new_v4(), "name": "main", "operating_system": "linux",
            "architecture": "amd64", "auth": "token",
            "apps": [{"id": Uuid::new_v4(), "slug": "code", "display_name": "Code",
                "command": "", "url": "http://localhost:8080", "icon": "", "subdomain": false,
                "sharing_level": "owner", "external": false, "healthcheck": null, "order": 1,
                "hidden": false}],
        });
        let r = json!({
            "name": name, "type": "docker_container", "module_path": "module.dev",
            "hide": true, "icon": "/icon/docker.svg", "daily_cost": 7,
            "instance_type": "m5.large",
            "metadata": [{"key": "image", "value": "ubuntu", "sensitive": true}],
            "attributes": {"input": "x".repeat(attrs)}, "agents": [agent],
        });
        serde_json::from_value(r).expect("resource")
    }

    fn timing(stage: crate::domain::TimingStage, resource: &str) -> ProvisionerTiming {
        let started_at =
            DateTime::<Utc>::from_timestamp_micros(1_764_745_647_846_355).expect("time");
        ProvisionerTiming {
            started_at,
            ended_at: started_at + chrono::Duration::microseconds(1_500),
            stage,
            source: "coder".into(),
            action: "create".into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn timings_round_trip_and_unknown_stages_are_dropped() {
        use crate::domain::TimingStage::{Apply, Init};
        round_trip(JobOutcome {
            timings: vec![timing(Init, "state file"), timing(Apply, "coder_agent.main")],
            ..Default::default()
        });
        let mut c = complete_to_proto(
            Uuid::nil(),
            0,
            JobOutcome {
                timings: vec![timing(Apply, "a"), timing(Apply, "b")],
                ..Default::default()
            },
        );
        c.timings[0].stage = 99;
        c.timings[1].ended_at_unix_us = c.timings[1].started_at_unix_us - 10;
        let got = complete_from_proto(c).expect("readable").outcome.timings;
        assert_eq!(got.len(), 1, "the unknown stage is dropped, not refused");
        assert_eq!(
            got[0].ended_at, got[0].started_at,
            "an end before its start reads as the start"
        );
        // A 1.0 daemon's completion has none.
        let old = proto::Complete { job_id: Uuid::nil().to_string(), ..Default::default() };
        assert!(complete_from_proto(old).expect("readable").outcome.timings.is_empty());
    }

    fn round_trip(o: JobOutcome) {
        let job_id = Uuid::new_v4();
        let back = complete_from_proto(complete_to_proto(job_id, 9, o.clone())).expect("readable");
        assert_eq!(back, Completion { job_id, last_log_seq: 9, outcome: o });
    }

    #[test]
    fn completions_round_trip() {
        round_trip(JobOutcome {
            state: Some(b"state".to_vec()),
            resources: vec![resource("dev", 3), resource("empty", 0)],
            ..Default::default()
        });
        let mut bare = resource("bare", 0);
        bare.attributes = serde_json::Value::Null;
        bare.agents.clear();
        round_trip(JobOutcome { resources: vec![bare], ..Default::default() });
        round_trip(JobOutcome {
            state: Some(Vec::new()),
            resources: vec![resource("start", 1)],
            import: Some(ImportResult {
                parameters: vec![TemplateParameter { name: "region".into(), ..Default::default() }],
                variables: vec![TemplateVariable { name: "image".into(), ..Default::default() }],
                external_auth: vec![crate::domain::ExternalAuthProvider {
                    id: "github".into(),
                    optional: false,
                }],
                presets: vec![crate::domain::Preset { name: "big".into(), ..Default::default() }],
                stop_resources: vec![resource("stop", 1)],
            }),
            ..Default::default()
        });
        round_trip(JobOutcome {
            state: Some(b"partial".to_vec()),
            error: Some("apply failed".into()),
            error_code: Some("REQUIRED_TEMPLATE_VARIABLES".into()),
            ..Default::default()
        });
        round_trip(JobOutcome { canceled: true, ..Default::default() });
    }

    #[test]
    fn unreadable_completions_are_bad_messages() {
        let good = complete_to_proto(Uuid::nil(), 0, JobOutcome::default());
        let bad_id = proto::Complete { job_id: "nope".into(), ..good.clone() };
        assert!(complete_from_proto(bad_id).expect_err("id").0.contains("job_id"));
        let bad_import = proto::Complete { import_json: Some("[".into()), ..good.clone() };
        assert!(complete_from_proto(bad_import).is_err());
        let mut bad_resource = complete_to_proto(
            Uuid::nil(),
            0,
            JobOutcome { resources: vec![resource("r", 1)], ..Default::default() },
        );
        bad_resource.resources[0].agents_json = "{".into();
        let err = complete_from_proto(bad_resource).expect_err("agents");
        assert!(err.0.contains("resource r: bad agents"), "{err}");
    }

    #[test]
    fn a_result_too_big_for_one_message_is_cut_down_then_failed() {
        let outcome = |state: usize, attrs: usize| JobOutcome {
            state: Some(vec![b's'; state]),
            resources: vec![resource("big", attrs)],
            ..Default::default()
        };
        let cut = |o: JobOutcome, seq: i64| {
            let mut c = complete_to_proto(Uuid::new_v4(), seq, o);
            fit(&mut c, 3000);
            c
        };
        let c = cut(outcome(1000, 10), 1);
        assert!(c.error.is_none() && c.resources[0].attributes_json.contains("xxx"));

        let c = cut(outcome(1000, 2000), 1);
        assert_eq!(c.state.as_ref().map(Vec::len), Some(1000), "the state is kept");
        assert_eq!(c.resources[0].name, "big");
        assert!(c.resources[0].attributes_json.is_empty() && c.error.is_none());

        let c = cut(outcome(4000, 10), 7);
        assert_eq!((c.state, c.last_log_seq, c.job_id.is_empty()), (None, 7, false));
        let error = c.error.unwrap_or_default();
        assert!(error.contains("keeps its previous state"), "{error}");
    }
}
