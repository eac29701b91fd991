//! The operator's one error type, and the one place that names its kinds for metrics.

use crate::build::BuildError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("no randomness for a key: {0}")]
    Randomness(String),
    #[error("Secret {secret}: {reason}")]
    KeySecret { secret: String, reason: String },
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A deleted chain's objects are still in member clusters that could not be cleaned up.
    #[error("the chain's objects are still in cluster(s) {0}; retrying")]
    CleanupPending(String),
    /// The object does not decode as a Blockchain (e.g. stored under an older schema).
    #[error("Blockchain {object} cannot be read: {reason}")]
    InvalidObject { object: String, reason: String },
}

impl Error {
    /// A short, fixed label for the error metric (`kubechain_operator_reconcile_errors_total{kind}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Build(BuildError::Missing(_)) => "missing_metadata",
            Error::Build(BuildError::Name { .. }) => "bad_name",
            Error::Build(BuildError::Genesis(_)) => "bad_genesis",
            Error::Build(BuildError::PeerAddress { .. }) => "bad_peer_address",
            Error::Randomness(_) => "randomness",
            Error::KeySecret { .. } => "key_secret",
            Error::Finalizer(_) => "finalizer",
            Error::CleanupPending(_) => "cleanup_pending",
            Error::InvalidObject { .. } => "invalid_object",
        }
    }

    /// What a person reads in an event or the status: the API server's own message rather than
    /// the whole error, within an event note's 1 KiB.
    pub fn summary(&self) -> String {
        let text = match self {
            Error::Kube(kube::Error::Api(status)) => status.message.clone(),
            other => other.to_string(),
        };
        truncate(text, 1000)
    }

    /// Errors that retrying will not fix (a spec the API server refuses, a broken key Secret):
    /// they go into the status and an event, not only the log. An undecodable object has its
    /// own event and no status to write to.
    pub fn needs_a_person(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => matches!(status.code, 400 | 403 | 422),
            Error::Kube(_) | Error::Finalizer(_) | Error::CleanupPending(_) | Error::InvalidObject { .. } => {
                false
            }
            Error::Build(_) | Error::Randomness(_) | Error::KeySecret { .. } => true,
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with '…' when cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> Error {
        let status = kube::core::Status::failure(message, "Invalid").with_code(code);
        Error::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn labels_are_fixed_per_kind() {
        assert_eq!(api_error(422, "refused").metric_label(), "kube");
        assert_eq!(Error::Build(BuildError::Genesis("x".into())).metric_label(), "bad_genesis");
        let key = Error::KeySecret { secret: "s".into(), reason: "r".into() };
        assert_eq!(key.metric_label(), "key_secret");
        let invalid = Error::InvalidObject { object: "ns/c".into(), reason: "r".into() };
        assert_eq!(invalid.metric_label(), "invalid_object");
    }

    #[test]
    fn refusals_need_a_person_and_show_the_servers_message() {
        let refused = api_error(422, "spec.template: cpu request must be less than or equal to cpu limit");
        assert!(refused.needs_a_person());
        assert_eq!(refused.summary(), "spec.template: cpu request must be less than or equal to cpu limit");
        assert!(!api_error(409, "conflict").needs_a_person());
        assert!(!api_error(500, "etcd").needs_a_person());
    }

    #[test]
    fn summaries_fit_an_event_note() {
        let long = Error::Randomness("é".repeat(800));
        let summary = long.summary();
        assert!(summary.len() <= 1000 + '…'.len_utf8(), "{}", summary.len());
        assert!(summary.ends_with('…'));
    }
}
