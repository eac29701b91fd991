//! What validators send each other, and what reaches the node from a peer.

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_consensus::Message;
use kubechain_types::encoding::{DecodeError, decode};
use kubechain_types::{PublicKey, Transaction};
use tokio::sync::OwnedSemaphorePermit;

/// What validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Frame {
    Consensus(Message),
    /// Client transactions one validator admitted, for the others' mempools.
    Transactions(Vec<Transaction>),
}

impl Frame {
    /// Decodes the bytes of one frame a peer sent after the handshake (the length prefix already
    /// removed). Canonical: anything that decodes encodes back to the same bytes. Pure, so the
    /// link task and the `peer_frame` fuzz target decode exactly alike.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        decode(bytes)
    }
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

#[cfg(test)]
mod tests {
    use kubechain_consensus::{Checkpoint, Message};
    use kubechain_types::encoding::encode;
    use kubechain_types::{Hash, SigningKey};

    use super::*;

    fn checkpoint_frame() -> Frame {
        let key = SigningKey::from_seed([1; 32]);
        Frame::Consensus(Message::Checkpoint(Checkpoint::new(128, Hash::digest(b"b"), "c", &key)))
    }

    #[test]
    fn a_frame_decodes_back_to_itself() {
        let frame = checkpoint_frame();
        assert_eq!(Frame::decode(&encode(&frame)).ok(), Some(frame));
    }

    #[test]
    fn truncated_extended_and_unknown_frames_are_errors() {
        let bytes = encode(&checkpoint_frame());
        assert!(Frame::decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Frame::decode(&longer).is_err(), "trailing byte");
        assert!(Frame::decode(&[2]).is_err(), "unknown frame tag");
        assert!(Frame::decode(&[]).is_err(), "empty");
    }
}
