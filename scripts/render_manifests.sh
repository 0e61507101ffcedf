#!/usr/bin/env bash
# Render the helm chart into manifests/ for kubectl users (`kubectl apply -n recsys -f manifests/recsys.yaml`).
# The chart is the source of truth; tests/deploy/test_chart.py fails while manifests/ is stale.
#   manifests/recsys.yaml                the chart's defaults
#   manifests/<name>.yaml                with manifests/values/<name>.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
HELM="${HELM:-.tools/bin/helm}"
[ -x "$HELM" ] || HELM=$(command -v helm) || { echo "no helm: run scripts/install_tools.sh" >&2; exit 1; }
render() { "$HELM" template recsys helm/recsys --namespace recsys "$@"; }
render > manifests/recsys.yaml
for values in manifests/values/*.yaml; do
  render -f "$values" > "manifests/$(basename "$values")"
done
ls -1 manifests/*.yaml
