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
# `make fuzz`: seconds per target, and which targets (default: every file in fuzz/fuzz_targets/).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
# The short run `make test` includes.
FUZZ_SHORT_SECONDS = 10

SIM = $(CARGO) run $(PROFILE) -p kubechain-sim --
# Binaries and end-to-end suites are built for the whole workspace, like clippy and the unit
# tests: one feature set, so dependencies (RocksDB's C++ above all) are compiled once, not once
# per package selection.
BINS = $(CARGO) build $(PROFILE) --workspace --bins
E2E = $(CARGO) test $(PROFILE) --workspace --test
KUBECHAIN = $(CARGO_TARGET_DIR)/release/kubechain
# Where `make run` keeps its devnet (resumed on the next run).
DEVNET ?= .devnet
# Where `make install` puts the kubechain binary (on PATH in most login shells).
BINDIR ?= $(HOME)/.local/bin

.PHONY: help setup fmt lint openapi crds examples monitoring monitoring-check e2e-monitoring unit teeth fuzz fuzz-short e2e-node e2e-byzantine e2e-operator images e2e-images e2e-kubelet e2e-reconfigure helm-check e2e-helm e2e-multicloud test sim soak run install bench build cluster cluster-down

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: SEEDS=$(SEEDS) REPLICAS=$(REPLICAS) SEED=$(SEED) FUZZ_SECONDS=$(FUZZ_SECONDS) CACHE=$(CACHE)"

setup: ## install what a fresh machine lacks (rustfmt, clippy, Debian packages)
	KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh

fmt: ## format all Rust code (the fuzz workspace too)
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml

lint: ## check formatting, that no two modules import each other, and run clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	scripts/module-cycles.py
	$(CARGO) clippy --workspace --all-targets $(PROFILE) -- -D warnings
	$(CARGO) clippy -p kubechain-sim --all-targets $(PROFILE) --features bug-quorum-2f -- -D warnings
	$(CARGO) clippy -p kubechain-sim --all-targets $(PROFILE) --features bug-newview-drops-prepared -- -D warnings
	$(CARGO) clippy -p kubechain-sim --all-targets $(PROFILE) --features bug-unchecked-body -- -D warnings
	$(CARGO) clippy -p kubechain-sim --all-targets $(PROFILE) --features bug-strict-single -- -D warnings

openapi: ## regenerate the node API's OpenAPI document (node/api/openapi.json) from the kubechain-api types
	$(CARGO) run $(PROFILE) -q -p kubechain-api --bin openapigen > node/api/openapi.json.tmp
	mv node/api/openapi.json.tmp node/api/openapi.json

crds: ## regenerate the Blockchain CRD (crds/ and the operator chart's copy) from the Rust types
	$(CARGO) run $(PROFILE) -q -p kubechain-crds --bin crdgen > crds/blockchain.kubechain.dev.yaml.tmp
	mv crds/blockchain.kubechain.dev.yaml.tmp crds/blockchain.kubechain.dev.yaml
	cp crds/blockchain.kubechain.dev.yaml charts/kubechain-operator/files/blockchain.kubechain.dev.yaml

monitoring: ## regenerate the dashboards and Prometheus rules (monitoring/ and the operator chart's copy) from the mixin in monitoring/src
	$(CARGO) run $(PROFILE) -q -p kubechain-monitoring --bin mixin -- .

monitoring-check: setup ## the Prometheus rules pass `promtool check rules` and their unit tests (each alert fired on a crafted series, silent on a healthy one); the dashboards load strictly into grafana-foundation-sdk's dashboard model
	promtool check rules monitoring/prometheus/kubechain-rules.yaml
	promtool test rules monitoring/prometheus/kubechain-rules.test.yaml
	KUBECHAIN_CACHE='$(CACHE)' scripts/dashboards-check.sh

build: ## build the binaries (kubechain, kubechain-operator, ...)
	$(BINS)

unit: ## unit tests and the seeded simulation suite of the whole workspace
	$(CARGO) test --workspace --exclude kubechain-e2e $(PROFILE)

e2e-node: build ## multi-process suites: real kubechain processes on loopback (faults, crashes, API limits, validators added and removed on chain)
	$(E2E) node_faults --test node_crash --test node_nemesis --test api_limits --test node_reconfigure -- --nocapture

