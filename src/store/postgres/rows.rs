//! Decoding PostgreSQL rows into domain values. Columns have native types
//! (uuid, timestamptz, bytea, boolean); JSON columns are text in the formats
//! of `store::stored`, except job tags, which are jsonb for matching in SQL.
//! A row that does not decode is `StoreError::Corrupt`.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::domain::{Job, StoredLog, StoredResource, Tags, WorkspaceBuild};
use crate::store::stored;
use crate::store::{
    ApiKey, File, Organization, ProvisionerKey, Result, StoreError, Template, TemplateVersion,
    User, Workspace,
};

/// The time now, at the precision timestamptz keeps (microseconds), so a
/// decision made with it equals what a read gives back.
pub fn clock() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {col}: {e}"))
}

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get::<T, _>(col).map_err(|e| corrupt(col, e))
}

fn parsed<T: std::str::FromStr>(row: &PgRow, col: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    get::<String>(row, col)?.parse().map_err(|e| corrupt(col, e))
}

/// Decodes a JSON text column by its format in `store::stored`.
fn json<T, E: std::fmt::Display>(
    row: &PgRow,
    col: &str,
    decode: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    decode(&get::<String>(row, col)?).map_err(|e| corrupt(col, e))
}

/// Decodes a jsonb tags column.
fn tags(row: &PgRow, col: &str) -> Result<Tags> {
    let value: sqlx::types::Json<serde_json::Value> = get(row, col)?;
    stored::decode_tags(&value.0.to_string()).map_err(|e| corrupt(col, e))
}

/// Encodes a value for a JSON column (an encoding error means the value
/// breaks its own type's rules, so the row would be corrupt).
pub fn to_json<T, E: std::fmt::Display>(
    value: T,
    encode: impl FnOnce(T) -> std::result::Result<String, E>,
) -> Result<String> {
    encode(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn user(row: &PgRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        username: get(row, "username")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        roles: json(row, "rbac_roles", stored::decode_roles)?,
        created_at: get(row, "created_at")?,
    })
}

