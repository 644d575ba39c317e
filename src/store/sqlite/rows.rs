//! Encoding of domain values into SQLite columns and decoding rows back.
//! Timestamps are RFC 3339 text with microseconds (sortable as text), UUIDs
//! text, JSON text in the formats of `store::stored`. A row that does not
//! decode is `StoreError::Corrupt`.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{Job, StoredLog, StoredResource, WorkspaceBuild};
use crate::store::stored;
use crate::store::{
    ApiKey, File, Organization, ProvisionerKey, Result, StoreError, Template, TemplateVersion,
    User, Workspace,
};

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn now() -> String {
    ts(Utc::now())
}

/// The time now, at the precision the columns keep (microseconds), so a
/// decision made with it equals what a read gives back.
pub fn clock() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {col}: {e}"))
}

fn text(row: &SqliteRow, col: &str) -> Result<String> {
    row.try_get::<String, _>(col).map_err(|e| corrupt(col, e))
}

fn opt_text(row: &SqliteRow, col: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col).map_err(|e| corrupt(col, e))
}

fn uuid(row: &SqliteRow, col: &str) -> Result<Uuid> {
    text(row, col)?.parse().map_err(|e| corrupt(col, e))
}

fn opt_uuid(row: &SqliteRow, col: &str) -> Result<Option<Uuid>> {
    opt_text(row, col)?.map(|s| s.parse().map_err(|e| corrupt(col, e))).transpose()
}

fn time(row: &SqliteRow, col: &str) -> Result<DateTime<Utc>> {
    parse_time(col, &text(row, col)?)
}

fn opt_time(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    opt_text(row, col)?.map(|s| parse_time(col, &s)).transpose()
}

fn parse_time(col: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| corrupt(col, e))
}

fn int(row: &SqliteRow, col: &str) -> Result<i64> {
    row.try_get::<i64, _>(col).map_err(|e| corrupt(col, e))
}

fn flag(row: &SqliteRow, col: &str) -> Result<bool> {
    Ok(int(row, col)? != 0)
}

fn parsed<T: std::str::FromStr>(row: &SqliteRow, col: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text(row, col)?.parse().map_err(|e| corrupt(col, e))
}

/// Decodes a JSON column by its format in `store::stored`.
fn json<T, E: std::fmt::Display>(
    row: &SqliteRow,
    col: &str,
    decode: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    decode(&text(row, col)?).map_err(|e| corrupt(col, e))
}

/// Encodes a value for a JSON column (an encoding error means the value
/// breaks its own type's rules, so the row would be corrupt).
pub fn to_json<T, E: std::fmt::Display>(
    value: T,
    encode: impl FnOnce(T) -> std::result::Result<String, E>,
) -> Result<String> {
    encode(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn user(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: uuid(row, "id")?,
        username: text(row, "username")?,
        email: text(row, "email")?,
        name: text(row, "name")?,
        password_hash: text(row, "password_hash")?,
        roles: json(row, "rbac_roles", stored::decode_roles)?,
        created_at: time(row, "created_at")?,
    })
}

