//! The `coder_parameter` data sources of a planned template.

use serde_json::Value;

use super::coder::text;
use super::{entries, ConvertError};
use crate::domain::{ParameterOption, TemplateParameter};

/// The template's parameters, in their `order` and then by name. Two
/// parameters with one name are an error.
pub fn parameters(show: &Value) -> Result<Vec<TemplateParameter>, ConvertError> {
    let mut found: Vec<TemplateParameter> = Vec::new();
    for e in entries(show)?.iter().filter(|e| !e.managed && e.kind == "coder_parameter") {
        let v = &e.values;
        let validation = v["validation"].as_array().and_then(|a| a.first()).cloned();
        let validation = validation.unwrap_or(Value::Null);
        let p = TemplateParameter {
            name: text(v, "name"),
            display_name: text(v, "display_name"),
            description: text(v, "description"),
            kind: Some(text(v, "type"))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "string".into()),
            form_type: text(v, "form_type"),
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
            validation_min: validation["min"].as_f64(),
            validation_max: validation["max"].as_f64(),
            validation_monotonic: text(&validation, "monotonic"),
            required: v["default"].is_null(),
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
    found.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    Ok(found)
}
