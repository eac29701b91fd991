//! The reconciler, one file per step: [`dereference`] reads the Blockchain's genesis and keys,
//! [`bootstrap`] makes keys and genesis once, [`validate`] decides every blocker (pure),
//! [`crate::build`] turns it all into objects (pure), [`apply`] writes them, and
//! [`update_status`] observes the validators and writes the status. Besides those four steps only
//! the finalizer helper and [`undecodable`] talk to the API server. This is for the validators
//! placed in the operator's own cluster.

mod apply;
mod bootstrap;
mod dereference;
mod undecodable;
mod update_status;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use kubechain_crds::{Blockchain, Phase};

use self::dereference::StoredGenesis;
use crate::build::{self, ClusterInput, ObjectContext, Ownership};
use crate::context::{Context, FINALIZER, chain_key};
use crate::error::Error;

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
    let outcome = if result.is_ok() { "ok" } else { "error" };
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

/// One pass: dereference -> (bootstrap) -> validate -> build -> apply -> update_status.
async fn reconcile_chain(chain: &Blockchain, ctx: &Context) -> Result<Action, Error> {
    let spec_blockers = validate::spec(&chain.spec);
    if !spec_blockers.is_empty() {
        update_status::blocked(ctx, chain, &spec_blockers).await?;
        return Ok(Action::requeue(POLL_STEADY));
    }
    let objects = ObjectContext::new(chain, Ownership::Owned)?;
    let genesis = match dereference::genesis(&ctx.client, chain).await? {
        StoredGenesis::Found(genesis) => genesis,
        StoredGenesis::Lost { hash } => {
            let blocker = validate::genesis_lost(chain, &hash);
            update_status::announce(ctx, chain, std::slice::from_ref(&blocker)).await;
            update_status::blocked(ctx, chain, &[blocker]).await?;
            return Ok(Action::requeue(POLL_STEADY));
        }
        StoredGenesis::NotMadeYet => match bootstrap::keys_and_genesis(ctx, chain, &objects).await? {
            Some(genesis) => genesis,
            // Another pass won the race: use what it stored.
            None => return Ok(Action::requeue(Duration::from_secs(1))),
        },
    };
    let keys = dereference::keys(&ctx.client, chain, genesis.genesis().validators.len()).await?;
    let verdict = validate::chain(chain, genesis.genesis(), &keys);
    update_status::announce(ctx, chain, &verdict.blockers).await;

    let peers =
        build::service_peer_addresses(objects.name(), objects.namespace(), &genesis.genesis().validators);
    let validators: Vec<u32> = (0u32..).take(peers.len()).collect();
    let desired = build::desired(&ClusterInput {
        blockchain: chain,
        genesis: &genesis,
        placement: chain.spec.placement.first(),
        validators: &validators,
        peers: &peers,
        ownership: Ownership::Owned,
    })?;
    let changed = apply::objects(ctx, objects.namespace(), &desired, &verdict.keyless).await?;
    apply::service_monitor(ctx, chain, desired.service_monitor.as_ref()).await?;

    let running = update_status::observe_and_write(ctx, chain, &genesis, &peers, &verdict, changed).await?;
    Ok(Action::requeue(if running { POLL_STEADY } else { POLL_SETTLING }))
}

/// Deletion: owned objects go with the Blockchain (owner references); volume claims follow the
/// StatefulSets' retention policy (kept unless spec.storage.retainOnDelete is false).
async fn cleanup(chain: &Blockchain, ctx: &Context) -> Result<Action, Error> {
    ctx.forget(&chain_key(chain));
    // Cosmetic: an object already gone (or a refusal) must not hold up the finalizer.
    match update_status::merge(ctx, chain, serde_json::json!({ "phase": Phase::Deleting })).await {
        Ok(()) | Err(Error::Kube(kube::Error::Api(_))) => {}
        Err(error) => return Err(error),
    }
    let kept = if chain.spec.storage.retain_on_delete { "kept" } else { "deleted" };
    let note = format!("removing validators; their volume claims are {kept}");
    ctx.publish(chain, EventType::Normal, "Deleting", note, None).await;
    Ok(Action::await_change())
}
