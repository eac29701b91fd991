//! Every reason a pass stops, or holds a validator back, decided in one place. Pure: the checks
//! take the spec and what dereference read, and return blockers (`Ready=False` with the
//! blocker's reason, and a Warning event) and warnings (`status.warnings`).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Resource, ResourceExt};
use kubechain_crds::{Blockchain, BlockchainSpec};
use kubechain_types::{Genesis, PublicKey};

use super::dereference::{StoredKey, StoredKeys};
use crate::build::meta::{labels, names, object_reference};
use crate::error::Error;
use crate::health::Blocker;

/// What stops a pass before anything is read or written: a spec the CRD's rules refuse (an
/// object an older CRD let through).
pub fn spec(spec: &BlockchainSpec) -> Vec<Blocker> {
    match kubechain_crds::validate(spec) {
        Ok(()) => Vec::new(),
        Err(problems) => vec![Blocker::new("InvalidSpec", problems.join("; "))],
    }
}

/// A new chain whose validators' keys cannot be made because their cluster does not answer.
pub fn cluster_unreachable(cluster: &str, why: &str) -> Blocker {
    Blocker::new(
        "ClusterUnreachable",
        format!("cluster {cluster} is unreachable, so its validators' keys cannot be made yet: {why}"),
    )
}

/// A member cluster holds another genesis than the hub: its validators would be another chain.
pub fn genesis_mismatch(cluster: &str, found: &str, expected: &str) -> Blocker {
    Blocker::new(
        "GenesisMismatch",
        format!(
            "cluster {cluster} holds genesis {found}, not the chain's {expected}: remove that cluster's genesis ConfigMap if it is left from another chain"
        ),
    )
}

/// The status pins a genesis whose ConfigMap is gone. A new genesis would be another chain, with
/// new keys for any missing Secret, so the chain stops until a person restores it.
pub fn genesis_lost(chain: &Blockchain, hash: &str) -> Blocker {
    let config_map = names::genesis_config_map(&chain.name_any());
    Blocker {
        related: Some(object_reference::<ConfigMap>(&chain.namespace().unwrap_or_default(), &config_map)),
        ..Blocker::new(
            "GenesisMissing",
            format!(
                "ConfigMap {config_map} with genesis {hash} is missing: restore it from a backup; it is never rebuilt"
            ),
        )
    }
}

/// An object under the name of one the operator makes once (a key Secret, the genesis) that was
/// not made for this Blockchain: it is neither taken nor replaced.
pub fn foreign_object<K: Resource<DynamicType = ()>>(chain: &Blockchain, name: &str, what: &str) -> Blocker {
    let uid = chain.metadata.uid.as_deref().unwrap_or_default();
    Blocker {
        related: Some(object_reference::<K>(&chain.namespace().unwrap_or_default(), name)),
        ..Blocker::new(
            "ForeignObject",
            format!(
                "{} {name} exists but was not made for this Blockchain (no owner reference to it, no label {}={uid}), so it is not taken as {what}: delete it to start a new chain, or label it to resume the chain it belongs to (docs/operator.md, Re-creating a chain)",
                K::kind(&()),
                labels::CHAIN_UID,
            ),
        )
    }
}

/// A new chain whose validators' volume claims are already there: a deleted chain of the same
/// name kept them (`spec.storage.retainOnDelete`), and they hold its blocks.
pub fn leftover_volumes(chain: &Blockchain, claims: &[String]) -> Blocker {
    Blocker::new(
        "VolumesHoldAnotherChain",
        format!(
            "volume claims of a deleted chain named {} are still here ({}): its validators would find that chain's blocks and stop. To resume that chain, restore its genesis ConfigMap and key Secrets, labelled {}={}; to start a new one, delete the claims (docs/operator.md, Re-creating a chain)",
            chain.name_any(),
            claims.join(", "),
            labels::CHAIN_UID,
            chain.metadata.uid.as_deref().unwrap_or_default(),
        ),
    )
}

/// A failure retrying will not fix.
pub fn reconcile_failed(error: &Error) -> Blocker {
    Blocker::new("ReconcileFailed", error.summary())
}

/// The verdict on a chain whose genesis exists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub blockers: Vec<Blocker>,
    /// Validators without their key: they cannot start, so their StatefulSets are left alone.
    pub keyless: Vec<u32>,
    pub warnings: Vec<String>,
}

