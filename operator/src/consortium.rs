//! Members, admins and consensus parameters on chain follow `spec.members`, `spec.admins` and
//! `spec.consensus`. Pure: it compares the spec with what a validator says the chain holds and
//! decides the one next admin transaction; [`crate::reconcile`] signs and submits it.
//!
//! The spec manages what it names: a member or admin that genesis or a spec named and the spec no
//! longer lists is removed; one added on chain by other means (`kubechain admin`) and never named
//! is left alone, and so is the operator's own admin key. One transaction in flight at a time, in
//! this order:
//! 1. Members: every member that is gone from the spec, or whose keys changed, is removed, then
//!    every new or changed one added, all in one transaction (so a key moving between members is
//!    free again before it is registered, and a changed member is never without keys in between).
//! 2. Admins: the new ones added, then the ones the spec dropped removed, in one transaction.
//! 3. Parameters: one `SetConsensusParams`, only while no change of the rules is in flight (it
//!    takes effect a watermark window later, like a validator change).

use std::collections::{BTreeMap, BTreeSet};

use kubechain_api::ConsortiumView;
use kubechain_crds::{BlockchainSpec, ConsensusSpec, ConsensusStatus};
use kubechain_types::{AdminOperation, ConsensusParams, Genesis, PublicKey};

/// Most operations one transaction may carry (the ledger's `MAX_OPERATIONS`).
pub const MAX_OPERATIONS: usize = 64;

/// What the chain holds, as one validator in force answered.
#[derive(Clone, Copy, Debug)]
pub struct OnChain<'a> {
    pub consortium: &'a ConsortiumView,
    /// The parameters the chain is headed for: scheduled ones, else those in force.
    pub latest_params: &'a ConsensusParams,
    /// A change of validators or parameters is committed and not in force yet.
    pub rules_in_flight: bool,
}

/// The members (by name) and admins that genesis or a spec seen by this operator named: only
/// these are removed when the spec drops them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    pub members: BTreeSet<String>,
    pub admins: BTreeSet<PublicKey>,
}

impl Declared {
    pub fn from_genesis(genesis: &Genesis) -> Declared {
        Declared {
            members: genesis.members.iter().map(|member| member.name.clone()).collect(),
            admins: genesis.admins.iter().copied().collect(),
        }
    }

    /// These, and what `spec` names.
    pub fn with(mut self, spec: &BlockchainSpec) -> Declared {
        self.members.extend(spec.members.iter().map(|member| member.name.clone()));
        self.admins.extend(parsed(&spec.admins));
        self
    }

    /// Without what is gone from both `spec` and the chain: its removal is done.
    pub fn settled(mut self, spec: &BlockchainSpec, chain: &ConsortiumView) -> Declared {
        let on_chain: BTreeSet<&str> = chain.members.iter().map(|member| member.name.as_str()).collect();
        self.members
            .retain(|name| on_chain.contains(name.as_str()) || spec.members.iter().any(|m| &m.name == name));
        let wanted = parsed(&spec.admins);
        self.admins.retain(|key| chain.admins.contains(key) || wanted.contains(key));
        self
    }
}

/// One admin transaction to sign: its operations, and what it does in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub reason: &'static str,
    pub summary: String,
    pub operations: Vec<AdminOperation>,
}

/// The one next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The chain holds what the spec asks for.
    Settled,
    /// Sign and submit this transaction.
    Submit(Edit),
    /// Something must happen first; `reason` and `message` go into the Reconfiguring condition.
    Waiting { reason: &'static str, message: String },
}

impl Step {
    /// The Reconfiguring condition's reason and message; `None` when settled.
    pub fn condition(&self) -> Option<(&'static str, String)> {
        match self {
            Step::Settled => None,
            Step::Submit(edit) => {
                Some((edit.reason, format!("{}: submitted, waiting for it to commit", edit.summary)))
            }
            Step::Waiting { reason, message } => Some((reason, message.clone())),
        }
    }
}

/// The node's parameters for `spec`.
pub fn params_of(spec: &ConsensusSpec) -> ConsensusParams {
    ConsensusParams {
        block_interval_ms: spec.block_interval_ms,
        max_block_txs: spec.max_block_txs,
        checkpoint_interval: spec.checkpoint_interval,
        view_change_timeout_ms: spec.view_change_timeout_ms,
        pow_difficulty_bits: spec.pow_difficulty_bits,
    }
}