pub fn api_key(row: &SqliteRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: text(row, "id")?,
        user_id: uuid(row, "user_id")?,
        hashed_secret: row.try_get("hashed_secret").map_err(|e| corrupt("hashed_secret", e))?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

pub fn organization(row: &SqliteRow) -> Result<Organization> {
    Ok(Organization {
        id: uuid(row, "id")?,
        name: text(row, "name")?,
        display_name: text(row, "display_name")?,
        is_default: flag(row, "is_default")?,
        created_at: time(row, "created_at")?,
    })
}

pub fn provisioner_key(row: &SqliteRow) -> Result<ProvisionerKey> {
    Ok(ProvisionerKey {
        id: uuid(row, "id")?,
        organization_id: uuid(row, "organization_id")?,
        name: text(row, "name")?,
        hashed_secret: row.try_get("hashed_secret").map_err(|e| corrupt("hashed_secret", e))?,
        tags: json(row, "tags", stored::decode_tags)?,
        created_at: time(row, "created_at")?,
    })
}

pub fn file(row: &SqliteRow) -> Result<File> {
    Ok(File {
        id: uuid(row, "id")?,
        hash: text(row, "hash")?,
        mimetype: text(row, "mimetype")?,
        data: row.try_get("data").map_err(|e| corrupt("data", e))?,
        created_by: uuid(row, "created_by")?,
        created_at: time(row, "created_at")?,
    })
}

pub fn template(row: &SqliteRow) -> Result<Template> {
    Ok(Template {
        id: uuid(row, "id")?,
        organization_id: uuid(row, "organization_id")?,
        name: text(row, "name")?,
        display_name: text(row, "display_name")?,
        description: text(row, "description")?,
        active_version_id: uuid(row, "active_version_id")?,
        created_by: uuid(row, "created_by")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn template_version(row: &SqliteRow) -> Result<TemplateVersion> {
    Ok(TemplateVersion {
        id: uuid(row, "id")?,
        template_id: opt_uuid(row, "template_id")?,
        organization_id: uuid(row, "organization_id")?,
        name: text(row, "name")?,
        message: text(row, "message")?,
        job_id: uuid(row, "job_id")?,
        created_by: uuid(row, "created_by")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn workspace(row: &SqliteRow) -> Result<Workspace> {
    Ok(Workspace {
        id: uuid(row, "id")?,
        organization_id: uuid(row, "organization_id")?,
        owner_id: uuid(row, "owner_id")?,
        template_id: uuid(row, "template_id")?,
        name: text(row, "name")?,
        deleted: flag(row, "deleted")?,
        autostart_schedule: opt_text(row, "autostart_schedule")?,
        ttl_ms: row.try_get("ttl_ms").map_err(|e| corrupt("ttl_ms", e))?,
        dormant_at: opt_time(row, "dormant_at")?,
        automatic_updates: parsed(row, "automatic_updates")?,
        favorite: flag(row, "favorite")?,
        last_used_at: opt_time(row, "last_used_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn build(row: &SqliteRow) -> Result<WorkspaceBuild> {
    Ok(WorkspaceBuild {
        id: uuid(row, "id")?,
        workspace_id: uuid(row, "workspace_id")?,
        build_number: int(row, "build_number")? as i32,
        transition: parsed(row, "transition")?,
        template_version_id: uuid(row, "template_version_id")?,
        initiator_id: uuid(row, "initiator_id")?,
        reason: parsed(row, "reason")?,
        provisioner_state: row
            .try_get("provisioner_state")
            .map_err(|e| corrupt("provisioner_state", e))?,
        job_id: uuid(row, "job_id")?,
        deadline: opt_time(row, "deadline")?,
        max_deadline: opt_time(row, "max_deadline")?,
        daily_cost: int(row, "daily_cost")? as i32,
        rich_parameters: json(row, "rich_parameters", stored::decode_parameters)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn job(row: &SqliteRow) -> Result<Job> {
    Ok(Job {
        id: uuid(row, "id")?,
        job_type: parsed(row, "job_type")?,
        provisioner: parsed(row, "provisioner")?,
        organization_id: uuid(row, "organization_id")?,
        initiator_id: uuid(row, "initiator_id")?,
        file_id: uuid(row, "file_id")?,
        input: json(row, "input", stored::decode_job_input)?,
        tags: json(row, "tags", stored::decode_tags)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        started_at: opt_time(row, "started_at")?,
        canceled_at: opt_time(row, "canceled_at")?,
        completed_at: opt_time(row, "completed_at")?,
        worker_id: opt_uuid(row, "worker_id")?,
        worker_name: opt_text(row, "worker_name")?,
        error: opt_text(row, "error")?,
        error_code: opt_text(row, "error_code")?,
    })
}

pub fn log(row: &SqliteRow) -> Result<StoredLog> {
    Ok(StoredLog {
        id: int(row, "id")?,
        job_id: uuid(row, "job_id")?,
        seq: int(row, "seq")?,
        line: crate::domain::LogLine {
            source: parsed(row, "source")?,
            level: parsed(row, "level")?,
            stage: text(row, "stage")?,
            output: text(row, "output")?,
            created_at: time(row, "created_at")?,
        },
    })
}

pub fn resource(row: &SqliteRow) -> Result<StoredResource> {
    Ok(StoredResource {
        id: uuid(row, "id")?,
        job_id: uuid(row, "job_id")?,
        transition: parsed(row, "transition")?,
        created_at: time(row, "created_at")?,
        resource: json(row, "resource", stored::decode_resource)?,
    })
}

/// Whether a late result was already recorded for the job in `row`.
pub fn late_result_recorded(row: &SqliteRow) -> Result<bool> {
    Ok(opt_text(row, "late_result_at")?.is_some())
}

/// A workspace's latest build number and its job, from a row of
/// `build_number AS latest_build_number` and the job's columns.
pub fn latest_build(row: &SqliteRow) -> Result<(i32, Job)> {
    let number = int(row, "latest_build_number")?;
    let number = i32::try_from(number).map_err(|e| corrupt("latest_build_number", e))?;
    Ok((number, job(row)?))
}

/// A row of `views::WORKSPACES`: the workspace's columns and the names.
pub fn workspace_view(row: &SqliteRow) -> Result<crate::store::WorkspaceView> {
    Ok(crate::store::WorkspaceView {
        workspace: workspace(row)?,
        owner_username: text(row, "owner_username")?,
        organization_name: text(row, "organization_name")?,
        template_name: text(row, "template_name")?,
        template_display_name: text(row, "template_display_name")?,
        template_active_version_id: uuid(row, "template_active_version_id")?,
        latest_build_id: uuid(row, "latest_build_id")?,
    })
}

/// A row of `views::BUILDS` (the build's columns and the names) with the
/// build's job; resources and queue are left for the caller to fill in.
pub fn build_view(
    row: &SqliteRow,
    build: WorkspaceBuild,
    job: Job,
) -> Result<crate::store::BuildView> {
    Ok(crate::store::BuildView {
        build,
        workspace_name: text(row, "workspace_name")?,
        owner_id: uuid(row, "owner_id")?,
        owner_username: text(row, "owner_username")?,
        initiator_username: text(row, "initiator_username")?,
        template_version_name: text(row, "template_version_name")?,
        template_id: uuid(row, "template_id")?,
        template_name: text(row, "template_name")?,
        template_display_name: text(row, "template_display_name")?,
        job,
        resources: Vec::new(),
        queue: (0, 0),
    })
}

/// A row of `(id, position, size)`.
pub fn queue_position(row: &SqliteRow) -> Result<(Uuid, (i64, i64))> {
    Ok((uuid(row, "id")?, (int(row, "position")?, int(row, "size")?)))
}
