//! What wraps the whole router: the gate that lets only real gRPC requests
//! reach the daemon service, the URI length limit, and the rewrite that
//! gives every error axum or hyper-util answers on its own (405, 413, 415,
//! a bad path or query) Coder's JSON shape. Handlers' own errors already
//! have it (`error.rs`) and pass through untouched, as do gRPC responses.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode, Version};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tonic::codegen::Service;

use super::error::ApiError;
use super::files::MAX_FILE_BYTES;

/// Largest JSON request body.
pub const MAX_JSON_BYTES: usize = 2 << 20;
/// Longest request target (path and query). No route needs more than a
/// few hundred bytes; 8 KiB is what common proxies accept.
pub const MAX_URI_BYTES: usize = 8 << 10;
/// How much of a plain-text error body is kept as the JSON `detail`.
const MAX_DETAIL_BYTES: usize = 4 << 10;

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Route not found.")
        .detail("no API route has this path: see /api/v2")
}

/// A gRPC call: HTTP/2 with a gRPC content type. Anything else that
/// matches no route is not for the daemon service, whatever its path.
fn is_grpc(req: &Request) -> bool {
    req.version() == Version::HTTP_2
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The app with the gRPC gate as its fallback and the outer layers on.
pub fn wrap(app: Router, grpc: Router) -> Router {
    app.fallback(move |req: Request| {
        let mut grpc = grpc.clone();
        async move {
            if is_grpc(&req) {
                match grpc.call(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            } else {
                not_found().await.into_response()
            }
        }
    })
    .layer(middleware::map_response(json_errors))
    .layer(middleware::from_fn(limit_uri))
    .layer(middleware::from_fn(count_request))
}

/// Counts each request by method, matched route and status, and observes
/// how long the answer took to start. Unmatched paths are one `other`
/// route (and gRPC calls one `grpc` route), so a scan of random paths
/// cannot make a series per path.
async fn count_request(req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<axum::extract::MatchedPath>() {
        Some(p) => p.as_str().to_owned(),
        None if is_grpc(&req) => "grpc".to_owned(),
        None => "other".to_owned(),
    };
    // Only the methods the API knows: any token is a valid method.
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            req.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let m = crate::metrics::get();
    let took = started.elapsed().as_secs_f64();
    m.http_duration
        .get_or_create(&crate::metrics::HttpLabels { method: method.clone(), route: route.clone() })
        .observe(took);
    m.http_requests
        .get_or_create(&crate::metrics::HttpStatusLabels {
            method,
            route,
            status: resp.status().as_str().to_owned(),
        })
        .inc();
    resp
}

async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::new(StatusCode::URI_TOO_LONG, "Request URI is too long.")
            .detail(format!(
                "the path and query are {len} bytes; at most {MAX_URI_BYTES} are accepted"
            ))
            .into_response();
    }
    next.run(req).await
}

/// Rewrites an error response that is not JSON (axum's rejections and
/// defaults answer `text/plain` or nothing) into Coder's shape, keeping
/// the status and headers (`Allow` on a 405) and the text as detail.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let content_type =
        resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let keep = !(status.is_client_error() || status.is_server_error())
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/grpc");
    if keep {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL_BYTES)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .unwrap_or_default();
    let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
    let error = describe(status, text.trim(), allow);
    let fresh = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, Body::new(body))
}

/// Our message for a status axum answered on its own.
fn describe(status: StatusCode, text: &str, allow: Option<&str>) -> ApiError {
    let (message, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "Method not allowed.".to_owned(),
            match allow {
                Some(a) if !a.is_empty() => format!("this path accepts only: {a}"),
                _ => "this path does not accept this method".to_owned(),
            },
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Request body is too large.".to_owned(),
            format!(
                "JSON bodies may be at most {} MiB and template archives at most {} MiB",
                MAX_JSON_BYTES >> 20,
                MAX_FILE_BYTES >> 20
            ),
        ),
        StatusCode::NOT_FOUND => ("Route not found.".to_owned(), text.to_owned()),
        other => {
            (format!("{}.", other.canonical_reason().unwrap_or("Request failed")), text.to_owned())
        }
    };
    ApiError::new(status, message).detail(detail)
}

/// Runs each API request in a `trace`-level span `api_request` naming its
/// method and URI, so whatever a request does (its SQL statements too, as
/// sqlx's `sqlx::query` events) can be told apart from the rest. Disabled
/// by every log filter short of `trace`, it then costs a span check.
pub async fn request_span(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let span = tracing::trace_span!("api_request", method = %req.method(), uri = %req.uri());
    next.run(req).instrument(span).await
}
