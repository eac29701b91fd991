//! API errors: an HTTP status and a JSON body `{code, message}` ([`ErrorBody`]) whose `code` is
//! stable ([`ErrorCode`]).

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kubechain_api::{ErrorBody, ErrorCode};
use kubechain_ledger::{AdmitError, TxError};
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
        let code = refusal_code(error);
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

/// The documented code of a refusal. An exhaustive match: a new refusal of the ledger does not
/// compile until it has a code here (and in kubechain-api's `ErrorCode`).
fn refusal_code(error: &AdmitError) -> ErrorCode {
    match error {
        AdmitError::Full(_) => ErrorCode::MempoolFull,
        AdmitError::Duplicate(_) => ErrorCode::Duplicate,
        AdmitError::TooFarAhead { .. } => ErrorCode::NonceTooFarAhead,
        AdmitError::GapFull(_) => ErrorCode::NonceGapFull,
        AdmitError::Expired(_) => ErrorCode::Expired,
        AdmitError::Invalid(invalid) => match invalid {
            TxError::WrongChain { .. } => ErrorCode::WrongChain,
            TxError::UnknownSender(_) => ErrorCode::UnknownSender,
            TxError::Nonce { .. } => ErrorCode::BadNonce,
            TxError::BadSignature => ErrorCode::BadSignature,
            TxError::NotAdmin(_) => ErrorCode::NotAdmin,
            TxError::NotMember => ErrorCode::NotMember,
            TxError::Invalid(_) => ErrorCode::InvalidOperation,
            TxError::Empty => ErrorCode::EmptyTransaction,
            TxError::TooLarge { .. } => ErrorCode::TransactionTooLarge,
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use kubechain_types::PublicKey;

    use super::*;

    /// The API's code for each refusal is the one the ledger names (docs and clients read it).
    #[test]
    fn every_refusal_answers_with_the_code_the_ledger_names() {
        let refusals = [
            AdmitError::Full(1),
            AdmitError::Duplicate(1),
            AdmitError::TooFarAhead { found: 9, committed: 1, limit: 4 },
            AdmitError::GapFull(1),
            AdmitError::Expired(1),
            AdmitError::Invalid(TxError::WrongChain { expected: "a".into(), found: "b".into() }),
            AdmitError::Invalid(TxError::UnknownSender(PublicKey([1; 32]))),
            AdmitError::Invalid(TxError::Nonce { expected: 1, found: 2 }),
            AdmitError::Invalid(TxError::BadSignature),
            AdmitError::Invalid(TxError::NotAdmin("add members")),
            AdmitError::Invalid(TxError::NotMember),
            AdmitError::Invalid(TxError::Invalid("bad".into())),
            AdmitError::Invalid(TxError::Empty),
            AdmitError::Invalid(TxError::TooLarge { bytes: 1, operations: 1 }),
        ];
        for refusal in &refusals {
            let error = ApiError::admission(refusal);
            assert_eq!(error.code.as_str(), refusal.code(), "{refusal:?}");
        }
    }
}
