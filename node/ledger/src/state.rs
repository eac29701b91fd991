//! The state layout and how a transaction changes it. Pure: reads come through [`StateView`].

use std::collections::BTreeMap;

use kubechain_types::encoding::{decode, encode};
use kubechain_types::genesis::validate_chain_id;
use kubechain_types::{
    AdminOperation, ConsensusParams, DocumentAnchor, Genesis, Hash, Member, Operation, PublicKey,
    Transaction, ValidatorSet,
};

/// Largest key a member may write, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value a member may write, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest transaction (canonical encoding) and most operations in one.
pub const MAX_TX_BYTES: usize = 256 * 1024;
pub const MAX_OPERATIONS: usize = 64;
/// Largest block (sum of its transactions' encodings): well below the peer frame limit, so a
/// proposal, a journal record and a state-transfer response always fit.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
/// Longest document URI.
pub const MAX_URI_BYTES: usize = 2048;

/// Keys of the application state: an ASCII prefix, then raw bytes (keys are built for every
/// transaction, so no hex formatting here).
pub mod keys {
    use kubechain_types::{Hash, PublicKey};

    fn key(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    pub fn nonce(account: &PublicKey) -> Vec<u8> {
        key(&[b"nonce/", account.as_bytes()])
    }
    /// Where admin keys are listed (an entry per key, empty value).
    pub const ADMIN_PREFIX: &[u8] = b"admin/";
    /// Where members are listed (an entry per name: its client keys).
    pub const MEMBER_PREFIX: &[u8] = b"member/";

    pub fn admin(account: &PublicKey) -> Vec<u8> {
        key(&[ADMIN_PREFIX, account.as_bytes()])
    }
    /// Which member a client key acts for.
    pub fn member_of(account: &PublicKey) -> Vec<u8> {
        key(&[b"member-key/", account.as_bytes()])
    }
    /// A member's client keys.
    pub fn member(name: &str) -> Vec<u8> {
        key(&[MEMBER_PREFIX, name.as_bytes()])
    }
    /// Member names are DNS labels (no `/`), so `data/<member>/<key>` is unambiguous.
    pub fn data(member: &str, key_name: &str) -> Vec<u8> {
        key(&[b"data/", member.as_bytes(), b"/", key_name.as_bytes()])
    }
    pub fn anchor(member: &str, sha256: &Hash) -> Vec<u8> {
        key(&[b"anchor/", member.as_bytes(), b"/", sha256.as_bytes()])
    }
    pub const VALIDATORS: &[u8] = b"validators";
    pub const PARAMS: &[u8] = b"params";
}

/// Read access to some state (committed, or speculative on top of it).
pub trait StateView {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
}

/// Changes made on top of a view: `None` deletes.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A view with pending changes layered on top.
pub struct Layered<'a, V: StateView + ?Sized> {
    pub base: &'a V,
    pub changes: &'a Changes,
}

impl<V: StateView + ?Sized> std::fmt::Debug for Layered<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Layered({} changes)", self.changes.len())
    }
}

impl<V: StateView + ?Sized> StateView for Layered<'_, V> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.changes.get(key) {
            Some(value) => value.clone(),
            None => self.base.get(key),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction is for chain {found:?}, this is {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("{0} is neither a member's key nor an admin key")]
    UnknownSender(PublicKey),
    #[error("nonce {found} but the account expects {expected}")]
    Nonce { expected: u64, found: u64 },
    #[error("signature does not verify")]
    BadSignature,
    #[error("only admin keys may {0}")]
    NotAdmin(&'static str),
    #[error("only member keys may write data")]
    NotMember,
    #[error("invalid operation: {0}")]
    Invalid(String),
    #[error("a transaction needs at least one operation")]
    Empty,
    #[error(
        "transaction of {bytes} bytes or {operations} operations exceeds {MAX_TX_BYTES} bytes or {MAX_OPERATIONS} operations"
    )]
    TooLarge { bytes: usize, operations: usize },
}

