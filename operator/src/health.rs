//! Chain health: turns what the validators' APIs said into `Blockchain.status` (phase, counts,
//! conditions). Pure: the reconciler gathers the observations and writes the result.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
pub use kubechain_api::NodeStatus;
use kubechain_api::Role;
use kubechain_crds::{
    BlockchainSpec, BlockchainStatus, ClusterStatus, ConsensusStatus, Phase, ValidatorCounts, condition,
};
use kubechain_types::{fault_tolerance, quorum};

use crate::consortium;

/// One validator as seen this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub index: u32,
    pub cluster: String,
    /// `None` when the validator did not answer (not running, unreachable, or a wrong answer).
    pub status: Option<NodeStatus>,
}

/// Something that stops a validator or the chain until a person acts (a missing key Secret).
#[derive(Clone, Debug, PartialEq)]
pub struct Blocker {
    pub reason: &'static str,
    pub message: String,
    /// The object it is about (a key Secret), so events about different objects stay apart.
    pub related: Option<ObjectReference>,
}

impl Blocker {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Blocker {
        Blocker { reason, message: message.into(), related: None }
    }
}

/// How far behind the most advanced validator one may be and count as caught up: it keeps up by
/// taking part in commits from there (and a validator set change takes effect a watermark window
/// of blocks after it commits anyway).
pub const CAUGHT_UP_WITHIN_BLOCKS: u64 = 8;

/// When the height last moved, kept by the operator between rounds (per chain).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub height: u64,
    pub since: Option<Timestamp>,
    /// Some validator has answered (this round or earlier): a chain that never came up is
    /// starting, not stalled.
    pub seen: bool,
}

impl Progress {
    /// The record after a round at `now` in which the best height answered was `height` (`None`:
    /// nobody answered, so the height stands still).
    pub fn observe(self, height: Option<u64>, now: Timestamp) -> Progress {
        match (height, self.since) {
            (Some(height), Some(_)) if height == self.height => Progress { seen: true, ..self },
            (Some(height), _) => Progress { height, since: Some(now), seen: true },
            (None, Some(_)) => self,
            (None, None) => Progress { height: 0, since: Some(now), seen: false },
        }
    }

    /// Where an operator that just started picks up: the height the last status showed, as if
    /// seen now, so a chain that went down while no operator watched still counts as stalled.
    pub fn resume(previous: Option<&BlockchainStatus>, now: Timestamp) -> Progress {
        match previous.and_then(|status| status.height) {
            Some(height) => Progress { height, since: Some(now), seen: true },
            None => Progress::default(),
        }
    }
}

/// One cluster as the operator found it this round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub name: String,
    /// Why the operator could not reach or use the cluster; none when it could.
    pub unreachable: Option<String>,
    pub validators: Vec<u32>,
    /// Peer addresses, in the order of `validators` (empty text where not known yet).
    pub endpoints: Vec<String>,
}

