//! `Blockchain.spec`: what a user asks for.
//!
//! Doc comments on fields become the CRD's descriptions (`kubectl explain blockchain.spec`), so
//! they are written for users. Ranges and CEL rules live next to the fields they guard; the same
//! checks in Rust are in [`crate::validate`], with the same messages.
//!
//! What may change after creation: genesis is built once from the spec and pinned by its hash.
//! `validators`, `consensus`, `members` and `admins` change on chain with admin transactions;
//! `chainId` and `consensus.checkpointInterval` are fixed. Storage class and size are immutable:
//! claims cannot move class, and this version does not resize them. The name is short enough to
//! prefix every object the operator names after it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::limits::*;
use crate::messages;
use crate::schema::optional_enum;
use crate::status::BlockchainStatus;

/// Desired state of a Blockchain.
// Printer columns repeat `type_ = "string"`, which this lint mistakes for a copy-paste slip.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubechain.dev",
    version = "v1alpha1",
    kind = "Blockchain",
    namespaced,
    shortname = "bc",
    status = "BlockchainStatus",
    derive = "PartialEq",
    doc = "A permissioned PBFT blockchain: validators, genesis and consensus parameters, spread over one or several clusters.",
    validation = Rule::new(
        "self.metadata.name.size() <= 39 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
    ).message(messages::NAME),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Ready validators out of the desired number",
        json_path = ".status.ready"
    ),
    printcolumn(
        name = "Height",
        type_ = "integer",
        description = "Height of the last committed block",
        json_path = ".status.height"
    ),
    printcolumn(
        name = "View",
        type_ = "integer",
        description = "Current PBFT view",
        json_path = ".status.view"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Chain",
        type_ = "string",
        description = "Chain id",
        json_path = ".spec.chainId",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "!has(self.placement) || size(self.placement) == 0 || self.placement.map(p, p.validators).sum() == self.validators"
).message(messages::PLACEMENT_SUM).field_path(".placement"))]
// Which cluster runs which validator is fixed: validators are numbered through the entries in
// order, and a validator moved to another cluster would run its key in two places. Here: no
// placement added or removed; on the field: the same entries, in the same order.
#[x_kube(validation = Rule::new(
    "(has(self.placement) && size(self.placement) > 0) == (has(oldSelf.placement) && size(oldSelf.placement) > 0)"
).message(messages::PLACEMENT_ADDED_OR_REMOVED).field_path(".placement"))]
#[serde(rename_all = "camelCase")]
pub struct BlockchainSpec {
    /// Chain id, written into genesis and every transaction: 1-63 lowercase letters, digits, '-'.
    /// Cannot change after creation.
    #[schemars(length(min = 1, max = CHAIN_ID_MAX_LEN), pattern(DNS_LABEL_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(messages::CHAIN_ID_IMMUTABLE))]
    pub chain_id: String,

    /// Number of validators (n).
    /// PBFT tolerates f = (n-1)/3 faulty ones, so 4 is the smallest set that tolerates one.
    /// Changing it grows or shrinks the set on chain, one validator at a time: a new validator
    /// starts, catches up and is then added; a removed one leaves the set on chain before its pod
    /// goes (the Reconfiguring condition says how far it is). With placement, the entries'
    /// counts, and so this number, are fixed at creation.
    #[schemars(range(min = 1, max = MAX_VALIDATORS))]
    pub validators: u32,

    /// Node container image.
    #[schemars(length(min = 1, max = IMAGE_MAX_LEN))]
    pub image: String,

    /// Pull policy of the node image.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,

    /// Consensus parameters, written into genesis. A change (except to checkpointInterval, which
    /// is fixed) becomes one admin transaction; the status shows the height it is in force from.
    #[serde(default)]
    pub consensus: ConsensusSpec,

    /// Consortium members and the client keys that may transact for them, written into genesis.
    /// Edits become admin transactions: removed members (and members whose keys changed) are
    /// removed first, then new ones added. A member added on chain by other means and never
    /// listed here is left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_MEMBERS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub members: Vec<MemberSpec>,

