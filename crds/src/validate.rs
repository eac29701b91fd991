//! The CRD's rules in Rust, for the operator (a spec stored before a CRD upgrade is checked
//! again) and for tests. Messages are the CEL rules' own, so a user sees the same words from
//! `kubectl apply` and from the operator's conditions.

use std::collections::HashSet;

use crate::spec::{BlockchainSpec, MemberSpec, ServiceType};

/// Bounds used by the schema and by [`validate`]. Lists and strings are bounded so the API
/// server can bound the cost of the CEL rules.
pub mod limits {
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
    pub const MIN_STALLED_AFTER_SECONDS: u32 = 10;
    pub const MAX_STALLED_AFTER_SECONDS: u32 = 86_400;

    pub const CHAIN_ID_MAX_LEN: u32 = 63;
    pub const CLUSTER_NAME_MAX_LEN: u32 = 63;
    pub const MEMBER_NAME_MAX_LEN: u32 = 63;
    pub const IMAGE_MAX_LEN: u32 = 512;
    pub const QUANTITY_MAX_LEN: u32 = 32;
    pub const DNS_SUBDOMAIN_MAX_LEN: u32 = 253;
    pub const PUBLIC_KEY_HEX_LEN: u32 = 64;

    /// The node's chain id rule (`kubechain_types::genesis::validate_chain_id`), which is
    /// Kubernetes' DNS label.
    pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
    /// Lowercase only, so the same key cannot be listed twice in two spellings.
    pub const PUBLIC_KEY_PATTERN: &str = "^[0-9a-f]{64}$";
}

/// Messages of the CEL rules.
pub mod msg {
    pub const CHAIN_ID_IMMUTABLE: &str = "chainId is immutable: it is part of the chain's genesis";
    pub const ADMINS_IMMUTABLE: &str = "admins are fixed at genesis and cannot change";
    pub const CONSENSUS_IMMUTABLE: &str =
        "consensus parameters are fixed at genesis: this operator version does not change them on chain";
    pub const VALIDATORS_IMMUTABLE: &str =
        "validators are fixed at genesis: this operator version does not change the validator set on chain";
    /// `limits::MAX_NAME_LEN` (39) is spelled out: a CEL message is a literal.
    pub const NAME: &str = "the name must be at most 39 lowercase letters, digits and '-', starting with a letter: it prefixes the names of the chain's Services and StatefulSets";
    pub const MEMBERS_IMMUTABLE: &str =
        "members are fixed at genesis: this operator version does not change them on chain";
    pub const PLACEMENT_SUM: &str = "the validators of the placement entries must add up to spec.validators";
    pub const PLACEMENT_UNIQUE: &str = "placement cluster names must be unique";
    pub const PLACEMENT_ONE_LOCAL: &str = "at most one placement entry can be local";
    pub const PLACEMENT_CLUSTER_IP: &str = "with validators in several clusters, service.type ClusterIP cannot be reached by peers; use NodePort or LoadBalancer";
    pub const REMOTE_NEEDS_KUBECONFIG: &str =
        "a remote cluster needs kubeconfigSecretRef; set local: true for the operator's own cluster";
    pub const LOCAL_WITH_KUBECONFIG: &str =
        "a local placement entry uses the operator's own cluster and must not set kubeconfigSecretRef";
    pub const STORAGE_SIZE: &str = "size must be a positive quantity such as 20Gi";
    pub const STORAGE_CLASS_IMMUTABLE: &str =
        "storageClassName cannot change after creation: volume claims cannot move class";
    pub const STORAGE_SIZE_IMMUTABLE: &str =
        "storage size cannot change after creation: this operator version does not resize volume claims";
}

use limits::*;

