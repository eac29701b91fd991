//! What a replica checks on a proposed block before it executes it and sends PREPARE (the
//! signature and the primary are checked with the message, the state root by execution), and the
//! one check of the rules a block commits to, wherever a block comes from.

use kubechain_types::{ConsensusParams, HashedRules, Header};

use crate::chain::Parent;
use crate::messages::PrePrepare;
use crate::rejection::{RejectKind, Rejection};

/// How far a proposal's timestamp may run ahead of this replica's clock.
const MAX_CLOCK_SKEW_MS: u64 = 10_000;

/// Checks the block of `pre_prepare`, whose height is governed by `params`, against the `parent`
/// it must extend: its integrity and seal, that its header matches the pre-prepare, its place on
/// the chain, its timestamp (not before its parent's, not far ahead of `now_ms`) and its size.
pub(crate) fn check_proposed_block(
    pre_prepare: &PrePrepare,
    parent: &Parent,
    chain_id: &str,
    params: &ConsensusParams,
    now_ms: u64,
) -> Result<(), Rejection> {
    let header = &pre_prepare.block.header;
    let bad = |detail: String| Rejection::new(RejectKind::BadBlock, detail);
    pre_prepare
        .block
        .check_integrity(chain_id, params.pow_difficulty_bits)
        .map_err(|error| bad(error.to_string()))?;
    if header.view != pre_prepare.view || header.proposer != pre_prepare.primary {
        return Err(bad("header view or proposer differs from the pre-prepare".into()));
    }
    if header.previous_hash != parent.hash {
        return Err(bad(format!("previous hash {:?} is not {:?}", header.previous_hash, parent.hash)));
    }
    if header.timestamp_ms < parent.timestamp_ms || header.timestamp_ms > now_ms + MAX_CLOCK_SKEW_MS {
        return Err(bad(format!("timestamp {} out of range", header.timestamp_ms)));
    }
    if pre_prepare.block.transactions.len() > params.max_block_txs as usize {
        return Err(bad("too many transactions".into()));
    }
    Ok(())
}

/// Checks that `header` commits to `rules_after`: the latest scheduled rules once its block's
/// admin operations are applied to its parent's. Offline verifiers rely on it to tell a receipt
/// that left a rule change out; a block naming other rules (say, without its own admin operation)
/// would have them follow rules the chain never had. The error says what differs.
pub(crate) fn check_rules_hash(header: &Header, rules_after: &HashedRules) -> Result<(), String> {
    if header.rules_hash == rules_after.hash() {
        return Ok(());
    }
    Err(format!(
        "block {:?} at height {} commits to rules {:?}; its admin operations on its parent's rules give {:?}",
        header.hash(),
        header.height,
        header.rules_hash,
        rules_after.hash()
    ))
}

#[cfg(test)]
mod tests {
    use kubechain_types::{Block, Hash, Header, SigningKey, Transaction, TxBody};

    use super::*;

    const CHAIN: &str = "proposal-test";
    const NOW_MS: u64 = 1_000_000;

    fn primary() -> SigningKey {
        SigningKey::from_seed([1; 32])
    }

    fn params() -> ConsensusParams {
        ConsensusParams { max_block_txs: 2, pow_difficulty_bits: 4, ..ConsensusParams::default() }
    }

    fn parent() -> Parent {
        Parent {
            hash: Hash::digest(b"parent"),
            state_root: Hash::digest(b"state"),
            timestamp_ms: NOW_MS - 500,
        }
    }

    fn transaction(nonce: u64) -> Transaction {
        let body =
            TxBody { chain_id: CHAIN.into(), sender: primary().public_key(), nonce, operations: Vec::new() };
        Transaction::new(body, &primary())
    }

    /// A block proposed in view 3 by `primary()`, sealed after `change` edits its header.
    fn proposal(transactions: usize, change: impl FnOnce(&mut Header)) -> PrePrepare {
        let mut header = Header {
            chain_id: CHAIN.into(),
            height: 9,
            view: 3,
            previous_hash: parent().hash,
            tx_root: Hash::ZERO,
            state_root: Hash::digest(b"after"),
            rules_hash: Hash::digest(b"rules"),
            timestamp_ms: NOW_MS,
            proposer: primary().public_key(),
            pow_difficulty: params().pow_difficulty_bits,
            pow_nonce: 0,
        };
        change(&mut header);
        let mut block = Block::new(header, (1..=transactions as u64).map(transaction).collect());
        block.header.seal();
        PrePrepare::new(3, block, CHAIN, &primary())
    }

    fn check(pre_prepare: &PrePrepare) -> Result<(), RejectKind> {
        check_proposed_block(pre_prepare, &parent(), CHAIN, &params(), NOW_MS).map_err(|r| r.kind)
    }

    #[test]
    fn a_well_formed_proposal_passes() {
        assert_eq!(check(&proposal(2, |_| {})), Ok(()));
        // Its timestamp may equal its parent's, or run ahead of this clock by the allowed skew.
        assert_eq!(check(&proposal(0, |h| h.timestamp_ms = parent().timestamp_ms)), Ok(()));
        assert_eq!(check(&proposal(0, |h| h.timestamp_ms = NOW_MS + MAX_CLOCK_SKEW_MS)), Ok(()));
    }

    #[test]
    fn a_block_that_does_not_fit_its_place_is_a_bad_block() {
        let cases: Vec<(&str, PrePrepare)> = vec![
            ("another chain", proposal(0, |h| h.chain_id = "elsewhere".into())),
            ("another difficulty", proposal(0, |h| h.pow_difficulty = 0)),
            ("another view", proposal(0, |h| h.view = 4)),
            ("another proposer", proposal(0, |h| h.proposer = SigningKey::from_seed([2; 32]).public_key())),
            ("another parent", proposal(0, |h| h.previous_hash = Hash::digest(b"other"))),
            ("older than its parent", proposal(0, |h| h.timestamp_ms = parent().timestamp_ms - 1)),
            ("too far ahead", proposal(0, |h| h.timestamp_ms = NOW_MS + MAX_CLOCK_SKEW_MS + 1)),
            ("too many transactions", proposal(3, |_| {})),
        ];
        for (case, pre_prepare) in cases {
            assert_eq!(check(&pre_prepare), Err(RejectKind::BadBlock), "{case}");
        }
        // An unsealed block: the nonce search is undone.
        let mut unsealed = proposal(0, |_| {});
        while unsealed.block.header.is_sealed() {
            unsealed.block.header.pow_nonce += 1;
        }
        assert_eq!(check(&unsealed), Err(RejectKind::BadBlock));
    }
}
