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
mod contract;
mod messages;
mod rejection;
mod replica;
mod schedule;
pub mod view_change;

pub use app::{Application, Built, ExecutionError};
pub use contract::{Action, Event, Record, Recovered, ReplicaStatus, Timer};
pub use messages::{
    CertifiedBlock, Checkpoint, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
pub use rejection::{RejectKind, Rejection};
pub use replica::Replica;
pub use schedule::{Rules, Schedule};
