//! The reconciler, one file per step: [`connect`] gets a client for every cluster of the chain
//! (the hub's own, members' from their kubeconfig Secrets), [`dereference`] reads the genesis
//! and keys, [`bootstrap`] makes keys (each in its validator's cluster) and genesis once,
//! [`expose`] copies the genesis to each cluster and applies the peer Services whose addresses
//! the peer list needs, [`validate`] decides every blocker (pure), [`crate::build`] turns it all
//! into objects (pure), [`apply`] writes them, [`update_status`] observes the validators and
//! writes the status, and [`cleanup`] removes a deleted chain from every cluster. For a chain
//! without placement, [`reconfigure`] first decides which validators run and takes the next step
//! of growing or shrinking the set on chain to spec.validators; after the apply step,
//! [`upgrade`] restarts at most one validator whose pod template changed, and, once the set is
//! settled, [`consortium`] brings members, admins and consensus parameters on chain to the spec.
//! Besides these only the finalizer helper and [`undecodable`] talk to an API server.

mod admin_tx;
mod apply;
mod bootstrap;
mod cleanup;
mod connect;
mod consortium;
mod dereference;
mod expose;
mod reconfigure;
mod undecodable;
mod update_status;
mod upgrade;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use kubechain_crds::{Blockchain, Phase};

use self::bootstrap::Bootstrap;
use self::connect::StepError;
use self::dereference::{StoredGenesis, StoredKey, StoredKeys};
use crate::build::addresses::Pending;
use crate::build::{self, ClusterInput, ObjectContext, Ownership};
use crate::context::{Context, FINALIZER, chain_key};
use crate::error::Error;
use crate::health::{Blocker, ClusterView};
use crate::members::MemberError;
use crate::placement;

/// How often a chain's health is polled: often while it settles, calmly once it runs.
const POLL_SETTLING: Duration = Duration::from_secs(3);
const POLL_STEADY: Duration = Duration::from_secs(15);

/// Entry point for the controller: the finalizer helper runs [`reconcile_chain`] or [`cleanup`].
pub async fn reconcile(
    object: Arc<DeserializeGuard<Blockchain>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = match &object.0 {
        Ok(chain) => with_finalizer(Arc::new(chain.clone()), &ctx).await,
        Err(invalid) => undecodable::report(&ctx, &object, invalid).await,
    };
    let [ok, error] = crate::metrics::RECONCILE_OUTCOMES;
    let outcome = if result.is_ok() { ok } else { error };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    ctx.metrics.duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.clear_failures(&chain_key(object.as_ref()));
    }
    result
}

