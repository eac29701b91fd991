//! Messages of the CEL rules, shared by the schema ([`crate::spec`]) and the Rust checks
//! ([`crate::validate`]), so a user sees the same words from `kubectl apply` and from the
//! operator's conditions.

pub const CHAIN_ID_IMMUTABLE: &str = "chainId is immutable: it is part of the chain's genesis";
pub const CHECKPOINT_INTERVAL_IMMUTABLE: &str = "checkpointInterval is fixed at genesis: it sets how far ahead every change of validators or parameters takes effect";
/// `limits::MAX_NAME_LEN` (39) is spelled out: a CEL message is a literal.
pub const NAME: &str = "the name must be at most 39 lowercase letters, digits and '-', starting with a letter: it prefixes the names of the chain's Services and StatefulSets";
pub const PLACEMENT_SUM: &str = "the validators of the placement entries must add up to spec.validators";
pub const PLACEMENT_UNIQUE: &str = "placement cluster names must be unique";
pub const PLACEMENT_ONE_LOCAL: &str = "at most one placement entry can be local";
pub const PLACEMENT_CLUSTER_IP: &str = "with validators in several clusters, service.type ClusterIP cannot be reached by peers; use NodePort or LoadBalancer";
pub const PLACEMENT_IMMUTABLE: &str = "which clusters run which validators cannot change: the entries' cluster names, order, local flags and validator counts are fixed at creation (a validator moved between clusters would run its key in two places)";
pub const PLACEMENT_ADDED_OR_REMOVED: &str = "placement cannot be added to or removed from a chain after creation: its validators would move between clusters";
pub const EGRESS_CIDR: &str = "egressCidrs must be CIDRs such as 203.0.113.7/32";
pub const REMOTE_NEEDS_KUBECONFIG: &str =
    "a remote cluster needs kubeconfigSecretRef; set local: true for the operator's own cluster";
pub const LOCAL_WITH_KUBECONFIG: &str =
    "a local placement entry uses the operator's own cluster and must not set kubeconfigSecretRef";
pub const STORAGE_SIZE: &str = "size must be a positive quantity such as 20Gi";
pub const STORAGE_CLASS_IMMUTABLE: &str =
    "storageClassName cannot change after creation: volume claims cannot move class";
pub const STORAGE_SIZE_IMMUTABLE: &str =
    "storage size cannot change after creation: this operator version does not resize volume claims";