e2e-byzantine: build ## one Byzantine validator over the wire protocol against three honest processes; what it sent, what they refused, peak RSS
	$(E2E) node_byzantine -- --nocapture

e2e-operator: ## the operator on real control planes (Go-built, cached), kwok nodes: one cluster with real validators, and a hub with two member clusters
	KUBECHAIN_CACHE='$(CACHE)' scripts/k8s-build.sh >/dev/null
	$(BINS)
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) operator --test operator_clusters -- --nocapture

images: ## node and operator OCI image tarballs, built without Docker, in $(CACHE)/images
	$(BINS)
	KUBECHAIN_CACHE='$(CACHE)' scripts/image.sh node --no-build
	KUBECHAIN_CACHE='$(CACHE)' scripts/image.sh operator --no-build

e2e-images: ## the images are well-formed, run as non-root, and match their Dockerfiles
	$(BINS)
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) images

e2e-kubelet: images ## the example chain in real pods on a real node (root: containerd, kubelet, CoreDNS)
	KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh --kubelet
	KUBECHAIN_CACHE='$(CACHE)' scripts/k8s-build.sh --kubelet >/dev/null
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) kubelet -- --nocapture

e2e-reconfigure: images ## the chain follows its spec on a real node under load (root): validators 4 -> 5 -> 7 -> 4 (a scale-up that waits for a validator that is down), a rolling image change, members, admins and consensus parameters
	KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh --kubelet
	KUBECHAIN_CACHE='$(CACHE)' scripts/k8s-build.sh --kubelet >/dev/null
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) reconfigure -- --nocapture

helm-check: ## the operator chart: helm lint, its template unit tests (helm-unittest), both built from Go modules; examples/operator.yaml is what the chart renders
	KUBECHAIN_CACHE='$(CACHE)' scripts/helm-build.sh >/dev/null
	"$$(KUBECHAIN_CACHE='$(CACHE)' scripts/helm-build.sh --bin-dir)/helm" lint --strict charts/kubechain-operator
	"$$(KUBECHAIN_CACHE='$(CACHE)' scripts/helm-build.sh --bin-dir)/helm-unittest" charts/kubechain-operator
	diff -u examples/operator.yaml <(KUBECHAIN_CACHE='$(CACHE)' scripts/operator-manifest.sh) \
		|| { echo "examples/operator.yaml differs from the chart: run make examples" >&2; exit 1; }

examples: ## regenerate examples/operator.yaml (the operator without Helm) from the chart
	KUBECHAIN_CACHE='$(CACHE)' scripts/helm-build.sh >/dev/null
	KUBECHAIN_CACHE='$(CACHE)' scripts/operator-manifest.sh > examples/operator.yaml.tmp
	mv examples/operator.yaml.tmp examples/operator.yaml

e2e-helm: images helm-check ## a new user's path on a real node (root): helm install, the example chain, a receipt verified offline, helm test, upgrades of a value and of the CRD, uninstall
	KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh --kubelet
	KUBECHAIN_CACHE='$(CACHE)' scripts/k8s-build.sh --kubelet >/dev/null
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) helm -- --nocapture

e2e-monitoring: monitoring-check ## the monitoring mixin on a real Prometheus (Debian's): every rule loads and evaluates, every dashboard, variable and alert query runs and returns series, scraping a devnet under load and the operator; a stopped validator makes alerts pending
	KUBECHAIN_CACHE='$(CACHE)' scripts/k8s-build.sh >/dev/null
	$(BINS)
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) monitoring -- --nocapture

e2e-multicloud: images ## one chain over three real clusters with WAN delay (root): hub operator in a pod, cuts, a hung control plane, deletion
	KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh --kubelet
	KUBECHAIN_CACHE='$(CACHE)' scripts/k8s-build.sh --kubelet >/dev/null
	KUBECHAIN_CACHE='$(CACHE)' $(E2E) multicloud -- --nocapture

teeth: ## prove the simulation checker catches deliberately planted consensus bugs
	$(CARGO) test $(PROFILE) -p kubechain-sim --features bug-quorum-2f --test teeth
	$(CARGO) test $(PROFILE) -p kubechain-sim --features bug-newview-drops-prepared --test teeth
	$(CARGO) test $(PROFILE) -p kubechain-sim --features bug-unchecked-body --test teeth
	$(CARGO) test $(PROFILE) -p kubechain-sim --features bug-strict-single --test teeth

