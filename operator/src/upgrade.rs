//! Rolling a changed pod template (image, resources, node config) through the validators one at
//! a time across every cluster of the chain. The StatefulSets use `OnDelete`, so nothing restarts
//! by itself: the operator deletes one outdated pod, waits for its validator to be back, ready and
//! caught up, and only then takes the next. Pure: [`crate::reconcile`] lists the pods and deletes
//! the one chosen here.
//!
//! A pod is restarted only while the validators in force that are ready exceed the quorum by one
//! (so the chain still commits without it) and the height advances; otherwise the rollout pauses
//! and the condition names what it waits for. The primary goes last: restarting it costs a view
//! change.

use kubechain_types::{PublicKey, quorum};

use crate::health::{CAUGHT_UP_WITHIN_BLOCKS, Observation};

/// A validator's pod as listed in its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRevision {
    pub index: u32,
    pub cluster: String,
    pub pod: String,
    /// Its template is not its StatefulSet's current one.
    pub outdated: bool,
    /// Kubernetes counts it Ready (its readiness probe passed, and it is not being deleted): what
    /// a PodDisruptionBudget and the client Service go by, which may lag the node's own answer.
    pub ready: bool,
}

/// What the rollout does this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every pod runs its StatefulSet's current template.
    Current,
    /// Delete this pod: its StatefulSet makes it again from the current template.
    Restart(PodRevision),
    /// Outdated pods wait; `reason` and `message` go into the Upgrading condition.
    Paused { reason: &'static str, message: String },
}

