//! The builders' one error type.

/// Why objects cannot be built. Messages are for the Blockchain's conditions and events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the Blockchain has no {0}")]
    Missing(&'static str),
    #[error("Blockchain name {name:?} {reason}")]
    Name { name: String, reason: String },
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("peer {key}: address {address:?} is not host:port")]
    PeerAddress { key: kubechain_types::PublicKey, address: String },
}