    /// Extra admin public keys (hex ed25519) in genesis, besides the operator's own admin key.
    /// Admin keys sign consortium changes. Edits become admin transactions (additions first); a
    /// key dropped from the list is removed on chain, the operator's own key always stays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ADMINS), inner(length(equal = PUBLIC_KEY_HEX_LEN), pattern(PUBLIC_KEY_PATTERN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub admins: Vec<String>,

    /// Persistent volume of each validator.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Compute resources of each validator container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Where validators run. Empty: all of them in the operator's own cluster.
    /// Otherwise the entries' validators must add up to spec.validators; they are numbered
    /// through the entries in order (the first entry's 2 validators are 0 and 1). Which clusters
    /// there are, their order and their validator counts cannot change after creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PLACEMENTS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["cluster".into()]))]
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(q, q.cluster == p.cluster))")
        .message(messages::PLACEMENT_UNIQUE))]
    #[x_kube(validation = Rule::new("self.filter(p, has(p.local) && p.local).size() <= 1")
        .message(messages::PLACEMENT_ONE_LOCAL))]
    #[x_kube(validation = Rule::new(
        "self.size() < 2 || self.all(p, !has(p.service) || !has(p.service.type) || p.service.type != 'ClusterIP')"
    ).message(messages::PLACEMENT_CLUSTER_IP))]
    #[x_kube(validation = Rule::new(
        "self.map(p, p.cluster) == oldSelf.map(p, p.cluster) && self.map(p, p.validators) == oldSelf.map(p, p.validators) && self.map(p, has(p.local) && p.local) == oldSelf.map(p, has(p.local) && p.local)"
    ).message(messages::PLACEMENT_IMMUTABLE))]
    pub placement: Vec<PlacementSpec>,

    /// Prometheus integration.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// Seconds without a new block, while there is work to commit, before ChainStalled is set.
    #[serde(default = "default_chain_stalled_after_seconds")]
    #[schemars(range(min = MIN_STALLED_AFTER_SECONDS, max = MAX_STALLED_AFTER_SECONDS))]
    pub chain_stalled_after_seconds: u32,
}

/// Image pull policy, as in a Pod.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImagePullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// PBFT and proof-of-work parameters.
// Ranges and defaults are the node's (`kubechain_types::ConsensusParams`); tests keep them equal.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusSpec {
    /// Longest a primary waits for a fuller batch before proposing, in milliseconds.
    #[serde(default = "default_block_interval_ms")]
    #[schemars(range(min = BLOCK_INTERVAL_MS.0, max = BLOCK_INTERVAL_MS.1))]
    pub block_interval_ms: u64,

    /// Most transactions in one block.
    #[serde(default = "default_max_block_txs")]
    #[schemars(range(min = MAX_BLOCK_TXS.0, max = MAX_BLOCK_TXS.1))]
    pub max_block_txs: u32,

    /// Blocks between checkpoints. Fixed at creation: it sets how far ahead every rule change
    /// takes effect.
    #[serde(default = "default_checkpoint_interval")]
    #[schemars(range(min = CHECKPOINT_INTERVAL.0, max = CHECKPOINT_INTERVAL.1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(messages::CHECKPOINT_INTERVAL_IMMUTABLE))]
    pub checkpoint_interval: u64,

    /// Time without progress before a replica asks for a new primary, in milliseconds.
    #[serde(default = "default_view_change_timeout_ms")]
    #[schemars(range(min = VIEW_CHANGE_TIMEOUT_MS.0, max = VIEW_CHANGE_TIMEOUT_MS.1))]
    pub view_change_timeout_ms: u64,

    /// Leading zero bits every block hash must have (proof-of-work seal); 0 turns it off.
    #[serde(default = "default_pow_difficulty_bits")]
    #[schemars(range(min = POW_DIFFICULTY_BITS.0, max = POW_DIFFICULTY_BITS.1))]
    pub pow_difficulty_bits: u8,
}

