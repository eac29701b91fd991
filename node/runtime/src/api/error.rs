//! API errors: an HTTP status and a JSON body `{code, message}` whose `code` is stable
//! (listed in the OpenAPI document under `ErrorCode`).

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kubechain_ledger::AdmitError;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node_unavailable", message)
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string())
    }

    /// A transaction the mempool refused.
    pub fn admission(error: &AdmitError) -> ApiError {
        let code = error.code();
        let status = match code {
            "mempool_full" => StatusCode::TOO_MANY_REQUESTS,
            "duplicate" | "bad_nonce" | "nonce_gap_full" => StatusCode::CONFLICT,
            "unknown_sender" | "not_admin" | "not_member" => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// `Path` that answers a bad path segment (say, invalid percent-encoding) with an [`ApiError`].
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))?;
        Ok(ApiPath(value))
    }
}

/// `Query` that answers a bad query string with an [`ApiError`].
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
        Ok(ApiQuery(value))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

/// Every code the API can answer with; the OpenAPI document must list exactly these.
pub const ERROR_CODES: &[&str] = &[
    "malformed_json",
    "malformed_binary",
    "unsupported_media_type",
    "body_too_large",
    "too_many_transactions",
    "invalid_hash",
    "invalid_public_key",
    "invalid_block_id",
    "invalid_path",
    "invalid_query",
    "not_found",
    "method_not_allowed",
    "transaction_not_found",
    "block_not_found",
    "key_not_found",
    "node_unavailable",
    "internal",
    // From admission (kubechain-ledger):
    "mempool_full",
    "duplicate",
    "nonce_too_far_ahead",
    "nonce_gap_full",
    "wrong_chain",
    "unknown_sender",
    "bad_nonce",
    "bad_signature",
    "not_admin",
    "not_member",
    "invalid_operation",
    "empty_transaction",
    "transaction_too_large",
    "expired",
];
