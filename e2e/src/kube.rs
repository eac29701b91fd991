//! Harness for the operator suites: a real control plane started by `scripts/cluster.sh` (etcd,
//! kube-apiserver, controller manager, scheduler and kwok nodes, all built from Go modules),
//! `kubectl` against it, and the `kubechain-operator` binary as a process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use kubechain_types::{Genesis, SigningKey, keyfile};
use serde_json::Value;

use crate::Cluster;

use crate::eventually;

/// The repository's top folder (where `scripts/` lives).
pub fn repo_dir() -> PathBuf {
    // At run time (cargo sets it): a cached test binary may come from another checkout.
    let manifest_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest_dir.parent().expect("e2e/ is inside the repository").to_path_buf()
}

/// A binary built beside the test executable (`target/<profile>/NAME`).
pub fn sibling_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe.parent().and_then(Path::parent).expect("target dir").join(name);
    assert!(path.exists(), "{} is missing: build it first (make e2e-operator does)", path.display());
    path
}

/// A running control plane, stopped on drop (passed or failed).
#[derive(Debug)]
pub struct ControlPlane {
    /// The cluster's dir, owned (and the cluster stopped on drop) unless the cluster belongs to
    /// [`Clouds`]; `None` once kept for inspection (see drop).
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts a fresh control plane with `kwok_nodes` fake nodes in a temp dir; its binaries
    /// come from the build cache (built once by `scripts/k8s-build.sh`).
    pub fn up(kwok_nodes: u32) -> ControlPlane {
        ControlPlane::start(&["--kwok-nodes", &kwok_nodes.to_string()])
    }

    /// Starts a fresh control plane with one real node (`scripts/node.sh`: containerd, kubelet,
    /// kube-proxy, CoreDNS, local-path volumes) and the images of `make images` imported.
    /// Needs root; one such cluster per machine at a time.
    pub fn up_with_real_node() -> ControlPlane {
        ControlPlane::start(&["--kubelet"])
    }