pub fn api_key(row: &PgRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        hashed_secret: get(row, "hashed_secret")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

pub fn organization(row: &PgRow) -> Result<Organization> {
    Ok(Organization {
        id: get(row, "id")?,
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        is_default: get(row, "is_default")?,
        created_at: get(row, "created_at")?,
    })
}

pub fn provisioner_key(row: &PgRow) -> Result<ProvisionerKey> {
    Ok(ProvisionerKey {
        id: get(row, "id")?,
        organization_id: get(row, "organization_id")?,
        name: get(row, "name")?,
        hashed_secret: get(row, "hashed_secret")?,
        tags: json(row, "tags", stored::decode_tags)?,
        created_at: get(row, "created_at")?,
    })
}

pub fn file(row: &PgRow) -> Result<File> {
    Ok(File {
        id: get(row, "id")?,
        hash: get(row, "hash")?,
        mimetype: get(row, "mimetype")?,
        data: get(row, "data")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
    })
}

pub fn template(row: &PgRow) -> Result<Template> {
    Ok(Template {
        id: get(row, "id")?,
        organization_id: get(row, "organization_id")?,
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        description: get(row, "description")?,
        active_version_id: get(row, "active_version_id")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub fn template_version(row: &PgRow) -> Result<TemplateVersion> {
    Ok(TemplateVersion {
        id: get(row, "id")?,
        template_id: get(row, "template_id")?,
        organization_id: get(row, "organization_id")?,
        name: get(row, "name")?,
        message: get(row, "message")?,
        job_id: get(row, "job_id")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub fn workspace(row: &PgRow) -> Result<Workspace> {
    Ok(Workspace {
        id: get(row, "id")?,
        organization_id: get(row, "organization_id")?,
        owner_id: get(row, "owner_id")?,
        template_id: get(row, "template_id")?,
        name: get(row, "name")?,
        deleted: get(row, "deleted")?,
        autostart_schedule: get(row, "autostart_schedule")?,
        ttl_ms: get(row, "ttl_ms")?,
        dormant_at: get(row, "dormant_at")?,
        automatic_updates: parsed(row, "automatic_updates")?,
        favorite: get(row, "favorite")?,
        last_used_at: get(row, "last_used_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub fn build(row: &PgRow) -> Result<WorkspaceBuild> {
    Ok(WorkspaceBuild {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        build_number: get(row, "build_number")?,
        transition: parsed(row, "transition")?,
        template_version_id: get(row, "template_version_id")?,
        initiator_id: get(row, "initiator_id")?,
        reason: parsed(row, "reason")?,
        provisioner_state: get(row, "provisioner_state")?,
        job_id: get(row, "job_id")?,
        deadline: get(row, "deadline")?,
        max_deadline: get(row, "max_deadline")?,
        daily_cost: get(row, "daily_cost")?,
        rich_parameters: json(row, "rich_parameters", stored::decode_parameters)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub fn job(row: &PgRow) -> Result<Job> {
    Ok(Job {
        id: get(row, "id")?,
        job_type: parsed(row, "job_type")?,
        provisioner: parsed(row, "provisioner")?,
        organization_id: get(row, "organization_id")?,
        initiator_id: get(row, "initiator_id")?,
        file_id: get(row, "file_id")?,
        input: json(row, "input", stored::decode_job_input)?,
        tags: tags(row, "tags")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        started_at: get(row, "started_at")?,
        canceled_at: get(row, "canceled_at")?,
        completed_at: get(row, "completed_at")?,
        worker_id: get(row, "worker_id")?,
        worker_name: get(row, "worker_name")?,
        error: get(row, "error")?,
        error_code: get(row, "error_code")?,
    })
}

pub fn log(row: &PgRow) -> Result<StoredLog> {
    Ok(StoredLog {
        id: get(row, "id")?,
        job_id: get(row, "job_id")?,
        seq: get(row, "seq")?,
        line: crate::domain::LogLine {
            source: parsed(row, "source")?,
            level: parsed(row, "level")?,
            stage: get(row, "stage")?,
            output: String::from_utf8(get(row, "output")?).map_err(|e| corrupt("output", e))?,
            created_at: get(row, "created_at")?,
        },
    })
}

pub fn resource(row: &PgRow) -> Result<StoredResource> {
    Ok(StoredResource {
        id: get(row, "id")?,
        job_id: get(row, "job_id")?,
        transition: parsed(row, "transition")?,
        created_at: get(row, "created_at")?,
        resource: json(row, "resource", stored::decode_resource)?,
    })
}

/// Whether a late result was already recorded for the job in `row`.
pub fn late_result_recorded(row: &PgRow) -> Result<bool> {
    Ok(get::<Option<DateTime<Utc>>>(row, "late_result_at")?.is_some())
}

/// A workspace's latest build number and its job, from a row of
/// `build_number AS latest_build_number` and the job's columns.
pub fn latest_build(row: &PgRow) -> Result<(i32, Job)> {
    Ok((get(row, "latest_build_number")?, job(row)?))
}

/// A row of `views::WORKSPACES`: the workspace's columns and the names.
pub fn workspace_view(row: &PgRow) -> Result<crate::store::WorkspaceView> {
    Ok(crate::store::WorkspaceView {
        workspace: workspace(row)?,
        owner_username: get(row, "owner_username")?,
        organization_name: get(row, "organization_name")?,
        template_name: get(row, "template_name")?,
        template_display_name: get(row, "template_display_name")?,
        template_active_version_id: get(row, "template_active_version_id")?,
        latest_build_id: get(row, "latest_build_id")?,
    })
}

/// A row of `views::BUILDS` (the build's columns and the names) with the
/// build's job; resources and queue are left for the caller to fill in.
pub fn build_view(row: &PgRow, build: WorkspaceBuild, job: Job) -> Result<crate::store::BuildView> {
    Ok(crate::store::BuildView {
        build,
        workspace_name: get(row, "workspace_name")?,
        owner_id: get(row, "owner_id")?,
        owner_username: get(row, "owner_username")?,
        initiator_username: get(row, "initiator_username")?,
        template_version_name: get(row, "template_version_name")?,
        template_id: get(row, "template_id")?,
        template_name: get(row, "template_name")?,
        template_display_name: get(row, "template_display_name")?,
        job,
        resources: Vec::new(),
        queue: (0, 0),
    })
}

/// A row of `(id, position, size)`.
pub fn queue_position(row: &PgRow) -> Result<(uuid::Uuid, (i64, i64))> {
    Ok((get(row, "id")?, (get(row, "position")?, get(row, "size")?)))
}
