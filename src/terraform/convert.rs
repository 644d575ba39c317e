//! Turns `terraform show -json` output (of a state or of a saved plan) into
//! the resources a build reports: every managed resource that is not a
//! `coder_*` type, with its module path and its non-sensitive attributes.
//! Pure functions over JSON; no I/O.

use serde_json::{Map, Value};

use crate::domain::Resource;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("terraform show output is not a JSON object")]
    NotAnObject,
}

/// Resources in `show` (state: `values`; plan: `planned_values`), ordered
/// by address.
pub fn resources_from_show(show: &Value) -> Result<Vec<Resource>, ConvertError> {
    let obj = show.as_object().ok_or(ConvertError::NotAnObject)?;
    let root =
        obj.get("values").or_else(|| obj.get("planned_values")).and_then(|v| v.get("root_module"));
    let mut found = Vec::new();
    if let Some(root) = root {
        collect(root, "", &mut found);
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

fn collect(module: &Value, path: &str, out: &mut Vec<(String, Resource)>) {
    for r in module.get("resources").and_then(Value::as_array).into_iter().flatten() {
        let kind = r["type"].as_str().unwrap_or_default();
        if r["mode"] != "managed" || kind.starts_with("coder_") {
            continue;
        }
        let address = r["address"].as_str().unwrap_or_default().to_owned();
        let attributes = strip_sensitive(&r["values"], &r["sensitive_values"]);
        let instance_type = ["instance_type", "machine_type", "vm_size"]
            .iter()
            .find_map(|k| attributes.get(k).and_then(Value::as_str))
            .map(str::to_owned);
        out.push((
            address,
            Resource {
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                resource_type: kind.to_owned(),
                module_path: path.to_owned(),
                hide: false,
                icon: String::new(),
                daily_cost: 0,
                instance_type,
                metadata: Vec::new(),
                attributes,
            },
        ));
    }
    for child in module.get("child_modules").and_then(Value::as_array).into_iter().flatten() {
        let child_path = child["address"].as_str().unwrap_or(path);
        collect(child, child_path, out);
    }
}

/// Drops every value that `sensitive` (terraform's mirror structure) marks
/// with `true`.
fn strip_sensitive(values: &Value, sensitive: &Value) -> Value {
    if sensitive == &Value::Bool(true) {
        return Value::Null;
    }
    match (values, sensitive) {
        (Value::Object(v), Value::Object(s)) => {
            let kept: Map<String, Value> = v
                .iter()
                .filter(|(k, _)| s.get(*k) != Some(&Value::Bool(true)))
                .map(|(k, val)| (k.clone(), strip_sensitive(val, s.get(k).unwrap_or(&Value::Null))))
                .collect();
            Value::Object(kept)
        }
        (Value::Array(v), Value::Array(s)) => Value::Array(
            v.iter()
                .enumerate()
                .map(|(i, val)| strip_sensitive(val, s.get(i).unwrap_or(&Value::Null)))
                .collect(),
        ),
        _ => values.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_non_coder_resources_with_modules_and_secrets_removed() {
        let show = serde_json::json!({"values": {"root_module": {
            "resources": [
                {"address": "terraform_data.vm[0]", "mode": "managed", "type": "terraform_data", "name": "vm",
                 "values": {"id": "abc", "input": "dev"}, "sensitive_values": {}},
                {"address": "data.coder_workspace.me", "mode": "data", "type": "coder_workspace", "name": "me", "values": {}},
                {"address": "coder_agent.main", "mode": "managed", "type": "coder_agent", "name": "main", "values": {}}
            ],
            "child_modules": [{"address": "module.box", "resources": [
                {"address": "module.box.aws_instance.x", "mode": "managed", "type": "aws_instance", "name": "x",
                 "values": {"instance_type": "t3.micro", "password": "hunter2", "tags": {"a": "1", "b": "2"}},
                 "sensitive_values": {"password": true, "tags": {"b": true}}}
            ]}]
        }}});
        let rs = resources_from_show(&show).expect("convert");
        assert_eq!(rs.len(), 2);
        let aws = &rs[0];
        assert_eq!((aws.name.as_str(), aws.module_path.as_str()), ("x", "module.box"));
        assert_eq!(aws.instance_type.as_deref(), Some("t3.micro"));
        assert!(aws.attributes.get("password").is_none(), "sensitive values are dropped");
        assert_eq!(aws.attributes["tags"], serde_json::json!({"a": "1"}));
        assert_eq!(
            (rs[1].resource_type.as_str(), rs[1].module_path.as_str()),
            ("terraform_data", "")
        );
    }

    #[test]
    fn empty_state_has_no_resources() {
        assert!(resources_from_show(&serde_json::json!({"format_version": "1.0"}))
            .expect("ok")
            .is_empty());
        assert!(resources_from_show(&serde_json::json!([])).is_err());
    }
}