/// Checks a spec as the API server would on create (schema and CEL rules). Every problem is
/// reported, each as `path: message`.
pub fn validate(spec: &BlockchainSpec) -> Result<(), Vec<String>> {
    let mut errors = Errors::default();

    if !is_dns_label(&spec.chain_id) {
        errors.add(
            "spec.chainId",
            "must be 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        );
    }
    errors.range("spec.validators", spec.validators.into(), 1, MAX_VALIDATORS.into());
    if spec.image.is_empty() || spec.image.len() > IMAGE_MAX_LEN as usize {
        errors.add("spec.image", &format!("must be 1-{IMAGE_MAX_LEN} characters"));
    }

    let consensus = &spec.consensus;
    let ranges: [(&str, u64, (u64, u64)); 5] = [
        ("blockIntervalMs", consensus.block_interval_ms, BLOCK_INTERVAL_MS),
        ("maxBlockTxs", consensus.max_block_txs.into(), (MAX_BLOCK_TXS.0.into(), MAX_BLOCK_TXS.1.into())),
        ("checkpointInterval", consensus.checkpoint_interval, CHECKPOINT_INTERVAL),
        ("viewChangeTimeoutMs", consensus.view_change_timeout_ms, VIEW_CHANGE_TIMEOUT_MS),
        (
            "powDifficultyBits",
            consensus.pow_difficulty_bits.into(),
            (POW_DIFFICULTY_BITS.0.into(), POW_DIFFICULTY_BITS.1.into()),
        ),
    ];
    for (field, value, (min, max)) in ranges {
        errors.range(&format!("spec.consensus.{field}"), value, min, max);
    }

    errors.max_items("spec.members", spec.members.len(), MAX_MEMBERS);
    let mut member_names = HashSet::new();
    for (index, member) in spec.members.iter().enumerate() {
        let path = format!("spec.members[{index}]");
        if !is_dns_label(&member.name) {
            errors.add(&format!("{path}.name"), "must be a DNS label: 1-63 lowercase letters, digits or '-'");
        }
        if !member_names.insert(member.name.as_str()) {
            errors.add(&format!("{path}.name"), "duplicate member name");
        }
        if member.public_keys.is_empty() {
            errors.add(&format!("{path}.publicKeys"), "a member needs at least one key");
        }
        errors.max_items(&format!("{path}.publicKeys"), member.public_keys.len(), MAX_MEMBER_KEYS);
        errors.public_keys(&format!("{path}.publicKeys"), &member.public_keys);
    }

    errors.max_items("spec.admins", spec.admins.len(), MAX_ADMINS);
    errors.public_keys("spec.admins", &spec.admins);

    if !is_positive_quantity(&spec.storage.size) {
        errors.add("spec.storage.size", msg::STORAGE_SIZE);
    }
    if spec.storage.storage_class_name.as_deref().is_some_and(str::is_empty) {
        errors.add("spec.storage.storageClassName", "must not be empty; omit it for the default class");
    }

    errors.max_items("spec.placement", spec.placement.len(), MAX_PLACEMENTS);
    let mut clusters = HashSet::new();
    for (index, entry) in spec.placement.iter().enumerate() {
        let path = format!("spec.placement[{index}]");
        if !is_dns_label(&entry.cluster) {
            errors.add(&format!("{path}.cluster"), "must be a DNS label");
        }
        if !clusters.insert(entry.cluster.as_str()) {
            errors.add("spec.placement", msg::PLACEMENT_UNIQUE);
        }
        errors.range(&format!("{path}.validators"), entry.validators.into(), 0, MAX_VALIDATORS.into());
        match (entry.local, &entry.kubeconfig_secret_ref) {
            (false, None) => errors.add(&path, msg::REMOTE_NEEDS_KUBECONFIG),
            (true, Some(_)) => errors.add(&path, msg::LOCAL_WITH_KUBECONFIG),
            _ => {}
        }
        if let Some(secret) = &entry.kubeconfig_secret_ref
            && (secret.name.is_empty() || secret.key.is_empty())
        {
            errors.add(&format!("{path}.kubeconfigSecretRef"), "name and key must not be empty");
        }
        if let Some(service) = &entry.service {
            errors.max_items(
                &format!("{path}.service.annotations"),
                service.annotations.len(),
                MAX_ANNOTATIONS,
            );
        }
    }
    if spec.placement.iter().filter(|entry| entry.local).count() > 1 {
        errors.add("spec.placement", msg::PLACEMENT_ONE_LOCAL);
    }
    let cluster_ip = |entry: &&crate::spec::PlacementSpec| {
        entry.service.as_ref().and_then(|service| service.type_) == Some(ServiceType::ClusterIp)
    };
    if spec.placement.len() >= 2 && spec.placement.iter().any(|entry| cluster_ip(&entry)) {
        errors.add("spec.placement", msg::PLACEMENT_CLUSTER_IP);
    }
    let placed: u64 = spec.placement.iter().map(|entry| u64::from(entry.validators)).sum();
    if !spec.placement.is_empty() && placed != u64::from(spec.validators) {
        errors.add("spec.placement", msg::PLACEMENT_SUM);
    }

    errors.range(
        "spec.chainStalledAfterSeconds",
        spec.chain_stalled_after_seconds.into(),
        MIN_STALLED_AFTER_SECONDS.into(),
        MAX_STALLED_AFTER_SECONDS.into(),
    );

    errors.into_result()
}

/// Checks an update as the API server would: `new` must be valid, and what is fixed at genesis
/// (or by the volumes) must not change.
pub fn validate_update(old: &BlockchainSpec, new: &BlockchainSpec) -> Result<(), Vec<String>> {
    let mut errors = Errors::default();
    if let Err(problems) = validate(new) {
        errors.0.extend(problems);
    }
    if old.chain_id != new.chain_id {
        errors.add("spec.chainId", msg::CHAIN_ID_IMMUTABLE);
    }
    // A set in the schema: the API server ignores order, and so does this check.
    let as_set = |keys: &[String]| keys.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    if as_set(&old.admins) != as_set(&new.admins) {
        errors.add("spec.admins", msg::ADMINS_IMMUTABLE);
    }
    if old.validators != new.validators {
        errors.add("spec.validators", msg::VALIDATORS_IMMUTABLE);
    }
    if old.consensus != new.consensus {
        errors.add("spec.consensus", msg::CONSENSUS_IMMUTABLE);
    }
    // A map keyed by name in the schema: the API server ignores order, and so does this check.
    let by_name = |members: &[MemberSpec]| {
        members
            .iter()
            .map(|m| (m.name.clone(), as_set(&m.public_keys)))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    if by_name(&old.members) != by_name(&new.members) {
        errors.add("spec.members", msg::MEMBERS_IMMUTABLE);
    }
    if old.storage.storage_class_name != new.storage.storage_class_name {
        errors.add("spec.storage", msg::STORAGE_CLASS_IMMUTABLE);
    }
    if let (Some(old_size), Some(new_size)) =
        (quantity_value(&old.storage.size), quantity_value(&new.storage.size))
        && new_size != old_size
    {
        errors.add("spec.storage", msg::STORAGE_SIZE_IMMUTABLE);
    }
    errors.into_result()
}

#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn add(&mut self, path: &str, message: &str) {
        let error = format!("{path}: {message}");
        // One message per problem, however many entries show it (e.g. three duplicates).
        if !self.0.contains(&error) {
            self.0.push(error);
        }
    }

    fn range(&mut self, path: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.add(path, &format!("must be between {min} and {max}, got {value}"));
        }
    }

    fn max_items(&mut self, path: &str, len: usize, max: u32) {
        if len > max as usize {
            self.add(path, &format!("at most {max} items, got {len}"));
        }
    }

    fn public_keys(&mut self, path: &str, keys: &[String]) {
        let mut seen = HashSet::new();
        for (index, key) in keys.iter().enumerate() {
            let well_formed = key.len() == PUBLIC_KEY_HEX_LEN as usize
                && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !well_formed {
                self.add(
                    &format!("{path}[{index}]"),
                    "must be 64 lowercase hex characters (an ed25519 public key)",
                );
            }
            if !seen.insert(key) {
                self.add(&format!("{path}[{index}]"), "duplicate key");
            }
        }
    }

    fn into_result(self) -> Result<(), Vec<String>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Kubernetes' DNS label, which is also the node's chain id rule.
pub fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    (1..=CHAIN_ID_MAX_LEN as usize).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn is_positive_quantity(text: &str) -> bool {
    text.len() <= QUANTITY_MAX_LEN as usize && quantity_value(text).is_some_and(|bytes| bytes > 0.0)
}

/// The value of a Kubernetes quantity (`20Gi`, `500M`, `1e9`, `0.5Ti`), or None when `text` is not
/// one. Float precision is plenty for comparing storage sizes.
pub fn quantity_value(text: &str) -> Option<f64> {
    let number_len =
        text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            10f64.powi(digits.parse().ok()?)
        }
    };
    let (sign, digits) = match number.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, number.strip_prefix('+').unwrap_or(number)),
    };
    let well_formed = digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|c| *c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return None;
    }
    Some(sign * digits.parse::<f64>().ok()? * scale)
}