/// Checks the chain's keys: genesis' validators against genesis, and those added since (indices
/// from the genesis count on) for a readable key.
pub fn chain(chain: &Blockchain, genesis: &Genesis, keys: &StoredKeys) -> Verdict {
    let mut verdict = Verdict::default();
    validator_keys(chain, &genesis.validators, &keys.validators, &mut verdict);
    verdict.warnings.extend(admin_key(&chain.name_any(), &genesis.admins, &keys.admin));
    verdict
}

/// Every validator needs its key; a lost key is never replaced, since the chain knows that
/// validator by it. One blocker per problem, naming the Secret. A validator added after genesis
/// whose Secret is not made yet is only held back: the reconfiguration step makes it.
fn validator_keys(chain: &Blockchain, on_genesis: &[PublicKey], stored: &[StoredKey], verdict: &mut Verdict) {
    let name = chain.name_any();
    let namespace = chain.namespace().unwrap_or_default();
    for (index, found) in (0u32..).zip(stored) {
        let secret_name = names::validator_key_secret(&name, index);
        let expected = on_genesis.get(index as usize);
        let problem = match (found, expected) {
            // Its cluster does not answer: ClusterUnreachable says so, and nothing is applied there.
            (StoredKey::Unknown, _) => continue,
            (StoredKey::Holds(key), Some(expected)) if key == expected => continue,
            (StoredKey::Holds(_), None) => continue,
            (StoredKey::Missing, None) => {
                verdict.keyless.push(index);
                continue;
            }
            (StoredKey::Holds(_), Some(_)) => Blocker::new(
                "KeyMismatch",
                format!("Secret {secret_name} holds another key than validator {index} in genesis"),
            ),
            (StoredKey::Unreadable(error), _) => {
                Blocker::new("KeyUnreadable", format!("Secret {secret_name}: {error}"))
            }
            (StoredKey::Missing, Some(_)) => Blocker::new(
                "KeyMissing",
                format!(
                    "Secret {secret_name} with validator {index}'s key is missing: restore it from a backup; it is never regenerated"
                ),
            ),
        };
        verdict.keyless.push(index);
        verdict
            .blockers
            .push(Blocker { related: Some(object_reference::<Secret>(&namespace, &secret_name)), ..problem });
    }
}

/// The operator's admin key signs nothing yet, but it is the consortium's way to govern the chain:
/// a lost one is a warning (it is never regenerated either).
fn admin_key(name: &str, admins: &[PublicKey], stored: &StoredKey) -> Option<String> {
    let problem = match stored {
        StoredKey::Holds(key) if admins.contains(key) => return None,
        StoredKey::Holds(_) => "holds a key that is not an admin in genesis",
        StoredKey::Unreadable(_) => "cannot be read",
        StoredKey::Missing => "is missing",
        StoredKey::Unknown => return None,
    };
    let secret_name = names::admin_key_secret(name);
    Some(format!("Secret {secret_name} with the operator's admin key {problem}: restore it from a backup"))
}

#[cfg(test)]
mod tests {
    use kubechain_crds::PlacementSpec;
    use kubechain_types::SigningKey;

    use super::*;
    use crate::build::{KeySecretError, build_genesis};

    fn blockchain(validators: u32) -> Blockchain {
        let mut chain =
            Blockchain::new("trade", BlockchainSpec::new("trade-1", validators, "kubechain/node:0.1.0"));
        chain.metadata.namespace = Some("ledger".into());
        chain
    }

    fn key(seed: u8) -> PublicKey {
        SigningKey::from_seed([seed; 32]).public_key()
    }

    const ADMIN: u8 = 0xad;

    fn genesis(validators: u32) -> Genesis {
        let keys: Vec<PublicKey> = (0..validators).map(|index| key(index as u8 + 1)).collect();
        build_genesis(&blockchain(validators).spec, &keys, key(ADMIN), 1_700_000_000_000).expect("a genesis")
    }

    /// Every key where genesis says it is.
    fn all_keys(validators: u32) -> StoredKeys {
        StoredKeys {
            validators: (0..validators).map(|index| StoredKey::Holds(key(index as u8 + 1))).collect(),
            admin: StoredKey::Holds(key(ADMIN)),
        }
    }

    fn reasons(blockers: &[Blocker]) -> Vec<&str> {
        blockers.iter().map(|blocker| blocker.reason).collect()
    }

    #[test]
    fn a_valid_local_spec_has_no_blockers() {
        assert!(spec(&blockchain(4).spec).is_empty());
    }

