//! How the client talks to a person: terminal detection, colours (off
//! without a terminal and with `NO_COLOR`), tables, JSON, confirmations and
//! prompts, durations, and the rendering of errors with the server's
//! message and validations.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::args::Format;
use super::Usage;
use crate::sdk;

/// True when a person can answer prompts: stdin and stderr are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// True when stdout is a terminal (spinners, colours).
pub fn stdout_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Colours on stdout: a terminal, and no `NO_COLOR` (https://no-color.org).
pub fn colors() -> bool {
    stdout_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(Clone, Copy)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

/// `text` in a tone when colours are on, plain otherwise.
pub fn paint(on: bool, tone: Tone, text: &str) -> String {
    if !on {
        return text.to_owned();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Bad => "31",
        Tone::Warn => "33",
        Tone::Dim => "2",
        Tone::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Writes a line on stdout; a closed stdout (the reader went away) ends
/// the process as a SIGPIPE would, without a panic.
pub fn say(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    say!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints a table or, for `--output json`, `value` in the API's shape.
pub fn list<T: Serialize>(
    format: Format,
    value: &T,
    header: &[&str],
    rows: Vec<Vec<String>>,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(value);
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    say!("{}", table.trim_fmt());
    Ok(())
}

/// Asks `question` on a terminal; without one, proceeds only with `--yes`.
pub fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        let msg = format!("not confirmed: {question} (pass --yes to proceed without a terminal)");
        return Err(Usage(msg).into());
    }
    let answer = prompt(&format!("{question} [y/N]"))?;
    if matches!(answer.to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("canceled: nothing was changed")
    }
}

/// Reads one line from stdin after printing `question` on stderr.
pub fn prompt(question: &str) -> anyhow::Result<String> {
    eprint!("{question} ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        bail!("no answer: standard input ended");
    }
    Ok(line.trim().to_owned())
}

/// `1.2s`, `850ms`, `2m05s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", d.as_secs_f64()),
        _ => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
    }
}

/// Time between two instants, zero when they are out of order.
pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// `3m ago`, `2h ago`, `5d ago`.
pub fn ago(t: DateTime<Utc>) -> String {
    let s = between(t, Utc::now()).as_secs();
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// An error for a person: our context, then the server's message, detail
/// and each validation on its own line.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::from("error: ");
    let mut first = true;
    for cause in e.chain() {
        let text = match cause.downcast_ref::<sdk::Error>() {
            Some(sdk::Error::Api { status, body, .. }) => {
                let mut t = format!("{} ({status})", body.message.trim_end_matches('.'));
                if !body.detail.is_empty() {
                    t.push_str(&format!("\n  {}", body.detail));
                }
                for v in &body.validations {
                    t.push_str(&format!("\n  {}: {}", v.field, v.detail));
                }
                t
            }
            Some(other) if other.is_connect() => {
                format!("cannot reach the server ({other}): is it running, and is the URL right?")
            }
            _ => cause.to_string(),
        };
        if !first {
            out.push_str(": ");
        }
        out.push_str(&text);
        first = false;
        if cause.downcast_ref::<sdk::Error>().is_some() {
            break;
        }
    }
    out
}