impl Rollout {
    /// The Upgrading condition's reason and message; `None` when every pod is current.
    pub fn condition(&self) -> Option<(&'static str, String)> {
        match self {
            Rollout::Current => None,
            Rollout::Restart(pod) => Some((
                "Restarting",
                format!(
                    "validator {} restarts with the new template (pod {} in cluster {})",
                    pod.index, pod.pod, pod.cluster
                ),
            )),
            Rollout::Paused { reason, message } => Some((reason, message.clone())),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Every validator's pod in every cluster that answered.
    pub pods: &'a [PodRevision],
    /// Indices of the validators that run (the roster), each of which must be back before the
    /// next restart.
    pub validators: &'a [u32],
    pub observations: &'a [Observation],
    /// Clusters that did not answer this pass: their validators' pods are unknown.
    pub unreachable: &'a [String],
    /// The height moved recently, or nothing waits to be committed.
    pub advancing: bool,
    /// The validator set is changing or a change of the rules waits for its height: its quorum
    /// rule assumes every staying validator is up, so no restart meanwhile.
    pub reconfiguring: bool,
}

pub fn decide(inputs: &Inputs<'_>) -> Rollout {
    let mut outdated: Vec<&PodRevision> = inputs.pods.iter().filter(|pod| pod.outdated).collect();
    if outdated.is_empty() {
        return Rollout::Current;
    }
    let paused = |reason, message: String| Rollout::Paused {
        reason,
        message: format!("{} outdated; {message}", plural(outdated.len())),
    };
    if let Some(cluster) = inputs.unreachable.first() {
        return paused(
            "ClusterUnreachable",
            format!("cluster {cluster} does not answer, so its validators' state is unknown"),
        );
    }
    if inputs.reconfiguring {
        return paused(
            "WaitingForReconfiguration",
            "the validator set or the consensus parameters are changing; restarts resume once the change is in force".into(),
        );
    }
    let statuses: Vec<_> =
        inputs.observations.iter().filter_map(|o| Some((o.index, o.status.as_ref()?))).collect();
    let Some(tip) = statuses.iter().map(|(_, status)| status.height).max() else {
        return paused("ChainUnreadable", "no validator answers".into());
    };
    // Every validator back before the next restart, the one restarted last included: its pod
    // Ready, and its node ready and caught up.
    let pod_ready = |index: u32| inputs.pods.iter().any(|pod| pod.index == index && pod.ready);
    let is_up = |index: u32| {
        pod_ready(index)
            && statuses.iter().any(|(i, status)| {
                *i == index && status.ready && status.height + CAUGHT_UP_WITHIN_BLOCKS >= tip
            })
    };
    if let Some(down) = inputs.validators.iter().copied().find(|index| !is_up(*index)) {
        let restarted = inputs.pods.iter().any(|pod| pod.index == down && !pod.outdated);
        let (reason, why) = if restarted {
            (
                "WaitingForRestart",
                "is not back yet: it restarted with the new template, and its pod must be Ready and its node ready and caught up",
            )
        } else {
            ("WaitingForValidator", "is not ready: no other validator restarts until it is")
        };
        return paused(reason, format!("validator {down} {why}"));
    }
    let in_force: Vec<PublicKey> = statuses
        .iter()
        .find(|(_, status)| status.height == tip)
        .map(|(_, status)| status.validators.clone())
        .unwrap_or_default();
    let ready_in_force =
        statuses.iter().filter(|(_, status)| status.ready && in_force.contains(&status.node)).count();
    let needed = quorum(in_force.len()) + 1;
    if ready_in_force < needed {
        return paused(
            "WaitingForQuorum",
            format!(
                "{ready_in_force} validators in force are ready; a restart needs {needed} (a quorum and the one restarting)"
            ),
        );
    }
    if !inputs.advancing {
        return paused(
            "ChainNotAdvancing",
            format!("height {tip} is not advancing; no validator restarts until it does"),
        );
    }
    // The primary last: restarting it costs a view change.
    let primary = statuses.iter().find(|(_, status)| status.height == tip).map(|(_, status)| status.primary);
    let is_primary = |pod: &PodRevision| {
        statuses.iter().any(|(i, status)| *i == pod.index && Some(status.node) == primary)
    };
    outdated.sort_by_key(|pod| (is_primary(pod), pod.index));
    Rollout::Restart(outdated[0].clone())
}

fn plural(count: usize) -> String {
    if count == 1 { "1 validator is".to_string() } else { format!("{count} validators are") }
}

#[cfg(test)]
mod tests {
    use kubechain_api::NodeStatus;
    use kubechain_types::SigningKey;

    use super::*;
    use crate::health::test_status;

    fn key(index: u32) -> PublicKey {
        SigningKey::from_seed([index as u8 + 1; 32]).public_key()
    }

    fn node(index: u32, height: u64, ready: bool) -> Observation {
        let status = test_status(key(index), height, ready, (0..4).map(key).collect());
        Observation {
            index,
            cluster: "aws".into(),
            status: Some(NodeStatus { syncing: false, mempool_size: 1, ..status }),
        }
    }

    fn pods(outdated: &[u32]) -> Vec<PodRevision> {
        (0..4)
            .map(|index| PodRevision {
                index,
                cluster: if index < 2 { "aws" } else { "gcp" }.into(),
                pod: format!("c-validator-{index}-0"),
                outdated: outdated.contains(&index),
                ready: true,
            })
            .collect()
    }

    fn all_up() -> Vec<Observation> {
        (0..4).map(|index| node(index, 100, true)).collect()
    }

    const ROSTER: [u32; 4] = [0, 1, 2, 3];

    fn decide_with(pods: &[PodRevision], observations: &[Observation], advancing: bool) -> Rollout {
        decide(&Inputs {
            pods,
            validators: &ROSTER,
            observations,
            unreachable: &[],
            advancing,
            reconfiguring: false,
        })
    }

    #[test]
    fn nothing_outdated_is_current() {
        assert_eq!(decide_with(&pods(&[]), &all_up(), true), Rollout::Current);
    }

    #[test]
    fn one_pod_at_a_time_the_primary_last_across_clusters() {
        let all = pods(&[0, 1, 2, 3]);
        assert_eq!(decide_with(&all, &all_up(), true), Rollout::Restart(all[1].clone()));
        let rest = pods(&[0, 2, 3]);
        assert_eq!(decide_with(&rest, &all_up(), true), Rollout::Restart(rest[2].clone()));
        let primary_only = pods(&[0]);
        assert_eq!(decide_with(&primary_only, &all_up(), true), Rollout::Restart(primary_only[0].clone()));
    }

    #[test]
    fn the_next_waits_until_the_restarted_one_is_back_and_caught_up() {
        let mut observations = all_up();
        observations[1] = Observation { status: None, ..observations[1].clone() };
        let Rollout::Paused { reason, message } = decide_with(&pods(&[0, 2, 3]), &observations, true) else {
            panic!()
        };
        assert_eq!(reason, "WaitingForRestart");
        assert!(message.starts_with("3 validators are outdated; validator 1 is not back yet"), "{message}");

        observations[1] = node(1, 100 - CAUGHT_UP_WITHIN_BLOCKS - 1, true);
        assert!(matches!(
            decide_with(&pods(&[0, 2, 3]), &observations, true),
            Rollout::Paused { reason: "WaitingForRestart", .. }
        ));
        observations[1] = node(1, 100 - CAUGHT_UP_WITHIN_BLOCKS, true);
        // The node says ready before Kubernetes does (its readiness probe runs every 2 s): the
        // pod must be Ready too, or two would count as unavailable at once.
        let mut restarted = pods(&[0, 2, 3]);
        restarted[1].ready = false;
        let rollout = decide_with(&restarted, &observations, true);
        assert!(matches!(rollout, Rollout::Paused { reason: "WaitingForRestart", .. }), "{rollout:?}");
        restarted[1].ready = true;
        assert!(matches!(decide_with(&restarted, &observations, true), Rollout::Restart(_)));
    }

    #[test]
    fn a_rollout_started_while_a_validator_is_down_pauses_and_names_it() {
        let mut observations = all_up();
        observations[2] = node(2, 90, false);
        let Rollout::Paused { reason, message } = decide_with(&pods(&[0, 1, 2, 3]), &observations, true)
        else {
            panic!()
        };
        assert_eq!(reason, "WaitingForValidator");
        assert!(message.contains("validator 2 is not ready"), "{message}");
    }

    #[test]
    fn a_chain_that_does_not_advance_or_an_unknown_cluster_pauses_it() {
        assert!(matches!(
            decide_with(&pods(&[3]), &all_up(), false),
            Rollout::Paused { reason: "ChainNotAdvancing", .. }
        ));
        let unreachable = ["gcp".to_string()];
        let rollout = decide(&Inputs {
            pods: &pods(&[0]),
            validators: &ROSTER,
            observations: &all_up(),
            unreachable: &unreachable,
            advancing: true,
            reconfiguring: false,
        });
        assert!(matches!(rollout, Rollout::Paused { reason: "ClusterUnreachable", .. }), "{rollout:?}");
        let rollout = decide(&Inputs {
            pods: &pods(&[0]),
            validators: &ROSTER,
            observations: &all_up(),
            unreachable: &[],
            advancing: true,
            reconfiguring: true,
        });
        assert!(
            matches!(rollout, Rollout::Paused { reason: "WaitingForReconfiguration", .. }),
            "{rollout:?}"
        );
    }

    #[test]
    fn a_restart_needs_a_quorum_besides_the_one_restarting() {
        // Seven in force, quorum 5: six ready are enough, five are not. Only four run here, so
        // the roster is those four and the other three count as not ready.
        let seven: Vec<PublicKey> = (0..7).map(key).collect();
        let observations: Vec<Observation> = (0..4)
            .map(|index| {
                let mut observation = node(index, 100, true);
                if let Some(status) = observation.status.as_mut() {
                    status.validators = seven.clone();
                }
                observation
            })
            .collect();
        let rollout = decide_with(&pods(&[3]), &observations, true);
        let Rollout::Paused { reason: "WaitingForQuorum", message } = rollout else { panic!("{rollout:?}") };
        assert!(message.contains("4 validators in force are ready; a restart needs 6"), "{message}");
    }
}
