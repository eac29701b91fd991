//! The validator set on chain follows `spec.validators` (chains without placement): reads which
//! validators run, their keys and what their APIs say, lets [`crate::reconfigure`] decide, and
//! carries out its one step: a key made, or an admin transaction signed with the operator's admin
//! key and submitted through a validator in force. Pods of validators whose removal is in force
//! are deleted after the apply step ([`retire`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use kubechain_crds::Blockchain;
use kubechain_types::PublicKey;

use super::admin_tx::{AdminChange, submit_admin, submitter};
use super::bootstrap;
use super::connect::Cluster;
use super::dereference::{self, StoredKey};
use super::update_status;
use crate::build::keys::VALIDATOR_KEY_FILE;
use crate::build::meta::{Component, ObjectContext, labels, names};
use crate::build::{self, GenesisDocument};
use crate::context::Context;
use crate::error::Error;
use crate::reconfigure::{self, Decision, Step};

/// Decides the roster and carries out the next step. In the hub, which runs every validator of
/// a chain without placement.
pub async fn step(
    ctx: &Context,
    chain: &Blockchain,
    hub: &ObjectContext,
    hub_cluster: &Cluster,
    genesis: &GenesisDocument,
) -> Result<Decision, Error> {
    let client = &ctx.client;
    let name = chain.name_any();
    let genesis_validators = genesis.genesis().validators.len() as u32;
    let existing = existing_validators(client, hub).await?;
    let candidates: BTreeSet<u32> =
        existing.iter().copied().chain(0..chain.spec.validators.max(genesis_validators)).collect();
    let candidates: Vec<u32> = candidates.into_iter().collect();
    let beyond_genesis: Vec<u32> =
        candidates.iter().copied().filter(|index| *index >= genesis_validators).collect();
    // One not made for this chain counts as no key: making one then refuses it, by name.
    let unclaimed = dereference::unclaimed_validator_keys(client, chain, &beyond_genesis).await?;
    let keys: BTreeMap<u32, PublicKey> = dereference::validator_keys(client, chain, &candidates)
        .await?
        .into_iter()
        .filter_map(|(index, key)| match key {
            StoredKey::Holds(key) if !unclaimed.contains(&index) => Some((index, key)),
            _ => None,
        })
        .collect();
    let observed: Vec<u32> =
        existing.iter().copied().chain(0..genesis_validators).collect::<BTreeSet<_>>().into_iter().collect();
    // Asked the way the status step asks (one code path for reading validators).
    let mut probe = hub_cluster.clone();
    probe.plan.validators = observed;
    let observations =
        update_status::observe_validators(ctx, chain, genesis, std::slice::from_ref(&probe)).await;
    let decision = reconfigure::decide(&reconfigure::Inputs {
        desired: chain.spec.validators,
        genesis_validators,
        existing: &existing,
        keys: &keys,
        observations: &observations,
        shown_on_chain: chain.status.as_ref().and_then(|status| status.validators?.on_chain),
    });
    match &decision.step {
        Step::MakeKey { index } => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), hub.namespace());
            let secret_name = names::validator_key_secret(&name, *index);
            bootstrap::ensure_key(ctx, &secrets, chain, &secret_name, VALIDATOR_KEY_FILE, || {
                Ok(build::validator_key_secret(hub, *index, &bootstrap::generate()?).into_secret())
            })
            .await?;
        }
        Step::Submit(change) => {
            if let Some(via) = submitter(&observations, hub_cluster.name()) {
                let summary = change.to_string();
                let change = AdminChange {
                    operations: vec![change.operation()],
                    summary: &summary,
                    kind: "ValidatorSetChange",
                    nonce: None,
                };
                submit_admin(ctx, chain, hub, genesis, via, change).await?;
            }
        }
        Step::Settled | Step::Waiting { .. } => {}
    }
    Ok(decision)
}

/// Deletes the StatefulSets and peer Services of validators that left the set (their volume
/// claims follow the StatefulSet's retention policy; their key Secrets stay, so a validator
/// added again at that index comes back with its own key).
pub async fn retire(
    ctx: &Context,
    chain: &Blockchain,
    hub: &ObjectContext,
    indices: &[u32],
) -> Result<(), Error> {
    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), hub.namespace());
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), hub.namespace());
    for &index in indices {
        let name = names::validator(hub.name(), index);
        let gone = |result: Result<_, kube::Error>| match result {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        };
        gone(stateful_sets.delete(&name, &DeleteParams::foreground()).await.map(|_| ()))?;
        gone(services.delete(&name, &DeleteParams::default()).await.map(|_| ()))?;
        let note =
            format!("validator {index} is out of the set on chain: its StatefulSet and Service are deleted");
        ctx.publish(chain, EventType::Normal, "ValidatorRetired", note, None).await;
    }
    Ok(())
}

/// Indices of the chain's validator StatefulSets in the hub.
async fn existing_validators(client: &Client, hub: &ObjectContext) -> Result<Vec<u32>, kube::Error> {
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), hub.namespace());
    let selector = hub.selector_text(Component::Validator);
    let listed = stateful_sets.list(&ListParams::default().labels(&selector)).await?;
    let mut indices: Vec<u32> =
        listed.items.iter().filter_map(|set| set.labels().get(labels::VALIDATOR)?.parse().ok()).collect();
    indices.sort_unstable();
    indices.dedup();
    Ok(indices)
}
