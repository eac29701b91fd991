//! The pure half of reconcile: from a Blockchain, its genesis and the peer addresses to the
//! Kubernetes objects one cluster should hold. No API-server calls, no clock, no randomness:
//! keys, genesis time and addresses come in as inputs, so every object is unit-tested.
//!
//! Key Secrets are not part of [`Desired`]: they are created once from freshly generated keys
//! ([`keys`]) and never updated, while everything in [`Desired`] is re-applied on every pass.

pub mod addresses;
pub mod config;
mod error;
pub mod genesis;
pub mod keys;
pub mod meta;
pub mod monitoring;
pub mod policy;
pub mod services;
pub mod statefulset;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::DynamicObject;
use kubechain_crds::{Blockchain, BlockchainSpec, PlacementSpec, ServiceType};

pub use config::{NodeConfigFile, NodeConfigText, PeerAddress, service_peer_address, service_peer_addresses};
pub use error::BuildError;
pub use genesis::{GenesisDocument, build_genesis};
pub use keys::{
    KeySecret, KeySecretError, admin_key_secret, read_key, read_public_key, validator_key_secret,
};
pub use meta::{Component, ObjectContext, Ownership};
pub use policy::ApiClients;

/// What [`desired`] needs to build one cluster's objects.
#[derive(Clone, Copy, Debug)]
pub struct ClusterInput<'a> {
    /// Its name, namespace and uid (for owner references) and spec.
    pub blockchain: &'a Blockchain,
    /// The chain's genesis, as built at creation or read back from the genesis ConfigMap.
    pub genesis: &'a GenesisDocument,
    /// This cluster's placement entry; none when the spec has no placement (all validators in
    /// the operator's cluster).
    pub placement: Option<&'a PlacementSpec>,
    /// Indices of the validators this cluster runs.
    pub validators: &'a [u32],
    /// Every validator's peer address, in every cluster; written to each cluster's node.yaml.
    pub peers: &'a [PeerAddress],
    /// CIDRs the other clusters' validators call from, admitted to the peer port.
    pub peer_sources: &'a [String],
    /// Who may reach the API port besides the chain's own namespace.
    pub api_clients: &'a ApiClients,
    /// Faulty validators the chain tolerates now: at most this many may be disrupted at once.
    pub fault_tolerance: u32,
    pub ownership: Ownership,
}

/// Every object one cluster should hold for a Blockchain, apart from the key Secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub genesis: ConfigMap,
    pub peers: ConfigMap,
    pub headless_service: Service,
    pub api_service: Service,
    /// One per validator in this cluster, in the order of [`ClusterInput::validators`].
    pub validator_services: Vec<Service>,
    /// One per validator in this cluster, in the order of [`ClusterInput::validators`].
    pub stateful_sets: Vec<StatefulSet>,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub network_policy: NetworkPolicy,
    /// Only when `spec.monitoring.serviceMonitor`; applying it still needs its CRD.
    pub service_monitor: Option<DynamicObject>,
}

/// Builds one cluster's objects.
pub fn desired(input: &ClusterInput<'_>) -> Result<Desired, BuildError> {
    let spec = &input.blockchain.spec;
    let context = ObjectContext::new(input.blockchain, input.ownership)?;
    if let Some(bad) = input.peers.iter().find(|peer| !peer.is_well_formed()) {
        return Err(BuildError::PeerAddress { key: bad.key, address: bad.address.clone() });
    }
    let node_config = NodeConfigText::new(&NodeConfigFile::for_pod(), input.peers);

    Ok(Desired {
        genesis: genesis::genesis_config_map(&context, input.genesis),
        peers: config::peers_config_map(&context, &node_config),
        headless_service: services::headless_service(&context),
        api_service: services::api_service(&context),
        validator_services: validator_services(&context, spec, input.placement, input.validators),
        stateful_sets: input
            .validators
            .iter()
            .map(|&index| {
                statefulset::validator_stateful_set(
                    &context,
                    spec,
                    index,
                    input.genesis.hash(),
                    node_config.hash,
                )
            })
            .collect(),
        pod_disruption_budget: policy::pod_disruption_budget(&context, input.fault_tolerance),
        network_policy: policy::network_policy(&context, input.peer_sources, input.api_clients),
        service_monitor: spec.monitoring.service_monitor.then(|| monitoring::service_monitor(&context)),
    })
}

/// The peer Services of `validators` in the cluster of `placement`: applied before the rest,
/// since their node ports and load balancers give the addresses every node.yaml lists.
pub fn validator_services(
    context: &ObjectContext,
    spec: &BlockchainSpec,
    placement: Option<&PlacementSpec>,
    validators: &[u32],
) -> Vec<Service> {
    let service_type = services::peer_service_type(spec, placement);
    // The provider's load-balancer defaults, under what the placement sets itself.
    let mut annotations = match (service_type, placement.and_then(|entry| entry.provider)) {
        (ServiceType::LoadBalancer, Some(provider)) => services::provider_annotations(provider),
        _ => Default::default(),
    };
    if let Some(service) = placement.and_then(|entry| entry.service.as_ref()) {
        annotations.extend(service.annotations.clone());
    }
    validators
        .iter()
        .map(|&index| services::validator_service(context, index, service_type, &annotations))
        .collect()
}

#[cfg(test)]
mod tests;
