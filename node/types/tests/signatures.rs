//! The signature rule (ZIP-215, docs/encoding.md section 7.2) on its edge cases, alone and in
//! batches. The property that keeps honest nodes together: a signature's verdict is a function of
//! its bytes, never of the batch it is checked in.
//!
//! The edge cases are signatures no ordinary signer makes (torsion points, non-canonical
//! encodings), built here from curve points with keys whose secret scalar the test knows.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::scalar::Scalar;
use kubechain_types::crypto::{SignedPayload, signing_bytes, verify_batch};
use kubechain_types::edge_signatures::{self, EdgeCase, EdgeSigner, encode_point, hash_to_scalar, torsion};
use kubechain_types::{Domain, PublicKey, Signature, SigningKey};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

const CHAIN_ID: &str = "signatures-1";
const DOMAIN: Domain = Domain::Transaction;
/// How often a batch is checked again: each check draws fresh random weights, and a rule whose
/// verdict depended on them (as cofactorless batch verification does for a torsion component)
/// would disagree with itself within a few dozen draws.
const REPEATS: usize = 64;

/// A node's key whose secret scalar the test knows, signing in this file's domain and chain.
struct Signer(EdgeSigner);

impl Signer {
    fn new(seed_byte: u8) -> Signer {
        let signer = EdgeSigner::new(SigningKey::from_seed([seed_byte; 32]));
        assert_eq!(
            encode_point(signer.point),
            signer.public_key().0,
            "the secret scalar of seed {seed_byte}"
        );
        Signer(signer)
    }

    fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }

    fn sign_raw(&self, key_bytes: [u8; 32], r_bytes: [u8; 32], r: Scalar, payload: &[u8]) -> Signature {
        self.0.sign_raw(DOMAIN, CHAIN_ID, key_bytes, r_bytes, r, payload)
    }

    fn nonce(&self, label: &str, payload: &[u8]) -> Scalar {
        self.0.nonce(label, payload)
    }
}

fn item(case: &EdgeCase) -> SignedPayload<'_> {
    SignedPayload {
        key: &case.key,
        domain: DOMAIN,
        chain_id: CHAIN_ID,
        payload: &case.payload,
        signature: &case.signature,
    }
}

fn single_verdict(case: &EdgeCase) -> bool {
    case.key.verify(DOMAIN, CHAIN_ID, &case.payload, &case.signature).is_ok()
}

fn valid(signer: &Signer, payload: &[u8]) -> EdgeCase {
    EdgeCase {
        name: "valid",
        key: signer.public_key(),
        payload: payload.to_vec(),
        signature: signer.0.key.sign(DOMAIN, CHAIN_ID, payload),
        accepted: true,
    }
}

fn edge_cases(signer: &Signer, payload: &[u8]) -> Vec<EdgeCase> {
    edge_signatures::edge_cases(&signer.0, DOMAIN, CHAIN_ID, payload)
}

/// Batch verdicts of `cases`, checked against their single verdicts and their expected ones.
fn assert_batch_agrees(cases: &[EdgeCase], context: &str) {
    let items: Vec<SignedPayload<'_>> = cases.iter().map(item).collect();
    let verdicts = verify_batch(&items);
    assert_eq!(verdicts.len(), cases.len(), "{context}");
    for (index, (case, verdict)) in cases.iter().zip(verdicts).enumerate() {
        assert_eq!(verdict, single_verdict(case), "{context}: item {index} ({}) batch vs single", case.name);
        assert_eq!(verdict, case.accepted, "{context}: item {index} ({}) vs ZIP-215", case.name);
    }
}

#[test]
fn each_edge_case_has_its_zip215_verdict_alone_and_in_batches() {
    let signer = Signer::new(0x51);
    let others: Vec<Signer> = (0x61..0x64).map(Signer::new).collect();
    let companions: Vec<EdgeCase> = others.iter().map(|other| valid(other, b"companion")).collect();
    let cases = edge_cases(&signer, b"edge");
    let verdicts: Vec<(&str, bool)> = cases.iter().map(|case| (case.name, case.accepted)).collect();
    assert_eq!(
        verdicts,
        [
            ("mixed-order R", true),
            ("small-order R", true),
            ("non-canonical R", true),
            ("mixed-order A", true),
            ("small-order A", true),
            ("non-canonical A", true),
            ("non-canonical s", false),
            ("R not a point", false),
            ("A not a point", false),
            ("flipped bit", false),
            ("wrong message", false),
        ]
    );
    for case in &cases {
        assert_eq!(single_verdict(case), case.accepted, "{} alone", case.name);
        for repeat in 0..REPEATS {
            // Between valid signatures: the batch holds exactly when the case is accepted.
            let mut batch = companions.clone();
            batch.insert(repeat % (batch.len() + 1), case.clone());
            assert_batch_agrees(&batch, &format!("{} among valid signatures, repeat {repeat}", case.name));
        }
    }
    // All of them at once, so the batch fails and every verdict comes from the fallback.
    for repeat in 0..REPEATS {
        let mut batch: Vec<EdgeCase> = cases.iter().chain(&companions).cloned().collect();
        batch.rotate_left(repeat % cases.len());
        assert_batch_agrees(&batch, &format!("all edge cases together, repeat {repeat}"));
    }
    // Only the accepted ones: the batch equation itself holds for every one of them.
    for repeat in 0..REPEATS {
        let batch: Vec<EdgeCase> =
            cases.iter().chain(&companions).filter(|case| case.accepted).cloned().collect();
        let items: Vec<SignedPayload<'_>> = batch.iter().map(item).collect();
        assert_eq!(verify_batch(&items), vec![true; batch.len()], "accepted edge cases, repeat {repeat}");
    }
}

