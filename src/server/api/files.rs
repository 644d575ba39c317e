//! Template archives: upload (content-addressed by sha256) and download,
//! which only the uploader, template admins and owners may do.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::server::access::{Action, Resource};
use crate::server::AppState;
use crate::store::File;

/// Largest archive accepted.
pub const MAX_FILE_BYTES: usize = 10 << 20;

const TAR: &str = "application/x-tar";

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.may(Action::Create, Resource::File { uploader: caller.user.id })?;
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mimetype = content_type.split(';').next().unwrap_or("").trim();
    if mimetype != TAR && mimetype != "application/gzip" && mimetype != "application/x-gzip" {
        return Err(ApiError::bad_request(format!("Unsupported content type {mimetype:?}."))
            .detail(format!("upload a tar archive with Content-Type: {TAR}")));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("The uploaded file is empty."));
    }
    let file = File {
        id: Uuid::new_v4(),
        hash: hex::encode(Sha256::digest(&body)),
        mimetype: mimetype.to_owned(),
        data: body.to_vec(),
        created_by: caller.user.id,
        created_at: Utc::now(),
    };
    let id = state.store.insert_file(&file).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"hash": id}))))
}

pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let file = state.store.file(super::uuid_param("fileID", &id)?).await?;
    caller.may(Action::Read, Resource::File { uploader: file.created_by })?;
    Ok(([(header::CONTENT_TYPE, file.mimetype)], file.data))
}
