#!/usr/bin/env bash
# Builds the pinned control-plane binaries that `make e2e` runs, from the Go
# module proxy only, into a cache OUTSIDE the repository keyed by version, so
# warm reruns cost nothing. Each component is built in its own throw-away
# module under the cache: none of their dependencies may reach the project's
# go.mod (nor deploy/e2e/go.mod).
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

# The staging minor: v1.36.3 -> v0.36.3.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=()
  for b in "${want[@]}"; do [[ -x "$BIN/$b" ]] || missing+=("$b"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local dir="$SRC/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  if [[ ! -f "$dir/.tidy" ]]; then
    log "preparing build module for k8s.io/kubernetes $K8S_VERSION"
    local modfile
    modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    {
      echo "module knowingnode.local/k8sbuild"
      echo
      echo "go 1.26.0"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      # Every ./staging replace of the kubernetes module becomes the published
      # staging module at the matching version.
      sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#replace \1 => \1 '"$STAGING_VERSION"'#p' "$modfile"
    } >"$dir/go.mod"
    cat >"$dir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    (cd "$dir" && go mod tidy -e >&2) && touch "$dir/.tidy"
  fi
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  # kubectl reads its version from component-base too, and the client-go copy.
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
  for b in "${missing[@]}"; do
    log "building $b $K8S_VERSION"
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b") && mv "$BIN/$b.tmp" "$BIN/$b"
  done
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return 0
  local dir="$SRC/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  log "building etcd $ETCD_VERSION"
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
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" .) && mv "$BIN/etcd.tmp" "$BIN/etcd"
}

# go install into a private GOBIN: module-mode install never touches a go.mod.
install_tool() {
  local name=$1 pkg=$2
  [[ -x "$BIN/$name" ]] && return 0
  log "installing $pkg"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "$pkg"
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
install_tool kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
build_stages
install_tool coredns "github.com/coredns/coredns@$COREDNS_VERSION"
build_kubernetes
log "all binaries in $BIN"
echo "$BIN"
