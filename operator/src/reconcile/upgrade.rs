//! Rolls a changed pod template through the validators of every cluster ([`crate::upgrade`]
//! decides): lists each cluster's validator pods against their StatefulSets' current revision, and
//! deletes the one pod chosen, whose StatefulSet (`OnDelete`) makes it again from the new template.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use kubechain_crds::Blockchain;

use super::connect::{Cluster, within_step};
use crate::build::meta::{Component, ObjectContext, labels};
use crate::context::{Context, chain_key};
use crate::error::Error;
use crate::health::Observation;
use crate::upgrade::{self, PodRevision, Rollout};

/// The label a StatefulSet puts on its pods: the revision of the template they were made from.
const REVISION_LABEL: &str = "controller-revision-hash";
/// A chain whose height moved this recently is advancing; one with nothing to commit is too.
const ADVANCING_WITHIN: Duration = Duration::from_secs(30);

/// Decides the rollout over every cluster and restarts the pod it picks.
pub async fn step(
    ctx: &Context,
    chain: &Blockchain,
    clusters: &[Cluster],
    objects: &[ObjectContext],
    observations: &[Observation],
    reconfiguring: bool,
) -> Result<Rollout, Error> {
    let mut pods = Vec::new();
    let mut unreachable = Vec::new();
    for (cluster, objects) in clusters.iter().zip(objects) {
        if cluster.plan.validators.is_empty() {
            continue;
        }
        let listed = match &cluster.client {
            Ok(client) => within_step(revisions(client, objects, cluster.name())).await,
            Err(_) => {
                unreachable.push(cluster.name().to_string());
                continue;
            }
        };
        match listed {
            Ok(Ok(listed)) => pods.extend(listed),
            Ok(Err(_)) | Err(_) => unreachable.push(cluster.name().to_string()),
        }
    }
    let validators: Vec<u32> =
        clusters.iter().flat_map(|cluster| cluster.plan.validators.iter().copied()).collect();
    let has_work =
        observations.iter().filter_map(|o| o.status.as_ref()).any(|status| status.mempool_size > 0);
    let moved_recently = ctx
        .progress(&chain_key(chain))
        .and_then(|progress| progress.since)
        .is_none_or(|since| (Timestamp::now() - since).get_seconds() < ADVANCING_WITHIN.as_secs() as i64);
    let rollout = upgrade::decide(&upgrade::Inputs {
        pods: &pods,
        validators: &validators,
        observations,
        unreachable: &unreachable,
        advancing: moved_recently || !has_work,
        reconfiguring,
    });
    if let Rollout::Restart(pod) = &rollout
        && let Some(client) =
            clusters.iter().find(|c| c.name() == pod.cluster).and_then(|c| c.client.as_ref().ok())
    {
        let namespace = chain.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        match api.delete(&pod.pod, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
        let note =
            format!("validator {} restarts with the new pod template (cluster {})", pod.index, pod.cluster);
        ctx.publish(chain, EventType::Normal, "ValidatorRestarted", note, None).await;
    }
    Ok(rollout)
}

/// The validator pods of one cluster, each marked outdated when its template revision is not its
/// StatefulSet's current one. A StatefulSet whose status is behind its spec, or a pod already
/// going, counts as current this pass.
async fn revisions(
    client: &Client,
    objects: &ObjectContext,
    cluster: &str,
) -> Result<Vec<PodRevision>, kube::Error> {
    let selector = objects.selector_text(Component::Validator);
    let params = ListParams::default().labels(&selector);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), objects.namespace());
    let current: BTreeMap<String, String> = stateful_sets
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter_map(|set| {
            let status = set.status.as_ref()?;
            let settled =
                status.observed_generation.is_some() && status.observed_generation == set.metadata.generation;
            let revision = status.update_revision.clone().filter(|_| settled)?;
            Some((set.labels().get(labels::VALIDATOR)?.clone(), revision))
        })
        .collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), objects.namespace());
    Ok(pods
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter_map(|pod| {
            let index_label = pod.labels().get(labels::VALIDATOR)?.clone();
            let index = index_label.parse().ok()?;
            let going = pod.metadata.deletion_timestamp.is_some();
            let outdated = !going
                && current
                    .get(&index_label)
                    .is_some_and(|revision| pod.labels().get(REVISION_LABEL) != Some(revision));
            let ready = !going
                && pod.status.as_ref().and_then(|status| status.conditions.as_ref()).is_some_and(
                    |conditions| {
                        conditions
                            .iter()
                            .any(|condition| condition.type_ == "Ready" && condition.status == "True")
                    },
                );
            Some(PodRevision { index, cluster: cluster.to_string(), pod: pod.name_any(), outdated, ready })
        })
        .collect())
}