    #[test]
    fn a_bad_spec_lists_every_problem() {
        let mut bad = blockchain(4).spec;
        bad.chain_id = "Not A Label".into();
        bad.chain_stalled_after_seconds = 1;
        let blockers = spec(&bad);
        assert_eq!(reasons(&blockers), ["InvalidSpec"]);
        assert!(blockers[0].message.contains("spec.chainId: ") && blockers[0].message.contains("; "));
        assert!(blockers[0].message.contains("spec.chainStalledAfterSeconds"));
    }

    #[test]
    fn validators_in_member_clusters_are_a_valid_spec() {
        let mut spread = blockchain(4).spec;
        let remote = serde_json::json!({
            "cluster": "aws", "validators": 4, "kubeconfigSecretRef": {"name": "aws", "key": "kubeconfig"}
        });
        spread.placement = vec![serde_json::from_value::<PlacementSpec>(remote).expect("a placement entry")];
        assert!(spec(&spread).is_empty());
    }

    #[test]
    fn a_lost_genesis_names_its_config_map_and_hash() {
        let blocker = genesis_lost(&blockchain(4), "7c25");
        assert_eq!(blocker.reason, "GenesisMissing");
        assert!(blocker.message.contains("trade-genesis") && blocker.message.contains("7c25"));
        let related = blocker.related.expect("names the ConfigMap");
        assert_eq!(
            (related.kind.as_deref(), related.name.as_deref()),
            (Some("ConfigMap"), Some("trade-genesis"))
        );
    }

    #[test]
    fn a_chain_with_every_key_in_place_passes() {
        assert_eq!(chain(&blockchain(4), &genesis(4), &all_keys(4)), Verdict::default());
    }

    #[test]
    fn each_key_problem_blocks_its_validator_and_names_its_secret() {
        let mut keys = all_keys(4);
        keys.validators[1] = StoredKey::Missing;
        keys.validators[2] = StoredKey::Holds(key(99));
        keys.validators[3] = StoredKey::Unreadable(KeySecretError::Missing {
            secret: "trade-validator-3-key".into(),
            data_key: "validator.key".into(),
        });
        let verdict = chain(&blockchain(4), &genesis(4), &keys);
        assert_eq!(reasons(&verdict.blockers), ["KeyMissing", "KeyMismatch", "KeyUnreadable"]);
        assert_eq!(verdict.keyless, [1, 2, 3]);
        for (blocker, index) in verdict.blockers.iter().zip(1..) {
            let secret = format!("trade-validator-{index}-key");
            assert!(blocker.message.contains(&secret), "{}", blocker.message);
            let related = blocker.related.as_ref().expect("names the Secret");
            assert_eq!(
                (related.kind.as_deref(), related.name.as_deref()),
                (Some("Secret"), Some(secret.as_str()))
            );
        }
        assert!(verdict.blockers[0].message.contains("never regenerated"));
        assert!(verdict.warnings.is_empty());
    }

    #[test]
    fn validators_added_after_genesis_need_only_a_readable_key() {
        let mut keys = all_keys(4);
        keys.validators.push(StoredKey::Holds(key(50)));
        keys.validators.push(StoredKey::Missing);
        let verdict = chain(&blockchain(6), &genesis(4), &keys);
        assert!(verdict.blockers.is_empty(), "{verdict:?}");
        assert_eq!(verdict.keyless, [5], "held back until its key is made");
    }

    #[test]
    fn a_lost_or_foreign_admin_key_is_only_a_warning() {
        for (admin, problem) in [
            (StoredKey::Missing, "is missing"),
            (StoredKey::Holds(key(1)), "is not an admin in genesis"),
            (
                StoredKey::Unreadable(KeySecretError::Missing {
                    secret: "trade-admin-key".into(),
                    data_key: "admin.key".into(),
                }),
                "cannot be read",
            ),
        ] {
            let verdict = chain(&blockchain(4), &genesis(4), &StoredKeys { admin, ..all_keys(4) });
            assert!(verdict.blockers.is_empty());
            assert_eq!(verdict.warnings.len(), 1);
            assert!(verdict.warnings[0].starts_with("Secret trade-admin-key with the operator's admin key"));
            assert!(verdict.warnings[0].contains(problem), "{}", verdict.warnings[0]);
        }
    }

    #[test]
    fn a_failure_that_needs_a_person_becomes_reconcile_failed() {
        let error =
            Error::KeySecret { secret: "trade-admin-key".into(), reason: "no admin.key entry".into() };
        let blocker = reconcile_failed(&error);
        assert_eq!(blocker.reason, "ReconcileFailed");
        assert_eq!(blocker.message, "Secret trade-admin-key: no admin.key entry");
    }
}
