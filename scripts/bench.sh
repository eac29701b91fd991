#!/usr/bin/env bash
# `make bench`: `kubechain bench --fresh-devnet 4` starts a fresh 4-validator devnet in a temp dir,
# drives load at it and stops it. The bench's last line (JSON: committed_tps, p50_ms, p99_ms, ...)
# is this script's last.
#
# BENCH_TXS, BENCH_ACCOUNTS, BENCH_BATCH size the load; BENCH_BLOCK_INTERVAL_MS,
# BENCH_MAX_BLOCK_TXS and BENCH_POW_BITS the chain; BENCH_PORT the devnet's base port.
set -euo pipefail

kubechain=${KUBECHAIN:?set KUBECHAIN to the kubechain binary}

exec "$kubechain" bench --fresh-devnet 4 \
    --base-port "${BENCH_PORT:-27300}" \
    --block-interval-ms "${BENCH_BLOCK_INTERVAL_MS:-10}" \
    --max-block-txs "${BENCH_MAX_BLOCK_TXS:-5000}" \
    --pow-difficulty-bits "${BENCH_POW_BITS:-8}" \
    --transactions "${BENCH_TXS:-200000}" \
    --accounts "${BENCH_ACCOUNTS:-64}" \
    --batch "${BENCH_BATCH:-1000}"
