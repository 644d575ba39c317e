//! Values for a template's parameters when creating a workspace: those
//! given with `--parameter`, then on a terminal a prompt for each of the
//! others (with its description, options and default); without a terminal
//! the defaults, and a usage error listing the required ones still missing.

use serde_json::Value;

use super::output::{interactive, prompt};
use super::Usage;
use crate::sdk::WorkspaceBuildParameter;

fn text<'a>(p: &'a Value, key: &str) -> &'a str {
    p.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn options(p: &Value) -> Vec<(&str, &str)> {
    let list = p.get("options").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    list.iter().map(|o| (text(o, "name"), text(o, "value"))).collect()
}

fn required(p: &Value) -> bool {
    p.get("required").and_then(Value::as_bool).unwrap_or(false)
        && text(p, "default_value").is_empty()
}

/// One line about a parameter: name, type, description, options, default.
fn describe(p: &Value) -> String {
    let mut s = format!("{} ({})", text(p, "name"), text(p, "type"));
    let description = text(p, "description").trim();
    if !description.is_empty() {
        s.push_str(&format!(": {description}"));
    }
    let opts = options(p);
    if !opts.is_empty() {
        let values: Vec<&str> = opts.iter().map(|o| o.1).collect();
        s.push_str(&format!("; one of: {}", values.join(", ")));
    }
    let default = text(p, "default_value");
    if !default.is_empty() {
        s.push_str(&format!("; default {default}"));
    }
    s
}

/// The values to send: given ones, prompted ones, and none for parameters
/// left at their default (the server fills those in).
pub fn resolve(
    params: &[Value],
    given: &[(String, String)],
) -> anyhow::Result<Vec<WorkspaceBuildParameter>> {
    let names: Vec<&str> = params.iter().map(|p| text(p, "name")).collect();
    if let Some((unknown, _)) = given.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        let msg = format!("the template has no parameter {unknown:?} (its parameters: {known})");
        return Err(Usage(msg).into());
    }
    let tty = interactive();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for p in params {
        let name = text(p, "name");
        if let Some((_, v)) = given.iter().find(|(n, _)| n == name) {
            out.push(WorkspaceBuildParameter { name: name.to_owned(), value: v.clone() });
        } else if tty {
            out.push(WorkspaceBuildParameter { name: name.to_owned(), value: ask(p)? });
        } else if required(p) {
            missing.push(format!("  {}", describe(p)));
        }
    }
    if !missing.is_empty() {
        let msg = format!(
            "the template needs values for these parameters; give each with --parameter name=value:\n{}",
            missing.join("\n")
        );
        return Err(Usage(msg).into());
    }
    Ok(out)
}

/// Asks for one parameter until the answer is acceptable.
fn ask(p: &Value) -> anyhow::Result<String> {
    let title = match text(p, "display_name") {
        "" => text(p, "name"),
        d => d,
    };
    eprintln!("\n{title} ({})", text(p, "type"));
    let description = text(p, "description").trim();
    if !description.is_empty() {
        eprintln!("  {description}");
    }
    let opts = options(p);
    for (i, (name, value)) in opts.iter().enumerate() {
        eprintln!("  {}) {name} ({value})", i + 1);
    }
    let default = text(p, "default_value");
    loop {
        let question =
            if default.is_empty() { "value:".to_owned() } else { format!("value [{default}]:") };
        let answer = prompt(&question)?;
        let answer = if answer.is_empty() { default.to_owned() } else { answer };
        if answer.is_empty() {
            if required(p) {
                eprintln!("  a value is required");
                continue;
            }
            return Ok(answer);
        }
        if opts.is_empty() {
            return Ok(answer);
        }
        let picked = answer
            .parse::<usize>()
            .ok()
            .and_then(|i| opts.get(i.wrapping_sub(1)))
            .or_else(|| opts.iter().find(|(n, v)| *v == answer || *n == answer));
        match picked {
            Some((_, value)) => return Ok((*value).to_owned()),
            None => eprintln!("  pick one of the options (its number, name or value)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Without a terminal, required parameters without a value are listed
    /// in one usage error; parameters with defaults are left to the server.
    #[test]
    fn missing_parameters_are_listed() {
        let params = vec![
            json!({"name": "image", "type": "string", "required": true, "default_value": "",
                   "description": "base image",
                   "options": [{"name": "Ubuntu", "value": "ubuntu"}]}),
            json!({"name": "cpu", "type": "number", "required": false, "default_value": "2"}),
        ];
        let e = resolve(&params, &[]).expect_err("image is missing");
        let msg = e.to_string();
        assert!(e.is::<Usage>(), "{msg}");
        assert!(msg.contains("image (string): base image; one of: ubuntu"), "{msg}");
        assert!(!msg.contains("cpu"), "{msg}");
        let given = vec![("image".to_owned(), "ubuntu".to_owned())];
        let values = resolve(&params, &given).expect("given");
        assert_eq!(values.len(), 1);
        let bad = vec![("gpu".to_owned(), "1".to_owned())];
        let e = resolve(&params, &bad).expect_err("unknown").to_string();
        assert!(e.contains("\"gpu\"") && e.contains("image, cpu"), "{e}");
    }
}