/// `params` as the status shows them.
pub fn params_status(
    params: &ConsensusParams,
    activation_height: Option<u64>,
    scheduled: bool,
) -> ConsensusStatus {
    ConsensusStatus {
        block_interval_ms: params.block_interval_ms,
        max_block_txs: params.max_block_txs,
        checkpoint_interval: params.checkpoint_interval,
        view_change_timeout_ms: params.view_change_timeout_ms,
        pow_difficulty_bits: params.pow_difficulty_bits,
        activation_height,
        scheduled,
    }
}

/// True when the spec asks for what genesis wrote: a chain nobody can read yet (one starting) is
/// then not waiting for a change.
pub fn as_in_genesis(spec: &BlockchainSpec, operator_admin: &PublicKey, genesis: &Genesis) -> bool {
    let written = ConsortiumView {
        height: 0,
        members: genesis.members.clone(),
        admins: genesis.admins.clone(),
        truncated: false,
    };
    let declared = Declared::from_genesis(genesis);
    members_edit(spec, &declared, &written).is_none()
        && admins_edit(spec, operator_admin, &declared, &written).is_none()
        && params_of(&spec.consensus) == genesis.params
}

pub fn decide(
    spec: &BlockchainSpec,
    operator_admin: &PublicKey,
    genesis: &Genesis,
    declared: &Declared,
    chain: Option<OnChain<'_>>,
) -> Step {
    let Some(chain) = chain else {
        if as_in_genesis(spec, operator_admin, genesis) {
            return Step::Settled;
        }
        return Step::Waiting {
            reason: "ChainUnreadable",
            message: "no validator in force answers with the consortium: members, admins and parameters change once the chain can be read".into(),
        };
    };
    if !chain.consortium.admins.contains(operator_admin) {
        return Step::Waiting {
            reason: "OperatorNotAdmin",
            message: format!(
                "another admin removed the operator's admin key {operator_admin} on chain, so the operator can change nothing; an admin must add it back (kubechain admin add-admin --key {operator_admin})"
            ),
        };
    }
    if chain.consortium.truncated {
        return Step::Waiting {
            reason: "ConsortiumTooLarge",
            message: "the chain lists more members or admins than one answer holds: the operator does not change them".into(),
        };
    }
    if let Some(edit) = members_edit(spec, declared, chain.consortium) {
        return Step::Submit(edit);
    }
    if let Some(edit) = admins_edit(spec, operator_admin, declared, chain.consortium) {
        return Step::Submit(edit);
    }
    let desired = params_of(&spec.consensus);
    if &desired == chain.latest_params {
        return Step::Settled;
    }
    if chain.rules_in_flight {
        return Step::Waiting {
            reason: "ChangeInFlight",
            message:
                "spec.consensus changed: it is submitted once the change of the rules in flight is in force"
                    .into(),
        };
    }
    Step::Submit(Edit {
        reason: "ParametersChanging",
        summary: format!("setting consensus parameters {}", describe(&desired)),
        operations: vec![AdminOperation::SetConsensusParams { params: desired }],
    })
}

/// Keys of `spec` parsed; a key that does not parse is left out (the spec check refuses it first).
fn parsed(keys: &[String]) -> Vec<PublicKey> {
    keys.iter().filter_map(|key| PublicKey::from_hex(key).ok()).collect()
}

