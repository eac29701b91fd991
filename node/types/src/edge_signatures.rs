//! Signatures no ordinary signer makes, for tests and the simulation's hostile clients: R or the
//! key carrying a torsion point, non-canonical encodings. Each is built from the curve with a key
//! whose secret scalar is known (test-only feature `edge-signatures`).

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
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

/// The identity point encoded with `y = p + 1` (`p = 2^255 - 19`) instead of `y = 1`.
pub fn non_canonical_identity() -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xee;
    bytes[31] = 0x7f;
    let decoded = CompressedEdwardsY(bytes).decompress();
    assert!(decoded.is_some_and(|point| point.is_identity() && point.compress().to_bytes() != bytes));
    bytes
}

/// 32 bytes that are not the encoding of any curve point.
pub fn off_curve() -> [u8; 32] {
    (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none())
        .unwrap_or_else(|| unreachable!("half of all encodings are off the curve"))
}

/// A signature to check, with the verdict the rule (ZIP-215, docs/encoding.md section 7.2) gives.
#[derive(Clone, Debug)]
pub struct EdgeCase {
    pub name: &'static str,
    pub key: PublicKey,
    pub payload: Vec<u8>,
    pub signature: Signature,
    pub accepted: bool,
}

/// The edge cases of docs/encoding.md section 7.2 over `payload`, each with its verdict: what the
/// signature tests check alone and in batches, and what the test vectors list.
pub fn edge_cases(signer: &EdgeSigner, domain: Domain, chain_id: &str, payload: &[u8]) -> Vec<EdgeCase> {
    let case = |name, key: [u8; 32], signature, accepted| EdgeCase {
        name,
        key: PublicKey(key),
        payload: payload.to_vec(),
        signature,
        accepted,
    };
    let key = signer.public_key().0;
    let t = torsion();
    let r = signer.nonce("mixed", payload);
    let honest = signer.key.sign(domain, chain_id, payload);
    let mut honest_r = [0u8; 32];
    honest_r.copy_from_slice(&honest.0[..32]);
    let mut honest_s = [0u8; 32];
    honest_s.copy_from_slice(&honest.0[32..]);
    let mut flipped = honest;
    flipped.0[40] ^= 0x10;
    let zero = [0u8; 32];
    let mixed_order_key = encode_point(signer.point + t);
    let key_nonce = signer.nonce("mixed-a", payload);
    let mixed_order_key_signature = signer.sign_raw(
        domain,
        chain_id,
        mixed_order_key,
        encode_point(ED25519_BASEPOINT_POINT * key_nonce),
        key_nonce,
        payload,
    );
    let sign_raw = |key_bytes, r_bytes, r| signer.sign_raw(domain, chain_id, key_bytes, r_bytes, r, payload);

    vec![
        // R = [r]B + T: the torsion component vanishes in the cofactored equation.
        case("mixed-order R", key, sign_raw(key, encode_point(ED25519_BASEPOINT_POINT * r + t), r), true),
        // R = T, s = k·a: [8]R is the identity, and [8][s]B = [8][k]A.
        case("small-order R", key, sign_raw(key, encode_point(t), Scalar::ZERO), true),
        // R the identity with y = p + 1; k hashes these bytes as they are.
        case("non-canonical R", key, sign_raw(key, non_canonical_identity(), Scalar::ZERO), true),
        // A' = A + T: only the holder of a can sign, and the torsion vanishes in [8][k]A'.
        case("mixed-order A", mixed_order_key, mixed_order_key_signature, true),
        // A and R small order, s = 0: both sides are the identity, for any message. Anyone can
        // make it, which is why such keys are refused at registration.
        case("small-order A", encode_point(EIGHT_TORSION[2]), signature_of(encode_point(t), zero), true),
        // A the identity with y = p + 1, R small order, s = 0: as above.
        case("non-canonical A", non_canonical_identity(), signature_of(encode_point(t), zero), true),
        // An honest signature with s replaced by s + L.
        case("non-canonical s", key, signer.non_canonical_s(domain, chain_id, payload), false),
        case("R not a point", key, signature_of(off_curve(), honest_s), false),
        case("A not a point", off_curve(), honest, false),
        case("flipped bit", key, flipped, false),
        EdgeCase {
            name: "wrong message",
            key: PublicKey(key),
            payload: [payload, b"!"].concat(),
            signature: honest,
            accepted: false,
        },
    ]
}
