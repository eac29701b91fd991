//! The deterministic application the consensus core orders transactions for.

use kubechain_types::{Block, Hash, Transaction};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("state {0:?} is not known (its block has not been executed here)")]
    UnknownParentState(Hash),
    #[error("transaction {tx:?} cannot run: {reason}")]
    InvalidTransaction { tx: Hash, reason: String },
}

/// A batch of transactions picked for a new block, with the state root they lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub transactions: Vec<Transaction>,
    pub state_root: Hash,
}

/// Who offers transactions to the mempool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This node's clients: they may ask this node later why one was refused.
    Client,
    /// A peer passing on what its clients sent (they were answered there).
    Peer,
}

/// Execution and the mempool, seen from consensus. Implementations must be deterministic:
/// the same transactions on the same state give the same root on every replica. States are named
/// by their root, so blocks in flight can be executed speculatively on top of one another.
///
/// The replica owns its application: the runtime changes it only through the replica's methods
/// that forward here (admit, expire, take_dropped, persisted), and reads it through `app()`.
pub trait Application {
    /// Why the mempool refuses or drops a transaction.
    type Refusal;

    /// Root of the committed state (genesis, or the last committed block after a restart).
    fn committed_state_root(&self) -> Hash;

    /// Picks up to `max` transactions from the mempool that can run, in order, on top of
    /// `parent_state`, and executes them speculatively.
    fn build(&mut self, parent_state: &Hash, height: u64, max: usize) -> Result<Built, ExecutionError>;

    /// Executes a proposed block's transactions on top of `parent_state` speculatively and returns
    /// the resulting root, or why one of them cannot run.
    fn execute(
        &mut self,
        parent_state: &Hash,
        height: u64,
        transactions: &[Transaction],
    ) -> Result<Hash, ExecutionError>;

    /// `block` is final and was executed here before: its state becomes the committed state.
    fn commit(&mut self, block: &Block);

    /// Transactions waiting in the mempool (proposed or not), while any wait the replica expects
    /// progress and asks for a new primary if none comes.
    fn pending(&self) -> usize;

    /// Offers transactions to the mempool at `now_ms`: one verdict per transaction, its hash when
    /// admitted. Feed [`crate::Event::TransactionsArrived`] afterwards when any was.
    fn admit(
        &mut self,
        now_ms: u64,
        transactions: Vec<Transaction>,
        origin: Origin,
    ) -> Vec<Result<Hash, Self::Refusal>>;

    /// Drops transactions that waited too long for a block by `now_ms`; returns how many.
    fn expire(&mut self, _now_ms: u64) -> usize {
        0
    }

    /// Transactions that left the mempool uncommitted since the last call, and why.
    fn take_dropped(&mut self) -> Vec<(Hash, Self::Refusal)> {
        Vec::new()
    }

    /// The committed block whose state root is `state_root` is in durable storage now.
    fn persisted(&mut self, _state_root: &Hash) {}
}
