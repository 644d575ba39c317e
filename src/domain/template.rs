//! What a template version import finds out about a template before anyone
//! builds it (its `coder_parameter`s and `variable`s), and the rules a
//! build's parameter values must follow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NameValue;

/// A `coder_parameter` data source of the template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TemplateParameter {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// `string`, `number`, `bool` or `list(string)`.
    #[serde(rename = "type")]
    pub kind: String,
    pub form_type: String,
    pub mutable: bool,
    pub default_value: String,
    pub icon: String,
    pub options: Vec<ParameterOption>,
    pub validation_regex: String,
    pub validation_error: String,
    pub validation_min: Option<f64>,
    pub validation_max: Option<f64>,
    /// `increasing`, `decreasing` or empty.
    pub validation_monotonic: String,
    /// No default: every build must give a value.
    pub required: bool,
    pub ephemeral: bool,
    pub order: i64,
}

/// One `option` of a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ParameterOption {
    pub name: String,
    pub description: String,
    pub value: String,
    pub icon: String,
}

/// A terraform `variable` block of the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TemplateVariable {
    pub name: String,
    pub description: String,
    /// The type expression as written (`string`, `number`, `list(string)`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The default as JSON text for non-strings; empty when there is none.
    pub default_value: String,
    pub required: bool,
    pub sensitive: bool,
}

/// What an import job reports besides the resources it planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImportResult {
    pub parameters: Vec<TemplateParameter>,
    pub variables: Vec<TemplateVariable>,
    /// `data "coder_external_auth"` (and the legacy `coder_git_auth`).
    #[serde(default)]
    pub external_auth: Vec<ExternalAuthProvider>,
    /// `data "coder_workspace_preset"`.
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// The resources a stopped workspace keeps (the `stop` plan); the job's
    /// own resources are those of the `start` plan. Stored as resource rows.
    #[serde(skip)]
    pub stop_resources: Vec<super::Resource>,
}

/// An external auth provider a template asks its users to log in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExternalAuthProvider {
    pub id: String,
    pub optional: bool,
}

/// A named set of parameter values a workspace can be created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Preset {
    pub name: String,
    /// Parameter name to value.
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub icon: String,
    /// Prebuilt workspaces wanted (`prebuilds { instances }`), if any.
    #[serde(default)]
    pub prebuild_instances: Option<i64>,
}

/// A value that breaks a parameter's rules: the field is the parameter name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterIssue {
    pub field: String,
    pub detail: String,
}

/// The values a build runs with: for each parameter of the template, the
/// value given, else (unless ephemeral) the previous build's, else the
/// default. Every broken rule is reported, one issue per parameter.
pub fn resolve_parameters(
    parameters: &[TemplateParameter],
    given: &[NameValue],
    previous: &[NameValue],
) -> Result<Vec<NameValue>, Vec<ParameterIssue>> {
    let given_map: BTreeMap<&str, &str> =
        given.iter().map(|v| (v.name.as_str(), v.value.as_str())).collect();
    let previous_map: BTreeMap<&str, &str> =
        previous.iter().map(|v| (v.name.as_str(), v.value.as_str())).collect();
    let mut issues = Vec::new();
    for v in given {
        if !parameters.iter().any(|p| p.name == v.name) {
            issues.push(issue(&v.name, "the template has no parameter of this name".into()));
        }
    }
    let mut values = Vec::new();
    for p in parameters {
        let before = previous_map.get(p.name.as_str()).copied();
        let chosen = match given_map.get(p.name.as_str()) {
            Some(value) => Some(*value),
            None if !p.ephemeral && before.is_some() => before,
            None if !p.required => Some(p.default_value.as_str()),
            None => None,
        };
        let Some(value) = chosen else {
            issues.push(issue(&p.name, format!("parameter {:?} is required", p.name)));
            continue;
        };
        if let Err(detail) = check(p, value, before) {
            issues.push(issue(&p.name, detail));
            continue;
        }
        values.push(NameValue { name: p.name.clone(), value: value.to_owned() });
    }
    if issues.is_empty() {
        Ok(values)
    } else {
        Err(issues)
    }
}

fn issue(field: &str, detail: String) -> ParameterIssue {
    ParameterIssue { field: field.to_owned(), detail }
}

/// One value against one parameter's type, options and validation.
fn check(p: &TemplateParameter, value: &str, before: Option<&str>) -> Result<(), String> {
    if let Some(before) = before {
        if !p.mutable && !p.ephemeral && before != value {
            return Err(format!(
                "parameter {:?} is immutable: it was {before:?} and cannot become {value:?}",
                p.name
            ));
        }
    }
    let elements: Vec<String> = match p.kind.as_str() {
        "number" => {
            value.parse::<f64>().map_err(|_| format!("{value:?} is not a number"))?;
            vec![value.to_owned()]
        }
        "bool" if value == "true" || value == "false" => vec![value.to_owned()],
        "bool" => return Err(format!("{value:?} is not a bool (true or false)")),
        "list(string)" => serde_json::from_str::<Vec<String>>(value)
            .map_err(|_| format!("{value:?} is not a JSON list of strings"))?,
        _ => vec![value.to_owned()],
    };
    if !p.options.is_empty() {
        for e in &elements {
            if !p.options.iter().any(|o| &o.value == e) {
                let allowed: Vec<&str> = p.options.iter().map(|o| o.value.as_str()).collect();
                return Err(format!("{e:?} is not one of the options {allowed:?}"));
            }
        }
    }
    if p.kind == "number" {
        check_number(p, value, before)?;
    }
    if !p.validation_regex.is_empty() && p.kind == "string" {
        let re = regex::Regex::new(&p.validation_regex)
            .map_err(|e| format!("the template's validation regex is invalid: {e}"))?;
        if !re.is_match(value) {
            return Err(custom(p, value).unwrap_or_else(|| {
                format!("{value:?} does not match the pattern {:?}", p.validation_regex)
            }));
        }
    }
    Ok(())
}