fn members_edit(spec: &BlockchainSpec, declared: &Declared, chain: &ConsortiumView) -> Option<Edit> {
    let desired: BTreeMap<&str, Vec<PublicKey>> =
        spec.members.iter().map(|member| (member.name.as_str(), parsed(&member.public_keys))).collect();
    let on_chain: BTreeMap<&str, &[PublicKey]> =
        chain.members.iter().map(|member| (member.name.as_str(), member.public_keys.as_slice())).collect();
    let same = |a: &[PublicKey], b: &[PublicKey]| {
        a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
    };
    let removed: Vec<&str> = on_chain
        .iter()
        .filter(|(name, keys)| match desired.get(*name) {
            Some(wanted) => !same(wanted, keys),
            None => declared.members.contains(**name),
        })
        .map(|(name, _)| *name)
        .collect();
    let added: Vec<(&str, &Vec<PublicKey>)> = desired
        .iter()
        .filter(|(name, keys)| on_chain.get(*name).is_none_or(|held| !same(keys, held)))
        .map(|(name, keys)| (*name, keys))
        .collect();
    if removed.is_empty() && added.is_empty() {
        return None;
    }
    let remove = |name: &str| AdminOperation::RemoveMember { name: name.to_string() };
    let add = |name: &str, keys: &[PublicKey]| AdminOperation::AddMember {
        name: name.to_string(),
        public_keys: keys.to_vec(),
    };
    let (changed, gone): (Vec<&str>, Vec<&str>) =
        removed.iter().partition(|name| desired.contains_key(**name));
    let new: Vec<(&str, &Vec<PublicKey>)> =
        added.iter().copied().filter(|(name, _)| !changed.contains(name)).collect();
    let (mut gone, mut changed, mut new) = (gone, changed, new);
    let operations: Vec<AdminOperation> = if removed.len() + added.len() <= MAX_OPERATIONS {
        // All removals first: a key moving from one member to another is free before it is added.
        removed
            .iter()
            .map(|name| remove(name))
            .chain(added.iter().map(|(name, keys)| add(name, keys)))
            .collect()
    } else {
        // More than one transaction holds: whole changes only (a changed member's removal and
        // addition together), in the same order; the rest follows in the next transaction.
        gone.truncate(MAX_OPERATIONS);
        let mut operations: Vec<AdminOperation> = gone.iter().map(|name| remove(name)).collect();
        changed.truncate((MAX_OPERATIONS - operations.len()) / 2);
        for name in &changed {
            operations.extend([remove(name), add(name, &desired[name])]);
        }
        new.truncate(MAX_OPERATIONS - operations.len());
        operations.extend(new.iter().map(|(name, keys)| add(name, keys)));
        operations
    };
    let new: Vec<&str> = new.iter().map(|(name, _)| *name).collect();
    let mut parts = Vec::new();
    for (verb, names) in [("removing", &gone), ("changing the keys of", &changed), ("adding", &new)] {
        if !names.is_empty() {
            parts.push(format!("{verb} {}", listed("member", names)));
        }
    }
    Some(Edit { reason: "MembersChanging", summary: parts.join(", "), operations })
}

fn admins_edit(
    spec: &BlockchainSpec,
    operator_admin: &PublicKey,
    declared: &Declared,
    chain: &ConsortiumView,
) -> Option<Edit> {
    let desired: BTreeSet<PublicKey> = parsed(&spec.admins).into_iter().chain([*operator_admin]).collect();
    let on_chain: BTreeSet<PublicKey> = chain.admins.iter().copied().collect();
    let added: Vec<PublicKey> = desired.difference(&on_chain).copied().collect();
    let removed: Vec<PublicKey> =
        on_chain.difference(&desired).filter(|key| declared.admins.contains(key)).copied().collect();
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    let mut operations: Vec<AdminOperation> = added
        .iter()
        .map(|key| AdminOperation::AddAdmin { public_key: *key })
        .chain(removed.iter().map(|key| AdminOperation::RemoveAdmin { public_key: *key }))
        .collect();
    operations.truncate(MAX_OPERATIONS);
    let hex = |keys: &[PublicKey]| keys.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut parts = Vec::new();
    for (verb, keys) in [("adding", hex(&added)), ("removing", hex(&removed))] {
        if !keys.is_empty() {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            parts.push(format!("{verb} {}", listed("admin", &keys)));
        }
    }
    Some(Edit { reason: "AdminsChanging", summary: parts.join(", "), operations })
}

/// `member acme` or `members acme, globex`.
fn listed(noun: &str, names: &[&str]) -> String {
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", names.join(", "))
}

