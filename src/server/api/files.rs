//! Template archives: upload (content-addressed by sha256) and download,
//! which only the uploader, template admins and owners may do
//! (`app/files.rs` decides).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::auth::Caller;
use super::error::ApiResult;
use crate::server::AppState;

/// Largest archive accepted.
pub const MAX_FILE_BYTES: usize = 10 << 20;

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let id = state.app().upload_file(caller.subject(), content_type, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"hash": id}))))
}

pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let file = state.app().file(caller.subject(), super::uuid_param("fileID", &id)?).await?;
    Ok(([(header::CONTENT_TYPE, file.mimetype)], file.data))
}