fuzz: ## coverage-guided fuzzing of every byte parser, FUZZ_SECONDS each (FUZZ_TARGETS="a b" for some); execs and peak RSS per target
	KUBECHAIN_CACHE='$(CACHE)' scripts/fuzz.sh --seconds '$(FUZZ_SECONDS)' $(FUZZ_TARGETS)

fuzz-short: ## the fuzz run of `make test`: regression inputs replayed, then 10 s per target
	KUBECHAIN_CACHE='$(CACHE)' scripts/fuzz.sh --seconds '$(FUZZ_SHORT_SECONDS)'

test: setup ## everything that fits in CI: lint, teeth, unit, fuzz-short, e2e-node, e2e-byzantine, e2e-operator, e2e-monitoring (with monitoring-check), e2e-images, e2e-kubelet, e2e-reconfigure, e2e-helm (with helm-check), e2e-multicloud (called by .ci/run)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory teeth
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory e2e-node
	$(MAKE) --no-print-directory e2e-byzantine
	$(MAKE) --no-print-directory e2e-operator
	$(MAKE) --no-print-directory e2e-monitoring
	$(MAKE) --no-print-directory e2e-images
	$(MAKE) --no-print-directory e2e-kubelet
	$(MAKE) --no-print-directory e2e-reconfigure
	$(MAKE) --no-print-directory e2e-helm
	$(MAKE) --no-print-directory e2e-multicloud

sim: ## consensus simulation: SEEDS=N seeds (or SEED=S to replay one) with REPLICAS=4|7
	$(SIM) --replicas $(REPLICAS) $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

soak: ## 10,000 simulation seeds each for 4 and 7 replicas
	$(SIM) --seeds 10000 --replicas 4
	$(SIM) --seeds 10000 --replicas 7

run: build ## local devnet of 4 validators in $(DEVNET) (created once, resumed after); Ctrl-C stops it
	$(KUBECHAIN) devnet --validators 4 --dir '$(DEVNET)' --log-level warn

install: build ## copy the kubechain binary to $(BINDIR) (BINDIR=... to choose)
	install -D -m 0755 '$(KUBECHAIN)' '$(BINDIR)/kubechain'
	@case ":$$PATH:" in *':$(BINDIR):'*) ;; *) echo "note: $(BINDIR) is not on your PATH" >&2 ;; esac

bench: build ## load on a fresh 4-validator devnet; last line is JSON {committed_tps, p50_ms, p99_ms}
	KUBECHAIN='$(KUBECHAIN)' scripts/bench.sh

# The control plane's binaries are built from Go modules into $(CACHE)/k8s (slow once, cached).
# KWOK_NODES=N sets the number of fake nodes (default 3, or 0 with KUBELET=1); CLUSTER_DIR the
# state dir (default $(CACHE)/cluster). KUBELET=1 adds a real node (containerd, kubelet, CoreDNS,
# local-path volumes; needs root) with the kubechain images imported.
# `make cluster` prints only `export ...` lines on stdout: eval "$$(make cluster)" works.
KWOK_NODES ?=
KUBELET ?=
CLOUDS ?=
CLUSTER_DIR ?= $(CACHE)/cluster

cluster: ## starts the local real control plane (Go-built) with kwok nodes (KUBELET=1: a real node; CLOUDS=3: three real clusters with WAN delay); prints the KUBECONFIG
ifneq ($(KUBELET)$(CLOUDS),)
	@KUBECHAIN_CACHE='$(CACHE)' scripts/setup.sh --kubelet >&2
	@$(MAKE) --no-print-directory images >&2
endif
ifeq ($(CLOUDS),3)
	@KUBECHAIN_CACHE='$(CACHE)' scripts/clouds.sh up
else
	@KUBECHAIN_CACHE='$(CACHE)' scripts/cluster.sh up --dir '$(CLUSTER_DIR)' \
		$(if $(KWOK_NODES),--kwok-nodes '$(KWOK_NODES)') $(if $(KUBELET),--kubelet)
endif

cluster-down: ## stops the local control plane started by `make cluster` (CLOUDS=3: the three clouds)
ifeq ($(CLOUDS),3)
	KUBECHAIN_CACHE='$(CACHE)' scripts/clouds.sh down
else
	KUBECHAIN_CACHE='$(CACHE)' scripts/cluster.sh down --dir '$(CLUSTER_DIR)'
endif
