//! Each cluster's share before the validators start: its key Secrets read back, the genesis
//! copied there (or checked against the hub's by hash), and the validators' peer Services
//! applied, whose node ports or load balancers give the addresses the peer list needs.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use kubechain_crds::Blockchain;

use super::apply::server_side_apply;
use super::connect::{Cluster, StepError, within_step};
use super::dereference::{self, StoredKey};
use super::validate;
use crate::build::addresses::{self, Pending};
use crate::build::meta::names;
use crate::build::{self, GenesisDocument, ObjectContext, Ownership, service_peer_address};
use crate::context::FIELD_MANAGER;
use crate::health::Blocker;

/// What one cluster showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposed {
    pub keys: Vec<(u32, StoredKey)>,
    /// Each validator's advertised peer address, or why there is none yet.
    pub endpoints: Vec<(u32, Result<String, Pending>)>,
    /// CIDRs this cluster's validators call other validators from.
    pub sources: Vec<String>,
    /// The cluster holds another genesis than the hub.
    pub genesis_mismatch: Option<Blocker>,
    pub changed: bool,
}

/// Exposes the validators of `cluster`; `across` says whether peers are in other clusters (and
/// so dial node ports or load balancers rather than cluster DNS names).
pub async fn cluster(
    cluster: &Cluster,
    chain: &Blockchain,
    objects: &ObjectContext,
    genesis: &GenesisDocument,
    across: bool,
) -> Result<Exposed, StepError> {
    let client = cluster.client.clone()?;
    Ok(within_step(expose(&client, cluster, chain, objects, genesis, across)).await??)
}

/// How objects are made for `cluster`: owned by the Blockchain in the hub, unowned (owner
/// references cannot cross clusters; the finalizer removes them) in a member.
pub fn cluster_objects(chain: &Blockchain, cluster: &Cluster) -> Result<ObjectContext, build::BuildError> {
    let ownership = if cluster.plan.is_hub() { Ownership::Owned } else { Ownership::Unowned };
    ObjectContext::new(chain, ownership)
}

async fn expose(
    client: &Client,
    cluster: &Cluster,
    chain: &Blockchain,
    objects: &ObjectContext,
    genesis: &GenesisDocument,
    across: bool,
) -> Result<Exposed, kube::Error> {
    let plan = &cluster.plan;
    let namespace = objects.namespace().to_string();
    let mut exposed = Exposed {
        keys: dereference::validator_keys(client, chain, &plan.validators).await?,
        ..Exposed::default()
    };
    if !plan.is_hub() {
        exposed.genesis_mismatch = copy_genesis(client, objects, cluster.name(), genesis).await?;
    }
    let services = build::validator_services(objects, &chain.spec, plan.entry.as_ref(), &plan.validators);
    let advertised_host =
        plan.entry.as_ref().and_then(|entry| entry.service.as_ref()?.advertised_host.clone());
    let egress = plan.entry.as_ref().map(|entry| entry.egress_cidrs.clone()).unwrap_or_default();
    exposed.sources.extend(egress.iter().cloned());
    for (&index, service) in plan.validators.iter().zip(&services) {
        let (changed, applied) = server_side_apply(client, &namespace, service).await?;
        exposed.changed |= changed;
        if !across {
            exposed.endpoints.push((index, Ok(service_peer_address(objects.name(), &namespace, index))));
            continue;
        }
        let node = validator_node(client, &namespace, &names::validator(objects.name(), index)).await?;
        if egress.is_empty()
            && let Some(cidr) =
                node.as_ref().and_then(addresses::node_address).and_then(|a| addresses::host_cidr(&a))
            && !exposed.sources.contains(&cidr)
        {
            exposed.sources.push(cidr);
        }
        let address =
            addresses::advertised_address(Some(&applied), node.as_ref(), advertised_host.as_deref());
        exposed.endpoints.push((index, address));
    }
    Ok(exposed)
}

