//! Clients for member clusters, made from the kubeconfig Secrets that `spec.placement` names.
//!
//! A kubeconfig must carry everything inline (a service-account token or client certificate,
//! and the CA): an exec plugin or a file path cannot work inside the operator's pod, so such a
//! kubeconfig is refused with a message that says what to use instead. Every client has short
//! connect, read and write timeouts, so a cluster that stops answering fails its calls instead
//! of holding up the others. Clients are kept per Secret and rebuilt when its kubeconfig changes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kubechain_crds::SecretKeyRef;
use kubechain_types::Hash;

/// Longest wait for a member's API server to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one answer (and to send one request) once connected.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a member cluster cannot be used; shown in the status and a `ClusterUnreachable` event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    #[error("kubeconfig Secret {secret} does not exist in the Blockchain's namespace")]
    SecretMissing { secret: String },
    #[error("kubeconfig Secret {secret} has no key {key}")]
    KeyMissing { secret: String, key: String },
    #[error("the kubeconfig in Secret {secret} is not usable: {reason}")]
    Unusable { secret: String, reason: String },
    #[error("cannot read kubeconfig Secret {secret}: {reason}")]
    SecretUnreadable { secret: String, reason: String },
    #[error("the API server did not answer: {0}")]
    Unreachable(String),
    #[error("the API server did not answer within {0} s")]
    TimedOut(u64),
}

/// Member clients by kubeconfig Secret (`namespace/name/key`), with the digest of the
/// kubeconfig each was built from.
#[derive(Default)]
pub struct MemberClients {
    clients: Mutex<HashMap<String, (Hash, Client)>>,
}

impl std::fmt::Debug for MemberClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.clients.lock().map_or(0, |clients| clients.len());
        f.debug_struct("MemberClients").field("clients", &count).finish()
    }
}

impl MemberClients {
    /// The client for the cluster whose kubeconfig is in `secret` of `namespace` (read through
    /// the hub's `hub` client): the kept one while the kubeconfig is unchanged, else a new one.
    pub async fn client(
        &self,
        hub: &Client,
        namespace: &str,
        secret: &SecretKeyRef,
    ) -> Result<Client, MemberError> {
        let text = read_kubeconfig(hub, namespace, secret).await?;
        let digest = Hash::digest(text.as_bytes());
        let slot = format!("{namespace}/{}/{}", secret.name, secret.key);
        if let Some((kept, client)) = self.clients.lock().ok().and_then(|clients| clients.get(&slot).cloned())
            && kept == digest
        {
            return Ok(client);
        }
        let unusable = |reason: String| MemberError::Unusable { secret: secret.name.clone(), reason };
        let config = member_config(&text).await.map_err(unusable)?;
        let client = Client::try_from(config).map_err(|error| unusable(error.to_string()))?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(slot, (digest, client.clone()));
        }
        Ok(client)
    }
}

async fn read_kubeconfig(
    hub: &Client,
    namespace: &str,
    secret: &SecretKeyRef,
) -> Result<String, MemberError> {
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), namespace);
    let found = secrets.get_opt(&secret.name).await.map_err(|error| MemberError::SecretUnreadable {
        secret: secret.name.clone(),
        reason: error.to_string(),
    })?;
    let found = found.ok_or_else(|| MemberError::SecretMissing { secret: secret.name.clone() })?;
    let bytes = found
        .data
        .as_ref()
        .and_then(|data| data.get(&secret.key))
        .map(|bytes| bytes.0.clone())
        .or_else(|| {
            found
                .string_data
                .as_ref()
                .and_then(|data| data.get(&secret.key))
                .map(|text| text.clone().into_bytes())
        })
        .ok_or_else(|| MemberError::KeyMissing { secret: secret.name.clone(), key: secret.key.clone() })?;
    String::from_utf8(bytes).map_err(|_| MemberError::Unusable {
        secret: secret.name.clone(),
        reason: "it is not UTF-8 text".into(),
    })
}

