//! The REST API of the seeds (to be implemented).

use axum::Router;

use super::AppState;

/// All `/api/v2` routes.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}