fn default_block_interval_ms() -> u64 {
    200
}
fn default_max_block_txs() -> u32 {
    5000
}
fn default_checkpoint_interval() -> u64 {
    128
}
fn default_view_change_timeout_ms() -> u64 {
    2000
}
fn default_pow_difficulty_bits() -> u8 {
    12
}
fn default_chain_stalled_after_seconds() -> u32 {
    120
}

impl Default for ConsensusSpec {
    fn default() -> Self {
        ConsensusSpec {
            block_interval_ms: default_block_interval_ms(),
            max_block_txs: default_max_block_txs(),
            checkpoint_interval: default_checkpoint_interval(),
            view_change_timeout_ms: default_view_change_timeout_ms(),
            pow_difficulty_bits: default_pow_difficulty_bits(),
        }
    }
}

/// A consortium member: an organisation and its client keys.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberSpec {
    /// Member name, unique in the chain: a DNS label (1-63 lowercase letters, digits, '-'), since
    /// it prefixes the member's keys in the chain state.
    #[schemars(length(min = 1, max = MEMBER_NAME_MAX_LEN), pattern(DNS_LABEL_PATTERN))]
    pub name: String,

    /// Client public keys (hex ed25519, 64 lowercase hex characters).
    #[schemars(
        length(min = 1, max = MAX_MEMBER_KEYS),
        inner(length(equal = PUBLIC_KEY_HEX_LEN), pattern(PUBLIC_KEY_PATTERN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub public_keys: Vec<String>,
}

/// Persistent storage of each validator (blocks, state, consensus log).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)"
).message(messages::STORAGE_CLASS_IMMUTABLE))]
#[x_kube(validation = Rule::new(
    "!has(self.size) || !has(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) == 0"
).message(messages::STORAGE_SIZE_IMMUTABLE))]
pub struct StorageSpec {
    /// Volume size of each validator, a Kubernetes quantity such as 20Gi.
    #[serde(default = "default_storage_size")]
    #[schemars(length(min = 1, max = QUANTITY_MAX_LEN))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))")
        .message(messages::STORAGE_SIZE))]
    pub size: String,

    /// Storage class of the volumes; empty: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LEN))]
    pub storage_class_name: Option<String>,

    /// Keep the volumes when the Blockchain is deleted (the default). false deletes them with it.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

fn default_storage_size() -> String {
    "10Gi".to_string()
}
fn default_true() -> bool {
    true
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec { size: default_storage_size(), storage_class_name: None, retain_on_delete: true }
    }
}

/// Validators in one cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.local) && self.local) || has(self.kubeconfigSecretRef)")
    .message(messages::REMOTE_NEEDS_KUBECONFIG))]
#[x_kube(validation = Rule::new("!(has(self.local) && self.local && has(self.kubeconfigSecretRef))")
    .message(messages::LOCAL_WITH_KUBECONFIG))]
pub struct PlacementSpec {
    /// Name of the cluster, unique in the list; also used in resource names and status.
    #[schemars(length(min = 1, max = CLUSTER_NAME_MAX_LEN), pattern(DNS_LABEL_PATTERN))]
    pub cluster: String,

    /// true: the operator's own cluster, reached without a kubeconfig. At most one entry.
    #[serde(default)]
    pub local: bool,

    /// Cloud of the cluster; selects cloud-specific Service annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<Provider>")]
    pub provider: Option<Provider>,

    /// Validators in this cluster.
    /// 0 keeps a drained cluster connected, so the operator can clean it up before the entry goes.
    #[schemars(range(min = 0, max = MAX_VALIDATORS))]
    pub validators: u32,

    /// Secret in the Blockchain's namespace holding a kubeconfig for this cluster.
    /// Required unless local is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,

