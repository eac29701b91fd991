//! The one-time start of a chain: its keys, then the genesis that names them. Runs only while no
//! genesis exists and none is pinned in the status; after that, keys and genesis are only read.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use kubechain_crds::Blockchain;
use kubechain_types::{PublicKey, SigningKey};

use super::update_status;
use crate::build::keys::{ADMIN_KEY_FILE, VALIDATOR_KEY_FILE};
use crate::build::meta::{names, object_reference};
use crate::build::{self, BuildError, GenesisDocument, KeySecretError, ObjectContext, read_public_key};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;

/// Creates the keys that are missing and the genesis; `None` when another pass stored a genesis
/// first (the next pass reads it back).
pub async fn keys_and_genesis(
    ctx: &Context,
    chain: &Blockchain,
    objects: &ObjectContext,
) -> Result<Option<GenesisDocument>, Error> {
    let name = chain.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), objects.namespace());
    let admin = ensure_key(ctx, &secrets, chain, &names::admin_key_secret(&name), ADMIN_KEY_FILE, || {
        Ok(build::admin_key_secret(objects, &generate()?).into_secret())
    })
    .await?;
    let mut validators = Vec::new();
    for index in 0..chain.spec.validators {
        let secret_name = names::validator_key_secret(&name, index);
        validators.push(
            ensure_key(ctx, &secrets, chain, &secret_name, VALIDATOR_KEY_FILE, || {
                Ok(build::validator_key_secret(objects, index, &generate()?).into_secret())
            })
            .await?,
        );
    }
    let now_ms = Timestamp::now().as_millisecond().max(0) as u64;
    let genesis =
        build::build_genesis(&chain.spec, &validators, admin, now_ms).map_err(BuildError::Genesis)?;
    let document = GenesisDocument::new(genesis);
    let config_map = build::genesis::genesis_config_map(objects, &document);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), objects.namespace());
    match config_maps.create(&create_params(), &config_map).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(None),
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
        Some(object_reference::<ConfigMap>(objects.namespace(), &config_map_name)),
    )
    .await;
    Ok(Some(document))
}

/// A validator's or the admin's key: read back when its Secret exists, else created once.
async fn ensure_key(
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

fn create_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }
}

fn generate() -> Result<SigningKey, Error> {
    crate::keys::generate_key().map_err(|error| Error::Randomness(error.to_string()))
}
