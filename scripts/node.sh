#!/usr/bin/env bash
# A real Kubernetes node for the local control plane of `scripts/cluster.sh up --kubelet`:
# containerd (with runc and the CNI plugins from Debian), kubelet, kube-proxy, CoreDNS and
# local-path-provisioner, all as host processes, with images imported from local OCI tarballs
# (nothing can be pulled here). Needs root: it creates network links, iptables rules and mounts,
# and `down` removes every one of them again.
#
# Usage: scripts/node.sh prepare|up|down|import --dir DIR [--image TARBALL]
#   prepare  the node's address (NODE_IP on the bridge kc-node0), forwarding sysctls; run before
#            the apiserver starts, since it binds to that address
#   up       starts the node's processes, imports the images in $KUBECHAIN_CACHE/images (pause and
#            busybox are built if missing), waits for the node to be Ready and DNS to answer
#   down     stops them and removes their processes, mounts, links and iptables chains
#   import   imports one more image tarball (--image, from scripts/image.sh) into the running node
# DIR is the cluster's dir (its kubeconfig and logs). One such node runs on a machine at a time:
# the links and chains are the machine's.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ready_timeout="${CLUSTER_READY_TIMEOUT:-120}"
node_link=kc-node0
cni_link=kc-cni0
pod_cidr="${KUBECHAIN_POD_CIDR:-10.244.0.0/24}"
node_name="${KUBECHAIN_NODE_NAME:-kc-node}"

log_name=node
# shellcheck source=scripts/processes.sh
source "$script_dir/processes.sh"

# The pods' cgroups live under this root in every hierarchy, so `down` finds exactly ours.
cgroup_root=kubechain${netns:+-$netns}
# Which cluster dir owns this node (links and chains are the machine's, or its namespace's).
owner_file=/run/kubechain-node${netns:+-$netns}.dir

kc() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=10s "$@"; }
sock() { echo "$dir/containerd/containerd.sock"; }
ctr_() { ctr --address "$(sock)" --namespace k8s.io "$@"; }

fail_with() {
    local name=$1 why=$2
    say "$why"
    [[ -f $dir/logs/$name.log ]] && tail -n 30 "$dir/logs/$name.log" >&2
    die "$name failed; all logs are in $dir/logs"
}

