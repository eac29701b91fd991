//! The bytes of one frame an authenticated peer sends (after the handshake, length prefix
//! removed), decoded as the link task does (`Frame::decode`); then, for a consensus message, the
//! checks a replica runs on it before its state machine takes it (`claimed_view_and_height`,
//! `verify` of each kind against the fixed validator set, the block checks, the NEW-VIEW
//! selection), on the message as received and once more re-signed by the fixture keys. Every
//! check must answer with a verdict, never panic.
#![no_main]

use kubechain_consensus::{Message, view_change};
use kubechain_fuzz::{CHAIN_ID, POW_DIFFICULTY_BITS, fixture, repair};
use kubechain_network::Frame;
use kubechain_types::Transaction;
use kubechain_types::encoding::encode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else { return };
    // One encoding per value (docs/encoding.md): what decoded encodes back to the same bytes.
    assert_eq!(encode(&frame), data, "a frame decoded from non-canonical bytes");
    match &frame {
        Frame::Consensus(message) => {
            check(message);
            let repaired = repair::message(message);
            check(&repaired);
            signed_by_a_validator_verifies(&repaired);
        }
        Frame::Transactions(transactions) => {
            let verdicts = Transaction::verify_signatures(&transactions.iter().collect::<Vec<_>>());
            for (transaction, verdict) in transactions.iter().zip(verdicts) {
                assert_eq!(verdict, transaction.verify_signature().is_ok(), "batch and single verdicts differ");
                let _ = transaction.hash();
            }
        }
    }
});

/// What a replica does with a message before acting on it; the verdicts do not matter here.
fn check(message: &Message) {
    let fixture = fixture();
    let validators = &fixture.validators;
    let _ = (message.claimed_view_and_height(), message.kind(), message.digest(), message.to_string());
    match message {
        Message::PrePrepare(pre_prepare) => {
            let _ = pre_prepare.verify(CHAIN_ID, validators);
            let _ = pre_prepare.block.check_integrity(CHAIN_ID, POW_DIFFICULTY_BITS);
            let _ = pre_prepare.block.check_body();
        }
        Message::Vote(vote) => {
            let _ = vote.verify(CHAIN_ID, validators);
        }
        Message::Checkpoint(checkpoint) => {
            let _ = checkpoint.verify(CHAIN_ID, validators);
        }
        Message::ViewChange(view_change) => {
            let _ = view_change.verify(CHAIN_ID, validators);
        }
        Message::NewView(new_view) => {
            // The blocks to re-propose are derived only from a NEW-VIEW that verified.
            if new_view.verify(CHAIN_ID, validators).is_ok() {
                let selection = view_change::select(&new_view.view_changes, fixture.genesis_hash);
                let _ = selection.last_height();
            }
        }
        Message::StateRequest { .. } => {}
        Message::StateResponse { blocks, .. } => {
            for certified in blocks {
                let _ = certified.certificate.verify(CHAIN_ID, validators);
                let _ = certified.block.check_integrity(CHAIN_ID, POW_DIFFICULTY_BITS);
            }
        }
    }
}

/// A vote, checkpoint or proposal that a validator of the fixture just signed must verify,
/// whatever it says: signing and verifying agree on every value.
fn signed_by_a_validator_verifies(message: &Message) {
    let validators = &fixture().validators;
    match message {
        Message::Vote(vote) if validators.contains(&vote.voter) => {
            assert_eq!(vote.verify(CHAIN_ID, validators).map_err(|r| r.to_string()), Ok(()));
        }
        Message::Checkpoint(checkpoint) if validators.contains(&checkpoint.voter) => {
            assert_eq!(checkpoint.verify(CHAIN_ID, validators).map_err(|r| r.to_string()), Ok(()));
        }
        Message::PrePrepare(pre_prepare) if pre_prepare.primary == validators.primary(pre_prepare.view) => {
            assert_eq!(pre_prepare.verify(CHAIN_ID, validators).map_err(|r| r.to_string()), Ok(()));
        }
        _ => {}
    }
}
