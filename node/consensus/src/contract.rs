//! The contract between the state machine and the runtime that drives it: the events it takes,
//! the actions it returns, and what it persists and reads back after a restart.

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_types::{Block, CommitCertificate, Hash, Header, PublicKey};

use crate::messages::{Message, PreparedCertificate};
use crate::rejection::Rejection;
use kubechain_types::Schedule;

/// Inputs to the state machine.
#[derive(Clone, Debug)]
pub enum Event {
    /// The replica (re)started; call once, first.
    Started,
    /// A message from the authenticated peer `from`.
    Message { from: PublicKey, message: Message },
    /// A timer set with [`Action::SetTimer`] is due.
    Timer(Timer),
    /// The application's mempool gained transactions.
    TransactionsArrived,
    /// A block from [`Action::Commit`] is durable.
    BlockPersisted { height: u64 },
}

/// One timer of each kind; setting it again moves its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// No commit for too long while work is pending: ask for a new primary.
    Progress,
    /// A view change has not completed: resend, or move on to the next view.
    ViewChange,
    /// The primary's batching delay has passed.
    Propose,
    /// A state-transfer request went unanswered.
    StateTransfer,
}

/// What a replica promised, persisted before the promise is sent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    /// The replica entered `view` (while `in_view_change`, it accepts no proposal in it yet).
    View { view: u64, in_view_change: bool },
    /// The replica accepted `block` as the proposal for its height in `view`.
    PrePrepared { view: u64, block: Block },
    /// The replica holds this prepared certificate and is about to send COMMIT.
    Prepared(PreparedCertificate),
}

/// Outputs of the state machine, to be carried out in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Make this record durable before carrying out any later action.
    Persist(Record),
    Send {
        to: PublicKey,
        message: Message,
    },
    Broadcast(Message),
    /// Deliver [`Event::Timer`] at `at_ms` (replacing an earlier deadline of this timer).
    SetTimer {
        timer: Timer,
        at_ms: u64,
    },
    /// `block` is final. Store it with its certificate (and `schedule`, when it changed) in one
    /// atomic write, then report [`Event::BlockPersisted`].
    Commit {
        block: Block,
        certificate: CommitCertificate,
        schedule: Option<Schedule>,
    },
    /// Send `to` a [`Message::StateResponse`] with committed blocks from `from_height` on.
    ServeBlocks {
        to: PublicKey,
        from_height: u64,
    },
    /// Records for heights up to `through_height` are no longer needed.
    PruneJournal {
        through_height: u64,
    },
    /// An input was refused; count it by `rejection.kind.label()`.
    Rejected {
        from: PublicKey,
        rejection: Rejection,
    },
}

/// What a restarted replica reads back from its storage.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The last committed block's header and certificate; `None` at genesis.
    pub last_committed: Option<(Header, CommitCertificate)>,
    /// The schedule stored with the last block that changed it; `None`: genesis rules.
    pub schedule: Option<Schedule>,
    /// Records persisted since (older ones are harmless and ignored).
    pub journal: Vec<Record>,
}

/// A snapshot for status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub height: u64,
    pub last_block_hash: Hash,
    pub view: u64,
    pub primary: PublicKey,
    pub in_view_change: bool,
    pub stable_checkpoint: u64,
    /// The height a fetch of blocks from peers (state transfer) under way reaches for.
    pub sync_target: Option<u64>,
    /// Since it started, this replica has seen that it holds the chain's tip: a quorum (itself
    /// included) answered its requests for blocks with nothing newer than what it then held.
    /// (Committing with votes proves nothing: a restarted replica can still finish the last
    /// height it voted on before it went down, far behind the others.)
    pub caught_up: bool,
    pub validators: Vec<PublicKey>,
    /// This replica is in `validators` (see [`crate::Replica::votes_at`]).
    pub voting: bool,
    /// The parameters in force at the next height.
    pub consensus_params: kubechain_types::ConsensusParams,
    /// The height from which the validators and parameters in force at the next height govern.
    pub rules_since: u64,
    /// Rules committed but not in force at the next height yet, with the height they take
    /// effect: a change in flight.
    pub scheduled: Option<(u64, kubechain_types::Rules)>,
}
