//! State transfer: fetching committed blocks a replica lacks from peers that have them, probing
//! peers for newer blocks when idle, the witnesses that show a replica holds the chain's tip, and
//! the checks on a block received this way.

use std::collections::BTreeSet;

use kubechain_types::{Block, CommitCertificate, HashedRules, PublicKey, ValidatorSet};

use crate::chain::Tip;
use crate::proposal::check_rules_hash;
use crate::rejection::{RejectKind, Rejection};
use kubechain_types::Schedule;

/// A fetch under way: blocks up to `target`, asked of `sources` in turn.
#[derive(Debug)]
struct Fetch {
    target: u64,
    sources: Vec<PublicKey>,
    attempts: usize,
}

/// Whom to ask for blocks next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextRequest {
    /// No fetch is under way.
    Idle,
    Ask(PublicKey),
    /// Every source was asked twice without result: the evidence was stale, and the fetch ended.
    GaveUp,
}

#[derive(Debug)]
pub(crate) struct StateTransfer {
    /// This replica, never a source or a witness of itself.
    me: PublicKey,
    fetch: Option<Fetch>,
    probe_round: usize,
    caught_up: bool,
    /// Peers that answered with nothing above this replica's tip, until `caught_up`.
    up_to_date_peers: BTreeSet<PublicKey>,
}

impl StateTransfer {
    pub fn new(me: PublicKey) -> StateTransfer {
        StateTransfer { me, fetch: None, probe_round: 0, caught_up: false, up_to_date_peers: BTreeSet::new() }
    }

    pub fn is_fetching(&self) -> bool {
        self.fetch.is_some()
    }

    /// The height the fetch under way reaches for.
    pub fn target(&self) -> Option<u64> {
        self.fetch.as_ref().map(|fetch| fetch.target)
    }

    /// See `ReplicaStatus::caught_up`.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// Others committed up to at least `target`, above `tip_height`: fetch from `sources`, or add
    /// them to the fetch under way. True if a new fetch started (ask its first source now).
    pub fn start(&mut self, target: u64, sources: Vec<PublicKey>, tip_height: u64) -> bool {
        if target <= tip_height {
            return false;
        }
        let sources: Vec<PublicKey> = sources.into_iter().filter(|k| *k != self.me).collect();
        match &mut self.fetch {
            Some(fetch) => {
                fetch.target = fetch.target.max(target);
                for source in sources {
                    if !fetch.sources.contains(&source) {
                        fetch.sources.push(source);
                    }
                }
                false
            }
            None if !sources.is_empty() => {
                self.fetch = Some(Fetch { target, sources, attempts: 0 });
                true
            }
            None => false,
        }
    }

    pub fn next_request(&mut self) -> NextRequest {
        let Some(fetch) = self.fetch.as_mut() else { return NextRequest::Idle };
        if fetch.attempts >= 2 * fetch.sources.len() {
            self.fetch = None;
            return NextRequest::GaveUp;
        }
        let source = fetch.sources[fetch.attempts % fetch.sources.len()];
        fetch.attempts += 1;
        NextRequest::Ask(source)
    }

    /// `from` answered; `progressed` if its blocks moved the tip. True if a fetch is under way
    /// and `from` helped: ask it again right away, put first. An answer that did not help asks
    /// nobody (it may be a stray copy); the fetch's timer moves on to the next source.
    pub fn answered(&mut self, from: PublicKey, progressed: bool) -> bool {
        let Some(fetch) = self.fetch.as_mut() else { return false };
        if !progressed {
            return false;
        }
        fetch.attempts = 0;
        fetch.sources.retain(|k| *k != from);
        fetch.sources.insert(0, from);
        true
    }

    /// The tip reached `height`. True if that ended the fetch.
    pub fn committed(&mut self, height: u64) -> bool {
        let reached = self.fetch.as_ref().is_some_and(|fetch| fetch.target <= height);
        if reached {
            self.fetch = None;
        }
        reached
    }

