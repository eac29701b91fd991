//! The proof-of-work seal: a nonce that gives the block hash `difficulty` leading zero bits.
//! Rewriting history then costs work even with stolen validator keys, and a faulty primary
//! cannot flood the chain with proposals.

use crate::block::Header;

/// Searches nonces from `header.pow_nonce` upward until the hash meets the header's difficulty.
/// Returns the number of hashes tried. Expected work is `2^difficulty` hashes.
pub fn seal(header: &mut Header) -> u64 {
    let mut tries = 1;
    while !is_sealed(header) {
        header.pow_nonce = header.pow_nonce.wrapping_add(1);
        tries += 1;
    }
    tries
}

/// True if the header's hash has at least `pow_difficulty` leading zero bits.
pub fn is_sealed(header: &Header) -> bool {
    header.hash().leading_zero_bits() >= u32::from(header.pow_difficulty)
}
