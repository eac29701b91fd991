//! Members, admins and consensus parameters on chain follow the spec: asks a ready validator in
//! force in the hub what the chain holds, lets [`crate::consortium`] decide, and submits its one
//! admin transaction through that validator.

use kubechain_crds::Blockchain;
use kubechain_types::PublicKey;

use super::admin_tx::{AdminChange, submit_admin, submitter};
use super::connect::Cluster;
use crate::build::GenesisDocument;
use crate::build::meta::ObjectContext;
use crate::consortium::{self, Declared, OnChain, Step};
use crate::context::{Context, chain_key};
use crate::error::Error;
use crate::health::Observation;
use crate::observe;

/// Decides the next change and submits it; the step says what the Reconfiguring condition shows.
pub async fn step(
    ctx: &Context,
    chain: &Blockchain,
    hub: &ObjectContext,
    clusters: &[Cluster],
    genesis: &GenesisDocument,
    observations: &[Observation],
    operator_admin: Option<PublicKey>,
) -> Result<Step, Error> {
    let Some(operator_admin) = operator_admin else {
        return Ok(Step::Waiting {
            reason: "KeyMissing",
            message: "the operator's admin key Secret cannot be read: members, admins and parameters change once it is restored".into(),
        });
    };
    let genesis_rules = genesis.genesis();
    let Some(hub_cluster) = clusters.iter().find(|cluster| cluster.plan.is_hub()) else {
        if consortium::as_in_genesis(&chain.spec, &operator_admin, genesis_rules) {
            return Ok(Step::Settled);
        }
        return Ok(Step::Waiting {
            reason: "NoHubValidator",
            message: "no validator runs in the operator's cluster: members, admins and parameters are changed through one".into(),
        });
    };
    // The admin's nonce is read before the chain: a change that commits in between makes the
    // next transaction carry a spent nonce, which the validator refuses as a duplicate, instead
    // of the same change signed again with a fresh one.
    let via = submitter(observations, hub_cluster.name());
    let (nonce, status, consortium) = match via {
        Some(via) => {
            let url = ctx.node_urls.url(hub.name(), hub.namespace(), via);
            let nonce = observe::account_nonce(&ctx.http, &url, &operator_admin).await;
            let genesis_hash = genesis.hash().to_string();
            let status =
                observe::node_status(&ctx.http, &url, &genesis.genesis().chain_id, &genesis_hash).await;
            (nonce, status, observe::consortium(&ctx.http, &url).await)
        }
        None => (None, None, None),
    };
    let on_chain = match (nonce.and(status.as_ref()), &consortium) {
        (Some(status), Some(consortium)) => status
            .scheduled
            .as_ref()
            .map(|scheduled| &scheduled.consensus_params)
            .or(status.consensus_params.as_ref())
            .map(|latest_params| OnChain {
                consortium,
                latest_params,
                rules_in_flight: status.scheduled.is_some(),
            }),
        _ => None,
    };
    // What genesis and every spec seen named; a name gone from both the spec and the chain is
    // forgotten.
    let key = chain_key(chain);
    let declared =
        ctx.declared(&key).unwrap_or_else(|| Declared::from_genesis(genesis_rules)).with(&chain.spec);
    let step = consortium::decide(&chain.spec, &operator_admin, genesis_rules, &declared, on_chain);
    let declared = match &consortium {
        Some(consortium) => declared.settled(&chain.spec, consortium),
        None => declared,
    };
    ctx.keep_declared(key, declared);
    let (Step::Submit(edit), Some(via)) = (&step, via) else { return Ok(step) };
    let change = AdminChange {
        operations: edit.operations.clone(),
        summary: &edit.summary,
        kind: "ConsortiumChange",
        nonce,
    };
    let refused = submit_admin(ctx, chain, hub, genesis, via, change).await?;
    Ok(match refused {
        Some(why) => Step::Waiting {
            reason: "ChangeRefused",
            message: format!("{}: the chain refused the transaction ({why}); fix the spec", edit.summary),
        },
        None => step,
    })
}