    fn start(args: &[&str]) -> ControlPlane {
        let dir = tempfile::Builder::new().prefix("kubechain-cp-").tempdir().expect("temp dir");
        // stdout is `export PATH="BIN:$PATH"` and `export KUBECONFIG=FILE`.
        let exports = Exports::up("cluster.sh", dir.path(), args);
        let path = dir.path().to_path_buf();
        ControlPlane {
            dir: Some(dir),
            path,
            bin_dir: exports.bin_dir(),
            kubeconfig: PathBuf::from(exports.get("KUBECONFIG")),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A scratch dir that lives as long as the control plane (logs, node dirs).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// `kubectl ARGS` with a bounded request time; the output whatever the exit status.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None)
    }

    fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new(self.bin_dir.join("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--request-timeout=20s")
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        if let Some(input) = input {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write to kubectl");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// `kubectl ARGS` that must succeed; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// `kubectl apply -f -` of `manifest`; the output whatever the exit status.
    pub fn apply(&self, namespace: &str, manifest: &str) -> Output {
        self.kubectl_with_input(&["apply", "-n", namespace, "-f", "-"], Some(manifest))
    }

    /// `kubectl get ARGS -o json`, or `None` when it fails (e.g. not found).
    pub fn get_json(&self, args: &[&str]) -> Option<Value> {
        let args: Vec<&str> = ["get"].iter().chain(args).chain(&["-o", "json"]).copied().collect();
        let output = self.kubectl(&args);
        output.status.success().then(|| serde_json::from_slice(&output.stdout).expect("kubectl JSON"))
    }

    /// Names of the objects of `kind` in `namespace` matching `selector`.
    pub fn names(&self, namespace: &str, kind: &str, selector: &str) -> Vec<String> {
        let list = self.get_json(&[kind, "-n", namespace, "-l", selector]).unwrap_or(Value::Null);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// One value of a Secret (decoded) or ConfigMap.
    pub fn data(&self, namespace: &str, kind: &str, name: &str, key: &str) -> String {
        let decode = if kind == "secret" { " | base64decode" } else { "" };
        let template = format!("go-template={{{{index .data \"{key}\"{decode}}}}}");
        self.run(&["get", kind, name, "-n", namespace, "-o", &template])
    }

    /// `http://CLUSTER-IP:8080` of a Service (a validator's API port): the host reaches ClusterIPs
    /// through kube-proxy's rules on a real node.
    pub fn service_url(&self, namespace: &str, service: &str) -> String {
        let ip = self.run(&["get", "service", service, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"]);
        format!("http://{}:8080", ip.trim())
    }

    /// `http://POD-IP:8080` of a pod (a validator's API port; the peer Services carry the peer
    /// port only), `None` while it has no address: the host reaches pod addresses on a real
    /// node. Read anew on each call, since a restarted validator's pod has a new address.
    pub fn pod_url(&self, namespace: &str, pod: &str) -> Option<String> {
        let pod = self.get_json(&["pod", pod, "-n", namespace])?;
        pod["status"]["podIP"].as_str().map(|ip| format!("http://{ip}:8080"))
    }

    /// Polls `kubectl get ARGS -o json` until `check` returns `Some`.
    pub fn wait_json<T>(
        &self,
        args: &[&str],
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        eventually(timeout, what, || self.get_json(args).as_ref().and_then(&mut check))
    }

    /// Installs the CRD and the operator as `examples/operator.yaml` has it (a pod from its
    /// image), and waits until the operator's Deployment is available.
    pub fn install_operator(&self) {
        let crd = repo_dir().join("crds/blockchain.kubechain.dev.yaml");
        self.run(&["apply", "-f", crd.to_str().expect("a UTF-8 path")]);
        self.run(&["wait", "--for=condition=Established", "crd/blockchains.kubechain.dev", "--timeout=60s"]);
        let operator = repo_dir().join("examples/operator.yaml");
        self.run(&["apply", "-f", operator.to_str().expect("a UTF-8 path")]);
        let available = ["--for=condition=Available", "deploy/kubechain-operator", "--timeout=120s"];
        self.run(&[&["wait", "-n", "kubechain-system"][..], &available[..]].concat());
    }

    /// Validator processes with the genesis and keys the operator made for the `count`-validator
    /// chain `chain` in `namespace`, the API of validator i at 127.77.i.OCTET:8080 (where the
    /// operator's `--node-url-template http://127.77.{index}.OCTET:8080` points); the admin key,
    /// and every key the operator made (the validators', then the admin's).
    pub fn validators_made_for(
        &self,
        namespace: &str,
        chain: &str,
        count: usize,
        octet: u8,
    ) -> (Cluster, SigningKey, Vec<SigningKey>) {
        let genesis: Genesis = serde_json::from_str(&self.data(
            namespace,
            "configmap",
            &format!("{chain}-genesis"),
            "genesis.json",
        ))
        .expect("the operator's genesis");
        let key = |secret: String, file: &str| {
            keyfile::from_json(self.data(namespace, "secret", &secret, file).as_bytes()).expect("a key file")
        };
        let keys: Vec<SigningKey> =
            (0..count).map(|i| key(format!("{chain}-validator-{i}-key"), "validator.key")).collect();
        assert_eq!(keys.iter().map(SigningKey::public_key).collect::<Vec<_>>(), genesis.validators);
        let admin = key(format!("{chain}-admin-key"), "admin.key");
        assert_eq!(genesis.admins, vec![admin.public_key()]);
        let api: Vec<SocketAddr> =
            (0..count).map(|i| format!("127.77.{i}.{octet}:8080").parse().expect("an address")).collect();
        let all_keys = keys.iter().chain([&admin]).cloned().collect();
        (Cluster::from_genesis(genesis, keys, admin.clone(), Vec::new(), &api), admin, all_keys)
    }

    /// Starts `kubechain-operator run ARGS` against this control plane, logging to `log`.
    pub fn start_operator(&self, args: &[&str], log: &Path) -> Operator {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("operator log");
        let child = Command::new(sibling_bin("kubechain-operator"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["run", "--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("spawn kubechain-operator");
        Operator { child: Some(child), log: log.to_path_buf() }
    }
}

impl ControlPlane {
    /// Freezes (SIGSTOP) or thaws (SIGCONT) this control plane's kube-apiserver: while frozen,
    /// connections are accepted by the kernel but nothing answers, as with a hung control plane.
    pub fn freeze_api_server(&self, frozen: bool) {
        let pid = std::fs::read_to_string(self.dir().join("run/kube-apiserver.pid")).expect("apiserver pid");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, pid.trim()]).status().expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The API server's URL, as in the kubeconfig.
    pub fn server(&self) -> String {
        let kubeconfig = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        kubeconfig
            .lines()
            .find_map(|line| line.trim().strip_prefix("server: "))
            .expect("a server in the kubeconfig")
            .to_string()
    }

    /// A kubeconfig for the service account whose long-lived token is in Secret `token_secret`
    /// of `namespace` (as `examples/multicloud-member-access.yaml` makes), with this cluster's
    /// CA inline: what a member cluster's admin hands to the hub.
    pub fn service_account_kubeconfig(&self, namespace: &str, token_secret: &str) -> String {
        let token = eventually(Duration::from_secs(60), "the service-account token", || {
            let output = self.kubectl(&[
                "get",
                "secret",
                token_secret,
                "-n",
                namespace,
                "-o",
                "go-template={{if .data.token}}{{.data.token | base64decode}}{{end}}",
            ]);
            let token = String::from_utf8(output.stdout).ok()?;
            (output.status.success() && !token.is_empty()).then_some(token)
        });
        let ca = self.run(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ]);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: hub\n  user:\n    token: {token}\ncontexts:\n- name: member\n  context: {{cluster: member, user: hub, namespace: {namespace}}}\ncurrent-context: member\n",
            self.server()
        )
    }
}

/// Makes `member` a member cluster of chains in `namespace` of `hub`, as its admin would: applies
/// `examples/multicloud-member-access.yaml` there and puts the service account's kubeconfig
/// into the hub's Secret `NAME-kubeconfig`. The kubeconfig.
pub fn join_member(hub: &ControlPlane, member: &ControlPlane, name: &str, namespace: &str) -> String {
    let access = std::fs::read_to_string(repo_dir().join("examples/multicloud-member-access.yaml")).unwrap();
    let applied = member.apply(namespace, &access);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let kubeconfig = member.service_account_kubeconfig(namespace, "kubechain-hub-token");
    put_kubeconfig_secret(hub, name, namespace, &kubeconfig);
    kubeconfig
}

/// The hub's Secret `NAME-kubeconfig` with `kubeconfig`, created or replaced.
pub fn put_kubeconfig_secret(hub: &ControlPlane, name: &str, namespace: &str, kubeconfig: &str) {
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-kubeconfig"), "namespace": namespace},
        "stringData": {"kubeconfig": kubeconfig},
    });
    let applied = hub.apply(namespace, &manifest.to_string());
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
}

/// An edit a person might make while a cluster is away: an annotation `e2e/edit: "1"` on every
/// placement entry's Services of chain `chain`.
pub fn annotate_every_placement(hub: &ControlPlane, namespace: &str, chain: &str, entries: usize) {
    let patch: Vec<serde_json::Value> = (0..entries)
        .map(|entry| {
            let path = format!("/spec/placement/{entry}/service/annotations");
            serde_json::json!({"op": "add", "path": path, "value": {"e2e/edit": "1"}})
        })
        .collect();
    hub.run(&["patch", "bc", chain, "-n", namespace, "--type=json", "-p", &Value::from(patch).to_string()]);
}

/// Whether that edit reached validator `index`'s Service in `cp`.
pub fn edit_reached(cp: &ControlPlane, namespace: &str, chain: &str, index: u32) -> bool {
    cp.get_json(&["service", &format!("{chain}-validator-{index}"), "-n", namespace])
        .is_some_and(|service| service["metadata"]["annotations"]["e2e/edit"] == "1")
}

/// Cluster-scoped volumes of no class, big enough for the default 10Gi claims: kwok clusters
/// have no provisioner, and the scheduler places no pod whose claim is unbound.
pub fn volumes(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: e2e-volume-{i}\nspec:\n  \
                 capacity: {{storage: 10Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: /tmp/e2e-volume-{i}}}\n"
            )
        })
        .collect()
}

impl ControlPlane {
    /// Stops everything now (as drop does) and returns the cluster's dir path, to check that
    /// nothing of it is left.
    pub fn down(self) -> PathBuf {
        let dir = self.dir().to_path_buf();
        drop(self);
        dir
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            down("cluster.sh", dir);
        }
    }
}