/// Everything the status is computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub spec: &'a BlockchainSpec,
    pub generation: Option<i64>,
    pub genesis_hash: Option<String>,
    pub observations: &'a [Observation],
    /// Each cluster of the chain: reachable or not, its validators and their peer endpoints.
    pub clusters: &'a [ClusterView],
    /// What the operator waits for before the validators can start (peer addresses), if any.
    pub waiting: Option<String>,
    pub blockers: &'a [Blocker],
    /// Problems that do not stop the chain (e.g. a lost admin key), for `status.warnings`.
    pub warnings: &'a [String],
    /// The apply step created or changed objects this round.
    pub changed: bool,
    /// The validator set is changing or waits to: the Reconfiguring condition's reason and message.
    pub reconfiguring: Option<(&'static str, String)>,
    /// Pods run an older template: the Upgrading condition's reason and message.
    pub upgrading: Option<(&'static str, String)>,
    pub progress: Progress,
    pub previous: Option<&'a BlockchainStatus>,
    pub now: Timestamp,
}

/// The status to write, and the progress record to keep.
pub fn status(inputs: &Inputs) -> (BlockchainStatus, Progress) {
    let desired = inputs.spec.validators;
    let answering: Vec<&NodeStatus> = inputs.observations.iter().filter_map(|o| o.status.as_ref()).collect();
    // A validator still joining (or removed) is not one of the chain's ready validators.
    let ready =
        answering.iter().filter(|status| status.ready && status.role == Role::Validator).count() as u32;
    let tip = answering.iter().max_by_key(|status| (status.height, status.view)).copied();
    let progress = inputs.progress.observe(tip.map(|status| status.height), inputs.now);
    let height = progress.height;
    // The set in force on chain decides the quorum and the faults tolerated (it differs from the
    // spec while a change is under way); the spec's count stands in until a validator answers.
    let on_chain = tip.map(|status| status.validators.len() as u32);
    let governing = on_chain.unwrap_or(desired) as usize;
    let needed = quorum(governing) as u32;
    let f = fault_tolerance(governing) as u32;

    // An idle chain commits no empty blocks (only while a rule change waits for its height, a
    // case the validators' view-change timers watch), so a still height is a stall only while
    // transactions wait or too few validators are up to commit anything.
    let has_work = answering.iter().any(|status| status.mempool_size > 0);
    // Whether the chain can commit asks less than readiness: a validator fetching a block it
    // missed (`syncing`, a moment's state on a WAN) still votes once it has it, so only one that
    // is not caught up, is cut off from a quorum or lags far behind counts against the quorum.
    let tip_height = tip.map_or(0, |tip| tip.height);
    let voting = answering
        .iter()
        .filter(|status| {
            status.role == Role::Validator
                && status.caught_up
                && status.peers_connected + 1 >= u64::from(needed)
                && status.height + CAUGHT_UP_WITHIN_BLOCKS >= tip_height
        })
        .count() as u32;
    let below_quorum = voting < needed;
    let stalled_for = progress.since.map_or(0, |since| (inputs.now - since).get_seconds().max(0));
    let stalled = progress.seen
        && (has_work || below_quorum)
        && stalled_for >= i64::from(inputs.spec.chain_stalled_after_seconds);
    let all_ready = ready == desired && inputs.blockers.is_empty();

    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: bool, reason: &str, message: String| {
        conditions.push(condition(inputs, type_, status, reason, message));
    };
    let counts = format!("{ready} of {desired} validators ready");
    match inputs.blockers.first() {
        Some(blocker) => set(condition::READY, false, blocker.reason, blocker.message.clone()),
        None if stalled => {
            set(condition::READY, false, "ChainStalled", format!("height {height} is not advancing"))
        }
        None if all_ready => {
            set(condition::READY, true, "AllValidatorsReady", format!("{counts}, height {height}"))
        }
        None => set(condition::READY, false, "ValidatorsNotReady", counts.clone()),
    }
    let progressing = inputs.blockers.is_empty()
        && (inputs.changed
            || ready < desired
            || inputs.waiting.is_some()
            || inputs.reconfiguring.is_some()
            || inputs.upgrading.is_some());
    match (&inputs.waiting, progressing) {
        (Some(waiting), true) => {
            set(condition::PROGRESSING, true, "WaitingForPeerAddresses", waiting.clone())
        }
        (None, true) => {
            let why = if inputs.changed { "Reconciling" } else { "ValidatorsStarting" };
            set(condition::PROGRESSING, true, why, format!("{counts}; waiting for the rest"))
        }
        (_, false) => set(condition::PROGRESSING, false, "Stable", "nothing to change".into()),
    }
    let unreachable: Vec<String> = inputs
        .clusters
        .iter()
        .filter_map(|cluster| {
            cluster.unreachable.as_ref().map(|why| format!("cluster {} is unreachable: {why}", cluster.name))
        })
        .collect();
    let (degraded_reason, degraded_message) = match (inputs.blockers.first(), unreachable.is_empty()) {
        (Some(blocker), _) => ("NotAllReady", blocker.message.clone()),
        (None, false) => ("ClusterUnreachable", format!("{}; {counts}", unreachable.join("; "))),
        (None, true) if all_ready => ("AllValidatorsReady", counts.clone()),
        (None, true) => ("NotAllReady", counts.clone()),
    };
    let degraded = !all_ready || !unreachable.is_empty();
    set(condition::DEGRADED, degraded, degraded_reason, degraded_message);
    let risk = format!("{voting} validators voting, {needed} needed to commit (tolerates {f} faulty)");
    let risk_reason = if below_quorum { "BelowQuorum" } else { "QuorumReady" };
    set(condition::QUORUM_AT_RISK, below_quorum, risk_reason, risk);
    // No running seconds in the message: a status that changes every round would wake the
    // controller every round.
    let window = inputs.spec.chain_stalled_after_seconds;
    let stall = match (stalled, has_work) {
        (true, true) => {
            format!("height {height} has not advanced for {window} s or more while transactions wait")
        }
        (true, false) => format!(
            "height {height} has not advanced for {window} s or more: {voting} validators voting, {needed} needed"
        ),
        (false, _) => format!("height {height}"),
    };
    set(condition::CHAIN_STALLED, stalled, if stalled { "NoNewBlocks" } else { "Committing" }, stall);
    match &inputs.reconfiguring {
        Some((reason, message)) => set(condition::RECONFIGURING, true, reason, message.clone()),
        None => set(
            condition::RECONFIGURING,
            false,
            "Settled",
            format!("the chain runs the {desired} validators, members, admins and parameters asked for"),
        ),
    }
    match &inputs.upgrading {
        Some((reason, message)) => set(condition::UPGRADING, true, reason, message.clone()),
        None => set(
            condition::UPGRADING,
            false,
            "Current",
            "every validator runs the current pod template".into(),
        ),
    }

    let phase = if !inputs.blockers.is_empty() {
        Phase::Failed
    } else if all_ready && !stalled && unreachable.is_empty() {
        Phase::Running
    } else if height > 0 {
        Phase::Degraded
    } else {
        Phase::Creating
    };
    let counts = ValidatorCounts { desired, ready, on_chain };
    let clusters = inputs
        .clusters
        .iter()
        .map(|cluster| ClusterStatus {
            name: cluster.name.clone(),
            reachable: Some(cluster.unreachable.is_none()),
            message: cluster.unreachable.clone(),
            validators: cluster.validators.clone(),
            ready_validators: inputs
                .observations
                .iter()
                .filter(|o| o.cluster == cluster.name && o.status.as_ref().is_some_and(|status| status.ready))
                .count() as u32,
            endpoints: cluster.endpoints.clone(),
        })
        .collect();
    let mut warnings = inputs.warnings.to_vec();
    if desired < 4 {
        warnings.push(format!("{desired} validators tolerate no faulty validator: use 4 or more"));
    }
    let status = BlockchainStatus {
        phase: Some(phase),
        observed_generation: inputs.generation,
        ready: Some(counts.ready_text()),
        // Sticky: a round that could not read genesis must not make the chain look new.
        genesis_hash: inputs.genesis_hash.clone().or(inputs.previous.and_then(|p| p.genesis_hash.clone())),
        fault_tolerance: Some(f),
        height: progress.seen.then_some(height),
        view: tip.map(|status| status.view).or(inputs.previous.and_then(|previous| previous.view)),
        validators: Some(counts),
        consensus: tip.and_then(|tip| consensus_status(tip, inputs.previous)),
        clusters,
        conditions,
        warnings,
    };
    (status, progress)
}

/// The parameters the chain is headed for, from the most advanced validator. Once in force, the
/// activation height shown while they were scheduled stays; a change missed while scheduled shows
/// the height the rules in force govern from (the same, while one change is made at a time).
fn consensus_status(tip: &NodeStatus, previous: Option<&BlockchainStatus>) -> Option<ConsensusStatus> {
    if let Some(scheduled) = &tip.scheduled
        && Some(&scheduled.consensus_params) != tip.consensus_params.as_ref()
    {
        return Some(consortium::params_status(
            &scheduled.consensus_params,
            Some(scheduled.activation_height),
            true,
        ));
    }
    let in_force = tip.consensus_params.as_ref()?;
    let shown = previous.and_then(|previous| previous.consensus.as_ref()).filter(|shown| {
        consortium::params_status(in_force, shown.activation_height, shown.scheduled) == **shown
    });
    let activation_height = shown.and_then(|shown| shown.activation_height).or(tip.rules_since);
    Some(consortium::params_status(in_force, activation_height, false))
}

/// The status when a pass stops before it could look at the validators: the last status in
/// `phase` (Failed for a lost genesis or a failure retrying cannot fix; Creating for a new chain
/// waiting on a member cluster), with Ready and Degraded saying why. Counts and the other
/// conditions stay as last observed rather than dropping to zero.
pub fn stopped(
    previous: Option<&BlockchainStatus>,
    blockers: &[Blocker],
    phase: Phase,
    generation: Option<i64>,
    now: Timestamp,
) -> BlockchainStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.phase = Some(phase);
    status.observed_generation = generation;
    let message = blockers.iter().map(|blocker| blocker.message.as_str()).collect::<Vec<_>>().join("; ");
    let reason = blockers.first().map_or("Blocked", |blocker| blocker.reason);
    for (type_, value) in [(condition::READY, false), (condition::DEGRADED, true)] {
        let updated = make_condition(previous, generation, now, type_, value, reason, message.clone());
        match status.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = updated,
            None => status.conditions.push(updated),
        }
    }
    status
}

