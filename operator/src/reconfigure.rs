//! Growing and shrinking the validator set on chain to `spec.validators`, one validator at a time.
//! Pure: it takes what the validators' APIs said and which keys the operator holds, and decides
//! which validators run and the one next step; [`crate::reconcile`] carries the step out.
//!
//! The rules, learned the hard way by operators of BFT chains:
//! - One change in flight at a time: nothing is submitted while a committed change has not taken
//!   effect (the validators report it as `scheduled`).
//! - A new validator starts first, outside the set, and is added only once it has caught up.
//! - A change is submitted only while the validators that are ready and stay in the new set reach
//!   the new set's quorum, so the chain can commit at once whatever the joining one does.
//! - Removal happens on chain first; the validator's pod goes only once the removal is in force.
//! - A validator's key is never regenerated: a new key is made only for an index that is not in
//!   the set, and only while every key in the set is held by one of the chain's key Secrets (a
//!   key on chain that no Secret holds may be a lost Secret's, to be restored, not replaced).

use std::collections::{BTreeMap, BTreeSet};

use kubechain_api::{NodeStatus, Role};
use kubechain_types::{AdminOperation, PublicKey, quorum};

use crate::health::{CAUGHT_UP_WITHIN_BLOCKS, Observation};

/// The chain as its most advanced validator reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainView {
    pub height: u64,
    /// The set in force at the next height.
    pub in_force: Vec<PublicKey>,
    /// A committed change not in force yet: the set it makes, and from which height.
    pub scheduled: Option<(u64, Vec<PublicKey>)>,
}

impl ChainView {
    /// The view of the highest validator that answered, if any did.
    pub fn of(observations: &[Observation]) -> Option<ChainView> {
        let tip = observations
            .iter()
            .filter_map(|observation| observation.status.as_ref())
            .max_by_key(|status| (status.height, status.view))?;
        Some(ChainView {
            height: tip.height,
            in_force: tip.validators.clone(),
            scheduled: tip
                .scheduled
                .as_ref()
                .map(|scheduled| (scheduled.activation_height, scheduled.validators.clone())),
        })
    }

    /// The set the chain is headed for: the scheduled one, else the one in force.
    pub fn latest(&self) -> &[PublicKey] {
        self.scheduled.as_ref().map_or(&self.in_force, |(_, validators)| validators)
    }
}

/// A change of the validator set, to be signed with the operator's admin key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Add { index: u32, key: PublicKey },
    Remove { index: u32, key: PublicKey },
}

impl Change {
    pub fn operation(&self) -> AdminOperation {
        match self {
            Change::Add { key, .. } => AdminOperation::AddValidator { public_key: *key },
            Change::Remove { key, .. } => AdminOperation::RemoveValidator { public_key: *key },
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add { index, key } => write!(f, "adding validator {index} (key {key})"),
            Change::Remove { index, key } => write!(f, "removing validator {index} (key {key})"),
        }
    }
}

/// The one next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The chain's set is what the spec asks for.
    Settled,
    /// Validator `index` joins next and has no key yet: make one.
    MakeKey { index: u32 },
    /// Sign and submit this change.
    Submit(Change),
    /// Something must happen first; `reason` and `message` go into the Reconfiguring condition.
    Waiting { reason: &'static str, message: String },
}

impl Step {
    /// The Reconfiguring condition's reason and message; `None` when settled.
    pub fn condition(&self) -> Option<(&'static str, String)> {
        match self {
            Step::Settled => None,
            Step::MakeKey { index } => {
                Some(("MakingKey", format!("validator {index} joins next: its key is being made")))
            }
            Step::Submit(change) => {
                Some(("ChangeSubmitted", format!("{change}: submitted, waiting for it to commit")))
            }
            Step::Waiting { reason, message } => Some((reason, message.clone())),
        }
    }
}