/// Retries a failed chain later, backing off exponentially (5 s to 5 min); other chains are not
/// held up.
pub fn error_policy(object: Arc<DeserializeGuard<Blockchain>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.with_label_values(&[error.metric_label()]).inc();
    let key = chain_key(object.as_ref());
    let failures = ctx.count_failure(&key);
    let delay = Duration::from_secs(5).saturating_mul(1 << failures.min(6)).min(Duration::from_secs(300));
    tracing::warn!(chain = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn with_finalizer(chain: Arc<Blockchain>, ctx: &Context) -> Result<Action, Error> {
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &chain.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, chain, |event| async {
        match event {
            Finalizer::Apply(chain) => {
                let result = reconcile_chain(&chain, ctx).await;
                if let Err(error) = &result
                    && error.needs_a_person()
                {
                    update_status::failed(ctx, &chain, error).await;
                }
                result
            }
            Finalizer::Cleanup(chain) => cleanup(&chain, ctx).await,
        }
    })
    .await
    .map_err(|error| match error {
        finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
        other => Error::Finalizer(other.to_string()),
    })
}

/// One pass: connect -> dereference -> (bootstrap) -> expose -> validate -> build -> apply ->
/// update_status. Every cluster goes through each step at the same time, each within its own
/// time limit, so one cluster that does not answer holds up none of the others.
async fn reconcile_chain(chain: &Blockchain, ctx: &Context) -> Result<Action, Error> {
    let spec_blockers = validate::spec(&chain.spec);
    if !spec_blockers.is_empty() {
        update_status::stopped(ctx, chain, &spec_blockers, Phase::Failed).await?;
        return Ok(Action::requeue(POLL_STEADY));
    }
    let hub = ObjectContext::new(chain, Ownership::Owned)?;
    let mut clusters = connect::clusters(ctx, chain).await;
    let genesis = match dereference::genesis(&ctx.client, chain).await? {
        StoredGenesis::Found(genesis) => genesis,
        StoredGenesis::Lost { hash } => {
            let blocker = validate::genesis_lost(chain, &hash);
            update_status::announce(ctx, chain, std::slice::from_ref(&blocker)).await;
            update_status::stopped(ctx, chain, &[blocker], Phase::Failed).await?;
            return Ok(Action::requeue(POLL_STEADY));
        }
        StoredGenesis::Foreign { name } => {
            let blocker = validate::foreign_object::<ConfigMap>(chain, &name, "the genesis");
            update_status::announce(ctx, chain, std::slice::from_ref(&blocker)).await;
            update_status::stopped(ctx, chain, &[blocker], Phase::Failed).await?;
            return Ok(Action::requeue(POLL_STEADY));
        }
        StoredGenesis::NotMadeYet => match bootstrap::keys_and_genesis(ctx, chain, &hub, &clusters).await? {
            Bootstrap::Made(genesis) => genesis,
            // Another pass won the race: use what it stored.
            Bootstrap::Raced => return Ok(Action::requeue(Duration::from_secs(1))),
            Bootstrap::Waiting(blockers) => {
                update_status::announce(ctx, chain, &blockers).await;
                update_status::stopped(ctx, chain, &blockers, Phase::Creating).await?;
                return Ok(Action::requeue(POLL_SETTLING));
            }
        },
    };

    // A chain without placement runs every validator in the hub, and its set follows the spec.
    let reconfiguration = match clusters.as_mut_slice() {
        [local] if chain.spec.placement.is_empty() => {
            let decision = reconfigure::step(ctx, chain, &hub, local, &genesis).await?;
            local.plan.validators = decision.roster.clone();
            Some(decision)
        }
        _ => None,
    };
    let across = placement::spans_clusters(&placement::plan(&chain.spec));
    let objects: Vec<ObjectContext> =
        clusters.iter().map(|cluster| expose::cluster_objects(chain, cluster)).collect::<Result<_, _>>()?;
    let exposing = clusters
        .iter()
        .zip(&objects)
        .map(|(cluster, objects)| expose::cluster(cluster, chain, objects, &genesis, across));
    let exposed = futures_util::future::join_all(exposing).await;
    let admin = dereference::admin_key(&ctx.client, chain).await?;
    let operator_admin = match &admin {
        StoredKey::Holds(key) => Some(*key),
        _ => None,
    };
    let slots = clusters
        .iter()
        .flat_map(|cluster| cluster.plan.validators.iter().map(|index| *index as usize + 1))
        .chain([genesis.genesis().validators.len()])
        .max()
        .unwrap_or_default();
    let Gathered { keys, found, sources, mut changed, mismatches } =
        gather(chain, &mut clusters, exposed, slots, admin)?;
    let mut verdict = validate::chain(chain, genesis.genesis(), &keys);
    verdict.blockers.extend(mismatches);
    update_status::announce(ctx, chain, &verdict.blockers).await;

    let last_known = |index: u32| last_known_address(chain, index);
    let roster = roster_keys(&clusters, genesis.genesis(), &keys);
    let (peers, waiting) = match expose::peer_addresses(&roster, &found, &last_known) {
        Ok(peers) => (peers, None),
        Err(missing) => (Vec::new(), Some(format!("waiting for peer addresses: {}", missing.join("; ")))),
    };
    let applying = clusters.iter().zip(&objects).map(|(cluster, objects)| {
        apply_cluster(ctx, chain, cluster, objects, &genesis, &peers, waiting.is_none(), &sources, &verdict)
    });
    let applied = futures_util::future::join_all(applying).await;
    let mut refusal = None;
    for (cluster, result) in clusters.iter_mut().zip(applied) {
        match result {
            Ok(applied) => changed |= applied,
            Err(error) => absorb(cluster, error, &mut refusal),
        }
    }
    if let Some(error) = refusal {
        return Err(error);
    }
    if let Some(retiring) =
        reconfiguration.as_ref().map(|decision| &decision.retire).filter(|r| !r.is_empty())
    {
        reconfigure::retire(ctx, chain, &hub, retiring).await?;
        changed = true;
    }

    let views: Vec<ClusterView> =
        clusters.iter().map(|cluster| cluster_view(chain, cluster, &found)).collect();
    for cluster in clusters.iter().filter(|cluster| cluster.client.is_err()) {
        let note = format!(
            "cluster {} is unreachable: {}",
            cluster.name(),
            cluster.unreachable().unwrap_or_default()
        );
        ctx.publish(chain, EventType::Warning, "ClusterUnreachable", note, None).await;
    }
    let observations = update_status::observe_validators(ctx, chain, &genesis, &clusters).await;
    // One change at a time: the validator set first, then members, admins and parameters; no
    // restart while the set changes or a change of the rules waits for its height.
    let validators_changing = reconfiguration.as_ref().and_then(|decision| decision.step.condition());
    let scheduled = observations.iter().filter_map(|o| o.status.as_ref()).any(|s| s.scheduled.is_some());
    let rollout = upgrade::step(
        ctx,
        chain,
        &clusters,
        &objects,
        &observations,
        validators_changing.is_some() || scheduled,
    )
    .await?;
    let consortium_changing = match validators_changing {
        Some(_) => None,
        None => consortium::step(ctx, chain, &hub, &clusters, &genesis, &observations, operator_admin)
            .await?
            .condition(),
    };
    let findings = update_status::Findings {
        observations,
        upgrading: rollout.condition(),
        genesis: &genesis,
        views: &views,
        waiting,
        verdict: &verdict,
        changed,
        reconfiguring: validators_changing.or(consortium_changing),
    };
    let running = update_status::write(ctx, chain, &findings).await?;
    let settled = running && clusters.iter().all(|cluster| cluster.client.is_ok());
    Ok(Action::requeue(if settled { POLL_STEADY } else { POLL_SETTLING }))
}

/// The key of every validator that runs: genesis' own, and those added since as their Secrets
/// hold them (one whose key is not known yet has no place in the peer lists).
fn roster_keys(
    clusters: &[connect::Cluster],
    genesis: &kubechain_types::Genesis,
    keys: &StoredKeys,
) -> Vec<(u32, kubechain_types::PublicKey)> {
    let mut roster: Vec<(u32, kubechain_types::PublicKey)> = clusters
        .iter()
        .flat_map(|cluster| cluster.plan.validators.iter().copied())
        .filter_map(|index| {
            let added = match keys.validators.get(index as usize) {
                Some(StoredKey::Holds(key)) => Some(*key),
                _ => None,
            };
            genesis.validators.get(index as usize).copied().or(added).map(|key| (index, key))
        })
        .collect();
    roster.sort_by_key(|(index, _)| *index);
    roster
}

/// What the expose step found in the clusters that answered.
struct Gathered {
    keys: StoredKeys,
    found: Vec<(u32, Result<String, Pending>)>,
    /// Where every validator calls from, for the NetworkPolicies.
    sources: Vec<String>,
    changed: bool,
    mismatches: Vec<Blocker>,
}

/// Folds each cluster's exposure into one view; a cluster that failed is marked so, and keeps
/// its last known sources. A refusal in the hub fails the pass.
fn gather(
    chain: &Blockchain,
    clusters: &mut [connect::Cluster],
    exposed: Vec<Result<expose::Exposed, StepError>>,
    validators: usize,
    admin: StoredKey,
) -> Result<Gathered, Error> {
    let mut gathered = Gathered {
        keys: StoredKeys { validators: vec![StoredKey::Unknown; validators], admin },
        found: Vec::new(),
        sources: Vec::new(),
        changed: false,
        mismatches: Vec::new(),
    };
    let mut refusal = None;
    for (cluster, result) in clusters.iter_mut().zip(exposed) {
        let exposed = match result {
            Ok(exposed) => exposed,
            Err(error) => {
                absorb(cluster, error, &mut refusal);
                continue;
            }
        };
        for (index, key) in exposed.keys {
            if let Some(slot) = gathered.keys.validators.get_mut(index as usize) {
                *slot = key;
            }
        }
        gathered.found.extend(exposed.endpoints);
        gathered.sources.extend(exposed.sources);
        gathered.changed |= exposed.changed;
        if let Some(blocker) = exposed.genesis_mismatch {
            gathered.mismatches.push(blocker);
            // Its validators would run another chain's genesis: nothing more is applied there.
            cluster.fail(MemberError::Unreachable("it holds another genesis".into()));
        }
    }
    if let Some(error) = refusal {
        return Err(error);
    }
    // Validators of a cluster that did not answer keep their place in everyone's NetworkPolicy.
    for cluster in clusters.iter().filter(|cluster| cluster.client.is_err()) {
        gathered.sources.extend(last_known_sources(chain, &cluster.plan));
    }
    gathered.sources.sort();
    gathered.sources.dedup();
    Ok(gathered)
}

/// Builds and applies one cluster's objects (a cluster already failed this pass is skipped).
#[allow(clippy::too_many_arguments)]
async fn apply_cluster(
    ctx: &Context,
    chain: &Blockchain,
    cluster: &connect::Cluster,
    objects: &ObjectContext,
    genesis: &build::GenesisDocument,
    peers: &[build::PeerAddress],
    peers_complete: bool,
    sources: &[String],
    verdict: &validate::Verdict,
) -> Result<bool, StepError> {
    let client = cluster.client.clone()?;
    let desired = build::desired(&ClusterInput {
        blockchain: chain,
        genesis,
        placement: cluster.plan.entry.as_ref(),
        validators: &cluster.plan.validators,
        peers,
        peer_sources: sources,
        api_clients: &ctx.api_clients_in(cluster.plan.is_hub()),
        fault_tolerance: tolerated(chain, genesis),
        ownership: if cluster.plan.is_hub() { Ownership::Owned } else { Ownership::Unowned },
    })
    .map_err(|error| StepError::Pass(error.into()))?;
    let namespace = objects.namespace();
    let plan = &cluster.plan;
    Ok(connect::within_step(async {
        let changed =
            apply::objects(&client, namespace, &desired, &verdict.keyless, &plan.validators, peers_complete)
                .await?;
        apply::service_monitor(ctx, &client, chain, desired.service_monitor.as_ref()).await?;
        Ok::<_, kube::Error>(changed)
    })
    .await??)
}

/// Faulty validators tolerated, for the disruption budget: of the set on chain as the status
/// last showed it (genesis' before that), and never more than of the set the spec heads for.
fn tolerated(chain: &Blockchain, genesis: &build::GenesisDocument) -> u32 {
    let on_chain = chain.status.as_ref().and_then(|status| status.fault_tolerance);
    let at_genesis = kubechain_types::fault_tolerance(genesis.genesis().validators.len()) as u32;
    on_chain.unwrap_or(at_genesis).min(chain.spec.fault_tolerance())
}

/// A step's failure in `cluster`: a member's is that cluster's problem (named in the status) and
/// the others go on; the hub's refusal of an object fails the pass, for a person to see.
fn absorb(cluster: &mut connect::Cluster, error: StepError, refusal: &mut Option<Error>) {
    match error {
        StepError::Unreachable(error) => cluster.fail(error),
        StepError::Pass(error) if cluster.plan.is_hub() => *refusal = Some(error),
        StepError::Pass(error) => cluster.fail(MemberError::Unreachable(error.summary())),
    }
}

/// Where the validators of a cluster that did not answer call from, as last known: its
/// egressCidrs, else the hosts of their last advertised addresses.
fn last_known_sources(chain: &Blockchain, plan: &placement::ClusterPlan) -> Vec<String> {
    match plan.entry.as_ref().map(|entry| &entry.egress_cidrs) {
        Some(cidrs) if !cidrs.is_empty() => cidrs.clone(),
        _ => plan
            .validators
            .iter()
            .filter_map(|index| last_known_address(chain, *index))
            .filter_map(|address| {
                address.rsplit_once(':').and_then(|(host, _)| build::addresses::host_cidr(host))
            })
            .collect(),
    }
}

/// Validator `index`'s address as the last status showed it.
fn last_known_address(chain: &Blockchain, index: u32) -> Option<String> {
    let status = chain.status.as_ref()?;
    status.clusters.iter().find_map(|cluster| {
        let position = cluster.validators.iter().position(|i| *i == index)?;
        cluster.endpoints.get(position).filter(|address| !address.is_empty()).cloned()
    })
}

/// The cluster for the status; a validator whose address was not read this pass keeps the last
/// one shown, so a cluster that stops answering keeps its place in the peer lists.
fn cluster_view(
    chain: &Blockchain,
    cluster: &connect::Cluster,
    found: &[(u32, Result<String, Pending>)],
) -> ClusterView {
    let endpoints = cluster
        .plan
        .validators
        .iter()
        .map(|index| {
            found
                .iter()
                .find(|(i, _)| i == index)
                .and_then(|(_, address)| address.as_ref().ok().cloned())
                .or_else(|| last_known_address(chain, *index))
                .unwrap_or_default()
        })
        .collect();
    ClusterView {
        name: cluster.name().to_string(),
        unreachable: cluster.unreachable(),
        validators: cluster.plan.validators.clone(),
        endpoints,
    }
}
/// Deletion: the hub's objects go with the Blockchain (owner references); each member
/// cluster's are removed by [`cleanup`], and the finalizer stays until every cluster is clean.
/// Volume claims follow the StatefulSets' retention policy (kept unless
/// spec.storage.retainOnDelete is false).
async fn cleanup(chain: &Blockchain, ctx: &Context) -> Result<Action, Error> {
    // Cosmetic: an object already gone (or a refusal) must not hold up the finalizer.
    match update_status::merge(ctx, chain, serde_json::json!({ "phase": Phase::Deleting })).await {
        Ok(()) | Err(Error::Kube(kube::Error::Api(_))) => {}
        Err(error) => return Err(error),
    }
    let kept = if chain.spec.storage.retain_on_delete { "kept" } else { "deleted" };
    let note = format!("removing validators; their volume claims are {kept}");
    ctx.publish(chain, EventType::Normal, "Deleting", note, None).await;
    let clusters = connect::clusters(ctx, chain).await;
    let pending = cleanup::members(chain, &clusters).await;
    if !pending.is_empty() {
        let names: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
        for (name, why) in &pending {
            let note = format!("cluster {name} still holds this chain's objects and is retried: {why}");
            ctx.publish(chain, EventType::Warning, "CleanupPending", note, None).await;
        }
        let clusters: Vec<serde_json::Value> = pending
            .iter()
            .map(|(name, why)| serde_json::json!({"name": name, "reachable": false, "message": why, "readyValidators": 0}))
            .collect();
        let _ = update_status::merge(ctx, chain, serde_json::json!({ "clusters": clusters })).await;
        return Err(Error::CleanupPending(names.join(", ")));
    }
    ctx.forget(&chain_key(chain));
    ctx.metrics.forget_chain(&chain.namespace().unwrap_or_default(), &chain.name_any());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use kubechain_crds::{BlockchainSpec, BlockchainStatus, ClusterStatus, PlacementSpec, Provider};

    use super::*;

    fn chain_seen_before() -> Blockchain {
        let spec = BlockchainSpec::new("c-1", 4, "kubechain/node:test").with_placement(vec![
            PlacementSpec::local("aws", 3),
            PlacementSpec::remote("gcp", Provider::Gcp, 1, "gcp-kubeconfig"),
        ]);
        let mut chain = Blockchain::new("c", spec);
        chain.status = Some(BlockchainStatus {
            clusters: vec![ClusterStatus {
                name: "gcp".into(),
                validators: vec![3],
                endpoints: vec!["10.251.0.3:30103".into()],
                ..ClusterStatus::default()
            }],
            ..BlockchainStatus::default()
        });
        chain
    }

    #[test]
    fn a_cluster_that_stops_answering_keeps_its_address_and_its_place_in_the_policies() {
        let chain = chain_seen_before();
        let plans = placement::plan(&chain.spec);
        let gcp = connect::Cluster { plan: plans[1].clone(), client: Err(MemberError::TimedOut(30)) };
        let view = cluster_view(&chain, &gcp, &[]);
        assert_eq!(view.endpoints, ["10.251.0.3:30103"]);
        assert!(view.unreachable.is_some());
        assert_eq!(last_known_sources(&chain, &gcp.plan), ["10.251.0.3/32"]);
        let mut egress = gcp.plan.clone();
        egress.entry.as_mut().unwrap().egress_cidrs = vec!["203.0.113.0/24".into()];
        assert_eq!(last_known_sources(&chain, &egress), ["203.0.113.0/24"]);
    }
}
