#!/usr/bin/env bash
# Builds the pinned NODE binaries (kubelet, kube-proxy, crictl, and
# metrics-server, which runs beside them as a host process) that the
# real-node e2e runs, from the Go module proxy only, into the same cache root
# as deploy/e2e/hack/build-bins.sh (outside the repository, keyed by version),
# with the same build module (hack/lib.sh) in a sibling directory. The Go
# build cache is shared, so packages the control plane already compiled are
# not compiled twice. Logs its progress every 30 s.
#
# Prints the bin directory on stdout as its last line; logs go to stderr.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.0}

CACHE=${KNOWINGNODE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/knowingnode}
BIN="$CACHE/node-k8s-$K8S_VERSION-crictl-$CRICTL_VERSION-metrics-server-$METRICS_SERVER_VERSION/bin"
SRC="$CACHE/src"
mkdir -p "$BIN" "$SRC"

# One build at a time per cache: concurrent runs wait, then find it built.
exec 9>"$CACHE/.build-node-bins.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off
log() { printf '%s build-node-bins: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# shellcheck source=../../hack/lib.sh
source "$(dirname "$0")/../../hack/lib.sh"

dir="$SRC/kubernetes-node-$K8S_VERSION"
for b in kubelet kube-proxy; do
  [[ -x "$BIN/$b" ]] && continue
  k8s_module "$dir" knowingnode.local/k8snodebuild "$K8S_VERSION" kube-proxy kubelet
  build_with_progress "$dir" "$BIN/$b" "k8s.io/kubernetes/cmd/$b" "$(k8s_ldflags "$K8S_VERSION")"
done
if [[ "${WITH_CRICTL:-1}" == 1 ]]; then
  install_tool "$BIN" crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
fi
# The HPAs' resource metrics (its own module, with its own k8s.io/* pins).
install_tool "$BIN" metrics-server "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
log "node binaries in $BIN"
echo "$BIN"
