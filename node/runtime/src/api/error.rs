//! API errors: an HTTP status and a JSON body `{code, message}` ([`ErrorBody`]) whose `code` is
//! stable ([`ErrorCode`]).

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kubechain_api::{ErrorBody, ErrorCode};
use kubechain_ledger::AdmitError;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NodeUnavailable, message)
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, error.to_string())
    }

    /// A transaction the mempool refused.
    pub fn admission(error: &AdmitError) -> ApiError {
        let Some(code) = ErrorCode::from_code(error.code()) else {
            return ApiError::internal(format!(
                "refused with an undocumented code {}: {error}",
                error.code()
            ));
        };
        let status = match code {
            ErrorCode::MempoolFull => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Duplicate | ErrorCode::BadNonce | ErrorCode::NonceGapFull => StatusCode::CONFLICT,
            ErrorCode::UnknownSender | ErrorCode::NotAdmin | ErrorCode::NotMember => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, error.to_string())
    }

    /// The JSON body clients see.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code, message: self.message.clone() }
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
            .map_err(|rejection| ApiError::bad_request(ErrorCode::InvalidPath, rejection.body_text()))?;
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
            .map_err(|rejection| ApiError::bad_request(ErrorCode::InvalidQuery, rejection.body_text()))?;
        Ok(ApiQuery(value))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