    /// Per-validator Service for peer traffic in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// Addresses (CIDRs) the traffic of this cluster's validators leaves from, e.g. a NAT
    /// gateway's: the other clusters' NetworkPolicies admit peer traffic from them. Unset: the
    /// addresses of the nodes that run this cluster's validators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EGRESS_CIDRS), inner(length(min = 1, max = CIDR_MAX_LEN)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message(messages::EGRESS_CIDR))]
    pub egress_cidrs: Vec<String>,
}

/// A cloud provider.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Azure,
    Gcp,
}

/// A key of a Secret in the Blockchain's namespace.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LEN))]
    pub name: String,

    /// Key in the Secret's data.
    #[serde(default = "default_kubeconfig_key")]
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LEN))]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".to_string()
}

/// How validators in a cluster are exposed to their peers.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type. Unset: ClusterIP when all validators share one cluster, else LoadBalancer.
    /// ClusterIP cannot be reached from other clusters.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<ServiceType>")]
    pub type_: Option<ServiceType>,

    /// Annotations for the Services, e.g. a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_ANNOTATIONS))]
    pub annotations: BTreeMap<String, String>,

    /// Host (DNS name or IP) the other validators dial for this cluster's validators, with the
    /// Service's node port (NodePort) or the peer port 7000 (LoadBalancer). Unset: the load
    /// balancer's address, or the address of the node that runs the validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LEN), pattern(HOST_PATTERN))]
    pub advertised_host: Option<String>,
}

/// A Service type usable for peer traffic.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    #[serde(rename = "ClusterIP")]
    ClusterIp,
    NodePort,
    LoadBalancer,
}

/// Monitoring integration.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create a ServiceMonitor (prometheus-operator) for the validators' metrics.
    /// Skipped while the ServiceMonitor CRD is not installed.
    #[serde(default)]
    pub service_monitor: bool,
}

impl BlockchainSpec {
    /// A spec with the given essentials and every default, as a minimal manifest gives.
    pub fn new(chain_id: impl Into<String>, validators: u32, image: impl Into<String>) -> Self {
        BlockchainSpec {
            chain_id: chain_id.into(),
            validators,
            image: image.into(),
            image_pull_policy: ImagePullPolicy::default(),
            consensus: ConsensusSpec::default(),
            members: Vec::new(),
            admins: Vec::new(),
            storage: StorageSpec::default(),
            resources: None,
            placement: Vec::new(),
            monitoring: MonitoringSpec::default(),
            chain_stalled_after_seconds: default_chain_stalled_after_seconds(),
        }
    }

    pub fn with_placement(mut self, placement: Vec<PlacementSpec>) -> Self {
        self.placement = placement;
        self
    }

    pub fn with_members(mut self, members: Vec<MemberSpec>) -> Self {
        self.members = members;
        self
    }

    /// Byzantine validators tolerated: the largest f with validators >= 3f + 1.
    pub fn fault_tolerance(&self) -> u32 {
        self.validators.saturating_sub(1) / 3
    }
}

impl PlacementSpec {
    /// An entry for the operator's own cluster.
    pub fn local(cluster: impl Into<String>, validators: u32) -> Self {
        PlacementSpec {
            cluster: cluster.into(),
            local: true,
            provider: None,
            validators,
            kubeconfig_secret_ref: None,
            service: None,
            egress_cidrs: Vec::new(),
        }
    }

    /// An entry for a cluster reached through the kubeconfig in Secret `secret` (key
    /// `kubeconfig`).
    pub fn remote(
        cluster: impl Into<String>,
        provider: Provider,
        validators: u32,
        secret: impl Into<String>,
    ) -> Self {
        PlacementSpec {
            cluster: cluster.into(),
            local: false,
            provider: Some(provider),
            validators,
            kubeconfig_secret_ref: Some(SecretKeyRef { name: secret.into(), key: default_kubeconfig_key() }),
            service: None,
            egress_cidrs: Vec::new(),
        }
    }
}