fn describe(params: &ConsensusParams) -> String {
    format!(
        "(blockIntervalMs {}, maxBlockTxs {}, viewChangeTimeoutMs {}, powDifficultyBits {})",
        params.block_interval_ms,
        params.max_block_txs,
        params.view_change_timeout_ms,
        params.pow_difficulty_bits
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubechain_crds::MemberSpec;
    use kubechain_types::{Member, SigningKey};

    fn key(seed: u8) -> PublicKey {
        SigningKey::from_seed([seed; 32]).public_key()
    }

    fn spec(members: &[(&str, &[u8])], admins: &[u8]) -> BlockchainSpec {
        let mut spec = BlockchainSpec::new("c", 4, "kubechain/node:test");
        spec.members = members
            .iter()
            .map(|(name, seeds)| MemberSpec {
                name: name.to_string(),
                public_keys: seeds.iter().map(|seed| key(*seed).to_string()).collect(),
            })
            .collect();
        spec.admins = admins.iter().map(|seed| key(*seed).to_string()).collect();
        spec
    }

    fn consortium(members: &[(&str, &[u8])], admins: &[u8]) -> ConsortiumView {
        ConsortiumView {
            height: 9,
            members: members
                .iter()
                .map(|(name, seeds)| Member {
                    name: name.to_string(),
                    public_keys: seeds.iter().map(|seed| key(*seed)).collect(),
                })
                .collect(),
            admins: admins.iter().map(|seed| key(*seed)).collect(),
            truncated: false,
        }
    }

    const OPERATOR: u8 = 100;

    /// The genesis the operator writes for `spec`.
    fn genesis_of(spec: &BlockchainSpec) -> Genesis {
        Genesis {
            chain_id: spec.chain_id.clone(),
            genesis_time_ms: 0,
            validators: Vec::new(),
            admins: parsed(&spec.admins).into_iter().chain([key(OPERATOR)]).collect(),
            members: spec
                .members
                .iter()
                .map(|member| Member { name: member.name.clone(), public_keys: parsed(&member.public_keys) })
                .collect(),
            params: params_of(&spec.consensus),
        }
    }

    fn decide_on(
        spec: &BlockchainSpec,
        chain: &ConsortiumView,
        params: &ConsensusParams,
        in_flight: bool,
    ) -> Step {
        let on_chain = OnChain { consortium: chain, latest_params: params, rules_in_flight: in_flight };
        // Everything on chain was named once (by genesis or an earlier spec).
        let declared = Declared {
            members: chain.members.iter().map(|member| member.name.clone()).collect(),
            admins: chain.admins.iter().copied().collect(),
        };
        decide(spec, &key(OPERATOR), &genesis_of(spec), &declared.with(spec), Some(on_chain))
    }

    fn submitted(step: Step) -> Edit {
        match step {
            Step::Submit(edit) => edit,
            other => panic!("expected a submission, got {other:?}"),
        }
    }

    #[test]
    fn a_chain_that_matches_the_spec_is_settled() {
        let spec = spec(&[("acme", &[1, 2])], &[7]);
        // Key order on chain and in the spec does not matter.
        let chain = consortium(&[("acme", &[2, 1])], &[OPERATOR, 7]);
        let params = params_of(&spec.consensus);
        assert_eq!(decide_on(&spec, &chain, &params, true), Step::Settled);
        // Unreadable: nothing to wait for while the spec is what genesis wrote.
        let none = Declared::default();
        assert_eq!(decide(&spec, &key(OPERATOR), &genesis_of(&spec), &none, None), Step::Settled);
        let mut later = spec.clone();
        later.consensus.block_interval_ms = 50;
        assert_eq!(
            decide(&later, &key(OPERATOR), &genesis_of(&spec), &none, None).condition().unwrap().0,
            "ChainUnreadable"
        );
    }

    #[test]
    fn members_are_removed_before_they_are_added_in_one_transaction() {
        // globex leaves, acme's key moves to initech, acme gets a new key.
        let spec = spec(&[("acme", &[3]), ("initech", &[1])], &[]);
        let chain = consortium(&[("acme", &[1]), ("globex", &[2])], &[OPERATOR]);
        let edit = submitted(decide_on(&spec, &chain, &params_of(&spec.consensus), false));
        assert_eq!(edit.reason, "MembersChanging");
        assert_eq!(
            edit.operations,
            vec![
                AdminOperation::RemoveMember { name: "acme".into() },
                AdminOperation::RemoveMember { name: "globex".into() },
                AdminOperation::AddMember { name: "acme".into(), public_keys: vec![key(3)] },
                AdminOperation::AddMember { name: "initech".into(), public_keys: vec![key(1)] },
            ]
        );
        assert_eq!(
            edit.summary,
            "removing member globex, changing the keys of member acme, adding member initech"
        );
    }

    #[test]
    fn admins_follow_the_spec_but_the_operator_key_stays() {
        let spec = spec(&[], &[7, 8]);
        let chain = consortium(&[], &[OPERATOR, 7, 9]);
        let edit = submitted(decide_on(&spec, &chain, &params_of(&spec.consensus), false));
        assert_eq!(
            edit.operations,
            vec![
                AdminOperation::AddAdmin { public_key: key(8) },
                AdminOperation::RemoveAdmin { public_key: key(9) }
            ]
        );
        // The operator's own key, not in spec.admins, is never removed.
        let chain = consortium(&[], &[OPERATOR, 7, 8]);
        assert_eq!(decide_on(&spec, &chain, &params_of(&spec.consensus), false), Step::Settled);
    }

    #[test]
    fn members_go_first_then_admins_then_parameters() {
        let mut spec = spec(&[("acme", &[1])], &[7]);
        spec.consensus.block_interval_ms = 50;
        let on_chain_params = ConsensusParams::default();
        let chain = consortium(&[], &[OPERATOR]);
        assert_eq!(submitted(decide_on(&spec, &chain, &on_chain_params, false)).reason, "MembersChanging");
        let chain = consortium(&[("acme", &[1])], &[OPERATOR]);
        assert_eq!(submitted(decide_on(&spec, &chain, &on_chain_params, false)).reason, "AdminsChanging");
        let chain = consortium(&[("acme", &[1])], &[OPERATOR, 7]);
        let edit = submitted(decide_on(&spec, &chain, &on_chain_params, false));
        assert_eq!(edit.reason, "ParametersChanging");
        assert_eq!(
            edit.operations,
            vec![AdminOperation::SetConsensusParams { params: params_of(&spec.consensus) }]
        );
        // Not while another change of the rules waits for its height; settled once scheduled.
        let waiting = decide_on(&spec, &chain, &on_chain_params, true);
        assert_eq!(waiting.condition().unwrap().0, "ChangeInFlight");
        assert_eq!(decide_on(&spec, &chain, &params_of(&spec.consensus), true), Step::Settled);
    }

    #[test]
    fn what_no_spec_named_is_left_alone_and_what_one_named_goes_when_dropped() {
        let spec = spec(&[("acme", &[1])], &[]);
        // globex and admin 9 came on chain by other means; initech and admin 8 were named once.
        let chain = consortium(&[("acme", &[1]), ("globex", &[2]), ("initech", &[3])], &[OPERATOR, 8, 9]);
        let declared = Declared::default().with(&spec);
        let mut declared = declared.clone();
        declared.members.insert("initech".into());
        declared.admins.insert(key(8));
        let on_chain = OnChain {
            consortium: &chain,
            latest_params: &params_of(&spec.consensus),
            rules_in_flight: false,
        };
        let step = decide(&spec, &key(OPERATOR), &genesis_of(&spec), &declared, Some(on_chain));
        assert_eq!(submitted(step).operations, vec![AdminOperation::RemoveMember { name: "initech".into() }]);
        let chain = consortium(&[("acme", &[1]), ("globex", &[2])], &[OPERATOR, 8, 9]);
        let on_chain = OnChain { consortium: &chain, ..on_chain };
        let step = decide(&spec, &key(OPERATOR), &genesis_of(&spec), &declared, Some(on_chain));
        assert_eq!(submitted(step).operations, vec![AdminOperation::RemoveAdmin { public_key: key(8) }]);
        // Once gone from spec and chain, a name is forgotten.
        let chain = consortium(&[("acme", &[1]), ("globex", &[2])], &[OPERATOR, 9]);
        let settled = declared.settled(&spec, &chain);
        assert_eq!(settled.members, ["acme".to_string()].into());
        assert!(!settled.admins.contains(&key(8)));
    }

    #[test]
    fn an_operator_key_taken_away_on_chain_is_said_not_fought() {
        let spec = spec(&[("acme", &[1])], &[7]);
        let chain = consortium(&[], &[7]);
        let waiting = decide_on(&spec, &chain, &params_of(&spec.consensus), false);
        let (reason, message) = waiting.condition().unwrap();
        assert_eq!(reason, "OperatorNotAdmin");
        assert!(message.contains(&format!("add-admin --key {}", key(OPERATOR))), "{message}");
    }

    #[test]
    fn a_transaction_carries_at_most_the_ledger_limit() {
        let names: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        let mut spec = spec(&[], &[]);
        spec.members = names
            .iter()
            .enumerate()
            .map(|(i, name)| MemberSpec {
                name: name.clone(),
                public_keys: vec![key(i as u8 + 1).to_string()],
            })
            .collect();
        let chain = consortium(&[], &[OPERATOR]);
        let edit = submitted(decide_on(&spec, &chain, &params_of(&spec.consensus), false));
        assert_eq!(edit.operations.len(), MAX_OPERATIONS);
        assert_eq!(
            edit.summary.matches(", m").count() + 1,
            MAX_OPERATIONS,
            "the summary names what is submitted"
        );
        // A changed member's removal and addition never go in different transactions.
        let mut chain = consortium(&[], &[OPERATOR]);
        chain.members = spec.members[..70]
            .iter()
            .map(|member| Member { name: member.name.clone(), public_keys: vec![key(200)] })
            .collect();
        let edit = submitted(decide_on(&spec, &chain, &params_of(&spec.consensus), false));
        assert_eq!(edit.operations.len(), MAX_OPERATIONS);
        assert!(
            matches!(edit.operations.last(), Some(AdminOperation::AddMember { .. })),
            "{:?}",
            edit.operations
        );
        let mut truncated = consortium(&[], &[OPERATOR]);
        truncated.truncated = true;
        let waiting = decide_on(&spec, &truncated, &params_of(&spec.consensus), false);
        assert_eq!(waiting.condition().unwrap().0, "ConsortiumTooLarge");
    }
}
