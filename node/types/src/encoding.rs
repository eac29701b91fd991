//! The canonical binary encoding: Borsh (<https://borsh.io>), which has exactly one encoding per
//! value (little-endian fixed-width integers, u32 length prefixes, u8 enum tags, no padding).

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded object accepted from outside (a block with its transactions fits easily).
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("input of {0} bytes exceeds the {MAX_DECODE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// The canonical bytes of `value`.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    // Writing into a Vec cannot fail; borsh only reports errors of the underlying writer.
    borsh::to_vec(value).unwrap_or_else(|error| unreachable!("encoding into memory failed: {error}"))
}

/// Decodes canonical bytes, rejecting trailing bytes and oversized input.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_DECODE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    borsh::from_slice(bytes).map_err(|error| DecodeError::Malformed(error.to_string()))
}
