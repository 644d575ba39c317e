//! The server's reading of what daemons send: proto log lines and
//! completions become domain types here, so the session logic in `grpc.rs`
//! sees only domain types. It does not decide anything about a job; a
//! message it cannot read is a [`BadMessage`], which the session turns into
//! a protocol violation.

use chrono::{TimeZone, Utc};

use crate::domain::{
    ImportResult, JobOutcome, LogLevel, LogLine, LogSource, Resource, ResourceMetadata,
};
use crate::proto;

/// Why a daemon's message could not be read.
#[derive(Debug)]
pub(super) struct BadMessage(pub String);

pub(super) fn log_from_proto(l: proto::LogLine) -> Result<(i64, LogLine), BadMessage> {
    let bad = |e: crate::domain::UnknownVariant| BadMessage(e.to_string());
    let created_at =
        Utc.timestamp_millis_opt(l.created_at_unix_ms).single().unwrap_or_else(Utc::now);
    let line = LogLine {
        source: l.source.parse::<LogSource>().map_err(bad)?,
        level: l.level.parse::<LogLevel>().map_err(bad)?,
        stage: l.stage,
        output: l.output,
        created_at,
    };
    Ok((l.seq, line))
}

pub(super) fn outcome_from_proto(c: proto::Complete) -> Result<JobOutcome, BadMessage> {
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
    Ok(JobOutcome {
        state: c.state,
        resources,
        error: c.error,
        error_code: c.error_code,
        canceled: c.canceled,
        import,
    })
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
