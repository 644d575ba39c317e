//! The JSON formats of the store's JSON columns, as serde types of their own:
//! a job's `input` and `tags`, a build's `rich_parameters`, a resource row's
//! `resource`, an import's `result`, a user's `rbac_roles` and a key's
//! `tags`. Every backend encodes and decodes those columns here, converting
//! by hand from and to the domain types, so renaming a field of a domain
//! type cannot silently change what the database holds: these types are
//! the format, and the test at the bottom pins it byte for byte.
//!
//! Changing a field here changes the database format: old rows must still
//! decode (add fields with `#[serde(default)]`, never rename one).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{self, NameValue, Role, Tags, UnknownVariant};

/// A column that does not hold what its format says.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Variant(#[from] UnknownVariant),
}

type Result<T> = std::result::Result<T, StoredError>;

/// `provisioner_jobs.input`: what a job works on, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum JobInput {
    WorkspaceBuild {
        workspace_build_id: Uuid,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        log_level: Option<String>,
    },
    TemplateVersionImport {
        template_version_id: Uuid,
        #[serde(default)]
        user_variable_values: Vec<Pair>,
    },
}

/// A name and a value: a build parameter or an import's variable value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    name: String,
    value: String,
}

impl From<&NameValue> for Pair {
    fn from(v: &NameValue) -> Self {
        Pair { name: v.name.clone(), value: v.value.clone() }
    }
}

impl From<Pair> for NameValue {
    fn from(p: Pair) -> Self {
        NameValue { name: p.name, value: p.value }
    }
}

fn pairs(values: &[NameValue]) -> Vec<Pair> {
    values.iter().map(Pair::from).collect()
}

fn name_values(pairs: Vec<Pair>) -> Vec<NameValue> {
    pairs.into_iter().map(NameValue::from).collect()
}

impl From<domain::JobInput> for JobInput {
    fn from(i: domain::JobInput) -> Self {
        match i {
            domain::JobInput::WorkspaceBuild { workspace_build_id, dry_run, log_level } => {
                JobInput::WorkspaceBuild { workspace_build_id, dry_run, log_level }
            }
            domain::JobInput::TemplateVersionImport {
                template_version_id,
                user_variable_values,
            } => JobInput::TemplateVersionImport {
                template_version_id,
                user_variable_values: pairs(&user_variable_values),
            },
        }
    }
}

impl From<JobInput> for domain::JobInput {
    fn from(i: JobInput) -> Self {
        match i {
            JobInput::WorkspaceBuild { workspace_build_id, dry_run, log_level } => {
                domain::JobInput::WorkspaceBuild { workspace_build_id, dry_run, log_level }
            }
            JobInput::TemplateVersionImport { template_version_id, user_variable_values } => {
                domain::JobInput::TemplateVersionImport {
                    template_version_id,
                    user_variable_values: name_values(user_variable_values),
                }
            }
        }
    }
}

/// Encodes a job's input (`Job::input`, which holds a `domain::JobInput`).
/// The text is a JSON object with its keys in sorted order, as it always was.
/// A value that is no job input at all is stored as it is: the column
/// always took any JSON, and readers of `Job::input` handle what they do not
/// know.
pub fn encode_job_input(input: &serde_json::Value) -> Result<String> {
    let value = match serde_json::from_value::<domain::JobInput>(input.clone()) {
        Ok(known) => serde_json::to_value(JobInput::from(known))?,
        Err(_) => input.clone(),
    };
    Ok(serde_json::to_string(&value)?)
}

/// Decodes a job's `input` column into what `Job::input` holds: a known
/// input in the domain's form, anything else as the JSON it is.
pub fn decode_job_input(text: &str) -> Result<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    match serde_json::from_value::<JobInput>(value.clone()) {
        Ok(known) => Ok(serde_json::to_value(domain::JobInput::from(known))?),
        Err(_) => Ok(value),
    }
}

/// Tags (jobs and provisioner keys): one JSON object, keys sorted.
pub fn encode_tags(tags: &Tags) -> Result<String> {
    let map: &BTreeMap<String, String> = tags;
    Ok(serde_json::to_string(map)?)
}

pub fn decode_tags(text: &str) -> Result<Tags> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)?;
    Ok(map)
}

/// A build's `rich_parameters`: an array of `{"name", "value"}`.
pub fn encode_parameters(values: &[NameValue]) -> Result<String> {
    Ok(serde_json::to_string(&pairs(values))?)
}

pub fn decode_parameters(text: &str) -> Result<Vec<NameValue>> {
    Ok(name_values(serde_json::from_str(text)?))
}

/// A user's `rbac_roles`: an array of role names.
pub fn encode_roles(roles: &[Role]) -> String {
    serde_json::Value::from(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()).to_string()
}

pub fn decode_roles(text: &str) -> Result<Vec<Role>> {
    let names: Vec<String> = serde_json::from_str(text)?;
    Ok(names.iter().map(|n| n.parse()).collect::<std::result::Result<_, _>>()?)
}

mod resource;

pub use resource::{decode_import, decode_resource, encode_import, encode_resource};

#[cfg(test)]
pub(crate) mod tests;
