#!/usr/bin/env bash
# Three real one-node clusters side by side, standing in for AWS, Azure and GCP, with WAN delay
# between them. Each cloud is a network namespace (kc-aws, kc-azure, kc-gcp) joined to the host
# bridge kc-wan0 (10.251.0.254/24), and runs a whole cluster inside it (scripts/cluster.sh
# --kubelet: etcd, kube-apiserver, controller manager, scheduler, containerd, kubelet,
# kube-proxy, CoreDNS, local-path volumes), its node at 10.251.0.1, .2 and .3. Traffic from one
# cloud to another waits in `wan-delay` (an NFQUEUE program: this kernel has no tc netem) for
# half the round trip each way: 85 ms aws-azure, 110 ms aws-gcp, 125 ms azure-gcp. The host
# reaches every cloud without delay. Needs root.
#
# Usage: scripts/clouds.sh up|down|env|cut|heal [--dir DIR] [CLOUD]
#   up     brings up the namespaces, the delay and the three clusters; prints, per cloud,
#          `export KUBECONFIG_<CLOUD>=...` lines (eval-able) and the PATH of kubectl
#   down   stops the clusters and removes the namespaces, the bridge and the delay
#   env    prints the lines of `up` again
#   cut    drops all traffic between CLOUD and the other clouds (the host still reaches it)
#   heal   undoes `cut CLOUD`
# DIR defaults to ${KUBECHAIN_CACHE:-$HOME/.cache/kubechain}/clouds. Env: WAN_DELAY (the
# wan-delay binary; default: the workspace's release build).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_name=clouds
# shellcheck source=scripts/common.sh
source "$script_dir/common.sh"

clouds=(aws azure gcp)
bridge=kc-wan0
host_ip=10.251.0.254
# Round trips in ms between clouds i and j (i < j), split evenly over the two directions.
declare -A rtt=([aws-azure]=85 [aws-gcp]=110 [azure-gcp]=125)

cloud_index() {
    local i
    for i in "${!clouds[@]}"; do [[ ${clouds[i]} == "$1" ]] && { echo "$i"; return 0; }; done
    die "unknown cloud $1 (one of: ${clouds[*]})"
}
cloud_ip() { echo "10.251.0.$(($(cloud_index "$1") + 1))"; }
netns_of() { echo "kc-$1"; }
in_cloud() { local cloud=$1; shift; nsenter --net="/run/netns/$(netns_of "$cloud")" "$@"; }

# one_way FROM TO: milliseconds a packet from FROM to TO waits.
one_way() {
    local key
    key=$(printf '%s\n' "$1" "$2" | sort | paste -sd-)
    local total=${rtt[$key]}
    # The odd millisecond goes to the direction from the first cloud in alphabetical order.
    if [[ $1 < $2 ]]; then echo $(((total + 1) / 2)); else echo $((total / 2)); fi
}

need_root() { [[ $(id -u) -eq 0 ]] || die "three real clusters need root (namespaces, links, iptables)"; }

wan_delay_bin() {
    local bin=${WAN_DELAY:-${CARGO_TARGET_DIR:-$cache_dir/target}/release/wan-delay}
    [[ -x $bin ]] || die "$bin is missing: build it (cargo build --release -p kubechain-e2e --bin wan-delay)"
    echo "$bin"
}

# --- network ----------------------------------------------------------------------------------

network_up() {
    sysctl -qw net.ipv4.ip_forward=1
    ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
    ip addr replace "$host_ip/24" dev "$bridge"
    ip link set "$bridge" up
    local cloud ns other delays
    for cloud in "${clouds[@]}"; do
        ns=$(netns_of "$cloud")
        ip netns list | grep -qw "$ns" || ip netns add "$ns"
        if ! ip link show "$ns-h" >/dev/null 2>&1; then
            ip link add "$ns-h" type veth peer name eth0 netns "$ns"
        fi
        ip link set "$ns-h" master "$bridge" up
        in_cloud "$cloud" ip addr replace "$(cloud_ip "$cloud")/24" dev eth0
        in_cloud "$cloud" ip link set eth0 up
        in_cloud "$cloud" ip link set lo up
        in_cloud "$cloud" ip route replace default via "$host_ip"
        # The delay: packets to the other clouds go through queue 0 (passing while no program
        # reads it), and wan-delay holds each for its one-way time.
        in_cloud "$cloud" iptables -w -t mangle -N KC-WAN 2>/dev/null || in_cloud "$cloud" iptables -w -t mangle -F KC-WAN
        in_cloud "$cloud" iptables -w -t mangle -C POSTROUTING -o eth0 -j KC-WAN 2>/dev/null ||
            in_cloud "$cloud" iptables -w -t mangle -A POSTROUTING -o eth0 -j KC-WAN
        delays=()
        for other in "${clouds[@]}"; do
            [[ $other == "$cloud" ]] && continue
            in_cloud "$cloud" iptables -w -t mangle -A KC-WAN -d "$(cloud_ip "$other")" -j NFQUEUE --queue-num 0 --queue-bypass
            delays+=("$(cloud_ip "$other")=$(one_way "$cloud" "$other")")
        done
        mkdir -p "$dir/$cloud/logs"
        setsid nsenter --net="/run/netns/$ns" "$(wan_delay_bin)" --queue 0 "${delays[@]}" \
            </dev/null >"$dir/$cloud/logs/wan-delay.log" 2>&1 9>&- &
        echo $! >"$dir/$cloud/wan-delay.pid"
        say "$cloud: $(cloud_ip "$cloud") in namespace $ns; delays ${delays[*]}"
    done
}