impl TxError {
    /// Stable code for API errors and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::UnknownSender(_) => "unknown_sender",
            TxError::Nonce { .. } => "bad_nonce",
            TxError::BadSignature => "bad_signature",
            TxError::NotAdmin(_) => "not_admin",
            TxError::NotMember => "not_member",
            TxError::Invalid(_) => "invalid_operation",
            TxError::Empty => "empty_transaction",
            TxError::TooLarge { .. } => "transaction_too_large",
        }
    }

    /// Bytes this error holds on the heap: the text it quotes.
    pub fn heap_bytes(&self) -> usize {
        match self {
            TxError::WrongChain { expected, found } => expected.len() + found.len(),
            TxError::Invalid(detail) => detail.len(),
            _ => 0,
        }
    }
}

fn read<T: borsh::BorshDeserialize>(view: &(impl StateView + ?Sized), key: &[u8]) -> Option<T> {
    // State is only ever written by this module; an undecodable value means a corrupt store.
    view.get(key).map(|bytes| {
        decode(&bytes)
            .unwrap_or_else(|error| panic!("corrupt state at {}: {error}", String::from_utf8_lossy(key)))
    })
}

pub fn nonce(view: &(impl StateView + ?Sized), account: &PublicKey) -> u64 {
    read(view, &keys::nonce(account)).unwrap_or(0)
}

pub fn member_of(view: &(impl StateView + ?Sized), account: &PublicKey) -> Option<String> {
    read(view, &keys::member_of(account))
}

pub fn is_admin(view: &(impl StateView + ?Sized), account: &PublicKey) -> bool {
    view.get(&keys::admin(account)).is_some()
}

/// A member from its entry under [`keys::MEMBER_PREFIX`] (name after the prefix, value);
/// `None` for an entry no transaction could have written.
pub fn member_entry(name: &[u8], value: &[u8]) -> Option<Member> {
    let name = String::from_utf8(name.to_vec()).ok()?;
    Some(Member { name, public_keys: decode(value).ok()? })
}

/// An admin key from its entry under [`keys::ADMIN_PREFIX`] (the key's bytes after the prefix).
pub fn admin_entry(key: &[u8]) -> Option<PublicKey> {
    Some(PublicKey(key.try_into().ok()?))
}

pub fn validators(view: &(impl StateView + ?Sized)) -> Option<ValidatorSet> {
    read(view, keys::VALIDATORS)
}

pub fn params(view: &(impl StateView + ?Sized)) -> Option<ConsensusParams> {
    read(view, keys::PARAMS)
}

/// The state genesis starts from.
pub fn genesis_changes(genesis: &Genesis) -> Changes {
    let mut changes = Changes::new();
    for admin in &genesis.admins {
        changes.insert(keys::admin(admin), Some(Vec::new()));
    }
    for member in &genesis.members {
        changes.insert(keys::member(&member.name), Some(encode(&member.public_keys)));
        for key in &member.public_keys {
            changes.insert(keys::member_of(key), Some(encode(&member.name)));
        }
    }
    changes.insert(keys::VALIDATORS.to_vec(), Some(encode(&genesis.validator_set())));
    changes.insert(keys::PARAMS.to_vec(), Some(encode(&genesis.params)));
    changes
}

/// The state root after `changes` on top of `parent`: a hash chain over every block's sorted
/// changes, so it commits to the whole state history (documented in docs/encoding.md).
pub fn next_root(parent: &Hash, changes: &Changes) -> Hash {
    Hash::digest_parts(&[b"kubechain/v1/state", parent.as_bytes(), &encode(changes)])
}

/// Checks what does not depend on state: chain and shape. Signatures are checked separately
/// (in batches, once per node).
pub fn check_stateless(tx: &Transaction, chain_id: &str) -> Result<(), TxError> {
    if tx.body.chain_id != chain_id {
        return Err(TxError::WrongChain { expected: chain_id.to_string(), found: tx.body.chain_id.clone() });
    }
    if tx.body.operations.is_empty() {
        return Err(TxError::Empty);
    }
    let bytes = encoded_len(tx);
    if bytes > MAX_TX_BYTES || tx.body.operations.len() > MAX_OPERATIONS {
        return Err(TxError::TooLarge { bytes, operations: tx.body.operations.len() });
    }
    Ok(())
}

