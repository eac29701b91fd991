//! What validators send each other, and what reaches the node from a peer.

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_consensus::Message;
use kubechain_types::{PublicKey, Transaction};
use tokio::sync::OwnedSemaphorePermit;

/// What validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Frame {
    Consensus(Message),
    /// Client transactions one validator admitted, for the others' mempools.
    Transactions(Vec<Transaction>),
}

/// A frame from an authenticated peer. While it exists it holds a share of that peer's inbound
/// budget; dropping it (once handled) lets the peer's link read on.
#[derive(Debug)]
pub struct Inbound {
    pub from: PublicKey,
    pub frame: Frame,
    _permit: Option<InboundPermit>,
}

impl Inbound {
    /// A frame that holds no budget (for tests and tools that feed a node directly).
    pub fn new(from: PublicKey, frame: Frame) -> Inbound {
        Inbound { from, frame, _permit: None }
    }

    pub(crate) fn with_permit(from: PublicKey, frame: Frame, permit: InboundPermit) -> Inbound {
        Inbound { from, frame, _permit: Some(permit) }
    }
}

/// One frame's share of its peer's inbound budget (one frame, its length in bytes).
#[derive(Debug)]
pub(crate) struct InboundPermit {
    _frame: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl InboundPermit {
    pub(crate) fn new(frame: OwnedSemaphorePermit, bytes: OwnedSemaphorePermit) -> InboundPermit {
        InboundPermit { _frame: frame, _bytes: bytes }
    }
}