/// What the validators' APIs said and what the operator holds.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// spec.validators: the operator's validators are indices `0..desired`.
    pub desired: u32,
    /// Validators in genesis (indices `0..genesis_validators`): they start with the chain.
    pub genesis_validators: u32,
    /// Indices whose StatefulSets exist.
    pub existing: &'a [u32],
    /// The key of every index whose key Secret the operator read.
    pub keys: &'a BTreeMap<u32, PublicKey>,
    pub observations: &'a [Observation],
    /// `status.validators.onChain` as last written: each set is shown before the next change.
    pub shown_on_chain: Option<u32>,
}

/// Which validators run, and the next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Indices whose objects are applied: those in the set (in force or scheduled), the one
    /// joining, and any whose key is unknown this pass (never removed on a guess).
    pub roster: Vec<u32>,
    /// Indices whose StatefulSet exists but has no place in the roster (a removal in force, or a
    /// joiner the spec no longer asks for) and that answer that they do not vote: their pods go.
    pub retire: Vec<u32>,
    pub step: Step,
}

pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let Some(view) = ChainView::of(inputs.observations) else {
        // Nothing to go by: keep what runs (and genesis' validators, for a chain starting).
        let roster: BTreeSet<u32> =
            inputs.existing.iter().copied().chain(0..inputs.genesis_validators).collect();
        let step = if roster.len() as u32 == inputs.desired {
            Step::Settled
        } else {
            Step::Waiting {
                reason: "ChainUnreadable",
                message: format!(
                    "spec.validators is {}, but no validator answers: the set changes once the chain can be read",
                    inputs.desired
                ),
            }
        };
        return Decision { roster: roster.into_iter().collect(), retire: Vec::new(), step };
    };
    let index_of =
        |key: &PublicKey| inputs.keys.iter().find(|(_, held)| *held == key).map(|(index, _)| *index);
    let in_force: BTreeSet<u32> = view.in_force.iter().filter_map(index_of).collect();
    let latest: BTreeSet<u32> = view.latest().iter().filter_map(index_of).collect();
    let unknown: Vec<PublicKey> =
        view.in_force.iter().chain(view.latest()).filter(|key| index_of(key).is_none()).copied().collect();
    let keyless_existing = inputs.existing.iter().filter(|index| !inputs.keys.contains_key(index));
    // The view is one validator's word; a validator that says it votes keeps its place whatever
    // another one claims (a lagging or lying node must not drop it from the peer lists).
    let says = |index: u32, voting: bool| {
        inputs.observations.iter().any(|o| {
            o.index == index && o.status.as_ref().is_some_and(|s| (s.role == Role::Validator) == voting)
        })
    };
    let voting = inputs.existing.iter().copied().filter(|index| says(*index, true));
    let mut roster: BTreeSet<u32> =
        in_force.union(&latest).copied().chain(keyless_existing.copied()).chain(voting).collect();

    let step = if let Some((activation, _)) = &view.scheduled {
        Step::Waiting { reason: "ChangeInFlight", message: in_flight(&view, *activation, &in_force, &latest) }
    } else if let Some(index) = (0..inputs.desired).find(|index| !latest.contains(index)) {
        roster.insert(index);
        join(inputs, &view, index, &unknown)
    } else if let Some(index) = latest.iter().rev().copied().find(|index| *index >= inputs.desired) {
        leave(inputs, &view, index)
    } else {
        Step::Settled
    };
    // Only a validator that itself answers that it does not vote (removed, or a joiner no longer
    // wanted) loses its pod: one that is down stays until it can say so.
    let retire = inputs
        .existing
        .iter()
        .copied()
        .filter(|index| !roster.contains(index) && says(*index, false))
        .collect();
    Decision { roster: roster.into_iter().collect(), retire, step }
}

