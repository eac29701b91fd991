//! `kubechain-operator`: reconciles `Blockchain` resources (crate `kubechain-crds`) into validator
//! keys, genesis, Services and StatefulSets, in one or several clusters.
//!
//! [`reconcile`] is a pipeline, one file per step: dereference -> bootstrap (once) -> validate ->
//! build -> apply -> update_status. [`build`] and the validate step are pure: they turn the
//! Blockchain, its keys and its genesis into blockers and Kubernetes objects without talking to an
//! API server, so every decision and every object the operator writes is unit-tested here.
//! [`reconfigure`] decides, as purely, how the validator set on chain follows the spec, and
//! [`upgrade`] which validator restarts next when the pod template changed.
//! [`keys`] is the one place that reads randomness; [`context`] is what every pass shares;
//! [`error`] is the one error type, with its metric labels; [`crd`] checks at start that the
//! CRD is installed.

pub mod build;
pub mod consortium;
pub mod context;
pub mod crd;
pub mod error;
pub mod health;
pub mod keys;
pub mod members;
pub mod metrics;
pub mod observe;
pub mod placement;
pub mod reconcile;
pub mod reconfigure;
pub mod upgrade;

pub use build::{BuildError, ClusterInput, Desired, Ownership, desired};
