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

/// Execution and the mempool, seen from consensus. Implementations must be deterministic:
/// the same transactions on the same state give the same root on every replica. States are named
/// by their root, so blocks in flight can be executed speculatively on top of one another.
pub trait Application {
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
}
