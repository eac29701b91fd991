#!/usr/bin/env bash
# Prints examples/operator.yaml, the operator installed without Helm, rendered from the chart
# (charts/kubechain-operator, default values, cluster-wide) so the two never drift: its
# namespace, then `helm template` without the CRD (installed apart) and without the test pod.
# Helm's own labels are left out: objects applied with kubectl are not a Helm release.
#
# Usage: scripts/operator-manifest.sh
# Env:   KUBECHAIN_CACHE (where scripts/helm-build.sh keeps Helm)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# -eq 0 ]] || usage
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helm="$("$repo/scripts/helm-build.sh" --bin-dir)/helm"
[[ -x $helm ]] || die "no Helm yet: run scripts/helm-build.sh"

cat <<'HEADER'
# The kubechain operator without Helm, cluster-wide: its namespace, service account, the
# permissions it needs, a metrics Service and one Deployment. Generated from the chart by
# `make examples` (scripts/operator-manifest.sh); do not edit. Install the CRD first:
#   kubectl apply -f crds/blockchain.kubechain.dev.yaml
#   kubectl apply -f examples/operator.yaml
# The image is the one `make images` builds (scripts/image.sh operator).
apiVersion: v1
kind: Namespace
metadata:
  name: kubechain-system
HEADER
"$helm" template kubechain-operator "$repo/charts/kubechain-operator" --namespace kubechain-system \
    --skip-tests --set crds.install=false |
    grep -v -e '^ *helm.sh/chart: ' -e '^ *app.kubernetes.io/managed-by: Helm$'