/// The sender is a member's client key or an admin's: a read or two, checked before the far
/// costlier signature, so a stranger's transactions cost the node little.
pub fn check_sender(view: &(impl StateView + ?Sized), sender: &PublicKey) -> Result<(), TxError> {
    if member_of(view, sender).is_some() || is_admin(view, sender) {
        Ok(())
    } else {
        Err(TxError::UnknownSender(*sender))
    }
}

/// Length of a transaction's canonical encoding, without encoding it.
pub fn encoded_len(tx: &Transaction) -> usize {
    borsh::object_length(tx).unwrap_or(usize::MAX)
}

/// Whether `tx` would run on `view` if the account's earlier transactions ran first: admission
/// refuses now what could never execute, instead of letting it wait in the mempool. A transaction
/// that depends on an earlier one of its account still waiting (an admin removing a member it is
/// adding) is refused until that one commits.
pub fn check_executable(view: &(impl StateView + ?Sized), tx: &Transaction) -> Result<(), TxError> {
    let sender = &tx.body.sender;
    let earlier_ran = Changes::from([(keys::nonce(sender), Some(encode(&tx.body.nonce.saturating_sub(1))))]);
    apply(&Layered { base: view, changes: &earlier_ran }, &mut Changes::new(), tx)
}

/// Applies `tx` on top of `view`, adding its effects to `changes`. On error `changes` is left as
/// it was: a transaction applies whole or not at all.
pub fn apply(
    view: &(impl StateView + ?Sized),
    changes: &mut Changes,
    tx: &Transaction,
) -> Result<(), TxError> {
    let mut mine = Changes::new();
    {
        let combined = Layered { base: view, changes: &*changes };
        let current = Layered { base: &combined, changes: &mine };
        let sender = tx.body.sender;
        let mut member = member_of(&current, &sender);
        if member.is_none() && !is_admin(&current, &sender) {
            return Err(TxError::UnknownSender(sender));
        }
        let expected = nonce(&current, &sender) + 1;
        if tx.body.nonce != expected {
            return Err(TxError::Nonce { expected, found: tx.body.nonce });
        }
        for operation in &tx.body.operations {
            let current = Layered { base: &combined, changes: &mine };
            let effects = operation_effects(&current, &sender, member.as_deref(), operation)?;
            mine.extend(effects);
            // An admin operation may have removed the sender's member: the next ones see that.
            if matches!(operation, Operation::Admin(_)) {
                member = member_of(&Layered { base: &combined, changes: &mine }, &sender);
            }
        }
        mine.insert(keys::nonce(&sender), Some(encode(&expected)));
    }
    changes.extend(mine);
    Ok(())
}

fn operation_effects(
    view: &(impl StateView + ?Sized),
    sender: &PublicKey,
    member: Option<&str>,
    operation: &Operation,
) -> Result<Changes, TxError> {
    let invalid = |detail: String| Err(TxError::Invalid(detail));
    let mut effects = Changes::new();
    match operation {
        Operation::Put { key, value } => {
            let member = member.ok_or(TxError::NotMember)?;
            check_data_key(key)?;
            if value.len() > MAX_VALUE_BYTES {
                return invalid(format!("value of {} bytes exceeds {MAX_VALUE_BYTES}", value.len()));
            }
            effects.insert(keys::data(member, key), Some(value.clone()));
        }
        Operation::Delete { key } => {
            let member = member.ok_or(TxError::NotMember)?;
            check_data_key(key)?;
            effects.insert(keys::data(member, key), None);
        }
        Operation::Anchor(anchor) => {
            let member = member.ok_or(TxError::NotMember)?;
            check_anchor(anchor)?;
            effects.insert(keys::anchor(member, &anchor.sha256), Some(encode(anchor)));
        }
        Operation::Admin(admin_operation) => {
            // Asked for each admin operation: an earlier one may have changed the admins.
            if !is_admin(view, sender) {
                return Err(TxError::NotAdmin("change the consortium"));
            }
            admin_effects(view, sender, admin_operation, &mut effects)?;
        }
    }
    Ok(effects)
}

