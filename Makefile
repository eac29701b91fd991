# kubechain — the make targets every issue and check uses (docs: DESIGN.md section 6).
# `make help` lists them.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Build output lives outside the clone so fresh clones (CI) reuse it.
CACHE ?= $(HOME)/.cache/kubechain
export CARGO_TARGET_DIR ?= $(CACHE)/target
CARGO ?= cargo
# One profile for everything (tests, simulations, later benchmarks and images): the workspace's
# release profile keeps debug assertions and overflow checks on, so one build serves all.
PROFILE = --release

SEEDS ?= 200
REPLICAS ?= 4
SEED ?=

SIM = $(CARGO) run $(PROFILE) -p kubechain-sim --

.PHONY: help setup fmt lint unit teeth test sim soak run

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: SEEDS=$(SEEDS) REPLICAS=$(REPLICAS) SEED=$(SEED) CACHE=$(CACHE)"

setup: ## install what a fresh machine lacks (rustfmt, clippy, Debian packages)
	KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh

fmt: ## format all Rust code
	$(CARGO) fmt --all

lint: ## check formatting and run clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets $(PROFILE) -- -D warnings
	$(CARGO) clippy -p kubechain-sim --all-targets $(PROFILE) --features bug-quorum-2f -- -D warnings
	$(CARGO) clippy -p kubechain-sim --all-targets $(PROFILE) --features bug-newview-drops-prepared -- -D warnings

unit: ## unit tests and the seeded simulation suite of the whole workspace
	$(CARGO) test --workspace $(PROFILE)

teeth: ## prove the simulation checker catches deliberately planted consensus bugs
	$(CARGO) test $(PROFILE) -p kubechain-sim --features bug-quorum-2f --test teeth
	$(CARGO) test $(PROFILE) -p kubechain-sim --features bug-newview-drops-prepared --test teeth

test: setup ## everything that fits in CI: lint, teeth, unit (called by .ci/run)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory teeth
	$(MAKE) --no-print-directory unit

sim: ## consensus simulation: SEEDS=N seeds (or SEED=S to replay one) with REPLICAS=4|7
	$(SIM) --replicas $(REPLICAS) $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

soak: ## 10,000 simulation seeds each for 4 and 7 replicas
	$(SIM) --seeds 10000 --replicas 4
	$(SIM) --seeds 10000 --replicas 7

# Until the node runtime exists this shows the consensus core running 4 replicas in the
# deterministic simulator; the node-runtime issue replaces it with a real local 4-validator devnet.
run: ## watch a 4-replica chain commit blocks (simulated until the node runtime lands)
	$(SIM) --replicas 4 --seed 1 --verbose
