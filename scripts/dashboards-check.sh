#!/usr/bin/env bash
# Loads the monitoring mixin's dashboards (monitoring/dashboards/*.json) into the typed
# dashboard model of grafana-foundation-sdk (Apache-2.0, a Go module), strictly: an unknown or
# mistyped field, or a missing required one, fails. Grafana's server is not run here.
#
# Usage: scripts/dashboards-check.sh
# Env:   KUBECHAIN_CACHE (Go modules and build cache)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# -eq 0 ]] || usage
use_cached_go
cd "$(dirname "${BASH_SOURCE[0]}")/../monitoring/schema-check"
go run . ../dashboards/*.json
