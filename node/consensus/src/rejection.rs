//! Why an input was refused. The runtime counts rejections by `RejectKind::label`.

use std::fmt;

use kubechain_types::Block;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    BadSignature,
    UnknownSigner,
    WrongPrimary,
    /// A message for a view this replica has left.
    StaleView,
    /// A height outside the watermark window, or already committed.
    OutsideWindow,
    /// A second, different proposal for the same view and height (an equivocating primary).
    Equivocation,
    /// More than a sender's share of what a replica keeps (vote targets per height, say): only a
    /// faulty sender exceeds it.
    OverQuota,
    BadBlock,
    BadExecution,
    BadCertificate,
    BadViewChange,
    BadNewView,
    BadStateResponse,
    /// A view or height so far ahead that no honest validator could have reached it (a Byzantine
    /// sender aiming at arithmetic overflow, or a corrupt message).
    Implausible,
    /// A block certified by a quorum that this replica's chain cannot take: it extends another
    /// block, or commits to rules its transactions do not give on this chain. Only possible with
    /// more than f faulty validators. The replica refuses it and stops there.
    Fork,
}

impl RejectKind {
    pub fn label(self) -> &'static str {
        match self {
            RejectKind::BadSignature => "bad_signature",
            RejectKind::UnknownSigner => "unknown_signer",
            RejectKind::WrongPrimary => "wrong_primary",
            RejectKind::StaleView => "stale_view",
            RejectKind::OutsideWindow => "outside_window",
            RejectKind::Equivocation => "equivocation",
            RejectKind::OverQuota => "over_quota",
            RejectKind::BadBlock => "bad_block",
            RejectKind::BadExecution => "bad_execution",
            RejectKind::BadCertificate => "bad_certificate",
            RejectKind::BadViewChange => "bad_view_change",
            RejectKind::BadNewView => "bad_new_view",
            RejectKind::BadStateResponse => "bad_state_response",
            RejectKind::Implausible => "implausible",
            RejectKind::Fork => "fork",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectKind,
    pub detail: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, detail: impl Into<String>) -> Rejection {
        Rejection { kind, detail: detail.into() }
    }

    /// A certified `block` that does not extend this replica's committed chain.
    pub(crate) fn fork(block: &Block) -> Rejection {
        Rejection::new(
            RejectKind::Fork,
            format!(
                "certified block {:?} at height {} extends {:?}, not this chain",
                block.hash(),
                block.height(),
                block.header.previous_hash
            ),
        )
    }

    /// A certified block whose `rules_hash` is not what its admin operations give on this
    /// replica's chain (`detail` says both).
    pub(crate) fn certified_with_wrong_rules(block: &Block, detail: &str) -> Rejection {
        Rejection::new(
            RejectKind::Fork,
            format!(
                "{detail}: yet it is certified, so the quorum behind it holds more than f faulty validators (block {:?})",
                block.hash()
            ),
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.detail)
    }
}
