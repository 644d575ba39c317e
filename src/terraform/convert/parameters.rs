//! The `coder_parameter` data sources of a planned template, read as Coder
//! reads them (order, form type defaults, validation bounds).

use serde_json::Value;

use super::coder::text;
use super::{entries, ConvertError};
use std::collections::BTreeMap;

use crate::domain::{ExternalAuthProvider, ParameterOption, Preset, TemplateParameter};

/// The template's parameters in the order Coder serves them: by `order`,
/// then by name ignoring case. Two parameters with one name are an error.
pub fn parameters(show: &Value) -> Result<Vec<TemplateParameter>, ConvertError> {
    let mut found: Vec<TemplateParameter> = Vec::new();
    for e in entries(show)?.iter().filter(|e| !e.managed && e.kind == "coder_parameter") {
        let v = &e.values;
        let validation = v["validation"].as_array().and_then(|a| a.first()).cloned();
        let validation = validation.unwrap_or(Value::Null);
        let (min, max) = bounds(&validation);
        let kind =
            Some(text(v, "type")).filter(|t| !t.is_empty()).unwrap_or_else(|| "string".into());
        let has_options = v["option"].as_array().is_some_and(|o| !o.is_empty());
        let form_type = Some(text(v, "form_type"))
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| default_form_type(&kind, has_options).into());
        // `optional` is what the provider computes; older output lacks it.
        let required = match v["optional"].as_bool() {
            Some(optional) => !optional,
            None => v["default"].is_null(),
        };
        let p = TemplateParameter {
            name: text(v, "name"),
            display_name: text(v, "display_name"),
            description: text(v, "description"),
            kind,
            form_type,
            mutable: v["mutable"].as_bool().unwrap_or(false),
            default_value: text(v, "default"),
            icon: text(v, "icon"),
            options: v["option"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| ParameterOption {
                    name: text(o, "name"),
                    description: text(o, "description"),
                    value: text(o, "value"),
                    icon: text(o, "icon"),
                })
                .collect(),
            validation_regex: text(&validation, "regex"),
            validation_error: text(&validation, "error"),
            validation_min: min,
            validation_max: max,
            validation_monotonic: text(&validation, "monotonic"),
            required,
            ephemeral: v["ephemeral"].as_bool().unwrap_or(false),
            order: v["order"].as_i64().unwrap_or(0),
        };
        if p.name.is_empty() {
            return Err(ConvertError::Invalid(format!("{} has no name", e.address)));
        }
        if found.iter().any(|f| f.name == p.name) {
            return Err(ConvertError::Invalid(format!(
                "two coder_parameter data sources are named {:?}",
                p.name
            )));
        }
        found.push(p);
    }
    found.sort_by(|a, b| {
        let lower = |p: &TemplateParameter| p.name.to_lowercase();
        a.order
            .cmp(&b.order)
            .then_with(|| lower(a).cmp(&lower(b)))
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(found)
}

/// The validation's `min` and `max`, each unset when its `*_disabled` flag
/// says so. Providers older than the flags disable both unless one of them
/// is non-zero, as Coder reads them.
fn bounds(validation: &Value) -> (Option<f64>, Option<f64>) {
    let min = validation["min"].as_f64();
    let max = validation["max"].as_f64();
    let (min_disabled, max_disabled) = match validation.get("min_disabled") {
        Some(flag) => (
            flag.as_bool().unwrap_or(min.is_none()),
            validation["max_disabled"].as_bool().unwrap_or(max.is_none()),
        ),
        None => {
            let both = min.unwrap_or(0.0) == 0.0 && max.unwrap_or(0.0) == 0.0;
            (both, both)
        }
    };
    (
        if min_disabled { None } else { Some(min.unwrap_or(0.0)) },
        if max_disabled { None } else { Some(max.unwrap_or(0.0)) },
    )
}

/// The provider's default `form_type` for a parameter type, for output of
/// providers older than the attribute.
fn default_form_type(kind: &str, has_options: bool) -> &'static str {
    match (kind, has_options) {
        ("list(string)", true) => "multi-select",
        ("list(string)", false) => "tag-select",
        (_, true) => "radio",
        ("bool", false) => "checkbox",
        _ => "input",
    }
}

/// The template's `coder_workspace_preset` data sources, by address. Two
/// presets with one name are an error, as in Coder.
pub fn presets(show: &Value) -> Result<Vec<Preset>, ConvertError> {
    let mut found: Vec<Preset> = Vec::new();
    for e in entries(show)?.iter().filter(|e| !e.managed && e.kind == "coder_workspace_preset") {
        let v = &e.values;
        let parameters = v["parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, val)| {
                (k.clone(), val.as_str().map_or_else(|| val.to_string(), str::to_owned))
            })
            .collect();
        let prebuild_instances =
            v["prebuilds"].as_array().and_then(|a| a.first()).and_then(|p| p["instances"].as_i64());
        let preset = Preset {
            name: text(v, "name"),
            parameters,
            default: v["default"].as_bool().unwrap_or(false),
            description: text(v, "description"),
            icon: text(v, "icon"),
            prebuild_instances,
        };
        if found.iter().any(|f| f.name == preset.name) {
            return Err(ConvertError::Invalid(format!(
                "coder_workspace_preset names must be unique: {:?} appears twice",
                preset.name
            )));
        }
        found.push(preset);
    }
    Ok(found)
}

