//! Properties every decoded value must have, shared by the targets that decode it.

use kubechain_types::Transaction;
use kubechain_types::encoding::{decode, encode};

use crate::{fixture, repair};

/// A transaction that decoded, from JSON or from its canonical bytes: its checks answer without
/// panicking, it comes back equal through both encodings, and signed afresh by a fixture key it
/// verifies.
pub fn transaction(transaction: &Transaction) {
    let _ = (transaction.verify_signature(), transaction.hash(), transaction.to_string());
    let bytes = encode(transaction);
    assert_eq!(decode::<Transaction>(&bytes).ok().as_ref(), Some(transaction), "canonical round trip");
    let json = serde_json::to_vec(transaction).unwrap_or_default();
    assert_eq!(
        serde_json::from_slice::<Transaction>(&json).ok().as_ref(),
        Some(transaction),
        "JSON round trip"
    );
    if fixture().key_of(&transaction.body.sender).is_some() {
        let resigned = repair::transaction(transaction);
        assert_eq!(resigned.verify_signature(), Ok(()), "a fresh signature of {resigned} does not verify");
    }
}