    /// The peers to ask whether there is anything newer, out of `validators`: every one until
    /// this replica knows it is caught up, then one at a time in turn. A replica that missed the
    /// last commits of a chain that then went quiet learns of them this way.
    pub fn probe_targets(&mut self, validators: &ValidatorSet) -> Vec<PublicKey> {
        let peers: Vec<PublicKey> = validators.keys().iter().copied().filter(|k| *k != self.me).collect();
        if peers.is_empty() {
            return peers;
        }
        if self.caught_up {
            self.probe_round = self.probe_round.wrapping_add(1);
            vec![peers[self.probe_round % peers.len()]]
        } else {
            peers
        }
    }

    /// `peer` had nothing above this replica's tip: a witness that it is caught up.
    pub fn up_to_date(&mut self, peer: PublicKey, validators: &ValidatorSet) {
        self.up_to_date_peers.insert(peer);
        self.check_caught_up(validators);
    }

    /// Latches `caught_up` once a quorum of `validators`, this replica included, has nothing
    /// above its tip.
    pub fn check_caught_up(&mut self, validators: &ValidatorSet) {
        if self.caught_up {
            return;
        }
        let reports = self.up_to_date_peers.iter().filter(|k| validators.contains(k)).count()
            + usize::from(validators.contains(&self.me));
        if reports >= validators.quorum() {
            self.caught_up = true;
            self.up_to_date_peers.clear();
        }
    }
}

/// Checks a block received by state transfer, before it is executed: it follows `tip`, its
/// certificate is a valid quorum for it, its seal holds, it extends this replica's chain and it
/// commits to the rules its admin operations give there. Returns those rules.
pub(crate) fn check_certified_block(
    block: &Block,
    certificate: &CommitCertificate,
    tip: &Tip,
    chain_id: &str,
    schedule: &Schedule,
) -> Result<HashedRules, Rejection> {
    let height = block.height();
    let bad = |detail: String| Rejection::new(RejectKind::BadStateResponse, detail);
    if height != tip.height + 1 {
        return Err(bad(format!("block {height} does not follow height {}", tip.height)));
    }
    if certificate.target.height != height || certificate.target.block_hash != block.hash() {
        return Err(bad("certificate is for another block".into()));
    }
    certificate
        .verify(chain_id, schedule.validators_at(height))
        .map_err(|e| Rejection::new(RejectKind::BadCertificate, e.to_string()))?;
    block
        .check_integrity(chain_id, schedule.params_at(height).pow_difficulty_bits)
        .map_err(|e| bad(e.to_string()))?;
    if block.header.previous_hash != tip.hash {
        return Err(Rejection::fork(block));
    }
    // Certified, so honest validators checked it: a mismatch means the quorum lied.
    let rules_after = tip.rules.after(&block.transactions);
    check_rules_hash(&block.header, &rules_after)
        .map_err(|detail| Rejection::certified_with_wrong_rules(block, &detail))?;
    Ok(rules_after)
}

#[cfg(all(test, not(feature = "bug-quorum-2f")))]
mod tests {
    use kubechain_types::certificate::sign_vote;
    use kubechain_types::{
        AdminOperation, CommitVote, ConsensusParams, Domain, Genesis, Hash, Header, Operation, SigningKey,
        Transaction, TxBody, VoteTarget,
    };

    use super::*;

    fn key(i: u8) -> PublicKey {
        SigningKey::from_seed([i; 32]).public_key()
    }

    /// Validators 1 to 4; this replica is validator 1.
    fn validators() -> ValidatorSet {
        ValidatorSet::new((1..=4).map(key).collect())
    }

    fn asked(transfer: &mut StateTransfer, times: usize) -> Vec<NextRequest> {
        (0..times).map(|_| transfer.next_request()).collect()
    }

    #[test]
    fn a_fetch_asks_each_source_twice_in_turn_then_gives_up() {
        let mut transfer = StateTransfer::new(key(1));
        assert_eq!(transfer.next_request(), NextRequest::Idle);
        assert!(!transfer.start(5, vec![key(2)], 5), "nothing above the tip");
        assert!(!transfer.start(9, vec![key(1)], 5), "this replica is no source");
        assert!(transfer.start(9, vec![key(1), key(2), key(3)], 5));
        assert!(transfer.is_fetching());
        use NextRequest::{Ask, GaveUp, Idle};
        assert_eq!(asked(&mut transfer, 5), vec![Ask(key(2)), Ask(key(3)), Ask(key(2)), Ask(key(3)), GaveUp]);
        assert!(!transfer.is_fetching());
        assert_eq!(transfer.next_request(), Idle);
    }

