//! The API's one error type and its translation to Coder's JSON shape
//! `{"message", "detail", "validations": [{"field", "detail"}]}`: the one
//! translation of the use cases' [`app::Error`] into HTTP. Store errors
//! reach it through `app::Error` (whose `From<StoreError>` is the one
//! translation of those), so a database outage is an opaque 500 whose cause
//! is logged, never sent.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::app::{self, access::AccessError};
use crate::store::StoreError;

#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub field: String,
    pub detail: String,
}

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: String,
    pub validations: Vec<Validation>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    validations: &'a [Validation],
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), detail: String::new(), validations: Vec::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Resource not found or you do not have access to this resource",
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error in API handler");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred.")
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn field(mut self, field: &str, detail: impl Into<String>) -> Self {
        self.validations.push(Validation { field: field.to_owned(), detail: detail.into() });
        self
    }

    /// A 400 naming one invalid field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::bad_request("Validation failed.").detail(detail.clone()).field(field, detail)
    }
}

impl From<app::Error> for ApiError {
    fn from(e: app::Error) -> Self {
        let refusal = |status, r: app::Refusal| {
            let validations = r
                .validations
                .into_iter()
                .map(|v| Validation { field: v.field, detail: v.detail })
                .collect();
            Self { status, message: r.message, detail: r.detail, validations }
        };
        match e {
            app::Error::NotFound => Self::not_found(),
            app::Error::Forbidden(r) => refusal(StatusCode::FORBIDDEN, r),
            app::Error::Invalid(r) => refusal(StatusCode::BAD_REQUEST, r),
            app::Error::Conflict(r) => refusal(StatusCode::CONFLICT, r),
            app::Error::Gone(r) => refusal(StatusCode::GONE, r),
            app::Error::Unavailable(why) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "The server cannot store changes right now.")
                    .detail(format!("the database refused the write ({why}): free disk space on the server's data volume, then retry; the server recovers by itself"))
            }
            app::Error::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        app::Error::from(e).into()
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        app::Error::from(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        // axum decides the status (413 over the body limit, 415 without a
        // JSON content type, 400 or 422 for the text); we keep it.
        let status = e.status();
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large.",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Request body must be JSON.",
            _ => "Request body must be valid JSON.",
        };
        let detail = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                format!("JSON bodies may be at most {} MiB", super::MAX_JSON_BYTES >> 20)
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "send the body with Content-Type: application/json".to_owned()
            }
            _ => e.body_text(),
        };
        Self::new(status, message).detail(detail)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request("Query parameters are invalid.").detail(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            Body { message: &self.message, detail: &self.detail, validations: &self.validations };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
