//! Turns terraform's output lines into log levels and text: `-json` lines
//! (`{"@level": ..., "@message": ..., "type": ...}`) keep their real level,
//! and error diagnostics are collected so a failed run's error carries
//! terraform's own words. Plain lines (init, raw stderr) are kept as they are.
//! A resource's hook messages (`apply_start`, `apply_complete`,
//! `apply_errored`, `refresh_start`, `refresh_complete`) are read as
//! [`Hook`]s, which [`super::timings`] pairs into per-resource timings.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::LogLevel;

/// One parsed output line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub level: LogLevel,
    pub output: String,
    /// For an error diagnostic: "summary: detail".
    pub error: Option<String>,
    /// A resource's action starting or ending.
    pub hook: Option<Hook>,
}

/// Whether a hook message starts or ends a resource's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEdge {
    Start,
    End,
}

/// A resource's action starting or ending, from terraform's `-json` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub edge: HookEdge,
    /// The resource's address (`module.x.coder_agent.main`).
    pub addr: String,
    /// The provider that acts (`coder`, `terraform`, ...).
    pub provider: String,
    /// `create`, `read`, `update`, `delete`, ...; `refresh` for a refresh.
    pub action: String,
    /// When terraform printed it (`@timestamp`), if it said.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(rename = "@level")]
    level: String,
    #[serde(rename = "@message", default)]
    message: String,
    #[serde(rename = "@timestamp", default)]
    timestamp: Option<String>,
    #[serde(rename = "type", default)]
    kind: String,
    diagnostic: Option<Diagnostic>,
    hook: Option<HookBody>,
}

#[derive(Deserialize)]
struct HookBody {
    resource: HookResource,
    #[serde(default)]
    action: String,
}

#[derive(Deserialize)]
struct HookResource {
    #[serde(default)]
    addr: String,
    #[serde(default)]
    implied_provider: String,
}

fn hook(kind: &str, body: HookBody, timestamp: Option<&str>) -> Option<Hook> {
    let edge = match kind {
        "apply_start" | "refresh_start" => HookEdge::Start,
        "apply_complete" | "apply_errored" | "refresh_complete" => HookEdge::End,
        _ => return None,
    };
    if body.resource.addr.is_empty() {
        return None;
    }
    let action = match (kind, body.action) {
        ("refresh_start" | "refresh_complete", _) => "refresh".to_owned(),
        (_, action) => action,
    };
    Some(Hook {
        edge,
        addr: body.resource.addr,
        provider: body.resource.implied_provider,
        action,
        at: timestamp
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    })
}

#[derive(Deserialize)]
struct Diagnostic {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    detail: String,
}

fn level(s: &str) -> LogLevel {
    match s {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        _ => LogLevel::Info,
    }
}

