//! The error body every failed request answers with: `{code, message}`, `code` stable.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An error answer. The HTTP status comes with it; the `code` says what went wrong for programs,
/// the `message` for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Declares [`ErrorCode`] with its wire names once: the enum, [`ErrorCode::ALL`] and
/// [`ErrorCode::as_str`] cannot disagree.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal,)+) => {
        /// Why a request failed: stable codes, snake_case on the wire.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ #[serde(rename = $code)] $variant,)+
            /// Read only: a code this build does not know, from a newer node. Never sent, and not
            /// in [`ErrorCode::ALL`] or the OpenAPI document.
            #[serde(other, rename = "unrecognised")]
            #[schemars(skip)]
            Unrecognised,
        }

        impl ErrorCode {
            /// Every code, in the order they are declared.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it is written on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                    ErrorCode::Unrecognised => "unrecognised",
                }
            }
        }
    };
}

error_codes! {
    /// 400: the body is not JSON, or not a transaction or a list of them.
    MalformedJson = "malformed_json",
    /// 400: an `application/octet-stream` body is not the canonical encoding of a list of
    /// transactions.
    MalformedBinary = "malformed_binary",
    /// 415: use `application/json` or `application/octet-stream`.
    UnsupportedMediaType = "unsupported_media_type",
    /// 413: the body is larger than the node's `max_body_bytes`.
    BodyTooLarge = "body_too_large",
    /// 413: more than 20000 transactions in one request.
    TooManyTransactions = "too_many_transactions",
    /// 400: not 64 hex characters.
    InvalidHash = "invalid_hash",
    /// 400: not 64 hex characters.
    InvalidPublicKey = "invalid_public_key",
    /// 400: not a height, a block hash or `latest`.
    InvalidBlockId = "invalid_block_id",
    /// 400: a path segment is not valid UTF-8 after percent-decoding.
    InvalidPath = "invalid_path",
    /// 400: the query string does not parse (`transactions=true|false`).
    InvalidQuery = "invalid_query",
    /// 404: no such route.
    NotFound = "not_found",
    /// 405: the route does not take this method.
    MethodNotAllowed = "method_not_allowed",
    /// 404: this node knows no such transaction (committed, pending or refused).
    TransactionNotFound = "transaction_not_found",
    /// 404: no committed block with this height or hash.
    BlockNotFound = "block_not_found",
    /// 404: the key is not set.
    KeyNotFound = "key_not_found",
    /// 503: the node is stopping.
    NodeUnavailable = "node_unavailable",
    /// 401: this node's API requires `Authorization: Bearer <token>` (all but `/healthz` and
    /// `/readyz`), and the request has none or another token.
    Unauthorized = "unauthorized",
    /// 503: the node is serving as many requests as it takes at once (`api_max_concurrent_requests`);
    /// retry shortly.
    Overloaded = "overloaded",
    /// 503: as many block streams are open as the node serves (`api_max_streams`).
    TooManyStreams = "too_many_streams",
    /// 408: the request (its body included) did not arrive and finish within
    /// `api_request_timeout_ms`.
    RequestTimeout = "request_timeout",
    /// 500: a fault of the node (say, a storage error); the message says which.
    Internal = "internal",
    /// 429: the mempool is full; retry later.
    MempoolFull = "mempool_full",
    /// 409: a transaction with this account's nonce is already waiting.
    Duplicate = "duplicate",
    /// 400: the nonce is too far above the account's last committed nonce.
    NonceTooFarAhead = "nonce_too_far_ahead",
    /// 409: 1024 transactions of the account already wait behind a nonce gap.
    NonceGapFull = "nonce_gap_full",
    /// 400: the transaction is signed for another chain.
    WrongChain = "wrong_chain",
    /// 403: not a member's or an admin's key.
    UnknownSender = "unknown_sender",
    /// 409: replayed or out-of-order nonce.
    BadNonce = "bad_nonce",
    /// 400: the signature does not verify.
    BadSignature = "bad_signature",
    /// 403: an admin operation signed by a key that is not an admin's.
    NotAdmin = "not_admin",
    /// 403: a data operation signed by a key that is no member's.
    NotMember = "not_member",
    /// 400: the operation cannot run against the committed state.
    InvalidOperation = "invalid_operation",
    /// 400: a transaction without operations.
    EmptyTransaction = "empty_transaction",
    /// 400: a transaction is at most 262144 bytes and 64 operations.
    TransactionTooLarge = "transaction_too_large",
    /// Only in a refused transaction's status: no block took it within the node's
    /// `mempool_ttl_secs`.
    Expired = "expired",
}

impl ErrorCode {
    /// The code written `code` on the wire, if there is one.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|known| known.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A newer node's code does not make its answer unreadable here.
    #[test]
    fn an_unknown_code_is_read_as_unrecognised() {
        let body: ErrorBody = serde_json::from_str(r#"{"code":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::Unrecognised);
        assert!(!ErrorCode::ALL.contains(&ErrorCode::Unrecognised));
    }

    #[test]
    fn every_code_is_written_as_its_wire_name() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::from_code("no_such_code"), None);
    }

    #[test]
    fn the_error_body_is_pinned() {
        let body = ErrorBody { code: ErrorCode::BadNonce, message: "expected nonce 3, found 2".into() };
        let json = r#"{"code":"bad_nonce","message":"expected nonce 3, found 2"}"#;
        assert_eq!(serde_json::to_string(&body).unwrap(), json);
        assert_eq!(serde_json::from_str::<ErrorBody>(json).unwrap(), body);
    }
}
