//! Harness for the end-to-end suites: real `kubechain node run` processes on loopback, each in its
//! own temp dir, with every peer link going through a fault-injecting TCP proxy the test owns.
//!
//! Node i reaches node j through its own proxy (i -> j), so the harness can cut any node off from
//! the others (and heal it) without touching the nodes. Nodes bind port 0; the proxies are told
//! where each node listens after every (re)start, from the node's `listening.json`.
//!
//! - [`processes`]: the validators as processes (start, kill, pause, stop, isolate);
//! - [`client`]: their HTTP API, read with the node's own answer types, and signing accounts;
//!   [`load`]: client threads that keep transactions coming through faults;
//! - [`logs`]: what they logged; [`poll`]: waiting for a condition without sleeps as synchronisation;
//! - [`byzantine`]: a validator that attacks the others over the wire protocol;
//! - [`kube`]: a real Kubernetes control plane and the operator; [`proxy`]: the faulty links;
//!   [`wan`]: the delay line between the local clouds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod byzantine;
pub mod client;
pub mod kube;
pub mod load;
pub mod logs;
pub mod poll;
pub mod processes;
pub mod proxy;
pub mod wan;

pub use client::{
    Account, Acknowledged, committed_at, error_code, fresh_connections, get_as, get_json,
    sampling_connections, submit_to,
};
pub use load::Load;
pub use logs::{CAUGHT_UP, STARTING_NODE, log_fields};
pub use poll::eventually;
pub use processes::{CHAIN_ID, Cluster, Validator, fault_suite_params, kubechain_bin};
pub use proxy::Proxy;