/// The next step for validator `index`, which is to join.
fn join(inputs: &Inputs<'_>, view: &ChainView, index: u32, unknown: &[PublicKey]) -> Step {
    let Some(key) = inputs.keys.get(&index).copied() else {
        if index < inputs.genesis_validators {
            return Step::Waiting {
                reason: "KeyMissing",
                message: format!(
                    "validator {index} is to join again, but its key Secret cannot be read: restore it; a genesis validator's key is never regenerated"
                ),
            };
        }
        if !unknown.is_empty() {
            let keys: Vec<String> = unknown.iter().map(ToString::to_string).collect();
            return Step::Waiting {
                reason: "UnknownValidatorKey",
                message: format!(
                    "validator {index} needs a new key, but the chain's set holds keys that no key Secret of this chain holds ({}): restore a lost Secret rather than replace it; this Blockchain does not grow a set with validators it does not run",
                    keys.join(", ")
                ),
            };
        }
        return Step::MakeKey { index };
    };
    let joining = status_of(inputs.observations, index);
    match joining {
        None => {
            return Step::Waiting {
                reason: "ValidatorStarting",
                message: format!("validator {index} is starting: its API does not answer yet"),
            };
        }
        Some(status) if status.syncing || status.height + CAUGHT_UP_WITHIN_BLOCKS < view.height => {
            return Step::Waiting {
                reason: "ValidatorCatchingUp",
                message: format!(
                    "validator {index} is catching up before it is added: height {} of {}",
                    status.height, view.height
                ),
            };
        }
        Some(_) => {}
    }
    let change = Change::Add { index, key };
    let size = view.in_force.len() + 1;
    quorum_gate(inputs, view, change, size, &[])
}

/// The next step for validator `index`, which is to leave.
fn leave(inputs: &Inputs<'_>, view: &ChainView, index: u32) -> Step {
    let key = inputs.keys[&index];
    let change = Change::Remove { index, key };
    quorum_gate(inputs, view, change, view.in_force.len().saturating_sub(1), &[key])
}

/// `change` if the validators in force that are ready, less `leaving`, reach the quorum of the
/// new set of `size`; else why not.
fn quorum_gate(
    inputs: &Inputs<'_>,
    view: &ChainView,
    change: Change,
    size: usize,
    leaving: &[PublicKey],
) -> Step {
    let staying: Vec<&PublicKey> = view.in_force.iter().filter(|key| !leaving.contains(key)).collect();
    let ready_key = |key: &PublicKey| {
        inputs
            .observations
            .iter()
            .filter_map(|o| o.status.as_ref())
            .any(|s| s.node == *key && is_ready_validator(s))
    };
    let ready = staying.iter().filter(|key| ready_key(key)).count();
    let needed = quorum(size);
    if ready >= needed {
        let in_force = view.in_force.len() as u32;
        if inputs.shown_on_chain != Some(in_force) {
            // A set in force for less than a pass would otherwise never reach the status.
            return Step::Waiting {
                reason: "ShowingStatus",
                message: format!("{change} follows once the status shows the {in_force} validators in force"),
            };
        }
        return Step::Submit(change);
    }
    let not_ready: Vec<String> = staying
        .iter()
        .filter(|key| !ready_key(key))
        .map(|key| match inputs.keys.iter().find(|(_, held)| held == key) {
            Some((index, _)) => format!("validator {index}"),
            None => format!("key {key}"),
        })
        .collect();
    Step::Waiting {
        reason: "WaitingForQuorum",
        message: format!(
            "{change} makes a set of {size} that needs {needed} ready validators to commit, and {ready} of those staying are ready (not ready: {}); it waits until they are",
            not_ready.join(", ")
        ),
    }
}

fn is_ready_validator(status: &NodeStatus) -> bool {
    status.ready && status.role == Role::Validator
}

fn status_of(observations: &[Observation], index: u32) -> Option<&NodeStatus> {
    observations.iter().find(|observation| observation.index == index)?.status.as_ref()
}

/// What a committed change not yet in force does, for the condition.
fn in_flight(view: &ChainView, activation: u64, in_force: &BTreeSet<u32>, latest: &BTreeSet<u32>) -> String {
    let joining: Vec<String> =
        latest.difference(in_force).map(|index| format!("validator {index} joins")).collect();
    let leaving: Vec<String> =
        in_force.difference(latest).map(|index| format!("validator {index} leaves")).collect();
    let what = match joining.into_iter().chain(leaving).collect::<Vec<_>>() {
        changes if changes.is_empty() => "the committed change".to_string(),
        changes => changes.join(", "),
    };
    format!("{what} at height {activation} (the chain is at {})", view.height)
}

