//! [`ApiError`]: a dashboard request that cannot be answered, as a JSON error response; a store
//! error or a failed blocking task becomes one through `From`, once for every handler.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::{StoreError, TaskFailed};

/// A failure to answer, as a response.
#[derive(Debug)]
pub enum ApiError {
    /// Nothing by that name.
    NotFound(String),
    /// The store or a drawing failed.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<TaskFailed> for ApiError {
    fn from(e: TaskFailed) -> Self {
        ApiError::Internal(e.to_string())
    }
}
