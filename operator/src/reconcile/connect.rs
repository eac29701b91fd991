//! The first step of a pass: a client for every cluster of the chain. The hub's is the
//! operator's own; a member's comes from its kubeconfig Secret ([`crate::members`]). A cluster
//! that cannot be used is carried along with the reason, so the other clusters go on.

use std::future::Future;
use std::time::Duration;

use kube::{Client, ResourceExt};
use kubechain_crds::Blockchain;

use crate::context::Context;
use crate::error::Error;
use crate::members::MemberError;
use crate::placement::{self, ClusterPlan, Location};

/// Longest a pass may spend on one cluster for one step, whatever its client's timeouts: a
/// cluster that answers slowly to every call must not hold up the others for long.
pub const CLUSTER_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One cluster of the chain and how to talk to it.
#[derive(Clone)]
pub struct Cluster {
    pub plan: ClusterPlan,
    pub client: Result<Client, MemberError>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("plan", &self.plan).field("usable", &self.client.is_ok()).finish()
    }
}

impl Cluster {
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// Why the cluster cannot be used this pass, if it cannot.
    pub fn unreachable(&self) -> Option<String> {
        self.client.as_ref().err().map(ToString::to_string)
    }

    /// Marks the cluster unusable for the rest of the pass.
    pub fn fail(&mut self, error: MemberError) {
        self.client = Err(error);
    }
}

/// Every cluster of the chain, in placement order.
pub async fn clusters(ctx: &Context, chain: &Blockchain) -> Vec<Cluster> {
    let namespace = chain.namespace().unwrap_or_default();
    let connects = placement::plan(&chain.spec).into_iter().map(|plan| {
        let namespace = namespace.clone();
        async move {
            let client = match &plan.location {
                Location::Hub => Ok(ctx.client.clone()),
                Location::Member(secret) => {
                    within_step(ctx.members.client(&ctx.client, &namespace, secret)).await.and_then(|r| r)
                }
            };
            Cluster { plan, client }
        }
    });
    futures_util::future::join_all(connects).await
}

/// `work` bounded by [`CLUSTER_STEP_TIMEOUT`].
pub async fn within_step<T>(work: impl Future<Output = T>) -> Result<T, MemberError> {
    tokio::time::timeout(CLUSTER_STEP_TIMEOUT, work)
        .await
        .map_err(|_| MemberError::TimedOut(CLUSTER_STEP_TIMEOUT.as_secs()))
}

/// Why a step failed in one cluster.
#[derive(Debug)]
pub enum StepError {
    /// The cluster could not be used this pass; the others go on.
    Unreachable(MemberError),
    /// Fails the whole pass: an object the API server refuses as invalid (or that cannot be
    /// built) is wrong in every cluster, and needs a person.
    Pass(Error),
}

impl From<MemberError> for StepError {
    fn from(error: MemberError) -> Self {
        StepError::Unreachable(error)
    }
}

impl From<kube::Error> for StepError {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) if matches!(status.code, 400 | 422) => {
                StepError::Pass(Error::Kube(kube::Error::Api(status)))
            }
            error => StepError::Unreachable(unreachable(error)),
        }
    }
}

/// A failed API call to a member, as the reason it is unreachable this pass.
pub fn unreachable(error: kube::Error) -> MemberError {
    let text = match &error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => crate::observe::error_chain(other),
    };
    MemberError::Unreachable(crate::error::truncate(text, 300))
}
