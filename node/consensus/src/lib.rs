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
//!
//! [`Replica`] is the one orchestrator; its bookkeeping lives in leaves that know nothing of it
//! and are tested alone: `votes` (PREPARE and COMMIT quorums), `checkpoints`, `state_transfer`,
//! `pacemaker` (view-change requests, joining and back-off) beside `view_change::select`, `parked`
//! (proposals that came early, bounded per view), `chain`
//! (the tip, the slots above it and the parent of a height), `proposal` (checks on a proposed
//! block) and `execution` (execute a block and compare its state root).

mod app;
mod chain;
mod checkpoints;
mod contract;
mod execution;
mod messages;
mod pacemaker;
mod parked;
mod proposal;
mod rejection;
mod replica;
mod state_transfer;
pub mod view_change;
mod votes;

pub use app::{Application, Built, ExecutionError, Origin};
pub use contract::{Action, Event, Record, Recovered, ReplicaStatus, Timer};
pub use kubechain_types::{Rules, Schedule};
pub use messages::{
    CertifiedBlock, Checkpoint, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
pub use rejection::{RejectKind, Rejection};
pub use replica::Replica;