/// Runs `scripts/SCRIPT down --dir DIR`. After a failed test or teardown the dir (logs, pid
/// files) is kept for inspection.
fn down(script: &str, dir: tempfile::TempDir) {
    let stopped = Command::new(repo_dir().join("scripts").join(script))
        .args(["down", "--dir"])
        .arg(dir.path())
        .status()
        .is_ok_and(|status| status.success());
    if !stopped || std::thread::panicking() {
        let kept = dir.keep();
        eprintln!("kept {} for inspection", kept.display());
    }
}

/// The `export NAME=VALUE` lines an `up` script printed.
struct Exports(String);

impl Exports {
    /// Runs `scripts/SCRIPT up --dir DIR ARGS`, which must succeed.
    fn up(script: &str, dir: &Path, args: &[&str]) -> Exports {
        let output = Command::new(repo_dir().join("scripts").join(script))
            .args(["up", "--dir"])
            .arg(dir)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|error| panic!("run scripts/{script}: {error}"));
        assert!(output.status.success(), "scripts/{script} up failed ({})", output.status);
        Exports(String::from_utf8(output.stdout).expect("utf-8 exports"))
    }

    fn get(&self, name: &str) -> String {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("no {name} in {}", self.0))
            .to_string()
    }

    /// The dir `export PATH="BIN:$PATH"` puts first.
    fn bin_dir(&self) -> PathBuf {
        PathBuf::from(self.get("PATH").trim_matches('"').trim_end_matches(":$PATH"))
    }
}

