//! Log messages that tests and operators match on, so the text lives in one place.

/// Logged once at start, with `chain_id`, `genesis_hash`, `validator`, `height` (the last
/// committed block found on disk) and `journal_records`.
pub const STARTING_NODE: &str = "starting node";

/// Logged with `height` once the node knows it holds the chain's tip: a quorum of validators,
/// itself included, answered with nothing newer.
pub const CAUGHT_UP: &str = "caught up: a quorum of validators has no newer block";
