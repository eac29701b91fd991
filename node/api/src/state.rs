//! Committed state: `GET /v1/state/{namespace}/{key}`, `GET /v1/accounts/{public_key}` and
//! `GET /v1/consortium`.

use kubechain_types::{Member, PublicKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a member's namespace, as of the last committed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StateEntry {
    pub namespace: String,
    pub key: String,
    /// The value's bytes, hex.
    #[schemars(regex(pattern = "^([0-9a-f]{2})*$"))]
    pub value: String,
    /// The value as text; null when it is not UTF-8.
    pub value_utf8: Option<String>,
}

/// An account as of the last committed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountView {
    pub public_key: PublicKey,
    /// The last committed nonce (0: none yet); the next transaction carries this + 1.
    pub nonce: u64,
    /// The member the key acts for; null for none.
    pub member: Option<String>,
    pub admin: bool,
}

/// Most members, and most admins, one consortium answer lists.
pub const MAX_CONSORTIUM_ENTRIES: usize = 4096;

/// Who belongs to the consortium as of one committed block: what admin transactions change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsortiumView {
    /// The last committed block this describes.
    pub height: u64,
    /// By name.
    pub members: Vec<Member>,
    /// The keys that may sign admin transactions, in byte order.
    pub admins: Vec<PublicKey>,
    /// There are more members or admins than the 4096 each this answer lists.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{key, pinned};

    #[test]
    fn state_answers_are_pinned() {
        let text = StateEntry {
            namespace: "acme".into(),
            key: "k".into(),
            value: "76".into(),
            value_utf8: Some("v".into()),
        };
        pinned(&text, r#"{"namespace":"acme","key":"k","value":"76","value_utf8":"v"}"#);
        let binary = StateEntry { value: "ff".into(), value_utf8: None, ..text };
        pinned(&binary, r#"{"namespace":"acme","key":"k","value":"ff","value_utf8":null}"#);
        let account = AccountView { public_key: key(1), nonce: 4, member: None, admin: true };
        pinned(&account, &format!(r#"{{"public_key":"{}","nonce":4,"member":null,"admin":true}}"#, key(1)));
        let consortium = ConsortiumView {
            height: 7,
            members: vec![Member { name: "acme".into(), public_keys: vec![key(2)] }],
            admins: vec![key(1)],
            truncated: false,
        };
        pinned(
            &consortium,
            &format!(
                r#"{{"height":7,"members":[{{"name":"acme","public_keys":["{}"]}}],"admins":["{}"],"truncated":false}}"#,
                key(2),
                key(1)
            ),
        );
    }
}
