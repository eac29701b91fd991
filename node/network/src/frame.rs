//! What validators send each other, and what reaches the node from a peer.

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_consensus::Message;
use kubechain_types::{PublicKey, Transaction};

/// What validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Frame {
    Consensus(Message),
    /// Client transactions one validator admitted, for the others' mempools.
    Transactions(Vec<Transaction>),
}

/// A frame from an authenticated peer.
#[derive(Debug)]
pub struct Inbound {
    pub from: PublicKey,
    pub frame: Frame,
}
