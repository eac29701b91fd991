# shellcheck shell=bash
# Process handling shared by scripts/cluster.sh and scripts/node.sh (sourced, not run). Both keep
# their state in a cluster dir `$dir` and set `log_name` before sourcing this.

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The real node's address (node.sh puts it on a bridge; cluster.sh binds the apiserver to it).
node_ip="${NODE_IP:-10.250.0.1}"
# The network namespace the cluster runs in (scripts/clouds.sh gives each cloud its own, with
# the node's address already on its eth0); empty: the machine's own.
netns="${KUBECHAIN_NETNS:-}"

# in_ns CMD...: CMD in the cluster's network namespace (where its loopback and iptables are).
in_ns() {
    if [[ -n $netns ]]; then
        nsenter --net="/run/netns/$netns" "$@"
    else
        "$@"
    fi
}

pid_file() { echo "$dir/run/$1.pid"; }

# alive PID: PID runs and is one of this cluster's processes (its command line names DIR), so a
# recycled PID of some unrelated process is never signalled. No pipe: with pipefail, a `grep -q`
# that stops early would fail the check.
alive() {
    local pid=$1 cmdline
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmdline == *"$dir/"* ]]
}

# start NAME EXE ARGS...: starts EXE in its own session (it outlives the script and a Ctrl-C of
# `make`), logging to DIR/logs/NAME.log, and records its PID at once so `down` finds it.
start() {
    local name=$1 exe=$2 pid
    shift 2
    # In a cloud's namespace through nsenter, which execs EXE: the PID is still EXE's.
    local enter=()
    [[ -n $netns ]] && enter=(nsenter --net="/run/netns/$netns")
    # 9>&-: the children must not inherit the lock on DIR.
    setsid "${enter[@]}" "$exe" "$@" </dev/null >"$dir/logs/$name.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$(pid_file "$name")"
    say "started $name (pid $pid)"
}

# stop_pid PID [GRACE]: SIGTERM, up to GRACE seconds (15) to exit, then SIGKILL; returns once it
# is gone.
stop_pid() {
    local pid=$1 deadline=$((SECONDS + ${2:-15}))
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then
        say "pid $pid ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    while alive "$pid"; do sleep 0.1; done
    return 0
}

# free_ports N: N distinct TCP ports nothing listens on in 127.0.0.1, from 20000-32767 (below
# Linux's ephemeral range, so outgoing connections do not take them between pick and bind).
free_ports() {
    local n=$1 picked=() p
    while ((${#picked[@]} < n)); do
        p=$((20000 + RANDOM % 12768))
        [[ " ${picked[*]} " == *" $p "* ]] && continue
        # A refused connection means the port is free.
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || picked+=("$p")
    done
    echo "${picked[@]}"
}
