//! The one-time start of a chain: its keys, each made in the cluster that runs its validator and
//! nowhere else, then the genesis that names them, in the hub. Runs only while no genesis exists
//! and none is pinned in the status; after that, keys and genesis are only read.

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use kubechain_crds::Blockchain;
use kubechain_types::{PublicKey, SigningKey};

use super::connect::{Cluster, unreachable, within_step};
use super::{update_status, validate};
use crate::build::keys::{ADMIN_KEY_FILE, VALIDATOR_KEY_FILE};
use crate::build::meta::{belongs_to, labels, names, object_reference};
use crate::build::statefulset::data_claim_name;
use crate::build::{
    self, BuildError, GenesisDocument, KeySecretError, ObjectContext, Ownership, read_public_key,
};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;
use crate::health::Blocker;

/// What bootstrap came to.
#[derive(Debug)]
pub enum Bootstrap {
    Made(GenesisDocument),
    /// Another pass stored a genesis first: the next pass reads it back.
    Raced,
    /// A cluster that must hold a validator's key does not answer: nothing is made until it does.
    Waiting(Vec<Blocker>),
}

/// Creates the keys that are missing, each in the cluster that runs its validator (the admin
/// key in the hub), and then the genesis in the hub.
pub async fn keys_and_genesis(
    ctx: &Context,
    chain: &Blockchain,
    hub: &ObjectContext,
    clusters: &[Cluster],
) -> Result<Bootstrap, Error> {
    let waiting: Vec<Blocker> = clusters
        .iter()
        .filter(|cluster| !cluster.plan.validators.is_empty())
        .filter_map(|cluster| {
            cluster.unreachable().map(|why| validate::cluster_unreachable(cluster.name(), &why))
        })
        .collect();
    if !waiting.is_empty() {
        return Ok(Bootstrap::Waiting(waiting));
    }
    let name = chain.name_any();
    let mut leftovers = Vec::new();
    for cluster in clusters {
        let Ok(client) = &cluster.client else { continue };
        let found =
            within_step(leftover_volumes(client, hub.namespace(), &name, &cluster.plan.validators)).await;
        let why = match found {
            Ok(Ok(claims)) => {
                leftovers.extend(claims.into_iter().map(|claim| format!("{}/{claim}", cluster.name())));
                continue;
            }
            Ok(Err(error)) => unreachable(error).to_string(),
            Err(timed_out) => timed_out.to_string(),
        };
        return Ok(Bootstrap::Waiting(vec![validate::cluster_unreachable(cluster.name(), &why)]));
    }
    if !leftovers.is_empty() {
        return Ok(Bootstrap::Waiting(vec![validate::leftover_volumes(chain, &leftovers)]));
    }
    let hub_secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), hub.namespace());
    let admin = ensure_key(ctx, &hub_secrets, chain, &names::admin_key_secret(&name), ADMIN_KEY_FILE, || {
        Ok(build::admin_key_secret(hub, &generate()?).into_secret())
    })
    .await?;
    let mut validators = vec![None; chain.spec.validators as usize];
    for cluster in clusters {
        let Ok(client) = &cluster.client else { continue };
        let ownership = if cluster.plan.is_hub() { Ownership::Owned } else { Ownership::Unowned };
        let objects = ObjectContext::new(chain, ownership)?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), objects.namespace());
        for &index in &cluster.plan.validators {
            let secret_name = names::validator_key_secret(&name, index);
            let key = within_step(ensure_key(ctx, &secrets, chain, &secret_name, VALIDATOR_KEY_FILE, || {
                Ok(build::validator_key_secret(&objects, index, &generate()?).into_secret())
            }))
            .await;
            match key {
                Ok(Ok(key)) => {
                    if let Some(slot) = validators.get_mut(index as usize) {
                        *slot = Some(key);
                    }
                }
                Ok(Err(Error::Kube(error))) => {
                    let why = unreachable(error).to_string();
                    return Ok(Bootstrap::Waiting(vec![validate::cluster_unreachable(cluster.name(), &why)]));
                }
                Ok(Err(error)) => return Err(error),
                Err(timed_out) => {
                    let why = timed_out.to_string();
                    return Ok(Bootstrap::Waiting(vec![validate::cluster_unreachable(cluster.name(), &why)]));
                }
            }
        }
    }
    // The CRD makes the entries add up; an object from before that rule may not.
    let validators: Vec<PublicKey> = validators.into_iter().flatten().collect();
    if validators.len() != chain.spec.validators as usize {
        return Err(Error::Build(BuildError::Genesis(format!(
            "spec.placement places {} validators, but spec.validators is {}",
            validators.len(),
            chain.spec.validators
        ))));
    }
    let now_ms = Timestamp::now().as_millisecond().max(0) as u64;
    let genesis =
        build::build_genesis(&chain.spec, &validators, admin, now_ms).map_err(BuildError::Genesis)?;
    let document = GenesisDocument::new(genesis);
    let config_map = build::genesis::genesis_config_map(hub, &document);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), hub.namespace());
    match config_maps.create(&create_params(), &config_map).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(Bootstrap::Raced),
        Err(error) => return Err(error.into()),
    }
    // Recorded at once: from now on a missing ConfigMap means a lost genesis, not a new chain.
    update_status::merge(ctx, chain, serde_json::json!({ "genesisHash": document.hash().to_string() }))
        .await?;
    let config_map_name = names::genesis_config_map(&name);
    ctx.publish(
        chain,
        EventType::Normal,
        "GenesisCreated",
        format!("genesis {} for {} validators", document.hash(), chain.spec.validators),
        Some(object_reference::<ConfigMap>(hub.namespace(), &config_map_name)),
    )
    .await;
    Ok(Bootstrap::Made(document))
}

