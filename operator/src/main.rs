//! `kubechain-operator`: `run` reconciles Blockchain resources (leading through a Lease);
//! `crd` prints the CustomResourceDefinition.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use kubechain_crds::Blockchain;
use kubechain_operator::build::ApiClients;
use kubechain_operator::build::meta::{MANAGER, labels};
use kubechain_operator::context::Context;
use kubechain_operator::metrics::{self, Metrics, Readiness};
use kubechain_operator::observe::{self, NodeUrls};
use kubechain_operator::{crd, reconcile};

#[derive(Parser, Debug)]
#[command(
    name = "kubechain-operator",
    version,
    about = "Runs kubechain chains described by Blockchain resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reconcile Blockchain resources in every namespace (kubeconfig from KUBECONFIG or in-cluster).
    Run {
        /// Serves /metrics, /healthz and /readyz.
        #[arg(long, env = "KUBECHAIN_OPERATOR_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
        metrics_listen: SocketAddr,
        /// Where validators' APIs are reached; placeholders {chain}, {namespace}, {index}.
        #[arg(long, env = "KUBECHAIN_OPERATOR_NODE_URL", default_value = NodeUrls::DEFAULT_TEMPLATE)]
        node_url_template: String,
        /// Namespace of the leader-election Lease (defaults to the pod's namespace, else "default").
        #[arg(long, env = "KUBECHAIN_OPERATOR_NAMESPACE")]
        lease_namespace: Option<String>,
        /// Run without leader election (a single replica only).
        #[arg(long)]
        no_leader_election: bool,
        /// Reconcile Blockchains in these namespaces only (comma-separated), for an operator whose
        /// rights are Roles there; every namespace when empty.
        #[arg(long, env = "KUBECHAIN_OPERATOR_WATCH_NAMESPACES", value_delimiter = ',')]
        watch_namespaces: Vec<String>,
        /// Namespaces whose pods may reach validators' API port (comma-separated), e.g. your
        /// monitoring's; the chain's own namespace and the operator's always may.
        #[arg(long, env = "KUBECHAIN_OPERATOR_API_CLIENT_NAMESPACES", value_delimiter = ',', value_parser = namespace_name)]
        api_client_namespaces: Vec<String>,
        /// Address ranges (CIDR, comma-separated) that may reach validators' API port: clients
        /// outside the cluster, or a member cluster's API server, through which the hub asks.
        #[arg(long, env = "KUBECHAIN_OPERATOR_API_CLIENT_CIDRS", value_delimiter = ',')]
        api_client_cidrs: Vec<ipnet::IpNet>,
        #[arg(long, env = "KUBECHAIN_OPERATOR_LOG", default_value = "info")]
        log_level: String,
    },
    /// Print the Blockchain CRD as YAML.
    Crd,
    /// GET `url` until it answers 2xx (exit 0) or `within` seconds pass (exit 1): the chart's
    /// `helm test`, from the operator's own image, which has no shell or curl.
    Probe {
        url: String,
        #[arg(long, default_value_t = 60)]
        within: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", kubechain_crds::crd_yaml());
            std::process::ExitCode::SUCCESS
        }
        Command::Probe { url, within } => probe(&url, std::time::Duration::from_secs(within)).await,
        Command::Run {
            metrics_listen,
            node_url_template,
            lease_namespace,
            no_leader_election,
            watch_namespaces,
            api_client_namespaces,
            api_client_cidrs,
            log_level,
        } => {
            tracing_subscriber::fmt().with_env_filter(log_level).json().init();
            let namespaces = watched(watch_namespaces);
            let api_clients = ApiClients {
                namespaces: api_client_namespaces,
                cidrs: api_client_cidrs.iter().map(ToString::to_string).collect(),
            };
            match run(
                metrics_listen,
                NodeUrls::new(node_url_template),
                lease_namespace,
                no_leader_election,
                &namespaces,
                api_clients,
            )
            .await
            {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "operator stopped");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(
    metrics_listen: SocketAddr,
    node_urls: NodeUrls,
    lease_namespace: Option<String>,
    no_leader_election: bool,
    namespaces: &[Option<String>],
    api_clients: ApiClients,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    // Where this operator runs, when in a pod.
    let own_namespace = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|namespace| namespace.trim().to_string());
    crd::check_installed(api_in(&client, namespaces[0].as_deref())).await?;
    let metrics = Metrics::new()?;
    let readiness = Readiness::default();
    // Bound here, so a taken port stops the operator with a clear error instead of running blind.
    let listener = tokio::net::TcpListener::bind(metrics_listen)
        .await
        .map_err(|error| format!("cannot serve metrics on {metrics_listen}: {error}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    tokio::spawn(metrics::serve(listener, metrics.clone(), readiness.clone()));

    // Lead before touching anything: two operators applying at once would fight.
    let mut leadership = None;
    if !no_leader_election {
        let namespace =
            lease_namespace.clone().or_else(|| own_namespace.clone()).unwrap_or_else(|| "default".into());
        let manager = LeaseManagerBuilder::new(client.clone(), "kubechain-operator")
            .with_namespace(namespace.trim())
            .with_duration(15)
            .with_grace(5)
            .build()
            .await?;
        let (mut leading, task) = manager.watch().await;
        tracing::info!("waiting to lead");
        let lead = async {
            while !*leading.borrow_and_update() {
                leading.changed().await?;
            }
            Ok::<(), tokio::sync::watch::error::RecvError>(())
        };
        // A standby must still stop on SIGTERM: as PID 1 in a pod, an unhandled one is ignored.
        tokio::select! {
            result = lead => result?,
            () = shutdown_signal() => {
                tracing::info!("stopped before leading");
                return Ok(());
            }
        }
        tracing::info!("leading");
        leadership = Some((leading, task));
    }
    readiness.set(true);

    let reporter =
        Reporter { controller: "kubechain-operator".into(), instance: std::env::var("POD_NAME").ok() };
    let context = Arc::new(Context::new(
        client.clone(),
        Recorder::new(client.clone(), reporter),
        metrics,
        observe::http_client()?,
        node_urls,
        api_clients,
        own_namespace,
    ));
    // Owned kinds are watched too (only the operator's objects, by label), so a changed or
    // deleted object is put back. Secrets are not watched: that would keep every key in memory;
    // a lost key Secret shows at the next poll.
    let config = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, MANAGER));
    // One controller per watched namespace (one for all when none is named): an operator with
    // Roles in some namespaces may neither list nor watch across them.
    let controllers = namespaces.iter().map(Option::as_deref).map(|namespace| {
        // Guarded: a Blockchain that does not decode is reconciled on its own (an event says
        // why) instead of failing the list every chain comes from.
        let chains = api_in::<DeserializeGuard<Blockchain>>(&client, namespace);
        Controller::new(chains, watcher::Config::default())
            .owns(api_in::<StatefulSet>(&client, namespace), config.clone())
            .owns(api_in::<Service>(&client, namespace), config.clone())
            .owns(api_in::<ConfigMap>(&client, namespace), config.clone())
            .owns(api_in::<PodDisruptionBudget>(&client, namespace), config.clone())
            .owns(api_in::<NetworkPolicy>(&client, namespace), config.clone())
            .shutdown_on_signal()
            .run(reconcile::reconcile, reconcile::error_policy, context.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "reconcile did not complete");
                }
            })
    });
    let controller = futures_util::future::join_all(controllers).map(|_| ());
    match leadership {
        // Losing the lease ends the process: a restart waits to lead again.
        Some((mut leading, task)) => {
            let lost = async {
                while leading.changed().await.is_ok() {
                    if !*leading.borrow() {
                        break;
                    }
                }
            };
            let outcome = tokio::select! {
                () = controller => Ok(()),
                () = lost => Err("lost the leader lease".into()),
            };
            // Closing the channel releases the lease: the next operator leads at once instead
            // of waiting for it to expire.
            drop(leading);
            if tokio::time::timeout(std::time::Duration::from_secs(5), task).await.is_err() {
                tracing::warn!("could not release the leader lease in time; it expires by itself");
            }
            outcome
        }
        None => {
            controller.await;
            Ok(())
        }
    }
}

