#!/usr/bin/env bash
# A real local Kubernetes control plane for the operator's end-to-end tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (fake nodes that run pods on paper), all on
# 127.0.0.1 with ports picked free at start, so several clusters can run side by side.
#
# With --kubelet the cluster also gets one real node (scripts/node.sh: containerd, kubelet,
# kube-proxy, CoreDNS, local-path-provisioner; needs root) and the apiserver listens on the node's
# address (10.250.0.1) instead of 127.0.0.1, so pods reach it through the kubernetes Service.
#
# Usage: scripts/cluster.sh up|down|env|status [--dir DIR] [--kwok-nodes N] [--kubelet]
#   up     builds the binaries (scripts/k8s-build.sh, cached), starts the cluster, waits for
#          /readyz and N Ready kwok nodes (and the real node), prints `export ...` lines (eval-able)
#   down   stops every process of the cluster in DIR (also after a half-failed `up`)
#   env    prints the `export ...` lines of the cluster in DIR
#   status tells whether the cluster in DIR runs
# DIR defaults to ${KUBECHAIN_CACHE:-$HOME/.cache/kubechain}/cluster; N to 3 (0 with --kubelet).
# Env: CLUSTER_READY_TIMEOUT (seconds, default 120) bounds each wait of `up`.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ready_timeout="${CLUSTER_READY_TIMEOUT:-120}"
# Start order; `down` stops them in reverse.
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
node_annotation_key="kwok.x-k8s.io/node"
node_annotation_value="fake"

log_name=cluster
# shellcheck source=scripts/processes.sh
source "$script_dir/processes.sh"

# --- processes -------------------------------------------------------------------------------

component_pid() {
    local f
    f=$(pid_file "$1")
    [[ -f $f ]] && cat "$f"
}

component_alive() {
    local pid
    pid=$(component_pid "$1") && [[ -n $pid ]] && alive "$pid"
}