/// The signature that split the chain. R carries a torsion point of order 8. ed25519-dalek's
/// `verify_strict` (cofactorless, the old single check) refused it alone, while its cofactorless
/// `verify_batch` accepted the whole batch whenever the random weight of this item happened to be
/// a multiple of 8 (one draw in 8): so the same transaction passed admission on one node and
/// failed block execution on another. Under ZIP-215 both checks multiply by the cofactor 8, the
/// torsion point vanishes, and the signature is accepted alone and in every batch.
#[test]
fn a_mixed_order_r_is_accepted_alone_and_in_every_batch() {
    let signer = Signer::new(0x52);
    let payload = b"transfer";
    let r = signer.nonce("split", payload);
    let r_bytes = encode_point(ED25519_BASEPOINT_POINT * r + torsion());
    let key = signer.public_key();
    let signature = signer.sign_raw(key.0, r_bytes, r, payload);
    // The cofactorless equation does not hold: [s]B - [k]A is [r]B, not R.
    let message = signing_bytes(DOMAIN, CHAIN_ID, payload);
    let k = hash_to_scalar(&[&r_bytes, &key.0, &message]);
    let s = Scalar::from_canonical_bytes(signature.0[32..].try_into().expect("32 bytes")).expect("s < L");
    assert_ne!(encode_point(ED25519_BASEPOINT_POINT * s - signer.0.point * k), r_bytes);

    assert_eq!(key.verify(DOMAIN, CHAIN_ID, payload, &signature), Ok(()), "alone");
    let case = EdgeCase { name: "mixed-order R", key, payload: payload.to_vec(), signature, accepted: true };
    let others: Vec<Signer> = (0x70..0x78).map(Signer::new).collect();
    for repeat in 0..REPEATS {
        let mut batch: Vec<EdgeCase> =
            others.iter().take(repeat % others.len()).map(|other| valid(other, b"other")).collect();
        batch.push(case.clone());
        if repeat % 2 == 1 {
            // A refused companion too, so the verdicts come from the fallback.
            batch.push(EdgeCase {
                accepted: false,
                payload: b"forged".to_vec(),
                ..valid(&others[0], b"other")
            });
        }
        assert_batch_agrees(&batch, &format!("batch of {}, repeat {repeat}", batch.len()));
    }
}

/// The signature rule accepts the small-order keys' "signatures" anyone can make; registration
/// is what keeps such keys out. A mixed-order key is not small order: it may register, and only
/// the holder of its prime-order part can sign for it.
#[test]
fn registration_refuses_the_keys_anyone_can_sign_for() {
    let signer = Signer::new(0x53);
    for case in edge_cases(&signer, b"keys") {
        let expected = !matches!(case.name, "small-order A" | "non-canonical A" | "A not a point");
        assert_eq!(case.key.is_valid(), expected, "{}: is_valid", case.name);
    }
}

/// Random batches of valid signatures, edge cases and plainly invalid ones: the batch verdict of
/// every item equals its single verdict and its ZIP-215 verdict.
#[test]
fn batch_verdicts_equal_single_verdicts_on_random_mixes() {
    let seed = 0x5eed_0215;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let signers: Vec<Signer> = (0x80..0x88).map(Signer::new).collect();
    let mut accepted_batches = 0;
    for round in 0..200 {
        let size = 1 + (rng.next_u32() % 40) as usize;
        // A third of the rounds only draw accepted signatures, so the batch equation decides them.
        let only_accepted = round % 3 == 0;
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            let signer = &signers[(rng.next_u32() as usize) % signers.len()];
            let mut payload = [0u8; 16];
            rng.fill_bytes(&mut payload);
            let case = match rng.next_u32() % 4 {
                0 | 1 => valid(signer, &payload),
                _ => {
                    let cases = edge_cases(signer, &payload);
                    cases[(rng.next_u32() as usize) % cases.len()].clone()
                }
            };
            if case.accepted || !only_accepted {
                batch.push(case);
            }
        }
        if batch.iter().all(|case| case.accepted) {
            accepted_batches += 1;
        }
        assert_batch_agrees(&batch, &format!("seed {seed:#x}, round {round}, {size} items"));
    }
    assert!(accepted_batches >= 60, "only {accepted_batches} rounds were all accepted");
}
