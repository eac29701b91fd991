//! How a node is: `GET /v1/status`, `GET /readyz` and `GET /healthz`.

use kubechain_types::{ConsensusParams, Hash, PublicKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /v1/status`: what the node knows of the chain and of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeStatus {
    pub chain_id: String,
    pub genesis_hash: Hash,
    /// This node's validator key.
    pub node: PublicKey,
    /// Whether this node votes (read as `validator` from nodes older than this field).
    #[serde(default)]
    pub role: Role,
    /// Height of the last committed block (0: only genesis).
    pub height: u64,
    /// Hash of the block at `height` (zeros at height 0).
    pub last_block_hash: Hash,
    pub view: u64,
    /// The primary of `view`.
    pub primary: PublicKey,
    pub in_view_change: bool,
    /// Fetching blocks from peers (state transfer).
    pub syncing: bool,
    /// The height that fetch reaches for (absent when not syncing, and from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_target: Option<u64>,
    /// A quorum of validators, this one included, has no newer block than this node.
    // Read as false from nodes older than this field.
    #[serde(default)]
    pub caught_up: bool,
    pub stable_checkpoint: u64,
    /// The chain's current validator set.
    pub validators: Vec<PublicKey>,
    /// The consensus parameters in force at the next height (absent from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_params: Option<ConsensusParams>,
    /// The height from which the validators and parameters in force govern: 1 for the genesis
    /// rules, else the activation height of the last change in force (absent from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_since: Option<u64>,
    /// A committed change of the validators or parameters that is not in force yet (absent
    /// when none is in flight, and from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<ScheduledRules>,
    pub peers_connected: u64,
    /// Transactions waiting in this node's mempool.
    pub mempool_size: u64,
    /// The same verdict as `GET /readyz`.
    pub ready: bool,
}

/// Rules committed on chain that take effect at a later height (docs/encoding.md, 8.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduledRules {
    /// The first height they govern.
    pub activation_height: u64,
    pub validators: Vec<PublicKey>,
    pub consensus_params: ConsensusParams,
}

/// What part a node plays at the next height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// In the validator set in force: proposes and votes.
    #[default]
    Validator,
    /// Not (yet) in the set: follows the chain without voting, as a validator does while it
    /// syncs before it is added on chain.
    Learner,
    /// Was in the set and was removed on chain: follows the chain and serves reads, votes no more.
    Removed,
}

/// `GET /readyz` (200 when ready, else 503): ready = caught up, connected to a quorum, and not
/// syncing, or syncing only the last few blocks (at most 8 behind).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    pub ready: bool,
    /// The height the answer was based on.
    pub height: u64,
    pub caught_up: bool,
    pub syncing: bool,
    /// See [`NodeStatus::sync_target`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_target: Option<u64>,
    pub peers_connected: u64,
}

/// `GET /healthz` (200): the consensus loop runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Liveness {
    pub status: Live,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Live {
    Ok,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{hash, key};

    #[test]
    fn the_status_is_pinned() {
        let status = NodeStatus {
            chain_id: "c-1".into(),
            genesis_hash: hash(1),
            node: key(2),
            role: Role::Learner,
            height: 7,
            last_block_hash: hash(3),
            view: 1,
            primary: key(4),
            in_view_change: false,
            syncing: false,
            sync_target: None,
            caught_up: true,
            stable_checkpoint: 0,
            validators: vec![key(2), key(4)],
            consensus_params: None,
            rules_since: None,
            scheduled: None,
            peers_connected: 3,
            mempool_size: 5,
            ready: true,
        };
        let json = format!(
            r#"{{"chain_id":"c-1","genesis_hash":"{}","node":"{}","role":"learner","height":7,"last_block_hash":"{}","view":1,"primary":"{}","in_view_change":false,"syncing":false,"caught_up":true,"stable_checkpoint":0,"validators":["{}","{}"],"peers_connected":3,"mempool_size":5,"ready":true}}"#,
            hash(1),
            key(2),
            hash(3),
            key(4),
            key(2),
            key(4)
        );
        crate::test_support::pinned(&status, &json);
    }

    #[test]
    fn readiness_and_liveness_are_pinned() {
        let readiness = Readiness {
            ready: false,
            height: 9,
            caught_up: false,
            syncing: true,
            sync_target: Some(12),
            peers_connected: 1,
        };
        crate::test_support::pinned(
            &readiness,
            r#"{"ready":false,"height":9,"caught_up":false,"syncing":true,"sync_target":12,"peers_connected":1}"#,
        );
        crate::test_support::pinned(&Liveness { status: Live::Ok }, r#"{"status":"ok"}"#);
    }
}
