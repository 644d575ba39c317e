//! Turns terraform's output lines into log levels and text: `-json` lines
//! (`{"@level": ..., "@message": ..., "type": ...}`) keep their real level,
//! and error diagnostics are collected so a failed run's error carries
//! terraform's own words. Plain lines (init, raw stderr) are kept as they are.

use serde::Deserialize;

use crate::domain::LogLevel;

/// One parsed output line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub level: LogLevel,
    pub output: String,
    /// For an error diagnostic: "summary: detail".
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(rename = "@level")]
    level: String,
    #[serde(rename = "@message", default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
    diagnostic: Option<Diagnostic>,
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
        return Parsed { level: level(&j.level), output, error };
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
