//! The start-up check that the API server serves Blockchains. Without the CRD the controller
//! would only log failed lists forever; instead the operator stops with one line that says what
//! to install (a passing failure of the API server is waited out for up to a minute first). In a
//! pod that is a restart with backoff (CrashLoopBackOff, which a person notices) until the CRD is
//! there. The install steps (docs/operator.md, examples/operator.yaml)
//! and the e2e suites apply the CRD first.

use std::time::{Duration, Instant};

use kube::CustomResourceExt;
use kube::api::{Api, ListParams};
use kubechain_crds::Blockchain;

/// The committed CRD, relative to the repository root.
pub const CRD_FILE: &str = "crds/blockchain.kubechain.dev.yaml";

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error(
        "the CustomResourceDefinition {crd} is not installed: install it with `kubectl apply -f {CRD_FILE}` (or `kubechain-operator crd | kubectl apply -f -`), then start the operator again"
    )]
    NotInstalled { crd: String },
    #[error("cannot list {crd} objects, so the operator cannot run: {error}")]
    Unreadable { crd: String, error: kube::Error },
}

/// How long a start-up waits out an API server that fails for a passing reason (a restart, a
/// 5xx, a timeout) before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Lists at most one Blockchain's metadata through `api` (across the namespaces the operator
/// watches, or in the first of them): cheap, needs only the permission the controller needs
/// anyway, and decodes no spec. A missing CRD or a refused permission stops at once; other
/// failures are retried with backoff for [`PATIENCE`].
pub async fn check_installed(api: Api<Blockchain>) -> Result<(), CrdError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    loop {
        let error = match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(error) => classify(error),
        };
        if !error.is_passing() || started.elapsed() + backoff > PATIENCE {
            return Err(error);
        }
        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "checking the CRD");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(8));
    }
}

impl CrdError {
    /// A failure that may go away by itself (not a missing CRD, nor a refused request).
    fn is_passing(&self) -> bool {
        match self {
            CrdError::NotInstalled { .. } => false,
            CrdError::Unreadable { error: kube::Error::Api(status), .. } => status.code >= 500,
            CrdError::Unreadable { .. } => true,
        }
    }
}

fn classify(error: kube::Error) -> CrdError {
    let crd = Blockchain::crd_name().to_string();
    match error {
        kube::Error::Api(status) if status.code == 404 => CrdError::NotInstalled { crd },
        error => CrdError::Unreadable { crd, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("the server could not find the requested resource", "NotFound")
                .with_code(code),
        ))
    }

    #[test]
    fn a_missing_crd_is_named_with_how_to_install_it() {
        let message = classify(api_error(404)).to_string();
        assert!(message.contains("blockchains.kubechain.dev is not installed"), "{message}");
        assert!(message.contains("kubectl apply -f crds/blockchain.kubechain.dev.yaml"), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
        // The manifest dir at run time: a cached test binary may come from another checkout.
        let manifest_dir: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        assert!(manifest_dir.join("..").join(CRD_FILE).is_file());
    }

    #[test]
    fn other_failures_say_what_failed() {
        let message = classify(api_error(403)).to_string();
        assert!(message.starts_with("cannot list blockchains.kubechain.dev objects"), "{message}");
    }

    #[test]
    fn only_server_side_failures_are_waited_out() {
        assert!(!classify(api_error(404)).is_passing());
        assert!(!classify(api_error(403)).is_passing());
        assert!(classify(api_error(503)).is_passing());
    }
}
