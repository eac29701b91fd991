//! Bounds shared by the schema ([`crate::spec`]) and the Rust checks ([`crate::validate`]).
//! Lists and strings are bounded so the API server can bound the cost of the CEL rules.

/// Consensus ranges `(min, max)`: the node's (`kubechain_types::ConsensusParams::validate`).
pub const BLOCK_INTERVAL_MS: (u64, u64) = (1, 60_000);
pub const MAX_BLOCK_TXS: (u32, u32) = (1, 100_000);
pub const CHECKPOINT_INTERVAL: (u64, u64) = (1, 10_000);
pub const VIEW_CHANGE_TIMEOUT_MS: (u64, u64) = (10, 600_000);
pub const POW_DIFFICULTY_BITS: (u8, u8) = (0, 24);

/// PBFT sends O(n^2) messages per block; beyond this a consortium wants another design.
pub const MAX_VALIDATORS: u32 = 64;
/// Longest Blockchain name: `NAME-validator-63` must fit the 52 characters a StatefulSet
/// name may have (its pods' controller-revision-hash label adds 11).
pub const MAX_NAME_LEN: usize = 39;
pub const MAX_PLACEMENTS: u32 = 16;
pub const MAX_MEMBERS: u32 = 256;
pub const MAX_MEMBER_KEYS: u32 = 32;
pub const MAX_ADMINS: u32 = 16;
pub const MAX_ANNOTATIONS: u32 = 64;
pub const MAX_EGRESS_CIDRS: u32 = 16;
pub const MIN_STALLED_AFTER_SECONDS: u32 = 10;
pub const MAX_STALLED_AFTER_SECONDS: u32 = 86_400;

pub const CHAIN_ID_MAX_LEN: u32 = 63;
pub const CLUSTER_NAME_MAX_LEN: u32 = 63;
pub const MEMBER_NAME_MAX_LEN: u32 = 63;
pub const IMAGE_MAX_LEN: u32 = 512;
pub const QUANTITY_MAX_LEN: u32 = 32;
pub const DNS_SUBDOMAIN_MAX_LEN: u32 = 253;
pub const PUBLIC_KEY_HEX_LEN: u32 = 64;
/// `2001:0db8:0000:0000:0000:0000:0000:0001/128`.
pub const CIDR_MAX_LEN: u32 = 43;

/// The node's chain id rule (`kubechain_types::genesis::validate_chain_id`), which is
/// Kubernetes' DNS label.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS name (lowercase labels) or an IPv4 address: what `advertisedHost` may hold.
pub const HOST_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Lowercase only, so the same key cannot be listed twice in two spellings.
pub const PUBLIC_KEY_PATTERN: &str = "^[0-9a-f]{64}$";