#[cfg(test)]
mod tests {
    use kubechain_api::ScheduledRules;
    use kubechain_types::{ConsensusParams, SigningKey};

    use super::*;
    use crate::health::test_status;

    fn key(index: u32) -> PublicKey {
        SigningKey::from_seed([index as u8 + 1; 32]).public_key()
    }

    fn keys(indices: impl IntoIterator<Item = u32>) -> BTreeMap<u32, PublicKey> {
        indices.into_iter().map(|index| (index, key(index))).collect()
    }

    /// Validator `index` answering at `height`, in force: `set`.
    fn node(index: u32, height: u64, set: &[u32], ready: bool) -> Observation {
        let validators: Vec<PublicKey> = set.iter().map(|i| key(*i)).collect();
        let role = if validators.contains(&key(index)) { Role::Validator } else { Role::Learner };
        let status = test_status(key(index), height, ready, validators);
        Observation {
            index,
            cluster: "local".into(),
            status: Some(NodeStatus { role, syncing: false, ..status }),
        }
    }

    fn down(index: u32) -> Observation {
        Observation { index, cluster: "local".into(), status: None }
    }

    fn scheduled(mut observation: Observation, activation: u64, set: &[u32]) -> Observation {
        if let Some(status) = observation.status.as_mut() {
            status.scheduled = Some(ScheduledRules {
                activation_height: activation,
                validators: set.iter().map(|i| key(*i)).collect(),
                consensus_params: ConsensusParams::default(),
            });
        }
        observation
    }

    fn decide_with(
        desired: u32,
        existing: &[u32],
        held: &BTreeMap<u32, PublicKey>,
        observations: &[Observation],
    ) -> Decision {
        let shown_on_chain = ChainView::of(observations).map(|view| view.in_force.len() as u32);
        decide(&Inputs { desired, genesis_validators: 4, existing, keys: held, observations, shown_on_chain })
    }

    const FOUR: [u32; 4] = [0, 1, 2, 3];

    fn four_ready(height: u64) -> Vec<Observation> {
        FOUR.iter().map(|&i| node(i, height, &FOUR, true)).collect()
    }

    #[test]
    fn a_chain_as_asked_is_settled() {
        let decision = decide_with(4, &FOUR, &keys(0..4), &four_ready(10));
        assert_eq!(decision, Decision { roster: FOUR.to_vec(), retire: Vec::new(), step: Step::Settled });
    }

    #[test]
    fn growing_makes_a_key_then_starts_the_validator_then_adds_it_once_caught_up() {
        let decision = decide_with(5, &FOUR, &keys(0..4), &four_ready(100));
        assert_eq!(decision.step, Step::MakeKey { index: 4 });
        assert_eq!(decision.roster, [0, 1, 2, 3, 4]);

        let held = keys(0..5);
        let decision = decide_with(5, &[0, 1, 2, 3, 4], &held, &[four_ready(100), vec![down(4)]].concat());
        assert!(matches!(decision.step, Step::Waiting { reason: "ValidatorStarting", .. }), "{decision:?}");

        let behind = node(4, 100 - CAUGHT_UP_WITHIN_BLOCKS - 1, &FOUR, false);
        let decision = decide_with(5, &[0, 1, 2, 3, 4], &held, &[four_ready(100), vec![behind]].concat());
        let Step::Waiting { reason: "ValidatorCatchingUp", message } = &decision.step else {
            panic!("{decision:?}")
        };
        assert!(message.contains("height 91 of 100"), "{message}");

        let close = node(4, 100 - CAUGHT_UP_WITHIN_BLOCKS, &FOUR, false);
        let decision = decide_with(5, &[0, 1, 2, 3, 4], &held, &[four_ready(100), vec![close]].concat());
        assert_eq!(decision.step, Step::Submit(Change::Add { index: 4, key: key(4) }));
        assert!(decision.retire.is_empty());
    }