    #[test]
    fn more_evidence_joins_the_fetch_under_way() {
        let mut transfer = StateTransfer::new(key(1));
        assert!(transfer.start(9, vec![key(2)], 5));
        assert!(!transfer.start(12, vec![key(2), key(3)], 5), "no second fetch");
        assert!(!transfer.committed(11), "the target grew to 12");
        assert_eq!(asked(&mut transfer, 2), vec![NextRequest::Ask(key(2)), NextRequest::Ask(key(3))]);
        assert!(transfer.committed(12));
        assert!(!transfer.is_fetching());
    }

    #[test]
    fn a_source_that_helped_is_asked_first_and_afresh() {
        let mut transfer = StateTransfer::new(key(1));
        assert!(!transfer.answered(key(2), true), "no fetch under way");
        transfer.start(20, vec![key(2), key(3), key(4)], 5);
        assert_eq!(
            asked(&mut transfer, 3),
            vec![NextRequest::Ask(key(2)), NextRequest::Ask(key(3)), NextRequest::Ask(key(4))]
        );
        assert!(transfer.answered(key(4), true));
        let expected = [key(4), key(2), key(3), key(4), key(2), key(3)].map(NextRequest::Ask).to_vec();
        assert_eq!(asked(&mut transfer, 6), expected);
        assert!(!transfer.answered(key(4), false), "an answer that did not help asks nobody");
        assert_eq!(transfer.next_request(), NextRequest::GaveUp);
    }

    #[test]
    fn probes_go_to_every_peer_until_caught_up_then_to_one_in_turn() {
        let mut transfer = StateTransfer::new(key(1));
        assert_eq!(transfer.probe_targets(&validators()), vec![key(2), key(3), key(4)]);
        transfer.up_to_date(key(2), &validators());
        assert!(!transfer.is_caught_up(), "itself and one peer are no quorum of four");
        transfer.up_to_date(key(3), &validators());
        assert!(transfer.is_caught_up());
        let rounds: Vec<Vec<PublicKey>> = (0..3).map(|_| transfer.probe_targets(&validators())).collect();
        assert_eq!(rounds, vec![vec![key(3)], vec![key(4)], vec![key(2)]]);
        let alone = ValidatorSet::new(vec![key(1)]);
        assert!(transfer.probe_targets(&alone).is_empty());
    }

    #[test]
    fn only_validators_are_witnesses_and_a_lone_validator_is_caught_up_at_once() {
        let mut transfer = StateTransfer::new(key(1));
        transfer.up_to_date(key(8), &validators());
        transfer.up_to_date(key(9), &validators());
        assert!(!transfer.is_caught_up());
        // This replica is not a validator any more: three peers must vouch.
        let without_me = ValidatorSet::new((2..=5).map(key).collect());
        transfer.up_to_date(key(2), &without_me);
        transfer.up_to_date(key(3), &without_me);
        assert!(!transfer.is_caught_up());
        transfer.up_to_date(key(4), &without_me);
        assert!(transfer.is_caught_up());

        let mut alone = StateTransfer::new(key(1));
        alone.check_caught_up(&ValidatorSet::new(vec![key(1)]));
        assert!(alone.is_caught_up());
    }

    const CHAIN: &str = "state-transfer-test";

    /// Validators 1 to 4 with no proof-of-work, so test blocks need no sealing.
    fn schedule() -> Schedule {
        Schedule::from_genesis(&Genesis {
            chain_id: CHAIN.into(),
            genesis_time_ms: 0,
            validators: (1..=4).map(key).collect(),
            admins: Vec::new(),
            members: Vec::new(),
            params: ConsensusParams { pow_difficulty_bits: 0, ..ConsensusParams::default() },
        })
    }

    fn tip() -> Tip {
        Tip {
            height: 7,
            hash: Hash::digest(b"tip"),
            state_root: Hash::ZERO,
            timestamp_ms: 0,
            certificate: None,
            rules: HashedRules::new(schedule().latest().clone()),
        }
    }

    /// An empty block: it leaves the tip's rules as they are.
    fn block(height: u64, previous_hash: Hash) -> Block {
        block_with(height, previous_hash, Vec::new(), tip().rules.hash())
    }

