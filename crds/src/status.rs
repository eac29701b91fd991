//! `Blockchain.status`: what the operator observed. Written only by the operator, with
//! server-side apply; lists carry map keys so its fields merge per item.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator sets (metav1.Condition `type`).
pub mod condition {
    /// All validators ready and the chain committing.
    pub const READY: &str = "Ready";
    /// The operator is creating, scaling or upgrading something.
    pub const PROGRESSING: &str = "Progressing";
    /// Some validators are not ready, a member cluster cannot be reached, or something the
    /// chain needs is missing.
    pub const DEGRADED: &str = "Degraded";
    /// Fewer than a quorum (2f+1) of validators can vote: the chain cannot commit.
    pub const QUORUM_AT_RISK: &str = "QuorumAtRisk";
    /// The height has not advanced for spec.chainStalledAfterSeconds while there was work.
    pub const CHAIN_STALLED: &str = "ChainStalled";
    /// The validator set on chain is changing to spec.validators, or waits to (the reason and
    /// message say for what).
    pub const RECONFIGURING: &str = "Reconfiguring";
    /// Validators run an older pod template (image, resources, config) and restart one at a
    /// time; the reason and message say which one the rollout waits for.
    pub const UPGRADING: &str = "Upgrading";

    pub const ALL: [&str; 7] =
        [READY, PROGRESSING, DEGRADED, QUORUM_AT_RISK, CHAIN_STALLED, RECONFIGURING, UPGRADING];
}

/// Observed state of a Blockchain.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockchainStatus {
    /// Coarse lifecycle phase; conditions carry the detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_enum::<Phase>")]
    pub phase: Option<Phase>,

    /// metadata.generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready validators out of desired, e.g. "3/4" (the READY column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,

    /// SHA-256 of the genesis (hex); pins the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_hash: Option<String>,

    /// Byzantine validators tolerated (f); 0 below 4 validators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_tolerance: Option<u32>,

    /// Highest committed height seen on any validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,

    /// Current PBFT view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<u64>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators: Option<ValidatorCounts>,

    /// The consensus parameters on chain and the height they govern from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusStatus>,

    /// Per-cluster readiness and peer endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub clusters: Vec<ClusterStatus>,

    /// Ready, Progressing, Degraded, QuorumAtRisk, ChainStalled, Reconfiguring, Upgrading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Things that work but deserve attention, e.g. fewer than 4 validators tolerate no fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Coarse lifecycle phase.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing created yet.
    Pending,
    /// Keys, genesis and validators are being created; the chain has not committed yet.
    Creating,
    /// Every validator ready and the chain committing.
    Running,
    /// Committing, or able to, with some validators down or changes in progress.
    Degraded,
    /// Cannot proceed without a user's action (see conditions).
    Failed,
    /// Being deleted; the finalizer is cleaning up.
    Deleting,
}

/// Validator counts.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorCounts {
    /// spec.validators.
    pub desired: u32,
    /// Validators whose /readyz succeeds.
    pub ready: u32,
    /// Validators in the chain's current validator set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_chain: Option<u32>,
}

/// The consensus parameters on chain: those in force, or a change committed and not yet in force.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusStatus {
    pub block_interval_ms: u64,
    pub max_block_txs: u32,
    pub checkpoint_interval: u64,
    pub view_change_timeout_ms: u64,
    pub pow_difficulty_bits: u8,
    /// The first height they govern (in the future while `scheduled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_height: Option<u64>,
    /// Committed on chain, not in force yet.
    pub scheduled: bool,
}

/// One cluster's validators.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The placement entry's cluster name (the operator's cluster when placement is empty).
    pub name: String,
    /// Whether the operator reached the cluster's API server in its last pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// Why the cluster could not be reached or used, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Indices of the validators this cluster runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<u32>,
    pub ready_validators: u32,
    /// Peer addresses (host:port) of the validators in this cluster, in the order of
    /// `validators`; empty where an address is not known yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

impl BlockchainStatus {
    /// The condition of type `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|condition| condition.type_ == type_)
    }
}

impl ValidatorCounts {
    /// The READY column's text.
    pub fn ready_text(&self) -> String {
        format!("{}/{}", self.ready, self.desired)
    }
}