    #[test]
    fn nothing_is_submitted_while_a_change_is_in_flight() {
        let held = keys(0..6);
        let observations: Vec<Observation> = FOUR
            .iter()
            .chain(&[4, 5])
            .map(|&i| scheduled(node(i, 120, &FOUR, true), 300, &[0, 1, 2, 3, 4]))
            .collect();
        let decision = decide_with(6, &[0, 1, 2, 3, 4, 5], &held, &observations);
        let Step::Waiting { reason: "ChangeInFlight", message } = &decision.step else {
            panic!("{decision:?}")
        };
        assert_eq!(message, "validator 4 joins at height 300 (the chain is at 120)");
        // The next joiner is not started before the change in flight is in force.
        assert_eq!(decision.roster, [0, 1, 2, 3, 4]);
        assert_eq!(decision.retire, [5]);
    }

    #[test]
    fn a_scale_up_waits_while_a_validator_is_down_and_says_which() {
        let held = keys(0..5);
        let mut observations = four_ready(100);
        observations[2] = down(2);
        observations.push(node(4, 100, &FOUR, false));
        let decision = decide_with(5, &[0, 1, 2, 3, 4], &held, &observations);
        let Step::Waiting { reason: "WaitingForQuorum", message } = &decision.step else {
            panic!("{decision:?}")
        };
        assert!(message.starts_with("adding validator 4"), "{message}");
        assert!(
            message.contains("needs 4 ready validators") && message.contains("not ready: validator 2"),
            "{message}"
        );
        assert_eq!(decision.roster, [0, 1, 2, 3, 4], "the joiner keeps running while it waits");
    }

    #[test]
    fn shrinking_removes_the_highest_first_and_retires_its_pod_only_once_the_removal_is_in_force() {
        let seven: Vec<u32> = (0..7).collect();
        let held = keys(0..7);
        let all: Vec<Observation> = seven.iter().map(|&i| node(i, 500, &seven, true)).collect();
        let decision = decide_with(4, &seven, &held, &all);
        assert_eq!(decision.step, Step::Submit(Change::Remove { index: 6, key: key(6) }));
        assert_eq!(decision.roster, seven);
        assert!(decision.retire.is_empty());

        // Committed, not in force: the leaver keeps running.
        let six: Vec<u32> = (0..6).collect();
        let pending: Vec<Observation> = all.iter().cloned().map(|o| scheduled(o, 800, &six)).collect();
        let decision = decide_with(4, &seven, &held, &pending);
        assert!(matches!(decision.step, Step::Waiting { reason: "ChangeInFlight", .. }), "{decision:?}");
        assert_eq!(decision.roster, seven);
        assert!(decision.retire.is_empty());

        // In force: its pod goes, and the next removal follows.
        let after: Vec<Observation> = seven.iter().map(|&i| node(i, 800, &six, true)).collect();
        let decision = decide_with(4, &seven, &held, &after);
        assert_eq!(decision.step, Step::Submit(Change::Remove { index: 5, key: key(5) }));
        assert_eq!(decision.roster, six);
        assert_eq!(decision.retire, [6]);
    }

    #[test]
    fn one_node_claiming_a_smaller_set_retires_nobody_who_votes() {
        let seven: Vec<u32> = (0..7).collect();
        let held = keys(0..7);
        // Validator 0 runs ahead (or lies) with a set of four; 4, 5 and 6 say they vote.
        let mut observations: Vec<Observation> = seven.iter().map(|&i| node(i, 500, &seven, true)).collect();
        observations[0] = node(0, 9_000, &FOUR, true);
        let decision = decide_with(7, &seven, &held, &observations);
        assert_eq!(decision.roster, seven);
        assert!(decision.retire.is_empty(), "{decision:?}");
        // One that is down is not retired on another's word either.
        observations[6] = down(6);
        let decision = decide_with(7, &seven, &held, &observations);
        assert!(decision.retire.is_empty(), "{decision:?}");
    }

