#!/usr/bin/env bash
# Builds the pinned NODE binaries (kubelet, kube-proxy, crictl) that the
# real-node e2e runs, from the Go module proxy only, into the same cache root
# as deploy/e2e/hack/build-bins.sh (outside the repository, keyed by version).
# kubelet and kube-proxy are built in a sibling throw-away module
# (src/kubernetes-node-<version>) made exactly like the control plane's one:
# require k8s.io/kubernetes and turn each ./staging replace into the published
# staging module. The Go build cache is shared, so packages the control plane
# already compiled are not compiled twice.
#
# Prints the bin directory on stdout as its last line; logs go to stderr.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}

CACHE=${KNOWINGNODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/knowingnode}
BIN="$CACHE/node-k8s-$K8S_VERSION-crictl-$CRICTL_VERSION/bin"
SRC="$CACHE/src"
mkdir -p "$BIN" "$SRC"

# One build at a time per cache: concurrent runs wait, then find it built.
exec 9>"$CACHE/.build-node-bins.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off
log() { printf '%s build-node-bins: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

STAGING_VERSION="v0.${K8S_VERSION#v1.}"
MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)

build_kubernetes_node() {
  local want=(kubelet kube-proxy) missing=()
  for b in "${want[@]}"; do [[ -x "$BIN/$b" ]] || missing+=("$b"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local dir="$SRC/kubernetes-node-$K8S_VERSION"
  mkdir -p "$dir"
  if [[ ! -f "$dir/.tidy" ]]; then
    log "preparing node build module for k8s.io/kubernetes $K8S_VERSION"
    local modfile
    modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    {
      echo "module knowingnode.local/k8snodebuild"
      echo
      echo "go 1.26.0"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#replace \1 => \1 '"$STAGING_VERSION"'#p' "$modfile"
    } >"$dir/go.mod"
    cat >"$dir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
    (cd "$dir" && go mod tidy -e >&2) && touch "$dir/.tidy"
  fi
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR -X $pkg.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$MINOR"
  for b in "${missing[@]}"; do
    log "building $b $K8S_VERSION"
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b") && mv "$BIN/$b.tmp" "$BIN/$b"
  done
}

install_tool() {
  local name=$1 pkg=$2
  [[ -x "$BIN/$name" ]] && return 0
  log "installing $pkg"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "$pkg"
}

build_kubernetes_node
if [[ "${WITH_CRICTL:-1}" == 1 ]]; then
  install_tool crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
fi
log "node binaries in $BIN"
echo "$BIN"
