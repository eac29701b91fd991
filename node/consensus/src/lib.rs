//! PBFT with a proof-of-work seal, as a pure state machine.
//!
//! A [`Replica`] takes [`Event`]s (a message from a peer, a timer that fired, transactions that
//! arrived, a block made durable) with the current time, and returns [`Action`]s (persist, send,
//! broadcast, set a timer, commit a block, serve blocks to a peer). It never reads a clock, a
//! socket, a disk or a random source, so a simulation can replay any run from its seed.
//!
//! The runtime must carry out the actions of one call **in order**, and a [`Action::Persist`]
//! must be durable before any later action of the same call is carried out: that is what makes a
//! restarted replica unable to contradict what it promised before it crashed.

mod app;
mod messages;
mod rejection;
mod replica;
mod schedule;
pub mod view_change;

pub use app::{Application, Built, ExecutionError, Origin};
pub use messages::{
    CertifiedBlock, Checkpoint, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
pub use rejection::{RejectKind, Rejection};
pub use replica::{Recovered, Replica, ReplicaStatus};
pub use schedule::{Rules, Schedule};

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_types::{Block, CommitCertificate, PublicKey};

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