/// Parses a line of terraform output; `stderr` lines that are not JSON are
/// warnings, or errors when they say so.
pub fn parse_line(line: &str, stderr: bool) -> Parsed {
    if let Ok(j) = serde_json::from_str::<JsonLine>(line) {
        let mut output = j.message;
        let mut error = None;
        let hook = j.hook.and_then(|h| hook(&j.kind, h, j.timestamp.as_deref()));
        if let (Some(d), "diagnostic") = (&j.diagnostic, j.kind.as_str()) {
            if !d.detail.is_empty() {
                output = format!("{output}\n{}", d.detail);
            }
            if d.severity == "error" {
                error = Some(if d.detail.is_empty() {
                    d.summary.clone()
                } else {
                    format!("{}: {}", d.summary, d.detail)
                });
            }
        }
        return Parsed { level: level(&j.level), output, error, hook };
    }
    let trimmed = line.trim_start_matches(['│', '╷', '╵', ' ']);
    let is_error = trimmed.starts_with("Error:");
    let level = match (stderr, is_error) {
        (_, true) => LogLevel::Error,
        (true, false) => LogLevel::Warn,
        (false, false) => LogLevel::Info,
    };
    Parsed {
        level,
        output: line.to_owned(),
        error: is_error.then(|| trimmed.trim_start_matches("Error:").trim().to_owned()),
        hook: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_their_level() {
        let p = parse_line(
            r#"{"@level":"info","@message":"terraform_data.vm: Creating...","@module":"terraform.ui","type":"apply_start"}"#,
            false,
        );
        assert_eq!(
            (p.level, p.output.as_str(), p.error),
            (LogLevel::Info, "terraform_data.vm: Creating...", None)
        );
        let p = parse_line(
            r#"{"@level":"warn","@message":"Warning: deprecated","type":"diagnostic","diagnostic":{"severity":"warning","summary":"deprecated","detail":""}}"#,
            false,
        );
        assert_eq!((p.level, p.error), (LogLevel::Warn, None));
    }

    #[test]
    fn error_diagnostics_are_collected() {
        let line = r#"{"@level":"error","@message":"Error: local-exec provisioner error","type":"diagnostic","diagnostic":{"severity":"error","summary":"local-exec provisioner error","detail":"Error running command 'exit 1': exit status 1. Output: "}}"#;
        let p = parse_line(line, false);
        assert_eq!(p.level, LogLevel::Error);
        assert_eq!(p.error.as_deref(), Some("local-exec provisioner error: Error running command 'exit 1': exit status 1. Output: "));
        assert!(p.output.contains("exit status 1"));
    }

    #[test]
    fn hooks_are_read_with_their_time() {
        let start = r#"{"@level":"info","@message":"coder_agent.main: Creating...","@module":"terraform.ui","@timestamp":"2026-12-03T07:27:27.846355Z","hook":{"resource":{"addr":"coder_agent.main","module":"","resource":"coder_agent.main","implied_provider":"coder","resource_type":"coder_agent","resource_name":"main","resource_key":null},"action":"create"},"type":"apply_start"}"#;
        let hook = parse_line(start, false).hook.expect("hook");
        assert_eq!(
            (hook.edge, hook.addr.as_str(), hook.provider.as_str(), hook.action.as_str()),
            (HookEdge::Start, "coder_agent.main", "coder", "create")
        );
        let at = hook.at.expect("time");
        assert_eq!(
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "2026-12-03T07:27:27.846355Z"
        );
        let refreshed = r#"{"@level":"info","@message":"x: Refresh complete","@timestamp":"bad","hook":{"resource":{"addr":"terraform_data.home","implied_provider":"terraform"},"id_key":"id","id_value":"1"},"type":"refresh_complete"}"#;
        let hook = parse_line(refreshed, false).hook.expect("hook");
        assert_eq!((hook.edge, hook.action.as_str(), hook.at), (HookEdge::End, "refresh", None));
        let errored = r#"{"@level":"error","@message":"x: failed","hook":{"resource":{"addr":"terraform_data.vm[0]","implied_provider":"terraform"},"action":"create","elapsed_seconds":1},"type":"apply_errored"}"#;
        assert_eq!(parse_line(errored, false).hook.map(|h| h.edge), Some(HookEdge::End));
        // Other messages with a resource are no hooks of ours.
        let progress = r#"{"@level":"info","@message":"x: Still creating...","hook":{"resource":{"addr":"a.b"},"action":"create"},"type":"apply_progress"}"#;
        assert_eq!(parse_line(progress, false).hook, None);
        assert_eq!(parse_line("Initializing the backend...", false).hook, None);
    }

    #[test]
    fn plain_lines() {
        assert_eq!(parse_line("Initializing the backend...", false).level, LogLevel::Info);
        assert_eq!(parse_line("some warning", true).level, LogLevel::Warn);
        let p = parse_line("│ Error: Invalid block definition", true);
        assert_eq!(
            (p.level, p.error.as_deref()),
            (LogLevel::Error, Some("Invalid block definition"))
        );
    }
}
