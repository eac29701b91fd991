//! Executing a block and comparing the state root it leads to with the one its header claims: the
//! one check behind a proposal's PREPARE, a re-proposed block, a commit and a block fetched by
//! state transfer.

use kubechain_types::{Block, Hash};

use crate::app::{Application, ExecutionError};
use crate::rejection::{RejectKind, Rejection};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockExecutionError {
    #[error("state root {claimed:?} differs from executed {executed:?}")]
    WrongStateRoot { claimed: Hash, executed: Hash },
    #[error(transparent)]
    Failed(#[from] ExecutionError),
}

impl From<BlockExecutionError> for Rejection {
    fn from(error: BlockExecutionError) -> Rejection {
        Rejection::new(RejectKind::BadExecution, error.to_string())
    }
}

/// Executes `block` speculatively on `parent_state` and checks that it leads to the state root
/// its header claims.
pub(crate) fn execute_block<A: Application>(
    app: &mut A,
    parent_state: &Hash,
    block: &Block,
) -> Result<(), BlockExecutionError> {
    let executed = app.execute(parent_state, block.height(), &block.transactions)?;
    let claimed = block.header.state_root;
    if executed == claimed { Ok(()) } else { Err(BlockExecutionError::WrongStateRoot { claimed, executed }) }
}

#[cfg(test)]
mod tests {
    use kubechain_types::{Header, PublicKey, Transaction};

    use super::*;
    use crate::app::{Built, Origin};

    /// The state after a block is the hash of the parent state and the height; states it has not
    /// reached are unknown.
    #[derive(Debug, Default)]
    struct HashingApp {
        known: Vec<Hash>,
    }

    impl Application for HashingApp {
        type Refusal = std::convert::Infallible;

        fn committed_state_root(&self) -> Hash {
            Hash::ZERO
        }

        fn build(&mut self, _: &Hash, _: u64, _: usize) -> Result<Built, ExecutionError> {
            unreachable!("not used here")
        }

        fn execute(&mut self, parent: &Hash, height: u64, _: &[Transaction]) -> Result<Hash, ExecutionError> {
            if *parent != Hash::ZERO && !self.known.contains(parent) {
                return Err(ExecutionError::UnknownParentState(*parent));
            }
            let root = Hash::digest_parts(&[parent.as_bytes(), &height.to_le_bytes()]);
            self.known.push(root);
            Ok(root)
        }

        fn commit(&mut self, _: &Block) {}

        fn pending(&self) -> usize {
            0
        }

        fn admit(&mut self, _: u64, _: Vec<Transaction>, _: Origin) -> Vec<Result<Hash, Self::Refusal>> {
            unreachable!("not used here")
        }
    }

    fn block(height: u64, state_root: Hash) -> Block {
        let header = Header {
            chain_id: "execution-test".into(),
            height,
            view: 0,
            previous_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            state_root,
            rules_hash: Hash::ZERO,
            timestamp_ms: 0,
            proposer: PublicKey([0; 32]),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        Block::new(header, Vec::new())
    }

    fn root_after(parent: Hash, height: u64) -> Hash {
        Hash::digest_parts(&[parent.as_bytes(), &height.to_le_bytes()])
    }

    #[test]
    fn a_block_claiming_the_state_it_leads_to_passes() {
        let mut app = HashingApp::default();
        assert_eq!(execute_block(&mut app, &Hash::ZERO, &block(1, root_after(Hash::ZERO, 1))), Ok(()));
        // Its state is known now, so the next block can run on it.
        let parent = root_after(Hash::ZERO, 1);
        assert_eq!(execute_block(&mut app, &parent, &block(2, root_after(parent, 2))), Ok(()));
    }

    #[test]
    fn a_wrong_state_root_or_a_failed_execution_is_a_bad_execution() {
        let mut app = HashingApp::default();
        let claimed = Hash::digest(b"made up");
        let error = execute_block(&mut app, &Hash::ZERO, &block(1, claimed)).unwrap_err();
        assert_eq!(
            error,
            BlockExecutionError::WrongStateRoot { claimed, executed: root_after(Hash::ZERO, 1) }
        );

        let unknown = Hash::digest(b"never reached");
        let error = execute_block(&mut app, &unknown, &block(2, claimed)).unwrap_err();
        assert_eq!(error, BlockExecutionError::Failed(ExecutionError::UnknownParentState(unknown)));
        let rejection = Rejection::from(error);
        assert_eq!(rejection.kind, RejectKind::BadExecution);
        assert_eq!(rejection.detail, ExecutionError::UnknownParentState(unknown).to_string());
    }
}