/// The client configuration of a kubeconfig, with the member timeouts. Refuses what cannot work
/// in a pod; the error says what to use instead and never quotes a credential.
pub async fn member_config(text: &str) -> Result<Config, String> {
    // The parser's own message quotes the text around a mistake, which may be a credential
    // (status and events are readable by more people than the Secret): say only what failed.
    let kubeconfig =
        Kubeconfig::from_yaml(text).map_err(|_| "not a kubeconfig (the YAML does not parse)".to_string())?;
    check_self_contained(&kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    // No retries inside a call (the client's default retries 503s up to 15 times, minding
    // Retry-After): a member that is unwell fails this pass fast, and the next pass tries again.
    config.default_retry = false;
    Ok(config)
}

/// A kubeconfig the operator's pod can use on its own: no exec or auth-provider plugin (their
/// programs and cloud credentials are not in the pod) and no file paths.
pub fn check_self_contained(kubeconfig: &Kubeconfig) -> Result<(), String> {
    const USE_A_TOKEN: &str = "use a service-account token (see docs/multicloud.md)";
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else { continue };
        let name = &named.name;
        if user.exec.is_some() {
            return Err(format!(
                "user {name} runs an exec plugin, which cannot run in the operator's pod: {USE_A_TOKEN}"
            ));
        }
        if user.auth_provider.is_some() {
            return Err(format!(
                "user {name} uses an auth-provider plugin, which cannot run in the operator's pod: {USE_A_TOKEN}"
            ));
        }
        for (field, path) in [
            ("tokenFile", &user.token_file),
            ("client-certificate", &user.client_certificate),
            ("client-key", &user.client_key),
        ] {
            if path.is_some() {
                return Err(format!(
                    "user {name} refers to a file ({field}): put its content inline instead"
                ));
            }
        }
    }
    for named in &kubeconfig.clusters {
        let Some(cluster) = &named.cluster else { continue };
        if cluster.certificate_authority.is_some() {
            return Err(format!(
                "cluster {} refers to a file (certificate-authority): use certificate-authority-data instead",
                named.name
            ));
        }
        // The token would go to whoever answers: a member is reached over networks nobody in
        // the consortium owns.
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err(format!(
                "cluster {} skips TLS verification (insecure-skip-tls-verify): give its CA in certificate-authority-data",
                named.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELF_CONTAINED: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: azure
  cluster: {server: "https://10.251.0.2:6443", certificate-authority-data: "CA_DATA"}
users:
- name: operator
  user: {token: "secret-token-value"}
contexts:
- name: azure
  context: {cluster: azure, user: operator}
current-context: azure
"#;

    /// A throwaway self-signed CA (its key was not kept), so the kubeconfig's CA parses.
    const TEST_CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJqekNDQVRXZ0F3SUJBZ0lVQWFzOUJ0L1JNS0lsV0ZMekR2RDBtNDZvNVQ4d0NnWUlLb1pJemowRUF3SXcKSERFYU1CZ0dBMVVFQXd3UmEzVmlaV05vWVdsdUxYUmxjM1F0WTJFd0lCY05Nall4TWpBM01Ea3dNREU1V2hnUApNakV5TmpFeE1UTXdPVEF3TVRsYU1Cd3hHakFZQmdOVkJBTU1FV3QxWW1WamFHRnBiaTEwWlhOMExXTmhNRmt3CkV3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFanFpcjBBOTRNVnM1OWROdG9tbi8xU3ZUVXp3L2ZXb1oKbXI1czBoWForemYzMk8wcy93VzVzSGhYMWh5NVZjK2N1eVhNUlMyT1BWdytONGk2cENLN2dLTlRNRkV3SFFZRApWUjBPQkJZRUZFRU5HdnNjYzhIVVk3NUszUC9pZVhHWnlkRjNNQjhHQTFVZEl3UVlNQmFBRkVFTkd2c2NjOEhVClk3NUszUC9pZVhHWnlkRjNNQThHQTFVZEV3RUIvd1FGTUFNQkFmOHdDZ1lJS29aSXpqMEVBd0lEU0FBd1JRSWcKWHRhZXJJMm1QSU9BZlpsRE94d2ROV2NaWG8vZHplSzl2elFMWFU0N3lKOENJUURyMzJzTUZoQiszMFpTeWNJbQpKdEZ0QklXL1VMamFNV1lUWHZCYzgwWjVOUT09Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

    fn self_contained() -> String {
        SELF_CONTAINED.replace("CA_DATA", TEST_CA)
    }

    #[tokio::test]
    async fn a_token_kubeconfig_gives_a_client_config_with_timeouts() {
        let config = member_config(&self_contained()).await.expect("usable");
        assert_eq!(config.cluster_url.to_string(), "https://10.251.0.2:6443/");
        assert_eq!(config.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(config.read_timeout, Some(REQUEST_TIMEOUT));
        assert_eq!(config.write_timeout, Some(REQUEST_TIMEOUT));
        assert!(!config.default_retry, "a pass retries, not each call");
    }

    #[tokio::test]
    async fn what_cannot_run_in_a_pod_is_refused_with_what_to_use_instead() {
        let exec = self_contained().replace(
            r#"user: {token: "secret-token-value"}"#,
            r#"user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [eks, get-token]}}"#,
        );
        let ca_data = format!("certificate-authority-data: \"{TEST_CA}\"");
        let file_ca = self_contained().replace(&ca_data, "certificate-authority: /etc/ca.crt");
        let unverified = self_contained().replace(&ca_data, "insecure-skip-tls-verify: true");
        let token_file =
            self_contained().replace(r#"token: "secret-token-value""#, r#"tokenFile: /var/run/token"#);
        // A mistake right after the token: the parser would quote it.
        let malformed = self_contained()
            .replace(r#"token: "secret-token-value"}"#, r#"token: "secret-token-value"}}}: ["#);
        for (case, text, expected) in [
            ("exec", exec.as_str(), "runs an exec plugin"),
            ("CA file", file_ca.as_str(), "use certificate-authority-data"),
            ("token file", token_file.as_str(), "refers to a file (tokenFile)"),
            ("no TLS verification", unverified.as_str(), "skips TLS verification"),
            ("not YAML", malformed.as_str(), "not a kubeconfig"),
        ] {
            let error = member_config(text).await.expect_err(case);
            assert!(error.contains(expected), "{case}: {error}");
            assert!(!error.contains("secret-token-value"), "{case}: a credential in {error}");
        }
    }
}
