//! The `Blockchain` custom resource (`kubechain.dev/v1alpha1`): its Rust types, the CRD they
//! generate (schema, CEL rules, printer columns) and the same validation in Rust.
//!
//! `crds/blockchain.kubechain.dev.yaml`, and its copy in the operator's Helm chart, are generated
//! from these types by the `crdgen` binary (`make crds`); a test fails when either drifts.

pub mod limits;
pub mod messages;
mod schema;
pub mod spec;
pub mod status;
pub mod validate;

pub use kube::CustomResourceExt;
pub use spec::{
    Blockchain, BlockchainSpec, ConsensusSpec, ImagePullPolicy, MemberSpec, MonitoringSpec, PlacementSpec,
    Provider, SecretKeyRef, ServiceSpec, ServiceType, StorageSpec,
};
pub use status::{BlockchainStatus, ClusterStatus, ConsensusStatus, Phase, ValidatorCounts, condition};
pub use validate::{validate, validate_update};

/// The command that rewrites the committed CRD (and the operator chart's copy) from the types.
pub const REGENERATE_COMMAND: &str = "make crds";

/// The CRD as YAML, as committed in `crds/` (and printed by `kubechain-operator crd`).
pub fn crd_yaml() -> String {
    let body = serde_yaml::to_string(&Blockchain::crd()).expect("a CRD always serializes to YAML");
    format!(
        "# Generated from the kubechain-crds types; do not edit. Regenerate with:\n# {REGENERATE_COMMAND}\n{body}"
    )
}

#[cfg(test)]
mod tests;
