//! Admin transactions signed with the operator's admin key and submitted through a ready
//! validator of the hub: what the validator-set step and the consortium step share.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::events::EventType;
use kubechain_crds::Blockchain;
use kubechain_types::{AdminOperation, Operation, Transaction, TxBody};

use crate::build::keys::ADMIN_KEY_FILE;
use crate::build::meta::{ObjectContext, names};
use crate::build::{GenesisDocument, read_key};
use crate::context::Context;
use crate::error::Error;
use crate::health::Observation;
use crate::observe;

/// Signs `operations` with the operator's admin key and hands them to `via`, a ready validator
/// in force in the hub. The nonce is the next one after the last committed: submitted again on
/// the next pass while it waits, the same transaction is refused as a duplicate, so a change is
/// never made twice. Events say what was submitted (`kind`) or refused (`kind` + `Refused`);
/// the refusal is returned too.
pub(super) async fn submit_admin(
    ctx: &Context,
    chain: &Blockchain,
    hub: &ObjectContext,
    genesis: &GenesisDocument,
    via: u32,
    change: AdminChange<'_>,
) -> Result<Option<String>, Error> {
    let AdminChange { operations, summary, kind, nonce } = change;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), hub.namespace());
    let secret_name = names::admin_key_secret(hub.name());
    let secret = secrets.get(&secret_name).await?;
    let admin = read_key(&secret, ADMIN_KEY_FILE)
        .map_err(|error| Error::KeySecret { secret: secret_name.clone(), reason: error.to_string() })?;
    let url = ctx.node_urls.url(hub.name(), hub.namespace(), via);
    let nonce = match nonce {
        Some(nonce) => nonce,
        None => match observe::account_nonce(&ctx.http, &url, &admin.public_key()).await {
            Some(nonce) => nonce,
            None => return Ok(None),
        },
    };
    let body = TxBody {
        chain_id: genesis.genesis().chain_id.clone(),
        sender: admin.public_key(),
        nonce: nonce + 1,
        operations: operations.into_iter().map(Operation::Admin).collect(),
    };
    let transaction = Transaction::new(body, &admin);
    let action = action_of(&transaction);
    match observe::submit(&ctx.http, &url, &transaction).await {
        Ok(observe::Submitted::Accepted) => {
            let note = format!("{summary}: transaction {} submitted", transaction.hash());
            ctx.publish_action(chain, EventType::Normal, kind, &action, note, None).await;
            Ok(None)
        }
        Ok(observe::Submitted::AlreadyWaiting) => Ok(None),
        Err(why) => {
            let note = format!("{summary}: validator {via} refused the transaction: {why}");
            let reason = format!("{kind}Refused");
            ctx.publish_action(chain, EventType::Warning, &reason, &action, note, None).await;
            Ok(Some(why))
        }
    }
}

/// The event action of an admin transaction: its kinds of operation, e.g. `RemoveMember,AddMember`.
fn action_of(transaction: &Transaction) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for operation in &transaction.body.operations {
        let Operation::Admin(operation) = operation else { continue };
        let kind = match operation {
            AdminOperation::AddMember { .. } => "AddMember",
            AdminOperation::RemoveMember { .. } => "RemoveMember",
            AdminOperation::AddValidator { .. } => "AddValidator",
            AdminOperation::RemoveValidator { .. } => "RemoveValidator",
            AdminOperation::SetConsensusParams { .. } => "SetConsensusParams",
            AdminOperation::AddAdmin { .. } => "AddAdmin",
            AdminOperation::RemoveAdmin { .. } => "RemoveAdmin",
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.join(",")
}

/// One admin transaction's operations, what they do in words, the event reason to use, and the
/// admin's last committed nonce if it was read before the chain was (else it is read now).
pub(super) struct AdminChange<'a> {
    pub operations: Vec<AdminOperation>,
    pub summary: &'a str,
    pub kind: &'a str,
    pub nonce: Option<u64>,
}

/// A ready validator in force of the hub, to submit through.
pub(super) fn submitter(observations: &[Observation], hub_cluster: &str) -> Option<u32> {
    observations
        .iter()
        .find(|o| {
            o.cluster == hub_cluster
                && o.status.as_ref().is_some_and(|s| s.ready && s.role == kubechain_api::Role::Validator)
        })
        .map(|o| o.index)
}