    #[test]
    fn a_removal_waits_when_the_rest_could_not_commit() {
        let five: Vec<u32> = (0..5).collect();
        let mut observations: Vec<Observation> = five.iter().map(|&i| node(i, 50, &five, true)).collect();
        observations[0] = down(0);
        observations[1] = down(1);
        let decision = decide_with(4, &five, &keys(0..5), &observations);
        let Step::Waiting { reason: "WaitingForQuorum", message } = &decision.step else {
            panic!("{decision:?}")
        };
        assert!(message.contains("not ready: validator 0, validator 1"), "{message}");
    }

    #[test]
    fn a_key_on_chain_that_no_secret_holds_is_never_replaced() {
        // Validator 4 was added, then its Secret was lost: index 4 must not get a new key.
        let five: Vec<u32> = (0..5).collect();
        let observations: Vec<Observation> = FOUR.iter().map(|&i| node(i, 50, &five, true)).collect();
        let decision = decide_with(6, &five, &keys(0..4), &observations);
        let Step::Waiting { reason: "UnknownValidatorKey", message } = &decision.step else {
            panic!("{decision:?}")
        };
        assert!(message.contains(&key(4).to_string()), "{message}");
        assert!(decision.retire.is_empty(), "a validator whose key is unknown keeps its pod: {decision:?}");
        assert!(decision.roster.contains(&4));
    }

    #[test]
    fn a_genesis_validator_removed_on_chain_comes_back_only_with_its_own_key() {
        let three = [0, 1, 3];
        let observations: Vec<Observation> = three.iter().map(|&i| node(i, 50, &three, true)).collect();
        let mut held = keys(0..4);
        held.remove(&2);
        let decision = decide_with(4, &three, &held, &observations);
        assert!(matches!(decision.step, Step::Waiting { reason: "KeyMissing", .. }), "{decision:?}");
        let decision = decide_with(4, &three, &keys(0..4), &observations);
        assert!(matches!(decision.step, Step::Waiting { reason: "ValidatorStarting", .. }), "{decision:?}");
        assert_eq!(decision.roster, FOUR);
    }

    #[test]
    fn each_set_is_shown_in_status_before_the_next_change() {
        let held = keys(0..5);
        let observations = [four_ready(100), vec![node(4, 100, &FOUR, false)]].concat();
        let existing = [0, 1, 2, 3, 4];
        let inputs = |shown| Inputs {
            desired: 5,
            genesis_validators: 4,
            existing: &existing,
            keys: &held,
            observations: &observations,
            shown_on_chain: shown,
        };
        assert!(matches!(decide(&inputs(Some(3))).step, Step::Waiting { reason: "ShowingStatus", .. }));
        assert!(matches!(decide(&inputs(None)).step, Step::Waiting { reason: "ShowingStatus", .. }));
        assert!(matches!(decide(&inputs(Some(4))).step, Step::Submit(_)));
    }

    #[test]
    fn without_any_answer_nothing_moves() {
        let observations: Vec<Observation> = FOUR.iter().map(|&i| down(i)).collect();
        let decision = decide_with(4, &[], &keys(0..4), &observations);
        assert_eq!(decision, Decision { roster: FOUR.to_vec(), retire: Vec::new(), step: Step::Settled });
        let decision = decide_with(5, &FOUR, &keys(0..4), &observations);
        assert!(matches!(decision.step, Step::Waiting { reason: "ChainUnreadable", .. }));
        assert_eq!(decision.roster, FOUR);
    }

    #[test]
    fn a_joiner_the_spec_no_longer_asks_for_is_retired() {
        let held = keys(0..5);
        let observations = [four_ready(100), vec![node(4, 100, &FOUR, false)]].concat();
        let decision = decide_with(4, &[0, 1, 2, 3, 4], &held, &observations);
        assert_eq!(decision, Decision { roster: FOUR.to_vec(), retire: vec![4], step: Step::Settled });
    }
}
