//! Which cluster runs which validator, from `spec.placement`. Pure, and the one place that
//! numbers validators through the entries: the first entry's validators come first, in the
//! order the spec lists them (the CRD keeps that order and the counts fixed, so a validator
//! never moves: its key in two clusters would be two validators signing as one).

use kubechain_crds::{BlockchainSpec, PlacementSpec, SecretKeyRef};

/// The name a chain without placement gives the operator's own cluster in its status.
pub const LOCAL_CLUSTER: &str = "local";

/// How the operator reaches a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The operator's own cluster (the hub): its in-cluster client.
    Hub,
    /// A member cluster, through the kubeconfig in this Secret of the Blockchain's namespace.
    Member(SecretKeyRef),
}

/// One cluster's share of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPlan {
    pub name: String,
    pub location: Location,
    /// The validators it runs, ascending.
    pub validators: Vec<u32>,
    /// Its placement entry; none for a chain without placement.
    pub entry: Option<PlacementSpec>,
}

impl ClusterPlan {
    pub fn is_hub(&self) -> bool {
        self.location == Location::Hub
    }
}

/// Every cluster of the chain, in the spec's order. Without placement, the hub runs every
/// validator. A spec whose entries do not add up (refused by the CRD) numbers what they hold.
pub fn plan(spec: &BlockchainSpec) -> Vec<ClusterPlan> {
    if spec.placement.is_empty() {
        return vec![ClusterPlan {
            name: LOCAL_CLUSTER.to_string(),
            location: Location::Hub,
            validators: (0..spec.validators).collect(),
            entry: None,
        }];
    }
    let mut next = 0u32;
    spec.placement
        .iter()
        .map(|entry| {
            let validators: Vec<u32> = (next..next.saturating_add(entry.validators)).collect();
            next = next.saturating_add(entry.validators);
            let location = match (&entry.kubeconfig_secret_ref, entry.local) {
                (Some(secret), false) => Location::Member(secret.clone()),
                _ => Location::Hub,
            };
            ClusterPlan { name: entry.cluster.clone(), location, validators, entry: Some(entry.clone()) }
        })
        .collect()
}

/// Whether the hub runs no validators but only holds the chain (genesis, admin key, status).
pub fn hub_runs_validators(plans: &[ClusterPlan]) -> bool {
    plans.iter().any(|plan| plan.is_hub() && !plan.validators.is_empty())
}

/// Whether the chain spans several clusters, so peers dial each other through node ports or
/// load balancers rather than by their Services' cluster DNS names (as the CRD's default
/// Service type says).
pub fn spans_clusters(plans: &[ClusterPlan]) -> bool {
    plans.len() >= 2
}

#[cfg(test)]
mod tests {
    use kubechain_crds::Provider;

    use super::*;

    fn spec(placement: Vec<PlacementSpec>) -> BlockchainSpec {
        let validators = placement.iter().map(|entry| entry.validators).sum::<u32>().max(4);
        BlockchainSpec::new("trade-1", validators, "kubechain/node:0.1.0").with_placement(placement)
    }

    #[test]
    fn without_placement_the_hub_runs_every_validator() {
        let plans = plan(&spec(Vec::new()));
        assert_eq!(plans.len(), 1);
        assert_eq!((plans[0].name.as_str(), &plans[0].location), (LOCAL_CLUSTER, &Location::Hub));
        assert_eq!(plans[0].validators, [0, 1, 2, 3]);
        assert!(!spans_clusters(&plans) && hub_runs_validators(&plans));
    }

    #[test]
    fn validators_are_numbered_through_the_entries_in_order() {
        let plans = plan(&spec(vec![
            PlacementSpec::local("aws", 2),
            PlacementSpec::remote("azure", Provider::Azure, 1, "azure-kubeconfig"),
            PlacementSpec::remote("drained", Provider::Gcp, 0, "drained-kubeconfig"),
            PlacementSpec::remote("gcp", Provider::Gcp, 1, "gcp-kubeconfig"),
        ]));
        let shares: Vec<(&str, &[u32])> =
            plans.iter().map(|plan| (plan.name.as_str(), plan.validators.as_slice())).collect();
        assert_eq!(shares, [("aws", &[0, 1][..]), ("azure", &[2]), ("drained", &[]), ("gcp", &[3])]);
        assert!(plans[0].is_hub());
        match &plans[1].location {
            Location::Member(secret) => assert_eq!(secret.name, "azure-kubeconfig"),
            other => panic!("azure is a member: {other:?}"),
        }
        assert!(spans_clusters(&plans) && hub_runs_validators(&plans));
    }

    #[test]
    fn a_hub_without_an_entry_runs_no_validators() {
        let plans = plan(&spec(vec![
            PlacementSpec::remote("aws", Provider::Aws, 2, "aws-kubeconfig"),
            PlacementSpec::remote("gcp", Provider::Gcp, 2, "gcp-kubeconfig"),
        ]));
        assert!(plans.iter().all(|plan| !plan.is_hub()));
        assert!(spans_clusters(&plans) && !hub_runs_validators(&plans));
        // One member alone: its validators peer through their own cluster's DNS.
        assert!(!spans_clusters(&plan(&spec(vec![PlacementSpec::remote("aws", Provider::Aws, 4, "aws")]))));
    }
}