/// Three real one-node clusters, "aws", "azure" and "gcp", with WAN delay between them
/// (`scripts/clouds.sh`; needs root), stopped on drop.
#[derive(Debug)]
pub struct Clouds {
    /// `None` once kept for inspection.
    dir: Option<tempfile::TempDir>,
    pub clusters: Vec<(String, ControlPlane)>,
}

impl Clouds {
    pub const NAMES: [&'static str; 3] = ["aws", "azure", "gcp"];

    pub fn up() -> Clouds {
        let dir = tempfile::Builder::new().prefix("kubechain-clouds-").tempdir().expect("temp dir");
        let exports = Exports::up("clouds.sh", dir.path(), &[]);
        let bin_dir = exports.bin_dir();
        let clusters = Clouds::NAMES
            .iter()
            .map(|name| {
                let kubeconfig = PathBuf::from(exports.get(&format!("KUBECONFIG_{}", name.to_uppercase())));
                let path = dir.path().join(name);
                (name.to_string(), ControlPlane { dir: None, path, bin_dir: bin_dir.clone(), kubeconfig })
            })
            .collect();
        Clouds { dir: Some(dir), clusters }
    }

    pub fn cluster(&self, name: &str) -> &ControlPlane {
        &self.clusters.iter().find(|(n, _)| n == name).expect("a cloud").1
    }

    /// The round trip from cloud `from` to cloud `to`, in milliseconds: the quickest of five
    /// TCP connects from `from`'s namespace to `to`'s API server.
    pub fn round_trip_ms(&self, from: &str, to: &str) -> f64 {
        let server = self.cluster(to).server();
        let (host, port) = server.trim_start_matches("https://").rsplit_once(':').expect("host:port");
        let script = format!(
            "for i in 1 2 3 4 5; do s=$(date +%s%N); exec 3<>/dev/tcp/{host}/{port}; e=$(date +%s%N); exec 3>&-; echo $(((e - s) / 1000)); done"
        );
        let output = Command::new("nsenter")
            .arg(format!("--net=/run/netns/kc-{from}"))
            .args(["bash", "-c", &script])
            .output()
            .expect("nsenter");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let micros =
            String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| l.parse::<u64>().ok()).min();
        micros.expect("five round trips") as f64 / 1000.0
    }

    /// Drops (`cut`) or restores (`heal`) all traffic between `cloud` and the other clouds.
    pub fn network(&self, command: &str, cloud: &str) {
        let dir = self.dir.as_ref().expect("the clouds' dir").path();
        let status = Command::new(repo_dir().join("scripts/clouds.sh"))
            .args([command, cloud, "--dir"])
            .arg(dir)
            .status()
            .expect("run scripts/clouds.sh");
        assert!(status.success(), "scripts/clouds.sh {command} {cloud} failed");
    }
}

impl Drop for Clouds {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            down("clouds.sh", dir);
        }
    }
}

/// A `kubechain-operator` process, stopped on drop.
#[derive(Debug)]
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Operator {
    /// SIGTERM, then waits for a clean exit (it hands its Lease over on the way out).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let status = child.wait().expect("wait for the operator");
            assert!(
                status.success(),
                "the operator exited with {status} on SIGTERM; log: {}",
                self.log.display()
            );
        }
    }

    /// One series of the operator's /metrics, e.g. `kubechain_operator_reconciles_total{result="ok"}`;
    /// `None` until the operator serves it. The address is the one the operator logged last.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let address = self.metrics_address()?;
        let body = reqwest::blocking::get(format!("http://{address}/metrics")).ok()?.text().ok()?;
        body.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Where the operator serves /metrics: the address it logged last.
    pub fn metrics_address(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        crate::log_fields(&log).iter().rev().find_map(|fields| fields["address"].as_str().map(str::to_string))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The condition `type_` of an object's status: (status, reason, message).
pub fn condition(object: &Value, type_: &str) -> Option<(String, String, String)> {
    let conditions = object["status"]["conditions"].as_array()?;
    let found = conditions.iter().find(|c| c["type"] == type_)?;
    let text = |field: &str| found[field].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}