network_down() {
    local cloud ns pid
    for cloud in "${clouds[@]}"; do
        ns=$(netns_of "$cloud")
        pid=$(cat "$dir/$cloud/wan-delay.pid" 2>/dev/null) || pid=""
        [[ -n $pid ]] && { kill "$pid" 2>/dev/null || true; }
        rm -f "$dir/$cloud/wan-delay.pid"
        ip netns list | grep -qw "$ns" && ip netns delete "$ns"
        ip link show "$ns-h" >/dev/null 2>&1 && ip link delete "$ns-h"
    done
    ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge"
    return 0
}

# --- clusters ---------------------------------------------------------------------------------

cluster_env() {
    local cloud=$1 index
    index=$(cloud_index "$cloud")
    echo "KUBECHAIN_NETNS=$(netns_of "$cloud") NODE_IP=$(cloud_ip "$cloud") KUBECHAIN_POD_CIDR=10.244.$((index + 1)).0/24 KUBECHAIN_NODE_NAME=$cloud"
}

print_env() {
    local cloud bin
    bin=$("$script_dir/k8s-build.sh" --bin-dir)
    echo "export PATH=\"$bin:\$PATH\""
    for cloud in "${clouds[@]}"; do
        echo "export KUBECONFIG_${cloud^^}=$dir/$cloud/kubeconfig"
    done
}

cmd_up() {
    need_root
    local started=$SECONDS cloud
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -n 9 || die "another clouds.sh is working on $dir"
    cmd_down_locked
    trap 'rc=$?; if ((rc != 0)); then say "up failed: stopping what was started"; cmd_down_locked; fi' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    network_up
    # One after another: each start builds nothing (cached) and takes about 10 s.
    for cloud in "${clouds[@]}"; do
        # shellcheck disable=SC2046
        env $(cluster_env "$cloud") "$script_dir/cluster.sh" up --dir "$dir/$cloud" --kubelet 9>&- >/dev/null
        say "$cloud: cluster ready at https://$(cloud_ip "$cloud")"
    done
    trap - EXIT INT TERM
    say "three clouds ready in $((SECONDS - started))s"
    print_env
}

cmd_down_locked() {
    local cloud
    for cloud in "${clouds[@]}"; do
        if [[ -d $dir/$cloud ]]; then
            # shellcheck disable=SC2046
            env $(cluster_env "$cloud") "$script_dir/cluster.sh" down --dir "$dir/$cloud" 9>&- ||
                say "$cloud: its teardown reported problems"
        fi
    done
    network_down
}

cmd_down() {
    need_root
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -w 300 9 || die "timed out waiting for the lock on $dir"
    cmd_down_locked
    say "stopped the clouds in $dir"
}

# cut CLOUD: its traffic to and from the other clouds is dropped, in its own namespace.
# The rules that cut CLOUD off from OTHER, one per line: CHAIN MATCH ADDRESS.
cut_rules() {
    local ip
    ip=$(cloud_ip "$1")
    printf '%s\n' "INPUT -s $ip" "FORWARD -s $ip" "OUTPUT -d $ip" "FORWARD -d $ip"
}

# cut CLOUD: its traffic to and from the other clouds is dropped, in its own namespace. Cutting
# twice adds nothing.
cmd_cut() {
    local cloud=$1 other chain match address
    for other in "${clouds[@]}"; do
        [[ $other == "$cloud" ]] && continue
        while read -r chain match address; do
            in_cloud "$cloud" iptables -w -C "$chain" "$match" "$address" -j DROP 2>/dev/null ||
                in_cloud "$cloud" iptables -w -I "$chain" "$match" "$address" -j DROP
        done < <(cut_rules "$other")
    done
    say "$cloud cut off from the other clouds"
}

cmd_heal() {
    local cloud=$1 other chain match address
    for other in "${clouds[@]}"; do
        [[ $other == "$cloud" ]] && continue
        while read -r chain match address; do
            while in_cloud "$cloud" iptables -w -D "$chain" "$match" "$address" -j DROP 2>/dev/null; do :; done
        done < <(cut_rules "$other")
    done
    say "$cloud healed"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd=$1 target=""
    shift
    dir="$cache_dir/clouds"
    while [[ $# -gt 0 ]]; do
        case $1 in
            --dir) dir=${2:?--dir needs a value}; shift 2 ;;
            --dir=*) dir=${1#--dir=}; shift ;;
            -h | --help) usage ;;
            -*) die "unknown argument: $1" ;;
            *) target=$1; shift ;;
        esac
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        env) print_env ;;
        cut) need_root; cmd_cut "${target:?cut needs a cloud}" ;;
        heal) need_root; cmd_heal "${target:?heal needs a cloud}" ;;
        *) usage ;;
    esac
}

main "$@"
