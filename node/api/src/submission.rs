//! Reading the body of `POST /v1/transactions`: one JSON transaction, a JSON array of them, or
//! (for high-rate clients) the canonical binary encoding of a list. Pure, so the node and the
//! `transaction_json` and `transaction_borsh` fuzz targets read a body exactly alike.

use kubechain_types::Transaction;

use crate::ErrorCode;

/// A submission as read: its transactions, and whether it was a single JSON transaction (which
/// is answered on its own, not as a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub transactions: Vec<Transaction>,
    pub single: bool,
}

/// Why a body is not a submission; `code` is the error code the node answers with (400, or 415
/// for `unsupported_media_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionError {
    pub code: ErrorCode,
    pub message: String,
}

/// Reads `body` as sent with `content_type` (its media type; parameters are ignored, and no
/// content type is JSON). JSON goes straight into transactions, never through a generic JSON
/// tree: a large body costs its own size once. The first character says which shape it is.
pub fn parse_submission(content_type: &str, body: &[u8]) -> Result<Submission, SubmissionError> {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let error = |code, message: String| SubmissionError { code, message };
    match media_type {
        "application/json" | "" => {
            if body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
                let transactions = serde_json::from_slice(body).map_err(|e| {
                    error(ErrorCode::MalformedJson, format!("not a list of transactions: {e}"))
                })?;
                Ok(Submission { transactions, single: false })
            } else {
                let transaction = serde_json::from_slice(body)
                    .map_err(|e| error(ErrorCode::MalformedJson, format!("not a transaction: {e}")))?;
                Ok(Submission { transactions: vec![transaction], single: true })
            }
        }
        "application/octet-stream" => {
            let transactions = kubechain_types::encoding::decode(body).map_err(|e| {
                error(ErrorCode::MalformedBinary, format!("not an encoded list of transactions: {e}"))
            })?;
            Ok(Submission { transactions, single: false })
        }
        other => Err(error(
            ErrorCode::UnsupportedMediaType,
            format!("content type {other:?}: use application/json or application/octet-stream"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use kubechain_types::encoding::encode;
    use kubechain_types::{Operation, SigningKey, TxBody};

    use super::*;

    fn tx(nonce: u64) -> Transaction {
        let key = SigningKey::from_seed([5; 32]);
        let body = TxBody {
            chain_id: "c".into(),
            sender: key.public_key(),
            nonce,
            operations: vec![Operation::Delete { key: "k".into() }],
        };
        Transaction::new(body, &key)
    }

    #[test]
    fn one_transaction_a_list_or_the_binary_encoding() {
        let one = serde_json::to_vec(&tx(1)).unwrap();
        let list = serde_json::to_vec(&vec![tx(1), tx(2)]).unwrap();
        assert_eq!(parse_submission("", &one), Ok(Submission { transactions: vec![tx(1)], single: true }));
        let expected = Submission { transactions: vec![tx(1), tx(2)], single: false };
        assert_eq!(
            parse_submission("application/json; charset=utf-8", &[b" \n", &list[..]].concat()),
            Ok(expected.clone())
        );
        assert_eq!(parse_submission("application/octet-stream", &encode(&vec![tx(1), tx(2)])), Ok(expected));
    }

    #[test]
    fn what_is_not_a_submission_gets_its_code() {
        let code = |content_type, body: &[u8]| parse_submission(content_type, body).map_err(|e| e.code);
        assert_eq!(code("application/json", b"{\"nope\":1}"), Err(ErrorCode::MalformedJson));
        assert_eq!(code("application/json", b"[1,2]"), Err(ErrorCode::MalformedJson));
        assert_eq!(code("", b""), Err(ErrorCode::MalformedJson));
        assert_eq!(code("application/octet-stream", b"\x01"), Err(ErrorCode::MalformedBinary));
        assert_eq!(code("text/plain", b"{}"), Err(ErrorCode::UnsupportedMediaType));
    }
}
