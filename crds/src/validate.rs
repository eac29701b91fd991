//! The CRD's rules in Rust, for the operator (a spec stored before a CRD upgrade is checked
//! again) and for tests. Messages are the CEL rules' own, so a user sees the same words from
//! `kubectl apply` and from the operator's conditions.

use std::collections::HashSet;

use crate::limits::*;
use crate::messages;
use crate::spec::{BlockchainSpec, ServiceType};

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
        errors.add("spec.storage.size", messages::STORAGE_SIZE);
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
            errors.add("spec.placement", messages::PLACEMENT_UNIQUE);
        }
        errors.range(&format!("{path}.validators"), entry.validators.into(), 0, MAX_VALIDATORS.into());
        match (entry.local, &entry.kubeconfig_secret_ref) {
            (false, None) => errors.add(&path, messages::REMOTE_NEEDS_KUBECONFIG),
            (true, Some(_)) => errors.add(&path, messages::LOCAL_WITH_KUBECONFIG),
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
            if let Some(host) = &service.advertised_host
                && !is_host(host)
            {
                errors.add(
                    &format!("{path}.service.advertisedHost"),
                    "must be a DNS name or an IPv4 address, in lowercase",
                );
            }
        }
        errors.max_items(&format!("{path}.egressCidrs"), entry.egress_cidrs.len(), MAX_EGRESS_CIDRS);
        if !entry.egress_cidrs.iter().all(|cidr| is_cidr(cidr)) {
            errors.add(&format!("{path}.egressCidrs"), messages::EGRESS_CIDR);
        }
    }
    if spec.placement.iter().filter(|entry| entry.local).count() > 1 {
        errors.add("spec.placement", messages::PLACEMENT_ONE_LOCAL);
    }
    let cluster_ip = |entry: &&crate::spec::PlacementSpec| {
        entry.service.as_ref().and_then(|service| service.type_) == Some(ServiceType::ClusterIp)
    };
    if spec.placement.len() >= 2 && spec.placement.iter().any(|entry| cluster_ip(&entry)) {
        errors.add("spec.placement", messages::PLACEMENT_CLUSTER_IP);
    }
    let placed: u64 = spec.placement.iter().map(|entry| u64::from(entry.validators)).sum();
    if !spec.placement.is_empty() && placed != u64::from(spec.validators) {
        errors.add("spec.placement", messages::PLACEMENT_SUM);
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
        errors.add("spec.chainId", messages::CHAIN_ID_IMMUTABLE);
    }
    if old.consensus.checkpoint_interval != new.consensus.checkpoint_interval {
        errors.add("spec.consensus.checkpointInterval", messages::CHECKPOINT_INTERVAL_IMMUTABLE);
    }
    let assignment = |spec: &BlockchainSpec| {
        spec.placement.iter().map(|p| (p.cluster.clone(), p.validators, p.local)).collect::<Vec<_>>()
    };
    if old.placement.is_empty() != new.placement.is_empty() {
        errors.add("spec.placement", messages::PLACEMENT_ADDED_OR_REMOVED);
    } else if assignment(old) != assignment(new) {
        errors.add("spec.placement", messages::PLACEMENT_IMMUTABLE);
    }
    if old.storage.storage_class_name != new.storage.storage_class_name {
        errors.add("spec.storage", messages::STORAGE_CLASS_IMMUTABLE);
    }
    if let (Some(old_size), Some(new_size)) =
        (quantity_value(&old.storage.size), quantity_value(&new.storage.size))
        && new_size != old_size
    {
        errors.add("spec.storage", messages::STORAGE_SIZE_IMMUTABLE);
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

/// A DNS name of lowercase labels, or an IPv4 address (`HOST_PATTERN`).
pub fn is_host(text: &str) -> bool {
    text.len() <= DNS_SUBDOMAIN_MAX_LEN as usize && text.split('.').all(is_dns_label)
}

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), as CEL's `isCIDR`.
pub fn is_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else { return false };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let prefix: u32 = prefix.parse().unwrap_or(u32::MAX);
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
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