fn check_data_key(key: &str) -> Result<(), TxError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(TxError::Invalid(format!(
            "keys are 1-{MAX_KEY_BYTES} bytes without control characters, got {} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn check_anchor(anchor: &DocumentAnchor) -> Result<(), TxError> {
    if anchor.uri.is_empty() || anchor.uri.len() > MAX_URI_BYTES || anchor.uri.chars().any(char::is_control) {
        return Err(TxError::Invalid(format!(
            "document URIs are 1-{MAX_URI_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

fn admin_effects(
    view: &(impl StateView + ?Sized),
    sender: &PublicKey,
    operation: &AdminOperation,
    effects: &mut Changes,
) -> Result<(), TxError> {
    let invalid = |detail: String| Err(TxError::Invalid(detail));
    match operation {
        AdminOperation::AddMember { name, public_keys } => {
            if validate_chain_id(name).is_err() {
                return invalid(format!("member name {name:?} must be a DNS label"));
            }
            if view.get(&keys::member(name)).is_some() {
                return invalid(format!("member {name:?} exists"));
            }
            for key in public_keys {
                if !key.is_valid() {
                    return invalid(format!("{key} is not a valid ed25519 key"));
                }
                if member_of(view, key).is_some() {
                    return invalid(format!("{key} already belongs to a member"));
                }
                effects.insert(keys::member_of(key), Some(encode(name)));
            }
            effects.insert(keys::member(name), Some(encode(public_keys)));
        }
        AdminOperation::RemoveMember { name } => {
            let Some(public_keys) = read::<Vec<PublicKey>>(view, &keys::member(name)) else {
                return invalid(format!("no member {name:?}"));
            };
            for key in public_keys {
                effects.insert(keys::member_of(&key), None);
            }
            effects.insert(keys::member(name), None);
        }
        AdminOperation::AddValidator { public_key } => {
            let mut set = validators(view).unwrap_or_else(|| ValidatorSet::new(Vec::new()));
            if !public_key.is_valid() || set.contains(public_key) {
                return invalid(format!("{public_key} is invalid or already a validator"));
            }
            set.add(*public_key);
            effects.insert(keys::VALIDATORS.to_vec(), Some(encode(&set)));
        }
        AdminOperation::RemoveValidator { public_key } => {
            let mut set = validators(view).unwrap_or_else(|| ValidatorSet::new(Vec::new()));
            if !set.remove(public_key) {
                return invalid(format!("{public_key} is not a validator, or the last one"));
            }
            effects.insert(keys::VALIDATORS.to_vec(), Some(encode(&set)));
        }
        AdminOperation::SetConsensusParams { params: next } => {
            let current = params(view).unwrap_or_default();
            current.validate_change(next).map_err(|error| TxError::Invalid(error.to_string()))?;
            effects.insert(keys::PARAMS.to_vec(), Some(encode(next)));
        }
        AdminOperation::AddAdmin { public_key } => {
            if !public_key.is_valid() || is_admin(view, public_key) {
                return invalid(format!("{public_key} is invalid or already an admin"));
            }
            effects.insert(keys::admin(public_key), Some(Vec::new()));
        }
        AdminOperation::RemoveAdmin { public_key } => {
            if public_key == sender {
                return invalid("an admin cannot remove itself: another admin must".into());
            }
            if !is_admin(view, public_key) {
                return invalid(format!("{public_key} is not an admin"));
            }
            effects.insert(keys::admin(public_key), None);
        }
    }
    Ok(())
}