# Processes of this cluster found by command line, for those whose pid file is lost: every
# component gets DIR in its arguments, and the executable must be one of ours.
stray_pids() {
    local p exe name
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        name=${exe##*/}
        [[ " ${components[*]} " == *" $name "* ]] || continue
        alive "${p#/proc/}" && echo "${p#/proc/}"
    done
    return 0
}

stop_all() {
    local i name pid pids=()
    for ((i = ${#components[@]} - 1; i >= 0; i--)); do
        name=${components[i]}
        if pid=$(component_pid "$name") && [[ -n $pid ]] && alive "$pid"; then
            pids+=("$pid")
        fi
    done
    for pid in $(stray_pids); do
        [[ " ${pids[*]} " == *" $pid "* ]] || pids+=("$pid")
    done
    if [[ ${#pids[@]} -eq 0 ]]; then
        rm -f "$dir"/run/*.pid
        return 0
    fi
    say "stopping pids ${pids[*]}"
    # One at a time, in reverse start order: the apiserver's shutdown still talks to etcd. 5 s
    # each: none keeps state but etcd, which is done in well under a second, while the
    # apiserver with the lease endpoint reconciler (real-node mode) did not finish its shutdown
    # in 15 s, stuck after "Shutting down kubernetes service endpoint reconciler".
    for pid in "${pids[@]}"; do
        stop_pid "$pid" 5
    done
    rm -f "$dir"/run/*.pid
}

# --- setup -----------------------------------------------------------------------------------

# A CA and a serving certificate for 127.0.0.1/localhost, so clients (kubectl, kube-rs with
# rustls) verify the apiserver properly instead of skipping TLS checks; plus the service-account
# signing key pair.
make_pki() {
    local pki=$dir/pki
    mkdir -p "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kubechain-local-ca" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 3650 -out "$pki/apiserver.crt" -extfile <(
            printf '%s\n' \
                "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth" \
                "subjectAltName=IP:127.0.0.1,IP:$api_host,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
        ) 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    chmod 600 "$pki"/*.key
}

write_kubeconfig() {
    local ca_data
    ca_data=$(base64 -w0 <"$dir/pki/ca.crt")
    umask 077
    cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubechain
  cluster:
    server: https://$api_host:$api_port
    certificate-authority-data: $ca_data
users:
- name: admin
  user:
    token: $token
contexts:
- name: kubechain
  context:
    cluster: kubechain
    user: admin
current-context: kubechain
EOF
    umask 022
}

# --- waits -----------------------------------------------------------------------------------

# fail_with NAME WHY: stops the half-started cluster and shows the failing component's log tail.
fail_with() {
    local name=$1 why=$2
    say "$why"
    if [[ -f $dir/logs/$name.log ]]; then
        say "last lines of $dir/logs/$name.log:"
        tail -n 30 "$dir/logs/$name.log" >&2
        # klog's error and fatal lines, which the tail may have scrolled past.
        if grep -qE '^[EF][0-9]{4} ' "$dir/logs/$name.log"; then
            say "its last error lines:"
            grep -E '^[EF][0-9]{4} ' "$dir/logs/$name.log" | tail -n 10 >&2
        fi
    fi
    die "$name failed; all logs are in $dir/logs"
}

# Every started component must still run; names the first that died.
check_alive() {
    local name
    for name in "$@"; do
        component_alive "$name" || fail_with "$name" "$name exited during start-up"
    done
}

# A bounded request time, so a hung apiserver fails a wait instead of blocking it.
kc() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=10s "$@"; }

wait_etcd() {
    local deadline=$((SECONDS + ready_timeout))
    until in_ns "$bin/etcdctl" --endpoints "http://127.0.0.1:$etcd_port" --dial-timeout=1s \
        endpoint health >/dev/null 2>&1; do
        check_alive etcd
        ((SECONDS < deadline)) || fail_with etcd "etcd not healthy after ${ready_timeout}s"
        sleep 0.3
    done
}

wait_apiserver() {
    local deadline=$((SECONDS + ready_timeout))
    until kc get --raw /readyz >/dev/null 2>&1; do
        check_alive etcd kube-apiserver
        if ((SECONDS >= deadline)); then
            local out
            # kubectl prints a failed check list as one line with literal \n separators.
            out=$(kc get --raw '/readyz?verbose' 2>&1 | sed 's/\\n/\n/g') || true
            if grep -q '^\[-\]' <<<"$out"; then
                say "failing /readyz checks: $(grep '^\[-\]' <<<"$out" | tr '\n' ' ')"
            else
                say "GET /readyz: $out"
            fi
            fail_with kube-apiserver "kube-apiserver not ready (GET /readyz) after ${ready_timeout}s"
        fi
        sleep 0.5
    done
}

# Pods are refused until the controller manager has made the namespace's default service
# account, so wait for it: tests can create pods the moment `up` returns.
wait_default_sa() {
    local deadline=$((SECONDS + ready_timeout))
    until kc -n default get serviceaccount default >/dev/null 2>&1; do
        check_alive "${components[@]}"
        ((SECONDS < deadline)) ||
            fail_with kube-controller-manager "no default service account after ${ready_timeout}s"
        sleep 0.5
    done
}

# Node objects with the annotation kwok manages; no taint, since every node here is a kwok node.
create_nodes() {
    local n=$1 i
    ((n > 0)) || return 0
    for ((i = 0; i < n; i++)); do
        cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    $node_annotation_key: $node_annotation_value
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
    done | kc apply -f - >/dev/null
    local deadline=$((SECONDS + ready_timeout)) ready
    while :; do
        ready=$(kc get nodes -l type=kwok -o \
            jsonpath='{range .items[*]}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\n"}{end}{end}' \
            2>/dev/null | grep -c '^True$' || true)
        ((ready >= n)) && break
        check_alive "${components[@]}"
        ((SECONDS < deadline)) || fail_with kwok "$ready of $n kwok nodes Ready after ${ready_timeout}s"
        sleep 0.5
    done
    say "$n kwok nodes Ready"
}

# --- commands --------------------------------------------------------------------------------

print_env() {
    echo "export PATH=\"$bin:\$PATH\""
    echo "export KUBECONFIG=$dir/kubeconfig"
}

# running: all components alive (0), none (1), or some (2).
running() {
    local name up=0
    for name in "${components[@]}"; do
        component_alive "$name" && up=$((up + 1))
    done
    ((up == ${#components[@]})) && return 0
    ((up == 0)) && [[ -z $(stray_pids) ]] && return 1
    return 2
}

cmd_up() {
    local started=$SECONDS state=0
    bin=$("$script_dir/k8s-build.sh" ${kubelet:+--kubelet} --print-bin-dir)
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -n 9 || die "another cluster.sh is working on $dir"

    running || state=$?
    # Reused only as it is: a kwok-only cluster asked for a real node (or the other way round),
    # or a real node, is started afresh (a real node's parts are not checked one by one).
    local mode=kwok
    [[ -n $kubelet ]] && mode=kubelet
    if ((state == 0)) && [[ $mode == kwok ]] && grep -qx "mode=kwok" "$dir/cluster.env" 2>/dev/null &&
        kc get --raw /readyz >/dev/null 2>&1; then
        say "the cluster in $dir is already running: reusing it"
        create_nodes "$kwok_nodes"
        print_env
        return 0
    fi
    if ((state != 1)); then
        say "the cluster in $dir runs (in part, or of another kind): stopping it, starting afresh"
    fi
    stop_node
    stop_all

    # Fresh state every time: the data is test scratch, and reused etcd data would hold objects
    # of a previous run. (stop_node unmounted everything below DIR first.)
    rm -rf "$dir/etcd" "$dir/pki" "$dir/logs" "$dir/run" "$dir/kubeconfig" "$dir/cluster.env" \
        "$dir/containerd" "$dir/kubelet" "$dir/cni" "$dir/local-path" "$dir/Corefile" "$dir/local-path.json"
    mkdir -p "$dir/logs" "$dir/run"
    # From here a failure stops whatever was started.
    trap 'rc=$?; trap "" PIPE; if ((rc != 0)); then say "up failed: stopping what was started"; stop_node; stop_all; fi' EXIT
    # Bash runs the EXIT trap on these signals only when they are trapped.
    trap 'exit 130' INT
    trap 'exit 141' PIPE
    trap 'exit 143' TERM

    read -r etcd_port etcd_peer_port api_port kwok_port < <(free_ports 4)
    api_host=127.0.0.1
    if [[ -n $kubelet ]]; then
        "$script_dir/node.sh" prepare --dir "$dir"
        api_host=$node_ip
    fi
    token=$(openssl rand -hex 24)
    make_pki
    printf '%s,admin,admin,system:masters\n' "$token" >"$dir/pki/tokens.csv"
    chmod 600 "$dir/pki/tokens.csv"
    write_kubeconfig
    cat >"$dir/cluster.env" <<EOF
# Written by scripts/cluster.sh up: this cluster's kind and endpoints.
mode=$mode
netns=$netns
api_server=https://$api_host:$api_port
etcd_server=http://127.0.0.1:$etcd_port
kwok_port=$kwok_port
EOF

    start etcd "$bin/etcd" --name=kubechain --data-dir="$dir/etcd" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" \
        --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster="kubechain=http://127.0.0.1:$etcd_peer_port" \
        --unsafe-no-fsync --quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) \
        --auto-compaction-retention=1 --log-level=warn
    wait_etcd

    # On loopback, --endpoint-reconciler-type=none: the `kubernetes` Service cannot point at a
    # loopback address (validation refuses it), and kwok pods never call the apiserver. With a
    # real node it points at the node's address, which pods reach.
    local reconciler=none
    [[ -n $kubelet ]] && reconciler=lease
    start kube-apiserver "$bin/kube-apiserver" --bind-address="$api_host" --advertise-address="$api_host" \
        --secure-port="$api_port" --etcd-servers="http://127.0.0.1:$etcd_port" \
        --cert-dir="$dir/pki" \
        --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
        --token-auth-file="$dir/pki/tokens.csv" --authorization-mode=RBAC \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$dir/pki/sa.pub" \
        --service-account-signing-key-file="$dir/pki/sa.key" \
        --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
        --endpoint-reconciler-type="$reconciler" --kubelet-preferred-address-types=InternalIP,Hostname
    wait_apiserver
    say "kube-apiserver ready at https://$api_host:$api_port after $((SECONDS - started))s"

    start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$dir/kubeconfig" --leader-elect=false \
        --secure-port=0 --root-ca-file="$dir/pki/ca.crt" --cluster-name=kubechain \
        --service-account-private-key-file="$dir/pki/sa.key"
    start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$dir/kubeconfig" --leader-elect=false --secure-port=0
    # kwok heartbeats its nodes only through node leases: without them the node controller marks
    # every kwok node (and so every pod on it) not Ready once a grace period passes.
    start kwok "$bin/kwok" --kubeconfig="$dir/kubeconfig" --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector="$node_annotation_key=$node_annotation_value" \
        --server-address="127.0.0.1:$kwok_port" --node-lease-duration-seconds=40

    wait_default_sa
    create_nodes "$kwok_nodes"
    [[ -n $kubelet ]] && "$script_dir/node.sh" up --dir "$dir"
    check_alive "${components[@]}"
    trap - EXIT INT PIPE TERM
    say "cluster ready in $((SECONDS - started))s; logs in $dir/logs"
    print_env
}

# The real node, if this cluster has one (its containerd dir marks it).
# Best effort: a node that cannot be cleaned up fully must not keep the control plane running.
stop_node() {
    if [[ -d $dir/containerd || $(cat "/run/kubechain-node${netns:+-$netns}.dir" 2>/dev/null) == "$dir" ]]; then
        "$script_dir/node.sh" down --dir "$dir" || say "the node's teardown reported problems (above)"
    fi
}

cmd_down() {
    mkdir -p "$dir"
    # A cluster in a cloud's namespace says so in its env file.
    netns=$(sed -n 's/^netns=//p' "$dir/cluster.env" 2>/dev/null) || true
    export KUBECHAIN_NETNS=$netns
    exec 9>"$dir/.lock"
    # Wait for a running `up` rather than racing it (its own failure path stops everything too).
    flock -w 300 9 || die "timed out waiting for the lock on $dir"
    stop_node
    stop_all
    say "stopped the cluster in $dir"
}

cmd_env() {
    bin=$("$script_dir/k8s-build.sh" --bin-dir)
    [[ -f $dir/kubeconfig ]] || die "no cluster in $dir (run: scripts/cluster.sh up)"
    running || say "warning: the cluster in $dir is not (fully) running"
    print_env
}

cmd_status() {
    local name state=0
    running || state=$?
    for name in "${components[@]}"; do
        if component_alive "$name"; then
            say "$name: running (pid $(component_pid "$name"))"
        else
            say "$name: stopped"
        fi
    done
    return "$state"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd=$1
    shift
    dir="$cache_dir/cluster"
    kwok_nodes=""
    kubelet=""
    while [[ $# -gt 0 ]]; do
        case $1 in
            --kubelet) kubelet=1; shift ;;
            --dir) dir=${2:?--dir needs a value}; shift 2 ;;
            --dir=*) dir=${1#--dir=}; shift ;;
            --kwok-nodes) kwok_nodes=${2:?--kwok-nodes needs a value}; shift 2 ;;
            --kwok-nodes=*) kwok_nodes=${1#--kwok-nodes=}; shift ;;
            -h | --help) usage ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    # A real node takes the pods; kwok nodes beside it would take some of them.
    [[ -n $kwok_nodes ]] || kwok_nodes=$([[ -n $kubelet ]] && echo 0 || echo 3)
    [[ $kwok_nodes =~ ^[0-9]+$ ]] || die "--kwok-nodes wants a number, got $kwok_nodes"
    mkdir -p "$dir"
    # An absolute path without a trailing slash: it is matched in command lines.
    dir=$(cd "$dir" && pwd -P)
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        env) cmd_env ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
