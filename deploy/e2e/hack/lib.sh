# Shared by build-bins.sh (control plane) and ../node/cluster/build-node-bins.sh
# (kubelet, kube-proxy): how a pinned Kubernetes component is built from the
# Go module proxy, with progress a newcomer can read. Source it; it needs
# $SRC (the cache's source dir) and a log function.

# The staging minor: v1.36.3 -> v0.36.3.
staging_version() { echo "v0.${1#v1.}"; }

# k8s_module DIR MODULE VERSION CMD...: a throw-away build module in DIR
# that requires k8s.io/kubernetes@VERSION, with every ./staging replace of
# that module turned into the published staging module at the matching
# version, and a tools.go importing k8s.io/kubernetes/cmd/CMD for each CMD.
# Done once per DIR (marked by DIR/.tidy).
k8s_module() {
  local dir=$1 module=$2 version=$3
  shift 3
  [[ -f "$dir/.tidy" ]] && return 0
  mkdir -p "$dir"
  log "preparing build module $module for k8s.io/kubernetes $version"
  local modfile staging
  modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  staging=$(staging_version "$version")
  {
    echo "module $module"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#replace \1 => \1 '"$staging"'#p' "$modfile"
  } >"$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "$@"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >"$dir/tools.go"
  (cd "$dir" && go mod tidy -e >&2) && touch "$dir/.tidy"
}

# k8s_ldflags VERSION: the version stamps kubectl needs to parse the server
# version (component-base and client-go's copy).
k8s_ldflags() {
  local version=$1 minor pkg=k8s.io/component-base/version cg=k8s.io/client-go/pkg/version
  minor=$(echo "$version" | cut -d. -f2)
  echo "-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
    "-X $cg.gitVersion=$version -X $cg.gitMajor=1 -X $cg.gitMinor=$minor"
}

# build_with_progress DIR OUT PKG [LDFLAGS]: go build PKG in DIR into OUT,
# logging every 30 s how many of the packages it must compile are done, the
# time taken and an estimate of the time left, so a cold build of many
# minutes is visibly not a hang.
build_with_progress() {
  local dir=$1 out=$2 pkg=$3 ldflags=${4:--s -w} name total t0 progress pid rc
  name=$(basename "$out")
  t0=$(date +%s)
  # The packages it may compile (those in the build cache are skipped, so
  # a partly warm build ends early, and the estimate is an upper bound).
  total=$(cd "$dir" && go list -deps "$pkg" 2>/dev/null | wc -l || true)
  log "building $name: up to $total packages to compile"
  progress=$(mktemp)
  (cd "$dir" && go build -v -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg") 2>"$progress" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null || break
    local done elapsed left=""
    done=$(grep -vc '^#' "$progress" || true)
    elapsed=$(( $(date +%s) - t0 ))
    if (( done > 0 && total > done )); then
      left=", at most about $(( elapsed * (total - done) / done / 60 + 1 )) min left"
    fi
    log "building $name: $done/$total packages after $(( elapsed / 60 ))m$(( elapsed % 60 ))s$left"
  done
  wait "$pid" && rc=0 || rc=$?
  if (( rc != 0 )); then
    grep -v '^[a-z0-9.]*[./][^ ]*$' "$progress" >&2 || true
    rm -f "$progress"
    return "$rc"
  fi
  rm -f "$progress"
  mv "$out.tmp" "$out"
  log "built $name in $(( $(date +%s) - t0 ))s"
}

# install_tool BIN NAME PKG@VERSION: go install into BIN (module mode never
# touches a go.mod), with the same progress as build_with_progress.
install_tool() {
  local bin=$1 name=$2 pkg=$3 dir
  [[ -x "$bin/$name" ]] && return 0
  dir="$SRC/install-$name-${pkg##*@}"
  if [[ ! -f "$dir/go.mod" ]]; then
    mkdir -p "$dir"
    (cd "$dir" && go mod init "knowingnode.local/install-$name" >&2 && go get "$pkg" >&2)
  fi
  build_with_progress "$dir" "$bin/$name" "${pkg%@*}"
}