fn condition(inputs: &Inputs, type_: &str, status: bool, reason: &str, message: String) -> Condition {
    make_condition(inputs.previous, inputs.generation, inputs.now, type_, status, reason, message)
}

/// A condition, keeping the previous transition time when its status did not change (so
/// `lastTransitionTime` means what it says).
fn make_condition(
    previous: Option<&BlockchainStatus>,
    generation: Option<i64>,
    now: Timestamp,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = previous.and_then(|previous| previous.condition(type_));
    let last_transition_time = match previous {
        Some(previous) if previous.status == status => previous.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// A validator's answer for tests: chain `c-1`, view 0, primary the first of `validators`.
#[cfg(test)]
pub(crate) fn test_status(
    node: kubechain_types::PublicKey,
    height: u64,
    ready: bool,
    validators: Vec<kubechain_types::PublicKey>,
) -> NodeStatus {
    NodeStatus {
        chain_id: "c-1".into(),
        genesis_hash: kubechain_types::Hash([1; 32]),
        node,
        role: Role::Validator,
        height,
        last_block_hash: kubechain_types::Hash([2; 32]),
        view: 0,
        primary: validators.first().copied().unwrap_or(node),
        in_view_change: false,
        syncing: !ready,
        sync_target: (!ready).then_some(height + 1),
        caught_up: ready,
        stable_checkpoint: 0,
        validators,
        consensus_params: None,
        rules_since: None,
        scheduled: None,
        peers_connected: 3,
        mempool_size: 0,
        ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(validators: u32) -> BlockchainSpec {
        BlockchainSpec::new("c-1", validators, "kubechain/node:test")
    }

    fn node(height: u64, ready: bool, mempool_size: u64) -> Option<NodeStatus> {
        let key = kubechain_types::PublicKey([7; 32]);
        Some(NodeStatus { view: 2, mempool_size, ..test_status(key, height, ready, vec![key; 4]) })
    }

    fn observe(statuses: Vec<Option<NodeStatus>>) -> Vec<Observation> {
        statuses
            .into_iter()
            .enumerate()
            .map(|(index, status)| Observation { index: index as u32, cluster: "local".into(), status })
            .collect()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("a valid time")
    }

    fn run(
        spec: &BlockchainSpec,
        observations: &[Observation],
        progress: Progress,
        now: i64,
    ) -> (BlockchainStatus, Progress) {
        let clusters = vec![ClusterView {
            name: "local".into(),
            validators: vec![0],
            endpoints: vec!["v-0.ns.svc:7000".into()],
            ..ClusterView::default()
        }];
        status(&Inputs {
            spec,
            generation: Some(3),
            genesis_hash: Some("ab".into()),
            observations,
            clusters: &clusters,
            waiting: None,
            blockers: &[],
            warnings: &[],
            changed: false,
            reconfiguring: None,
            upgrading: None,
            progress,
            previous: None,
            now: at(now),
        })
    }

    fn is_true(status: &BlockchainStatus, type_: &str) -> bool {
        status.condition(type_).expect("condition set").status == "True"
    }

    #[test]
    fn fault_tolerance_and_quorum_follow_the_set_on_chain() {
        // The spec says 4 while the chain already runs 7 (a scale-up under way): f is 2.
        let seven = |height| {
            node(height, true, 0).map(|mut status| {
                status.validators = vec![status.node; 7];
                status
            })
        };
        let (status, _) = run(&spec(4), &observe(vec![seven(9); 4]), Progress::default(), 0);
        assert_eq!(status.fault_tolerance, Some(2));
        assert_eq!(status.validators.and_then(|v| v.on_chain), Some(7));
        // Nobody answers: the spec's count stands in.
        let (status, _) = run(&spec(7), &observe(vec![None; 7]), Progress::default(), 0);
        assert_eq!(status.fault_tolerance, Some(2));
        assert_eq!(status.validators.and_then(|v| v.on_chain), None);
    }

    #[test]
    fn all_ready_is_running_and_ready() {
        let spec = spec(4);
        let (status, _) = run(&spec, &observe(vec![node(9, true, 0); 4]), Progress::default(), 0);
        assert_eq!(status.phase, Some(Phase::Running));
        assert_eq!(status.ready.as_deref(), Some("4/4"));
        assert_eq!((status.height, status.view, status.fault_tolerance), (Some(9), Some(2), Some(1)));
        assert_eq!(status.validators.and_then(|v| v.on_chain), Some(4));
        assert!(is_true(&status, condition::READY));
        for type_ in
            [condition::PROGRESSING, condition::DEGRADED, condition::QUORUM_AT_RISK, condition::CHAIN_STALLED]
        {
            assert!(!is_true(&status, type_), "{type_}");
        }
        assert_eq!(status.clusters[0].ready_validators, 4);
        assert!(status.warnings.is_empty());
    }

    #[test]
    fn below_quorum_is_at_risk_and_one_down_is_only_degraded() {
        let spec = spec(4);
        let one_down = observe(vec![node(9, true, 0), node(9, true, 0), node(9, true, 0), None]);
        let (status, _) = run(&spec, &one_down, Progress::default(), 0);
        assert_eq!(status.phase, Some(Phase::Degraded));
        assert!(is_true(&status, condition::DEGRADED) && !is_true(&status, condition::QUORUM_AT_RISK));
        let two_down = observe(vec![node(9, true, 0), node(9, true, 0), None, node(3, false, 0)]);
        let (status, _) = run(&spec, &two_down, Progress::default(), 0);
        assert!(is_true(&status, condition::QUORUM_AT_RISK));
        assert!(status.condition(condition::QUORUM_AT_RISK).unwrap().message.contains("3 needed"));
    }

    #[test]
    fn a_validator_fetching_a_missed_block_still_votes_but_one_cut_off_or_far_behind_does_not() {
        let spec = spec(4);
        let fetching = || {
            let mut status = node(9, false, 0).unwrap();
            status.caught_up = true;
            Some(status)
        };
        let one_down = observe(vec![node(9, true, 0), node(9, true, 0), fetching(), None]);
        let (status, _) = run(&spec, &one_down, Progress::default(), 0);
        assert_eq!(status.ready.as_deref(), Some("2/4"), "not ready while it fetches");
        assert!(!is_true(&status, condition::QUORUM_AT_RISK), "but it votes once it has the block");

        let isolated = || {
            let mut status = fetching().unwrap();
            status.peers_connected = 1;
            Some(status)
        };
        let far_behind = || node(9 - CAUGHT_UP_WITHIN_BLOCKS - 1, true, 0);
        for third in [isolated(), far_behind(), node(9, false, 0)] {
            let at_risk = observe(vec![node(9, true, 0), node(9, true, 0), third.clone(), None]);
            let (status, _) = run(&spec, &at_risk, Progress::default(), 0);
            assert!(is_true(&status, condition::QUORUM_AT_RISK), "{third:?}");
            assert!(
                status.condition(condition::QUORUM_AT_RISK).unwrap().message.contains("2 validators voting")
            );
        }
    }

    #[test]
    fn a_stall_needs_waiting_work_and_time() {
        let spec = BlockchainSpec { chain_stalled_after_seconds: 30, ..spec(4) };
        let busy = observe(vec![node(9, true, 5); 4]);
        let (_, progress) = run(&spec, &busy, Progress::default(), 0);
        let (status, progress) = run(&spec, &busy, progress, 29);
        assert!(!is_true(&status, condition::CHAIN_STALLED));
        let (status, kept) = run(&spec, &busy, progress, 31);
        assert!(is_true(&status, condition::CHAIN_STALLED));
        assert!(!is_true(&status, condition::READY));
        // An idle chain does not commit empty blocks: no stall without waiting transactions.
        let (status, _) = run(&spec, &observe(vec![node(9, true, 0); 4]), progress, 300);
        assert!(!is_true(&status, condition::CHAIN_STALLED));
        // A new block resets the clock.
        let (status, _) = run(&spec, &observe(vec![node(10, true, 5); 4]), kept, 400);
        assert!(!is_true(&status, condition::CHAIN_STALLED));
    }

    #[test]
    fn a_chain_that_went_down_stalls_but_one_that_never_came_up_does_not() {
        let spec = BlockchainSpec { chain_stalled_after_seconds: 30, ..spec(4) };
        let nobody = observe(vec![None; 4]);
        let (_, progress) = run(&spec, &observe(vec![node(9, true, 0); 4]), Progress::default(), 0);
        let (status, progress) = run(&spec, &nobody, progress, 20);
        assert!(!is_true(&status, condition::CHAIN_STALLED));
        assert_eq!(status.height, Some(9), "the last height seen stays in the status");
        let (status, _) = run(&spec, &nobody, progress, 31);
        assert!(is_true(&status, condition::CHAIN_STALLED));
        assert!(status.condition(condition::CHAIN_STALLED).unwrap().message.contains("0 validators voting"));

        let (_, progress) = run(&spec, &nobody, Progress::default(), 0);
        let (status, _) = run(&spec, &nobody, progress, 300);
        assert!(!is_true(&status, condition::CHAIN_STALLED));
        assert_eq!(status.phase, Some(Phase::Creating));

        // An operator that restarts while the chain is down picks up from the last status.
        let before = BlockchainStatus { height: Some(9), ..BlockchainStatus::default() };
        let (_, progress) = run(&spec, &nobody, Progress::resume(Some(&before), at(0)), 0);
        let (status, _) = run(&spec, &nobody, progress, 31);
        assert!(is_true(&status, condition::CHAIN_STALLED));
    }

    #[test]
    fn nothing_answering_is_creating_and_small_chains_warn() {
        let spec = spec(1);
        let (status, _) = run(&spec, &observe(vec![None]), Progress::default(), 0);
        assert_eq!(status.phase, Some(Phase::Creating));
        assert!(is_true(&status, condition::PROGRESSING) && is_true(&status, condition::QUORUM_AT_RISK));
        assert_eq!(status.height, None);
        assert_eq!(status.warnings.len(), 1);
    }

    #[test]
    fn an_unreachable_cluster_is_named_in_degraded_and_waiting_shows_in_progressing() {
        let spec = spec(4);
        let clusters = vec![
            ClusterView { name: "aws".into(), validators: vec![0, 1, 2], ..ClusterView::default() },
            ClusterView {
                name: "gcp".into(),
                unreachable: Some("the API server did not answer within 30 s".into()),
                validators: vec![3],
                endpoints: vec![String::new()],
            },
        ];
        let inputs = |observations, waiting: Option<&str>| Inputs {
            spec: &spec,
            generation: Some(3),
            genesis_hash: Some("ab".into()),
            observations,
            clusters: &clusters,
            waiting: waiting.map(str::to_string),
            blockers: &[],
            warnings: &[],
            changed: false,
            reconfiguring: None,
            upgrading: None,
            progress: Progress::default(),
            previous: None,
            now: at(0),
        };
        let observations = observe(vec![node(9, true, 0); 4]);
        let (away, _) = status(&inputs(&observations, None));
        let degraded = away.condition(condition::DEGRADED).unwrap();
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "ClusterUnreachable"));
        assert!(degraded.message.starts_with("cluster gcp is unreachable: the API server did not answer"));
        assert_eq!(away.phase, Some(Phase::Degraded), "not Running while a cluster is away");
        let gcp = &away.clusters[1];
        assert_eq!(
            (gcp.reachable, gcp.message.is_some(), gcp.validators.as_slice()),
            (Some(false), true, &[3][..])
        );
        assert_eq!(away.clusters[0].reachable, Some(true));

        let why = "waiting for peer addresses: validator 3: its pod is not on a node yet";
        let (waiting, _) = status(&inputs(&[], Some(why)));
        let progressing = waiting.condition(condition::PROGRESSING).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", "WaitingForPeerAddresses")
        );
        assert_eq!(progressing.message, why);
    }

    #[test]
    fn a_blocker_fails_the_chain_with_its_message() {
        let spec = spec(4);
        let blockers = [Blocker::new("KeyMissing", "Secret c-validator-2-key is missing")];
        let observations = observe(vec![node(9, true, 0); 4]);
        let previous = BlockchainStatus { genesis_hash: Some("7c25".into()), ..BlockchainStatus::default() };
        let (status, _) = status(&Inputs {
            spec: &spec,
            generation: None,
            genesis_hash: None,
            observations: &observations,
            clusters: &[],
            waiting: None,
            blockers: &blockers,
            warnings: &["admin key lost".to_string()],
            changed: false,
            reconfiguring: None,
            upgrading: None,
            progress: Progress::default(),
            previous: Some(&previous),
            now: at(0),
        });
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(status.genesis_hash.as_deref(), Some("7c25"), "the genesis hash is kept");
        assert_eq!(status.warnings, vec!["admin key lost".to_string()]);
        let ready = status.condition(condition::READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "KeyMissing"));
        assert!(ready.message.contains("c-validator-2-key"));
    }

    #[test]
    fn a_blocked_pass_keeps_what_was_observed() {
        let spec = spec(4);
        let (running, _) = run(&spec, &observe(vec![node(9, true, 0); 4]), Progress::default(), 0);
        let blockers = [Blocker::new("GenesisMissing", "ConfigMap c-genesis is missing")];
        let status = stopped(Some(&running), &blockers, Phase::Failed, Some(4), at(10));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!((status.ready.as_deref(), status.height), (Some("4/4"), Some(9)));
        let ready = status.condition(condition::READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "GenesisMissing"));
        assert_eq!(ready.last_transition_time, Time(at(10)));
        assert!(is_true(&status, condition::DEGRADED));
        assert!(!is_true(&status, condition::QUORUM_AT_RISK), "nothing was observed to say so");
        assert_eq!(status.condition(condition::QUORUM_AT_RISK), running.condition(condition::QUORUM_AT_RISK));
        let again = stopped(Some(&status), &blockers, Phase::Failed, Some(4), at(20));
        assert_eq!(again.condition(condition::READY).unwrap().last_transition_time, Time(at(10)));
    }

    #[test]
    fn transition_times_change_only_with_the_status() {
        let spec = spec(4);
        let (first, progress) = run(&spec, &observe(vec![node(9, true, 0); 4]), Progress::default(), 0);
        let again = |now, previous: &BlockchainStatus, observations: &[Observation]| {
            status(&Inputs {
                spec: &spec,
                generation: Some(3),
                genesis_hash: None,
                observations,
                clusters: &[],
                waiting: None,
                blockers: &[],
                warnings: &[],
                changed: false,
                reconfiguring: None,
                upgrading: None,
                progress,
                previous: Some(previous),
                now: at(now),
            })
            .0
        };
        let same = again(50, &first, &observe(vec![node(9, true, 0); 4]));
        let time = |s: &BlockchainStatus| s.condition(condition::READY).unwrap().last_transition_time.clone();
        assert_eq!(time(&same), time(&first));
        let changed = again(60, &same, &observe(vec![node(9, true, 0), None, None, None]));
        assert_eq!(time(&changed), Time(at(60)));
    }
}