# wait_for NAME WHAT CMD...: polls CMD until it succeeds; NAME must stay alive meanwhile.
wait_for() {
    local name=$1 what=$2 deadline=$((SECONDS + ready_timeout)) pid
    shift 2
    until "$@" >/dev/null 2>&1; do
        pid=$(cat "$(pid_file "$name")" 2>/dev/null) || true
        # kill -0, not `alive`: just after `start` the child may not have exec'd yet, and its
        # command line is still this script's.
        [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || fail_with "$name" "$name exited while waiting for $what"
        ((SECONDS < deadline)) || fail_with "$name" "no $what after ${ready_timeout}s"
        sleep 0.5
    done
}

# pids_of DIR: processes whose command line names DIR (every process of a node does).
pids_of() {
    local p cmdline
    for p in /proc/[0-9]*; do
        cmdline=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        [[ $cmdline == *"$1/"* ]] && echo "${p#/proc/}"
    done
    return 0
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "a real node needs root (links, iptables, mounts, cgroups)"
}

# --- prepare ----------------------------------------------------------------------------------

cmd_prepare() {
    need_root
    local tool
    for tool in containerd runc ctr iptables iptables-save ip conntrack socat busybox; do
        command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup.sh --kubelet"
    done
    [[ -x /usr/lib/cni/bridge ]] || die "CNI plugins are missing: run scripts/setup.sh --kubelet"
    local other
    other=$(cat "$owner_file" 2>/dev/null) || true
    if [[ -n $other && $other != "$dir" ]]; then
        [[ -z $(pids_of "$other") ]] ||
            die "the node of $other still runs here: stop it first (scripts/cluster.sh down --dir $other)"
        # A run that crashed: nothing of it runs any more, so clean up what it left.
        say "cleaning up after the node of $other, which no longer runs"
        "$script_dir/node.sh" down --dir "$other" || true
    fi
    echo "$dir" >"$owner_file"
    sysctl -qw net.ipv4.ip_forward=1
    modprobe br_netfilter 2>/dev/null || true
    [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
    if [[ -n $netns ]]; then
        # A cloud's namespace: the address is on its eth0 already (scripts/clouds.sh).
        in_ns sysctl -qw net.ipv4.ip_forward=1
        in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
        say "node address $node_ip in network namespace $netns"
        return 0
    fi
    # No dummy links in this kernel: an empty bridge carries the node's address.
    ip link show "$node_link" >/dev/null 2>&1 || ip link add "$node_link" type bridge
    ip addr replace "$node_ip/32" dev "$node_link"
    ip link set "$node_link" up
    say "node address $node_ip on $node_link"
}

# --- up ---------------------------------------------------------------------------------------

write_containerd_config() {
    local restrict=false capabilities
    # Without CAP_SYS_RESOURCE (bit 24), runc cannot lower oom_score_adj: tell the CRI not to ask.
    capabilities=$(awk '/^CapEff/ {print $2}' /proc/self/status)
    if (((16#$capabilities >> 24 & 1) == 0)); then
        restrict=true
    fi
    mkdir -p "$dir/containerd" "$dir/cni/net.d"
    cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$(sock)"
[ttrpc]
  address = "$dir/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/kubechain/pause:$version"
  restrict_oom_score_adj = $restrict
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
    cat >"$dir/cni/net.d/10-kubechain.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kubechain",
  "plugins": [
    {
      "type": "bridge", "bridge": "$cni_link", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
               "dataDir": "$dir/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
    mkdir -p "$dir/kubelet"
    printf 'nameserver %s\n' "$node_ip" >"$dir/kubelet/resolv.conf"
    cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$(sock)
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
failCgroupV1: false
failSwapOn: false
clusterDNS: [$node_ip]
clusterDomain: cluster.local
resolvConf: $dir/kubelet/resolv.conf
podCIDR: $pod_cidr
# Imported images can never be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Absolute thresholds: a percentage of a big, busy disk (a build cache) can taint the node with
# disk pressure while gigabytes are free.
evictionHard: {memory.available: 50Mi, nodefs.available: 256Mi, imagefs.available: 256Mi, nodefs.inodesFree: 1%}
serializeImagePulls: false
podLogsDir: $dir/pod-logs
EOF
}

# The CoreDNS server answers cluster.local from the API and nothing else (no upstream here).
write_corefile() {
    cat >"$dir/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $node_ip
    errors
    ready 127.0.0.1:$coredns_ready_port
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $dir/kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# The provisioner's namespace, account, helper-pod template and the default StorageClass.
local_path_manifest() {
    cat <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner-service-account, namespace: local-path-storage}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata: {name: helper-pod}
    spec:
      containers:
      - {name: helper-pod, image: docker.io/kubechain/busybox:$version, imagePullPolicy: Never}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
}

# Pause and busybox are always needed; the kubechain images are imported when built
# (`make images`).
import_images() {
    local image tarball
    for image in pause busybox; do
        tarball="$cache_dir/images/kubechain-$image-$version.oci.tar"
        [[ -f $tarball ]] || "$script_dir/image.sh" "$image" --out "$cache_dir/images" >/dev/null
    done
    for tarball in "$cache_dir"/images/kubechain-*-"$version".oci.tar; do
        ctr_ images import "$tarball" >/dev/null || die "could not import $tarball"
        say "imported $(basename "$tarball")"
    done
}

node_ready() {
    [[ $(kc get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

# http_ok PORT PATH: GET http://127.0.0.1:PORT/PATH (in the cluster's namespace) answers 200.
http_ok() {
    # shellcheck disable=SC2016
    in_ns timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "GET %s HTTP/1.0\r\n\r\n" "$1" >&3 &&
        grep -q "200 OK" <&3' "$1" "$2" 2>/dev/null
}

# Ready, and a real query of the kubernetes Service's name answers its ClusterIP.
coredns_ready() {
    http_ok "$coredns_ready_port" /ready &&
        [[ $(timeout 5 busybox nslookup -type=A kubernetes.default.svc.cluster.local "$node_ip" 2>&1) == *"Address: 10.96.0.1"* ]]
}

cgroup_mounts() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts; }

# Creates the pods' cgroup root in every hierarchy (the kubelet wants it to exist).
make_cgroup_root() {
    local mount root controller
    for mount in $(cgroup_mounts); do
        root=$mount/$cgroup_root
        mkdir -p "$root"
        # A new cpuset has no CPUs or memory nodes, and no task can join it until it has.
        if [[ -f $mount/cpuset.cpus && -z $(cat "$root/cpuset.cpus") ]]; then
            cat "$mount/cpuset.cpus" >"$root/cpuset.cpus"
            cat "$mount/cpuset.mems" >"$root/cpuset.mems"
        fi
        # cgroup v2: hand the controllers down to it.
        if [[ -f $mount/cgroup.subtree_control ]]; then
            for controller in $(cat "$mount/cgroup.subtree_control"); do
                echo "+$controller" >"$root/cgroup.subtree_control" 2>/dev/null || true
            done
        fi
    done
}

# Healthy, and the kubernetes Service's rule is in place.
proxy_ready() {
    http_ok "$proxy_healthz_port" /healthz && [[ $(in_ns iptables -t nat -S KUBE-SERVICES 2>/dev/null) == *10.96.0.1* ]]
}

cmd_up() {
    need_root
    [[ -f $owner_file && $(cat "$owner_file") == "$dir" ]] || die "run scripts/node.sh prepare --dir $dir first"
    bin=$("$script_dir/k8s-build.sh" --kubelet --print-bin-dir)
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$script_dir/../Cargo.toml" | head -n 1)
    mkdir -p "$dir/logs" "$dir/run" "$dir/local-path"
    read -r kubelet_port kubelet_healthz_port coredns_ready_port proxy_healthz_port proxy_metrics_port \
        < <(free_ports 5)

    write_containerd_config
    start containerd "$(command -v containerd)" --config "$dir/containerd/config.toml"
    wait_for containerd "the containerd socket" ctr --address "$(sock)" version
    import_images

    write_kubelet_config
    make_cgroup_root
    start kubelet "$bin/kubelet" --config="$dir/kubelet/config.yaml" --kubeconfig="$dir/kubeconfig" \
        --root-dir="$dir/kubelet/root" --cert-dir="$dir/kubelet/pki" --node-ip="$node_ip" \
        --hostname-override="$node_name" --v=1
    wait_for kubelet "a Ready node" node_ready

    start kube-proxy "$bin/kube-proxy" --kubeconfig="$dir/kubeconfig" --hostname-override="$node_name" \
        --cluster-cidr="$pod_cidr" --proxy-mode=iptables --bind-address="$node_ip" \
        --nodeport-addresses="$node_ip/32" \
        --healthz-bind-address="127.0.0.1:$proxy_healthz_port" \
        --metrics-bind-address="127.0.0.1:$proxy_metrics_port" --conntrack-max-per-core=0 --v=1
    wait_for kube-proxy "Service rules" proxy_ready

    write_corefile
    start coredns "$bin/coredns" -conf "$dir/Corefile"
    wait_for coredns "DNS answers" coredns_ready

    local_path_manifest | kc apply -f - >/dev/null
    cat >"$dir/local-path.json" <<EOF
{"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$dir/local-path"]}]}
EOF
    start local-path-provisioner "$bin/local-path-provisioner" start --config "$dir/local-path.json" \
        --kubeconfig "$dir/kubeconfig" --namespace local-path-storage \
        --helper-image "docker.io/kubechain/busybox:$version"
    say "node $node_name Ready at $node_ip; DNS at $node_ip:53; StorageClass local-path (default)"
}

# --- down -------------------------------------------------------------------------------------

# Every process in the pods' cgroups (containers, and shims' leftovers).
pod_pids() {
    local mount
    for mount in $(cgroup_mounts); do
        [[ -d $mount/$cgroup_root ]] && find "$mount/$cgroup_root" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -u
}

# remove_chains IPTABLES: deletes the chains of kube-proxy (KUBE-*) and of the CNI plugins (CNI-*)
# and the rules elsewhere that jump to them, rule by rule; nothing else in the tables changes.
remove_chains() {
    local iptables=$1 table rules rule chain ours failed=0
    for table in filter nat mangle raw; do
        rules=$("$iptables" -w -t "$table" -S 2>/dev/null) || continue
        ours=$(awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}' <<<"$rules")
        [[ -n $ours ]] || continue
        while read -r rule; do
            # -S prints each rule in the shell's quoting (comments hold spaces and quotes).
            eval "\"\$iptables\" -w -t \"\$table\" -D ${rule#-A }" || failed=1
        done < <(awk '$1 == "-A" && $2 !~ /^(KUBE-|CNI-)/ && / -j (KUBE-|CNI-)/' <<<"$rules")
        for chain in $ours; do "$iptables" -w -t "$table" -F "$chain" || failed=1; done
        for chain in $ours; do "$iptables" -w -t "$table" -X "$chain" || failed=1; done
    done
    return "$failed"
}

# Shims killed with their containers leave their sockets in containerd's fixed directory: remove
# those that refuse a connection (nobody listens on them any more).
remove_stale_shim_sockets() {
    local socket
    for socket in /run/containerd/s/*; do
        [[ -S $socket ]] || continue
        timeout 5 socat -u /dev/null "UNIX-CONNECT:$socket" 2>/dev/null || rm -f "$socket"
    done
}

# Every step is best effort: one that fails is reported, and the rest still run.
cmd_down() {
    need_root
    set +e
    local name pid i mount problems=0
    # kubelet first, so it does not restart what is being removed.
    for name in kubelet local-path-provisioner coredns kube-proxy; do
        pid=$(cat "$(pid_file "$name")" 2>/dev/null) || continue
        stop_pid "$pid"
    done
    if [[ -S $(sock) ]]; then
        # Containers and sandboxes, then containerd itself.
        for i in $(ctr_ tasks list -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$i" >/dev/null 2>&1 || true; done
    fi
    for pid in $(pod_pids); do kill -KILL "$pid" 2>/dev/null || true; done
    # Shims name the socket in their command line.
    for pid in $(pgrep -f "containerd-shim.*-address $(sock)" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    pid=$(cat "$(pid_file containerd)" 2>/dev/null) && stop_pid "$pid"
    # Whatever of the node is left (lost pid files, a crashed run): found by the dir in its
    # command line and by what it runs (the control plane's processes are cluster.sh's to stop).
    local exe
    for pid in $(pids_of "$dir"); do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        case ${exe##*/} in
            containerd | containerd-shim* | kubelet | kube-proxy | coredns | local-path-provisioner)
                kill -KILL "$pid" 2>/dev/null ;;
        esac
    done
    rm -f "$dir"/run/{containerd,kubelet,kube-proxy,coredns,local-path-provisioner}.pid
    # The kubelet's device-plugin socket lives at a fixed path.
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock

    # Mounts under DIR (volumes, overlay snapshots, network namespaces), deepest first.
    local mount
    while read -r mount; do
        umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null ||
            { say "could not unmount $mount"; problems=$((problems + 1)); }
    done < <(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    remove_stale_shim_sockets
    # The pod cgroups, now empty, and their root.
    for mount in $(cgroup_mounts); do
        [[ -d $mount/$cgroup_root ]] && find "$mount/$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null
    done

    # Links and chains in a cloud's namespace go with the namespace (scripts/clouds.sh down).
    if [[ -z $netns ]]; then
        # Links: the pod bridge (its veths went with the namespaces) and the node bridge.
        for name in "$cni_link" "$node_link"; do
            if ip link show "$name" >/dev/null 2>&1; then
                ip link delete "$name" || problems=$((problems + 1))
            fi
        done
        # Chains of kube-proxy and the CNI plugins, in both the nft and the legacy tables.
        local iptables
        for iptables in iptables ip6tables iptables-legacy ip6tables-legacy; do
            command -v "$iptables" >/dev/null || continue
            remove_chains "$iptables" || { say "could not remove every chain of $iptables"; problems=$((problems + 1)); }
        done
    fi
    [[ -f $owner_file && $(cat "$owner_file") == "$dir" ]] && rm -f "$owner_file"
    if ((problems > 0)); then
        say "node removed, with $problems problem(s) above"
        return 1
    fi
    say "node removed"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd=$1
    shift
    dir="" image=""
    while [[ $# -gt 0 ]]; do
        case $1 in
            --dir) dir=${2:?--dir needs a value}; shift 2 ;;
            --image) image=${2:?--image needs a value}; shift 2 ;;
            --dir=*) dir=${1#--dir=}; shift ;;
            -h | --help) usage ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    [[ -n $dir ]] || die "--dir is required"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    case $cmd in
        prepare) cmd_prepare ;;
        up) cmd_up ;;
        down) cmd_down ;;
        import)
            [[ -f $image ]] || die "--image needs an image tarball"
            ctr_ images import "$image" >/dev/null || die "could not import $image"
            say "imported $(basename "$image")"
            ;;
        *) usage ;;
    esac
}

main "$@"
