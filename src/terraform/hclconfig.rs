//! What the template's root module declares, read from its `*.tf` files
//! before terraform runs: `variable` blocks (for the import's variable list
//! and the required-variable check) and `data "coder_parameter"` blocks with
//! a literal name (for the missing-parameter check of builds).
//!
//! Terraform stays the judge of the configuration: a file this parser cannot
//! read is reported and skipped, and terraform's own error follows if the
//! file is really broken.

use std::path::Path;

use hcl::{Block, Expression};

use crate::domain::TemplateVariable;

/// The root module's declarations.
#[derive(Debug, Default, PartialEq)]
pub struct TemplateConfig {
    pub variables: Vec<TemplateVariable>,
    /// `coder_parameter` names with whether they have a `default`.
    pub parameters: Vec<(String, bool)>,
    /// Files that could not be read, with why.
    pub unreadable: Vec<String>,
}

impl TemplateConfig {
    /// Required variables that `given` leaves out.
    pub fn missing_variables<'a>(&'a self, given: &[crate::domain::NameValue]) -> Vec<&'a str> {
        self.variables
            .iter()
            .filter(|v| v.required && !given.iter().any(|g| g.name == v.name))
            .map(|v| v.name.as_str())
            .collect()
    }

    /// Parameters without a default that `given` leaves out.
    pub fn missing_parameters<'a>(&'a self, given: &[crate::domain::NameValue]) -> Vec<&'a str> {
        self.parameters
            .iter()
            .filter(|(name, has_default)| !has_default && !given.iter().any(|g| &g.name == name))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Reads every `*.tf` file directly in `dir`, in name order.
pub fn read_dir(dir: &Path) -> TemplateConfig {
    let mut config = TemplateConfig::default();
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tf") && p.is_file())
            .collect(),
        Err(e) => {
            config.unreadable.push(format!("{}: {e}", dir.display()));
            return config;
        }
    };
    files.sort();
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| hcl::parse(&text).map_err(|e| e.to_string()))
        {
            Ok(body) => read_body(&body, &mut config),
            Err(e) => config.unreadable.push(format!("{name}: {e}")),
        }
    }
    config
}

fn read_body(body: &hcl::Body, config: &mut TemplateConfig) {
    for block in body.blocks() {
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        match (block.identifier(), labels.as_slice()) {
            ("variable", [name]) => config.variables.push(variable(name, block)),
            ("data", ["coder_parameter", _]) => {
                if let Some(Expression::String(name)) = attribute(block, "name") {
                    config.parameters.push((name.clone(), attribute(block, "default").is_some()));
                }
            }
            _ => {}
        }
    }
}

fn attribute<'a>(block: &'a Block, key: &str) -> Option<&'a Expression> {
    block.body().attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn variable(name: &str, block: &Block) -> TemplateVariable {
    let default = attribute(block, "default");
    TemplateVariable {
        name: name.to_owned(),
        description: match attribute(block, "description") {
            Some(Expression::String(s)) => s.clone(),
            _ => String::new(),
        },
        kind: attribute(block, "type")
            .and_then(|t| hcl::format::to_string(t).ok())
            .unwrap_or_else(|| "any".into()),
        default_value: match default {
            None | Some(Expression::Null) => String::new(),
            Some(Expression::String(s)) => s.clone(),
            Some(other) => {
                serde_json::to_string(&hcl::Value::from(other.clone())).unwrap_or_default()
            }
        },
        required: default.is_none(),
        sensitive: matches!(attribute(block, "sensitive"), Some(Expression::Bool(true))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NameValue;

    #[test]
    fn variables_and_parameters_of_the_root_module() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("main.tf"),
            r#"
variable "region" {
  type        = string
  description = "Where"
  default     = "eu"
}
variable "token" {
  type      = string
  sensitive = true
}
variable "sizes" {
  type    = list(number)
  default = [1, 2]
}
data "coder_parameter" "cpu" {
  name = "CPU cores"
}
data "coder_parameter" "disk" {
  name    = "disk"
  default = "10"
}
"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("broken.tf"), "variable {").expect("write");
        let c = read_dir(dir.path());
        let names: Vec<&str> = c.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["region", "token", "sizes"]);
        assert_eq!(c.variables[0].kind, "string");
        assert_eq!(c.variables[0].default_value, "eu");
        assert!(!c.variables[0].required && c.variables[1].required && c.variables[1].sensitive);
        assert_eq!(c.variables[2].kind, "list(number)");
        assert_eq!(c.variables[2].default_value, "[1,2]");
        assert_eq!(c.unreadable.len(), 1, "{:?}", c.unreadable);
        assert!(c.unreadable[0].starts_with("broken.tf"));
        assert_eq!(c.missing_variables(&[]), ["token"]);
        let cpu = NameValue { name: "CPU cores".into(), value: "2".into() };
        assert_eq!(c.missing_parameters(&[]), ["CPU cores"]);
        assert!(c.missing_parameters(&[cpu]).is_empty());
    }
}