/// A validator's or the admin's key: read back when its Secret exists and was made for this
/// Blockchain, else created once. A Secret of that name made by someone else is refused: taking
/// it would hand its maker a validator's or the admin's key.
pub(super) async fn ensure_key(
    ctx: &Context,
    secrets: &Api<Secret>,
    chain: &Blockchain,
    secret_name: &str,
    data_key: &str,
    make: impl FnOnce() -> Result<Secret, Error>,
) -> Result<PublicKey, Error> {
    let unreadable =
        |error: KeySecretError| Error::KeySecret { secret: secret_name.into(), reason: error.to_string() };
    if let Some(secret) = secrets.get_opt(secret_name).await? {
        let uid = chain.metadata.uid.as_deref().unwrap_or_default();
        if !belongs_to(&secret.metadata, uid) {
            return Err(Error::KeySecret {
                secret: secret_name.into(),
                reason: format!(
                    "it exists but was not made for this Blockchain (no owner reference to it, no label {}={uid}), so it is not taken as its key: delete it, or label it to resume the chain it belongs to (docs/operator.md, Re-creating a chain)",
                    labels::CHAIN_UID
                ),
            });
        }
        return read_public_key(&secret, data_key).map_err(unreadable);
    }
    let secret = make()?;
    let public_key = read_public_key(&secret, data_key).map_err(unreadable)?;
    secrets.create(&create_params(), &secret).await?;
    ctx.publish(
        chain,
        EventType::Normal,
        "KeyCreated",
        format!("created key Secret {secret_name} (public key {public_key})"),
        Some(object_reference::<Secret>(&chain.namespace().unwrap_or_default(), secret_name)),
    )
    .await;
    Ok(public_key)
}

/// The volume claims that `validators` of a chain of this name left behind in one cluster: a
/// chain re-created under the name of a deleted one whose claims were kept. Its validators would
/// find another chain's blocks there and stop, so nothing is made until a person decides.
async fn leftover_volumes(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    validators: &[u32],
) -> Result<Vec<String>, kube::Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut found = Vec::new();
    for &index in validators {
        let claim = data_claim_name(name, index);
        if claims.get_metadata_opt(&claim).await?.is_some() {
            found.push(claim);
        }
    }
    Ok(found)
}

fn create_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }
}

pub(super) fn generate() -> Result<SigningKey, Error> {
    crate::keys::generate_key().map_err(|error| Error::Randomness(error.to_string()))
}
