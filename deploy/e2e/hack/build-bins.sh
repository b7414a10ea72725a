#!/usr/bin/env bash
# Builds the pinned control-plane binaries that `make e2e` runs, from the Go
# module proxy only, into a cache OUTSIDE the repository keyed by version, so
# warm reruns cost nothing. Each component is built in its own throw-away
# module under the cache: none of their dependencies may reach the project's
# go.mod (nor deploy/e2e/go.mod). A cold build compiles a few thousand
# packages (15-25 min on 2 cores); it logs its progress every 30 s.
#
# Prints the bin directory on stdout as its last line; logs go to stderr.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}

CACHE=${KNOWINGNODE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/knowingnode}
BIN="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-coredns-$COREDNS_VERSION/bin"
SRC="$CACHE/src"
mkdir -p "$BIN" "$SRC"

# One build at a time per cache: two `make e2e` runs must not write the same
# files (the second waits, then finds everything built).
exec 9>"$CACHE/.build-bins.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off
log() { printf '%s build-bins: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

build_kubernetes() {
  local dir="$SRC/kubernetes-$K8S_VERSION" b
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  for b in "${want[@]}"; do
    [[ -x "$BIN/$b" ]] && continue
    k8s_module "$dir" knowingnode.local/k8sbuild "$K8S_VERSION" "${want[@]}"
    build_with_progress "$dir" "$BIN/$b" "k8s.io/kubernetes/cmd/$b" "$(k8s_ldflags "$K8S_VERSION")"
  done
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return 0
  local dir="$SRC/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
// Command etcd is the upstream etcd server, built from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if [[ ! -f "$dir/go.mod" ]]; then
    (cd "$dir" && go mod init knowingnode.local/etcdbuild >&2 && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 && go mod tidy >&2)
  fi
  build_with_progress "$dir" "$BIN/etcd" .
}

build_stages() {
  # kwok's stage configs ship in its module; copy them next to the binary.
  [[ -d "$BIN/../kwok-stages" ]] && return 0
  local dir
  dir=$(cd "$SRC" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  mkdir -p "$BIN/../kwok-stages.tmp"
  find "$dir/kustomize/stage" -name '*.yaml' ! -name kustomization.yaml -exec cp {} "$BIN/../kwok-stages.tmp/" \;
  chmod -R u+w "$BIN/../kwok-stages.tmp"
  mv "$BIN/../kwok-stages.tmp" "$BIN/../kwok-stages"
}

build_etcd
install_tool "$BIN" kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
build_stages
install_tool "$BIN" coredns "github.com/coredns/coredns@$COREDNS_VERSION"
build_kubernetes
log "all binaries in $BIN"
echo "$BIN"
