//! A Blockchain that does not decode (stored under an older schema, or a field the Rust types
//! refuse). The controller watches `DeserializeGuard<Blockchain>`, so such an object arrives here
//! on its own instead of failing the watcher's whole list: every other chain keeps reconciling.
//! It gets a Warning event (reason `InvalidObject`) and, through the returned error, a log line
//! and the `invalid_object` error metric, each naming the object and the decode error.

use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use kubechain_crds::Blockchain;

use crate::context::{Context, FINALIZER, chain_key};
use crate::error::{Error, truncate};

pub async fn report(
    ctx: &Context,
    object: &DeserializeGuard<Blockchain>,
    invalid: &InvalidObject,
) -> Result<Action, Error> {
    let key = chain_key(object);
    if object.meta().deletion_timestamp.is_some() {
        release_finalizer(ctx, object).await?;
        ctx.forget(&key);
        return Ok(Action::await_change());
    }
    ctx.publish(object, EventType::Warning, "InvalidObject", note(invalid), None).await;
    Err(Error::InvalidObject { object: key, reason: invalid.error.clone() })
}

/// The event's note: what is wrong and what to do, within an event note's 1 KiB.
fn note(invalid: &InvalidObject) -> String {
    let text = format!(
        "the operator cannot read this Blockchain ({}): fix the object or apply it again",
        invalid.error
    );
    truncate(text, 1000)
}

/// A deleted object that cannot be read still goes: the finalizer's cleanup has nothing to undo
/// (owned objects follow through owner references), so only the finalizer is removed.
async fn release_finalizer(ctx: &Context, object: &DeserializeGuard<Blockchain>) -> Result<(), Error> {
    let finalizers = object.finalizers();
    if !finalizers.iter().any(|finalizer| finalizer == FINALIZER) {
        return Ok(());
    }
    let remaining: Vec<&String> = finalizers.iter().filter(|finalizer| *finalizer != FINALIZER).collect();
    // The resource version makes the patch fail, rather than drop another's finalizer, if the
    // list changed meanwhile.
    let patch = serde_json::json!({
        "metadata": { "finalizers": remaining, "resourceVersion": object.resource_version() }
    });
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    api.patch_metadata(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kube::core::ObjectList;
    use serde_json::{Value, json};

    use super::*;

    fn blockchain(name: &str, validators: Value) -> Value {
        json!({
            "apiVersion": "kubechain.dev/v1alpha1",
            "kind": "Blockchain",
            "metadata": { "name": name, "namespace": "ledger" },
            "spec": { "chainId": format!("{name}-1"), "validators": validators, "image": "kubechain/node:0.1.0" }
        })
    }

    #[test]
    fn one_undecodable_blockchain_does_not_hide_the_others() {
        let list = json!({
            "apiVersion": "kubechain.dev/v1alpha1",
            "kind": "BlockchainList",
            "metadata": { "resourceVersion": "7" },
            "items": [blockchain("first", json!(4)), blockchain("broken", json!("four")), blockchain("last", json!(1))]
        });
        // Decoded plainly, one bad item fails the whole list: the watcher would see no chain.
        assert!(serde_json::from_value::<ObjectList<Blockchain>>(list.clone()).is_err());

        let guarded: ObjectList<DeserializeGuard<Blockchain>> =
            serde_json::from_value(list).expect("the list decodes");
        let names: Vec<String> = guarded.items.iter().map(chain_key).collect();
        assert_eq!(names, ["ledger/first", "ledger/broken", "ledger/last"]);
        let decoded: Vec<bool> = guarded.items.iter().map(|item| item.0.is_ok()).collect();
        assert_eq!(decoded, [true, false, true]);
        let Err(invalid) = &guarded.items[1].0 else { unreachable!("checked above") };
        let note = note(invalid);
        assert!(note.contains("cannot read this Blockchain") && note.contains("\"four\""), "{note}");
        let error =
            Error::InvalidObject { object: chain_key(&guarded.items[1]), reason: invalid.error.clone() };
        assert!(error.to_string().starts_with("Blockchain ledger/broken cannot be read: "), "{error}");
    }
}
