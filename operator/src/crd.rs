//! The start-up check that the API server serves Blockchains. Without the CRD the controller
//! would only log failed lists forever; instead the operator stops at once with one line that
//! says what to install. In a pod that is a restart with backoff (CrashLoopBackOff, which a person
//! notices) until the CRD is there. The install steps (docs/operator.md, examples/operator.yaml)
//! and the e2e suites apply the CRD first.

use kube::api::{Api, ListParams};
use kube::{Client, CustomResourceExt};
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

/// Lists at most one Blockchain's metadata: cheap, needs only the permission the controller
/// needs anyway, and decodes no spec.
pub async fn check_installed(client: Client) -> Result<(), CrdError> {
    let api: Api<Blockchain> = Api::all(client);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(error) => Err(classify(error)),
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
        assert!(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(CRD_FILE).is_file());
    }

    #[test]
    fn other_failures_say_what_failed() {
        let message = classify(api_error(403)).to_string();
        assert!(message.starts_with("cannot list blockchains.kubechain.dev objects"), "{message}");
    }
}