async fn probe(url: &str, within: std::time::Duration) -> std::process::ExitCode {
    let deadline = tokio::time::Instant::now() + within;
    if let Err(error) = reqwest::Url::parse(url) {
        eprintln!("probe: {url:?} is not a URL: {error}");
        return std::process::ExitCode::from(2);
    }
    let http = match observe::http_client() {
        Ok(http) => http,
        Err(error) => {
            eprintln!("probe: no HTTP client: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    loop {
        let answer = http.get(url).send().await;
        match &answer {
            Ok(response) if response.status().is_success() => {
                println!("probe: {url} answered {}", response.status());
                return std::process::ExitCode::SUCCESS;
            }
            Ok(response) => eprintln!("probe: {url} answered {}", response.status()),
            Err(error) => eprintln!("probe: {url}: {error}"),
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("probe: {url} gave no 2xx within {} s", within.as_secs());
            return std::process::ExitCode::FAILURE;
        }
        // Pacing retries of a probe that failed, not synchronisation.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// A namespace's name: a DNS label.
fn namespace_name(value: &str) -> Result<String, String> {
    if kubechain_crds::validate::is_dns_label(value) {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a namespace name (a DNS label)"))
    }
}

/// The namespaces to reconcile Blockchains in: those named, or `None`, every namespace.
fn watched(names: Vec<String>) -> Vec<Option<String>> {
    let named: Vec<Option<String>> = names
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .map(|name| Some(name.into()))
        .collect();
    if named.is_empty() { vec![None] } else { named }
}

/// `K`s in `namespace`, or in every namespace (`None`).
fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_clients_are_namespaces_and_ranges_refused_with_the_value_named() {
        let cli = Cli::try_parse_from([
            "kubechain-operator",
            "run",
            "--api-client-namespaces",
            "monitoring,apps",
            "--api-client-cidrs",
            "10.0.0.0/8,2001:db8::/32",
        ])
        .unwrap();
        let Command::Run { api_client_namespaces, api_client_cidrs, .. } = cli.command else { panic!() };
        assert_eq!(api_client_namespaces, ["monitoring", "apps"]);
        assert_eq!(
            api_client_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.0/8", "2001:db8::/32"]
        );
        for (flag, value) in
            [("--api-client-namespaces", "Monitoring"), ("--api-client-cidrs", "10.0.0.300/8")]
        {
            let error =
                Cli::try_parse_from(["kubechain-operator", "run", flag, value]).unwrap_err().to_string();
            assert!(error.contains(value), "{error}");
        }
    }
}
