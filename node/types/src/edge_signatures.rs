//! Signatures no ordinary signer makes, for tests and the simulation's hostile clients: R or the
//! key carrying a torsion point, non-canonical encodings. Each is built from the curve with a key
//! whose secret scalar is known (test-only feature `edge-signatures`).

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use crate::crypto::{Domain, PublicKey, Signature, SigningKey, signing_bytes};

/// The order of the prime-order subgroup, `2^252 + 27742317777372353535851937790883648493`,
/// little-endian.
pub const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// A point of order 8: `[4]T` is not the identity, `[8]T` is.
pub fn torsion() -> EdwardsPoint {
    EIGHT_TORSION[1]
}

pub fn encode_point(point: EdwardsPoint) -> [u8; 32] {
    point.compress().to_bytes()
}

pub fn hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    Scalar::from_bytes_mod_order_wide(&hasher.finalize().into())
}

pub fn signature_of(r_bytes: [u8; 32], s_bytes: [u8; 32]) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&r_bytes);
    bytes[32..].copy_from_slice(&s_bytes);
    Signature(bytes)
}

/// A key whose secret scalar `a` (with `A = [a]B`) is known.
#[derive(Debug, Clone)]
pub struct EdgeSigner {
    pub key: SigningKey,
    pub secret: Scalar,
    pub point: EdwardsPoint,
}

impl EdgeSigner {
    pub fn new(key: SigningKey) -> EdgeSigner {
        // RFC 8032 section 5.1.5: the secret scalar is the clamped first half of SHA-512(seed).
        let mut scalar_bytes = [0u8; 32];
        scalar_bytes.copy_from_slice(&Sha512::digest(key.seed())[..32]);
        scalar_bytes[0] &= 248;
        scalar_bytes[31] &= 127;
        scalar_bytes[31] |= 64;
        let secret = Scalar::from_bytes_mod_order(scalar_bytes);
        let point = ED25519_BASEPOINT_POINT * secret;
        EdgeSigner { key, secret, point }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// `s = r + k·a` with `k = SHA-512(R_bytes || key_bytes || message)`: the equation holds for
    /// any `R_bytes` that decodes to `[r]B` plus a torsion point, and any `key_bytes` that decodes
    /// to `A` plus a torsion point.
    pub fn sign_raw(
        &self,
        domain: Domain,
        chain_id: &str,
        key_bytes: [u8; 32],
        r_bytes: [u8; 32],
        r: Scalar,
        payload: &[u8],
    ) -> Signature {
        let message = signing_bytes(domain, chain_id, payload);
        let k = hash_to_scalar(&[&r_bytes, &key_bytes, &message]);
        signature_of(r_bytes, (r + k * self.secret).to_bytes())
    }

    /// A deterministic nonce scalar for `label` and `payload`.
    pub fn nonce(&self, label: &str, payload: &[u8]) -> Scalar {
        hash_to_scalar(&[label.as_bytes(), &self.key.seed(), payload])
    }

    /// Valid under the rule: `R = [r]B + T` with `T` of order 8.
    pub fn mixed_order_r(&self, domain: Domain, chain_id: &str, payload: &[u8]) -> Signature {
        let r = self.nonce("mixed-order R", payload);
        let r_bytes = encode_point(ED25519_BASEPOINT_POINT * r + torsion());
        self.sign_raw(domain, chain_id, self.public_key().0, r_bytes, r, payload)
    }

    /// Valid under the rule: `R = T` of order 8, `s = k·a`.
    pub fn small_order_r(&self, domain: Domain, chain_id: &str, payload: &[u8]) -> Signature {
        let r_bytes = encode_point(torsion());
        self.sign_raw(domain, chain_id, self.public_key().0, r_bytes, Scalar::ZERO, payload)
    }

    /// Refused by the rule: an honest signature with `s` replaced by `s + L`.
    pub fn non_canonical_s(&self, domain: Domain, chain_id: &str, payload: &[u8]) -> Signature {
        let honest = self.key.sign(domain, chain_id, payload);
        let mut s_plus_l = [0u8; 32];
        let mut carry = 0u16;
        for (index, byte) in s_plus_l.iter_mut().enumerate() {
            let sum = u16::from(honest.0[32 + index]) + u16::from(ORDER_L[index]) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&honest.0[..32]);
        signature_of(r_bytes, s_plus_l)
    }
}