fn check_number(p: &TemplateParameter, value: &str, before: Option<&str>) -> Result<(), String> {
    let n: f64 = value.parse().map_err(|_| format!("{value:?} is not a number"))?;
    let out_of_range =
        p.validation_min.is_some_and(|min| n < min) || p.validation_max.is_some_and(|max| n > max);
    if out_of_range {
        let bound = |b: Option<f64>| b.map_or("-".to_owned(), |b| b.to_string());
        return Err(custom(p, value).unwrap_or_else(|| {
            format!(
                "{value} is outside the allowed range [{}, {}]",
                bound(p.validation_min),
                bound(p.validation_max)
            )
        }));
    }
    let previous = before.and_then(|b| b.parse::<f64>().ok());
    match (p.validation_monotonic.as_str(), previous) {
        ("increasing", Some(b)) if n < b => {
            Err(format!("{value} is smaller than the previous value {b}: it may only increase"))
        }
        ("decreasing", Some(b)) if n > b => {
            Err(format!("{value} is larger than the previous value {b}: it may only decrease"))
        }
        _ => Ok(()),
    }
}

/// The template's own `validation.error` text, with `{min}`, `{max}` and
/// `{value}` filled in.
fn custom(p: &TemplateParameter, value: &str) -> Option<String> {
    if p.validation_error.is_empty() {
        return None;
    }
    let fill = |b: Option<f64>| b.map(|b| b.to_string()).unwrap_or_default();
    Some(
        p.validation_error
            .replace("{min}", &fill(p.validation_min))
            .replace("{max}", &fill(p.validation_max))
            .replace("{value}", value),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(name: &str, value: &str) -> NameValue {
        NameValue { name: name.into(), value: value.into() }
    }

    fn param(name: &str, kind: &str) -> TemplateParameter {
        TemplateParameter {
            name: name.into(),
            kind: kind.into(),
            mutable: true,
            default_value: String::new(),
            required: true,
            ..Default::default()
        }
    }

    #[test]
    fn given_then_previous_then_default() {
        let mut region = param("region", "string");
        region.required = false;
        region.default_value = "eu".into();
        let size = param("size", "number");
        let params = [region, size];
        let got = resolve_parameters(&params, &[nv("size", "3")], &[]).expect("valid");
        assert_eq!(got, vec![nv("region", "eu"), nv("size", "3")]);
        let got = resolve_parameters(&params, &[], &[nv("region", "us"), nv("size", "4")])
            .expect("inherited");
        assert_eq!(got, vec![nv("region", "us"), nv("size", "4")]);
    }

    #[test]
    fn one_issue_per_bad_field() {
        let mut cpu = param("cpu", "number");
        cpu.validation_min = Some(1.0);
        cpu.validation_max = Some(8.0);
        let mut zone = param("zone", "string");
        zone.options = vec![ParameterOption { value: "a".into(), ..Default::default() }];
        let mut name = param("name", "string");
        name.validation_regex = "^[a-z]+$".into();
        let flag = param("flag", "bool");
        let missing = param("missing", "string");
        let params = [cpu, zone, name, flag, missing];
        let given = [nv("cpu", "9"), nv("zone", "b"), nv("name", "X1"), nv("flag", "yes")];
        let issues = resolve_parameters(&params, &given, &[]).expect_err("invalid");
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["cpu", "zone", "name", "flag", "missing"]);
        assert!(issues[0].detail.contains("[1, 8]"), "{}", issues[0].detail);
        assert!(issues[4].detail.contains("required"));
    }

    #[test]
    fn immutable_monotonic_and_custom_messages() {
        let mut disk = param("disk", "number");
        disk.validation_monotonic = "increasing".into();
        disk.validation_error = "disk must be at least {min}, got {value}".into();
        disk.validation_min = Some(10.0);
        let mut image = param("image", "string");
        image.mutable = false;
        let params = [disk, image];
        let previous = [nv("disk", "20"), nv("image", "ubuntu")];
        let issues =
            resolve_parameters(&params, &[nv("disk", "15"), nv("image", "debian")], &previous)
                .expect_err("invalid");
        assert!(issues[0].detail.contains("may only increase"));
        assert!(issues[1].detail.contains("immutable"));
        let issues =
            resolve_parameters(&params, &[nv("disk", "5")], &[]).expect_err("below the minimum");
        assert!(issues.iter().any(|i| i.detail == "disk must be at least 10, got 5"));
        assert!(resolve_parameters(&params, &[nv("disk", "30")], &previous).is_ok());
    }

    #[test]
    fn list_values_and_unknown_names() {
        let mut tools = param("tools", "list(string)");
        tools.options = ["git", "vim"]
            .map(|v| ParameterOption { value: v.into(), ..Default::default() })
            .to_vec();
        let params = [tools];
        assert!(resolve_parameters(&params, &[nv("tools", r#"["git","vim"]"#)], &[]).is_ok());
        let issues = resolve_parameters(&params, &[nv("tools", r#"["emacs"]"#), nv("x", "1")], &[])
            .expect_err("invalid");
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].field, "x");
    }
}