/// The external auth providers the template asks for (`coder_external_auth`
/// and the legacy `coder_git_auth` data sources), one per id, by id.
pub fn external_auth(show: &Value) -> Result<Vec<ExternalAuthProvider>, ConvertError> {
    let mut by_id: BTreeMap<String, bool> = BTreeMap::new();
    for e in entries(show)?.iter().filter(|e| {
        !e.managed && matches!(e.kind.as_str(), "coder_external_auth" | "coder_git_auth")
    }) {
        let id = text(&e.values, "id");
        if id.is_empty() {
            return Err(ConvertError::Invalid(format!("{} has no id", e.address)));
        }
        by_id.insert(id, e.values["optional"].as_bool().unwrap_or(false));
    }
    Ok(by_id.into_iter().map(|(id, optional)| ExternalAuthProvider { id, optional }).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn plan(params: Vec<Value>) -> Value {
        let resources: Vec<Value> = params
            .into_iter()
            .map(|values| {
                let name = values["name"].as_str().unwrap_or("p").to_owned();
                json!({"address": format!("data.coder_parameter.{name}"), "mode": "data",
                       "type": "coder_parameter", "name": name, "values": values})
            })
            .collect();
        json!({"prior_state": {"values": {"root_module": {"resources": resources}}}})
    }

    fn data(kind: &str, name: &str, values: Value) -> Value {
        json!({"address": format!("data.{kind}.{name}"), "mode": "data", "type": kind,
               "name": name, "values": values})
    }

    #[test]
    fn presets_and_external_auth_are_read() {
        let show = json!({"prior_state": {"values": {"root_module": {"resources": [
            data("coder_workspace_preset", "small", json!({"name": "Small", "parameters": {"cpu": "1"},
                "default": true, "description": "d", "icon": "/i.svg", "prebuilds": [{"instances": 2}]})),
            data("coder_workspace_preset", "big", json!({"name": "Big", "parameters": {"cpu": "8"}})),
            data("coder_external_auth", "gh", json!({"id": "github", "optional": true})),
            data("coder_external_auth", "gl", json!({"id": "gitlab"})),
            data("coder_git_auth", "old", json!({"id": "bitbucket"})),
            data("coder_external_auth", "gh2", json!({"id": "github", "optional": true})),
        ]}}}});
        let ps = presets(&show).expect("presets");
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Big", "Small"], "by address");
        let small = &ps[1];
        assert_eq!(small.parameters["cpu"], "1");
        assert_eq!((small.default, small.prebuild_instances), (true, Some(2)));
        let auth = external_auth(&show).expect("auth");
        let ids: Vec<(&str, bool)> = auth.iter().map(|a| (a.id.as_str(), a.optional)).collect();
        assert_eq!(ids, [("bitbucket", false), ("github", true), ("gitlab", false)]);

        let twice = json!({"prior_state": {"values": {"root_module": {"resources": [
            data("coder_workspace_preset", "a", json!({"name": "Same"})),
            data("coder_workspace_preset", "b", json!({"name": "Same"})),
        ]}}}});
        let err = presets(&twice).expect_err("duplicate");
        assert!(err.to_string().contains("\"Same\" appears twice"), "{err}");
    }

    #[test]
    fn ordered_by_order_then_name_ignoring_case() {
        let ps = parameters(&plan(vec![
            json!({"name": "b", "order": 1}),
            json!({"name": "Zed", "order": 0}),
            json!({"name": "alpha", "order": 0}),
            json!({"name": "A2", "order": 1}),
        ]))
        .expect("parameters");
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alpha", "Zed", "A2", "b"]);
    }

    #[test]
    fn form_type_defaults_for_older_provider_output() {
        let option = json!([{"name": "x", "value": "x"}]);
        let ps = parameters(&plan(vec![
            json!({"name": "s", "type": "string", "order": 1}),
            json!({"name": "n", "type": "number", "option": option, "order": 2}),
            json!({"name": "b", "type": "bool", "order": 3}),
            json!({"name": "l", "type": "list(string)", "order": 4}),
            json!({"name": "m", "type": "list(string)", "option": option, "order": 5}),
            json!({"name": "kept", "type": "string", "form_type": "textarea", "order": 6}),
        ]))
        .expect("parameters");
        let forms: Vec<&str> = ps.iter().map(|p| p.form_type.as_str()).collect();
        assert_eq!(forms, ["input", "radio", "checkbox", "tag-select", "multi-select", "textarea"]);
    }

    #[test]
    fn validation_bounds_honour_the_disabled_flags() {
        let with = |validation: Value| {
            let ps = parameters(&plan(vec![json!({"name": "n", "type": "number",
                "validation": [validation]})]))
            .expect("parameters");
            (ps[0].validation_min, ps[0].validation_max)
        };
        assert_eq!(
            with(json!({"min": 0, "max": 10, "min_disabled": true, "max_disabled": false})),
            (None, Some(10.0))
        );
        assert_eq!(
            with(json!({"min": 0, "max": 0, "min_disabled": false, "max_disabled": true})),
            (Some(0.0), None)
        );
        // Older providers: no flags; zero/zero means no bounds.
        assert_eq!(with(json!({"min": 0, "max": 0})), (None, None));
        assert_eq!(with(json!({"min": 0, "max": 5})), (Some(0.0), Some(5.0)));
    }

    #[test]
    fn required_follows_optional_when_present() {
        let ps = parameters(&plan(vec![
            json!({"name": "a", "default": null, "optional": true}),
            json!({"name": "b", "default": "x", "optional": false}),
            json!({"name": "c", "default": null}),
        ]))
        .expect("parameters");
        let required: Vec<bool> = ps.iter().map(|p| p.required).collect();
        assert_eq!(required, [false, true, true]);
    }
}
