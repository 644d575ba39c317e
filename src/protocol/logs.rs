//! Log lines on the wire: a domain [`LogLine`] plus the daemon's per-job
//! sequence number, with the time in milliseconds since the epoch.

use chrono::{TimeZone, Utc};

use super::{proto, BadMessage, Wire};
use crate::domain::{LogLevel, LogLine, LogSource};

/// A job's `seq`-th line as the daemon sends it.
pub fn log_to_proto(seq: i64, l: LogLine) -> proto::LogLine {
    proto::LogLine {
        seq,
        source: l.source.to_wire(),
        level: l.level.to_wire(),
        stage: l.stage,
        output: l.output,
        created_at_unix_ms: l.created_at.timestamp_millis(),
    }
}

/// A line the daemon sent, with its sequence number. A time out of range
/// reads as now (a clock error must not cost the line).
pub fn log_from_proto(l: proto::LogLine) -> Result<(i64, LogLine), BadMessage> {
    let created_at =
        Utc.timestamp_millis_opt(l.created_at_unix_ms).single().unwrap_or_else(Utc::now);
    let line = LogLine {
        source: LogSource::from_wire(l.source)?,
        level: LogLevel::from_wire(l.level)?,
        stage: l.stage,
        output: l.output,
        created_at,
    };
    Ok((l.seq, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_round_trip_with_every_level_and_source() {
        let at = Utc.timestamp_millis_opt(1_700_000_000_123).single().expect("time");
        for source in LogSource::every() {
            for level in LogLevel::every() {
                let line = LogLine {
                    source,
                    level,
                    stage: "Planning".into(),
                    output: "a line ✓".into(),
                    created_at: at,
                };
                let back = log_from_proto(log_to_proto(42, line.clone())).expect("readable");
                assert_eq!(back, (42, line));
            }
        }
    }

    #[test]
    fn a_line_without_level_or_source_is_a_bad_message() {
        let good = log_to_proto(
            1,
            LogLine {
                source: LogSource::Provisioner,
                level: LogLevel::Info,
                stage: String::new(),
                output: String::new(),
                created_at: Utc::now(),
            },
        );
        let no_level = proto::LogLine { level: 0, ..good.clone() };
        assert!(log_from_proto(no_level).expect_err("level").0.contains("log level"));
        let no_source = proto::LogLine { source: 17, ..good };
        assert!(log_from_proto(no_source).expect_err("source").0.contains("log source"));
    }
}
