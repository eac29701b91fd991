//! Looks at the validators and writes `Blockchain.status` (server-side apply, computed by
//! [`crate::health`]), with events for conditions that changed.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use kubechain_crds::{Blockchain, BlockchainStatus, Phase};

use super::connect::Cluster;
use super::validate::{self, Verdict};
use crate::build::GenesisDocument;
use crate::build::meta::names;
use crate::context::{Context, FIELD_MANAGER, chain_key};
use crate::error::Error;
use crate::health::{self, Blocker, ClusterView, Observation, Progress};
use crate::observe;

/// What a pass found, for the status.
#[derive(Debug)]
pub struct Findings<'a> {
    /// What every validator's API said this pass.
    pub observations: Vec<Observation>,
    pub genesis: &'a GenesisDocument,
    pub views: &'a [ClusterView],
    /// What the validators wait for before they can start (peer addresses), if anything.
    pub waiting: Option<String>,
    pub verdict: &'a Verdict,
    pub changed: bool,
    /// Why the validator set is changing or waiting to, if it is.
    pub reconfiguring: Option<(&'static str, String)>,
    /// Where rolling a changed pod template stands, while pods are outdated.
    pub upgrading: Option<(&'static str, String)>,
}

/// Computes and writes the status from what the pass found; whether the chain is Running.
pub async fn write(ctx: &Context, chain: &Blockchain, findings: &Findings<'_>) -> Result<bool, Error> {
    let observations = &findings.observations;
    let key = chain_key(chain);
    let now = Timestamp::now();
    let progress = ctx.progress(&key).unwrap_or_else(|| Progress::resume(chain.status.as_ref(), now));
    let (status, progress) = health::status(&health::Inputs {
        spec: &chain.spec,
        generation: chain.metadata.generation,
        genesis_hash: Some(findings.genesis.hash().to_string()),
        observations,
        clusters: findings.views,
        waiting: findings.waiting.clone(),
        blockers: &findings.verdict.blockers,
        warnings: &findings.verdict.warnings,
        changed: findings.changed,
        reconfiguring: findings.reconfiguring.clone(),
        upgrading: findings.upgrading.clone(),
        progress,
        previous: chain.status.as_ref(),
        now,
    });
    ctx.keep_progress(key, progress);
    for (type_, reason, note) in condition_events(chain.status.as_ref(), &status) {
        ctx.publish(chain, type_, reason, note, None).await;
    }
    apply(ctx, chain, &status).await?;
    Ok(status.phase == Some(Phase::Running))
}

/// The status of a pass that stopped early: see [`health::stopped`].
pub async fn stopped(
    ctx: &Context,
    chain: &Blockchain,
    blockers: &[Blocker],
    phase: Phase,
) -> Result<(), Error> {
    let status =
        health::stopped(chain.status.as_ref(), blockers, phase, chain.metadata.generation, Timestamp::now());
    apply(ctx, chain, &status).await
}

/// Blockers as Warning events, each naming the object it is about.
pub async fn announce(ctx: &Context, chain: &Blockchain, blockers: &[Blocker]) {
    for blocker in blockers {
        let related = blocker.related.clone();
        ctx.publish(chain, EventType::Warning, blocker.reason, blocker.message.clone(), related).await;
    }
}

/// A failure retrying will not fix: Ready=False with its message, and a Warning event.
pub async fn failed(ctx: &Context, chain: &Blockchain, error: &Error) {
    let blocker = validate::reconcile_failed(error);
    announce(ctx, chain, std::slice::from_ref(&blocker)).await;
    if let Err(error) = stopped(ctx, chain, &[blocker], Phase::Failed).await {
        tracing::warn!(chain = %chain_key(chain), %error, "could not write the status");
    }
}

/// Sets a few status fields, leaving the rest as they are (unlike a whole status write).
pub async fn merge(ctx: &Context, chain: &Blockchain, fields: serde_json::Value) -> Result<(), Error> {
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &chain.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": fields });
    api.patch_status(&chain.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// The whole status, by server-side apply.
async fn apply(ctx: &Context, chain: &Blockchain, status: &BlockchainStatus) -> Result<(), Error> {
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &chain.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": Blockchain::api_version(&()),
        "kind": Blockchain::kind(&()),
        "status": status,
    });
    api.patch_status(&chain.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    ctx.metrics.record_chain(&chain.namespace().unwrap_or_default(), &chain.name_any(), status);
    Ok(())
}

/// Every validator's status: through its pod's DNS name in the hub (the node URL template),
/// through the member API server's pod proxy elsewhere. Validators of a cluster that cannot be
/// used count as not answering.
pub async fn observe_validators(
    ctx: &Context,
    chain: &Blockchain,
    genesis: &GenesisDocument,
    clusters: &[Cluster],
) -> Vec<Observation> {
    let namespace = &chain.namespace().unwrap_or_default();
    let name = &chain.name_any();
    let genesis_hash = &genesis.hash().to_string();
    let chain_id = &genesis.genesis().chain_id;
    let asks = clusters.iter().flat_map(|cluster| {
        cluster.plan.validators.iter().map(move |&index| async move {
            let status = match &cluster.client {
                Err(_) => None,
                Ok(_) if cluster.plan.is_hub() => {
                    let url = ctx.node_urls.url(name, namespace, index);
                    observe::node_status(&ctx.http, &url, chain_id, genesis_hash).await
                }
                Ok(client) => {
                    let pod = names::validator_pod(name, index);
                    observe::node_status_via_proxy(client, namespace, &pod, chain_id, genesis_hash).await
                }
            };
            Observation { index, cluster: cluster.name().to_string(), status }
        })
    });
    futures_util::future::join_all(asks).await
}

/// Events for conditions that changed: what a person reading `kubectl describe` wants to see.
/// A condition seen for the first time is news only when it is bad.
fn condition_events<'a>(
    before: Option<&BlockchainStatus>,
    after: &'a BlockchainStatus,
) -> Vec<(EventType, &'a str, String)> {
    let mut events = Vec::new();
    for condition in &after.conditions {
        let previous = before.and_then(|before| before.condition(&condition.type_));
        if previous.is_some_and(|previous| previous.status == condition.status) {
            continue;
        }
        let bad = matches!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("Ready", "False") | ("Degraded" | "QuorumAtRisk" | "ChainStalled", "True")
        );
        if previous.is_none() && !bad {
            continue;
        }
        let type_ = if bad { EventType::Warning } else { EventType::Normal };
        let note = format!("{} is {}: {}", condition.type_, condition.status, condition.message);
        events.push((type_, condition.reason.as_str(), note));
    }
    events
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;

    fn status(conditions: &[(&str, &str, &str)]) -> BlockchainStatus {
        let conditions = conditions
            .iter()
            .map(|(type_, status, reason)| Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: format!("{reason} message"),
                observed_generation: None,
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            })
            .collect();
        BlockchainStatus { conditions, ..BlockchainStatus::default() }
    }

    #[test]
    fn first_seen_conditions_are_news_only_when_bad() {
        let after =
            status(&[("Ready", "False", "ValidatorsNotReady"), ("Progressing", "True", "Reconciling")]);
        let events = condition_events(None, &after);
        assert_eq!(events.len(), 1);
        let (type_, reason, note) = &events[0];
        assert_eq!((type_, *reason), (&EventType::Warning, "ValidatorsNotReady"));
        assert_eq!(note, "Ready is False: ValidatorsNotReady message");
    }

    #[test]
    fn only_changed_conditions_are_announced() {
        let before =
            status(&[("Ready", "False", "ValidatorsNotReady"), ("QuorumAtRisk", "True", "BelowQuorum")]);
        let after =
            status(&[("Ready", "True", "AllValidatorsReady"), ("QuorumAtRisk", "True", "BelowQuorum")]);
        let events = condition_events(Some(&before), &after);
        assert_eq!(events.len(), 1);
        assert_eq!((&events[0].0, events[0].1), (&EventType::Normal, "AllValidatorsReady"));
        assert!(condition_events(Some(&after), &after).is_empty());
    }
}