/// Creates the cluster's copy of the genesis, or checks the one it holds against the hub's.
async fn copy_genesis(
    client: &Client,
    objects: &ObjectContext,
    cluster: &str,
    genesis: &GenesisDocument,
) -> Result<Option<Blocker>, kube::Error> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), objects.namespace());
    let name = names::genesis_config_map(objects.name());
    if let Some(held) = config_maps.get_opt(&name).await? {
        let expected = genesis.hash().to_string();
        let found = match GenesisDocument::from_config_map(&held) {
            Ok(document) => document.hash().to_string(),
            Err(error) => format!("that does not parse ({error})"),
        };
        return Ok((found != expected).then(|| validate::genesis_mismatch(cluster, &found, &expected)));
    }
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    match config_maps.create(&params, &build::genesis::genesis_config_map(objects, genesis)).await {
        Ok(_) => Ok(None),
        // Made by a pass that overlapped: checked on the next one.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(error) => Err(error),
    }
}

/// The node that runs the validator's pod (`<statefulset>-0`), once it is scheduled.
async fn validator_node(
    client: &Client,
    namespace: &str,
    stateful_set: &str,
) -> Result<Option<Node>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(pod) = pods.get_opt(&format!("{stateful_set}-0")).await? else { return Ok(None) };
    let Some(node_name) = pod.spec.and_then(|spec| spec.node_name) else { return Ok(None) };
    Api::<Node>::all(client.clone()).get_opt(&node_name).await
}

/// The peer addresses of a pass: each validator's from its cluster this pass, else the one the
/// last status showed (its cluster does not answer now, and peers keep dialling where it was).
/// `Err` lists, per validator, why an address is still missing.
pub fn peer_addresses(
    validators: &[(u32, kubechain_types::PublicKey)],
    found: &[(u32, Result<String, Pending>)],
    last_known: &dyn Fn(u32) -> Option<String>,
) -> Result<Vec<build::PeerAddress>, Vec<String>> {
    let mut peers = Vec::with_capacity(validators.len());
    let mut missing = Vec::new();
    for &(index, ref key) in validators {
        let this_pass = found.iter().find(|(i, _)| *i == index).map(|(_, address)| address.clone());
        match (this_pass, last_known(index)) {
            (Some(Ok(address)), _) | (_, Some(address)) => {
                peers.push(build::PeerAddress { key: *key, address });
            }
            (Some(Err(why)), None) => missing.push(format!("validator {index}: {why}")),
            (None, None) => missing.push(format!("validator {index}: its cluster does not answer")),
        }
    }
    if missing.is_empty() { Ok(peers) } else { Err(missing) }
}

#[cfg(test)]
mod tests {
    use kubechain_types::SigningKey;

    use super::*;

    #[test]
    fn an_unanswering_clusters_validators_keep_their_last_known_addresses() {
        let keys: Vec<_> = (1..=3).map(|seed| SigningKey::from_seed([seed; 32]).public_key()).collect();
        let roster: Vec<_> = (0..).zip(keys.iter().copied()).collect();
        let found = vec![(0, Ok("10.251.0.1:30001".to_string())), (1, Err(Pending::NotScheduled))];
        let last = |index: u32| (index == 2).then(|| "10.251.0.3:30003".to_string());
        let missing = peer_addresses(&roster, &found, &last).expect_err("validator 1 has none yet");
        assert_eq!(missing, ["validator 1: its pod is not on a node yet"]);

        let found = vec![(0, Ok("10.251.0.1:30001".to_string())), (1, Ok("10.251.0.1:30002".to_string()))];
        let peers = peer_addresses(&roster, &found, &last).expect("every address known");
        let addresses: Vec<_> = peers.iter().map(|peer| (peer.key, peer.address.as_str())).collect();
        assert_eq!(
            addresses,
            [(keys[0], "10.251.0.1:30001"), (keys[1], "10.251.0.1:30002"), (keys[2], "10.251.0.3:30003")]
        );
        let nobody = |_: u32| None;
        assert_eq!(
            peer_addresses(&roster, &found, &nobody).expect_err("validator 2 unknown"),
            ["validator 2: its cluster does not answer"]
        );
    }

    #[test]
    fn this_passes_address_wins_over_the_last_known() {
        let roster = [(0, SigningKey::from_seed([1; 32]).public_key())];
        let found = vec![(0, Ok("10.251.0.9:30009".to_string()))];
        let last = |_: u32| Some("10.251.0.1:30001".to_string());
        assert_eq!(peer_addresses(&roster, &found, &last).unwrap()[0].address, "10.251.0.9:30009");
    }
}
