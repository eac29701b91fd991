#!/usr/bin/env bash
# `make bench`: starts a fresh 4-validator devnet in a temp dir, drives `kubechain bench` at it and
# stops it. The bench's last line (JSON: committed_tps, p50_ms, p99_ms, ...) is this script's last.
#
# BENCH_TXS, BENCH_ACCOUNTS, BENCH_BATCH size the load; BENCH_BLOCK_INTERVAL_MS,
# BENCH_MAX_BLOCK_TXS and BENCH_POW_BITS the chain; BENCH_PORT the devnet's base port.
set -euo pipefail

kubechain=${KUBECHAIN:?set KUBECHAIN to the kubechain binary}
dir=$(mktemp -d "${TMPDIR:-/tmp}/kubechain-bench.XXXXXX")
port=${BENCH_PORT:-27300}
devnet_pid=

cleanup() {
    if [[ -n $devnet_pid ]] && kill -0 "$devnet_pid" 2>/dev/null; then
        kill -INT "$devnet_pid"
        wait "$devnet_pid" || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

"$kubechain" devnet --validators 4 --dir "$dir" --base-port "$port" --quiet --log-level warn \
    --block-interval-ms "${BENCH_BLOCK_INTERVAL_MS:-10}" \
    --max-block-txs "${BENCH_MAX_BLOCK_TXS:-5000}" \
    --pow-difficulty-bits "${BENCH_POW_BITS:-8}" >"$dir/devnet.log" 2>&1 &
devnet_pid=$!

# Ready = every validator answers /readyz (connected to a quorum, not syncing).
for attempt in $(seq 1 300); do
    ready=0
    for i in 0 1 2 3; do
        if "$kubechain" status --node "http://127.0.0.1:$((port + i))" 2>/dev/null | grep -q '"ready": true'; then
            ready=$((ready + 1))
        fi
    done
    [[ $ready -eq 4 ]] && break
    if ! kill -0 "$devnet_pid" 2>/dev/null || [[ $attempt -eq 300 ]]; then
        echo "bench: the devnet did not become ready:" >&2
        cat "$dir/devnet.log" >&2
        exit 1
    fi
    sleep 0.1
done

"$kubechain" bench --devnet "$dir" \
    --transactions "${BENCH_TXS:-200000}" \
    --accounts "${BENCH_ACCOUNTS:-64}" \
    --batch "${BENCH_BATCH:-1000}"