    fn block_with(
        height: u64,
        previous_hash: Hash,
        transactions: Vec<Transaction>,
        rules_hash: Hash,
    ) -> Block {
        let header = Header {
            chain_id: CHAIN.into(),
            height,
            view: 0,
            previous_hash,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            rules_hash,
            timestamp_ms: 0,
            proposer: key(1),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        Block::new(header, transactions)
    }

    /// A commit certificate for `block` signed by the validators with these seeds.
    fn certificate(block: &Block, signers: &[u8]) -> CommitCertificate {
        let target = VoteTarget { height: block.height(), view: 0, block_hash: block.hash() };
        let mut votes: Vec<CommitVote> = signers
            .iter()
            .map(|i| {
                let signer = SigningKey::from_seed([*i; 32]);
                CommitVote {
                    voter: signer.public_key(),
                    signature: sign_vote(Domain::Commit, CHAIN, &target, &signer),
                }
            })
            .collect();
        // A certificate lists its votes in ascending voter order (docs/encoding.md).
        votes.sort_by_key(|vote| vote.voter);
        CommitCertificate { target, votes }
    }

    fn check(block: &Block, certificate: &CommitCertificate) -> Result<(), RejectKind> {
        check_certified_block(block, certificate, &tip(), CHAIN, &schedule())
            .map(|_| ())
            .map_err(|rejection| rejection.kind)
    }

    #[test]
    fn a_certified_block_must_follow_the_tip_with_a_quorum_behind_it() {
        let next = block(8, tip().hash);
        assert_eq!(check(&next, &certificate(&next, &[1, 2, 3])), Ok(()));

        let skipping = block(9, tip().hash);
        assert_eq!(check(&skipping, &certificate(&skipping, &[1, 2, 3])), Err(RejectKind::BadStateResponse));
        let other = block(8, Hash::digest(b"other"));
        assert_eq!(check(&next, &certificate(&other, &[1, 2, 3])), Err(RejectKind::BadStateResponse));
        assert_eq!(check(&next, &certificate(&next, &[1, 2])), Err(RejectKind::BadCertificate));
        assert_eq!(check(&next, &certificate(&next, &[1, 2, 9])), Err(RejectKind::BadCertificate));
        // Certified by a quorum, yet on another chain: more than f validators are faulty.
        assert_eq!(check(&other, &certificate(&other, &[1, 2, 3])), Err(RejectKind::Fork));
    }

    /// A block that adds validator 5, and the rules it leaves scheduled.
    fn adding_validator_5(rules_hash: impl FnOnce(&HashedRules) -> Hash) -> (Block, HashedRules) {
        let admin = SigningKey::from_seed([100; 32]);
        let body = TxBody {
            chain_id: CHAIN.into(),
            sender: admin.public_key(),
            nonce: 1,
            operations: vec![Operation::Admin(AdminOperation::AddValidator { public_key: key(5) })],
        };
        let transactions = vec![Transaction::new(body, &admin)];
        let rules_after = tip().rules.after(&transactions);
        (block_with(8, tip().hash, transactions, rules_hash(&rules_after)), rules_after)
    }

    #[test]
    fn a_certified_block_must_commit_to_the_rules_its_transactions_give() {
        let (honest, rules_after) = adding_validator_5(HashedRules::hash);
        let checked =
            check_certified_block(&honest, &certificate(&honest, &[1, 2, 3]), &tip(), CHAIN, &schedule());
        assert_eq!(checked.map(|rules| rules.rules().validators.len()), Ok(5));
        assert_ne!(rules_after.hash(), tip().rules.hash());

        // Its header still names the rules before it, as if its admin operation were not there:
        // the certifying quorum lied, and the block is refused, with what differs.
        let (lying, _) = adding_validator_5(|_| tip().rules.hash());
        let rejection =
            check_certified_block(&lying, &certificate(&lying, &[1, 2, 3]), &tip(), CHAIN, &schedule())
                .expect_err("a block naming other rules");
        assert_eq!(rejection.kind, RejectKind::Fork);
        assert!(rejection.detail.contains(&format!("{:?}", rules_after.hash())), "{}", rejection.detail);
        assert!(rejection.detail.contains("more than f faulty"), "{}", rejection.detail);
    }
}
