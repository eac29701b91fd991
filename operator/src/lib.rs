//! `kubechain-operator`: reconciles `Blockchain` resources (crate `kubechain-crds`) into validator
//! keys, genesis, Services and StatefulSets, in one or several clusters.
//!
//! Reconcile is a pipeline: validate -> build -> apply -> status. [`build`] is pure: it turns the
//! Blockchain, its keys and its genesis into Kubernetes objects and never talks to an API server,
//! so every object the operator writes is unit-tested here. [`keys`] is the one place that reads
//! randomness.

pub mod build;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod observe;
pub mod reconcile;

pub use build::{BuildError, ClusterInput, Desired, Ownership, desired};
