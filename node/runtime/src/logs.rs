//! Log messages that tests and operators match on, so the text lives in one place.

/// Logged once at start, with `chain_id`, `genesis_hash`, `validator`, `height` (the last
/// committed block found on disk) and `journal_records`.
pub const STARTING_NODE: &str = "starting node";

/// Logged with `height` once the node knows it holds the chain's tip: a quorum of validators,
/// itself included, answered with nothing newer.
pub const CAUGHT_UP: &str = "caught up: a quorum of validators has no newer block";

/// Logged with `height` when this node enters the validator set in force (added on chain, or
/// at start): it proposes and votes from that height.
pub const VOTING: &str = "in the validator set: voting";

/// Logged with `height` when the chain's rules remove this node from the validator set: it votes
/// no more, follows the chain as long as its peers link to it, and keeps serving reads.
pub const REMOVED: &str =
    "removed from the validator set: no longer voting; following the chain and serving reads";

/// Logged with `height` when this node runs outside the validator set without having been in
/// it: it follows the chain (syncing, e.g. before it is added on chain) and votes from the
/// height at which an addition takes effect.
pub const LEARNING: &str =
    "not in the validator set: following the chain without voting until added on chain";
