#!/usr/bin/env bash
# `make e2e`: the deploy/ manifests against a real Kubernetes control plane.
#
#  1. hack/build-bins.sh builds the pinned components from the Go module proxy
#     into ${XDG_CACHE_HOME:-~/.cache}/knowingnode (cold ~10-15 min on 2 cores,
#     warm: nothing to do);
#  2. deploy/image's tests build the container image without Docker and check it;
#  3. this module's tests render and statically check every overlay, start etcd,
#     kube-apiserver, kube-controller-manager, kube-scheduler, kwok (3 fake
#     nodes) and CoreDNS on loopback, apply every overlay, and stop it all.
#
# Prints one line per scenario; the whole test log when anything fails.
set -euo pipefail
cd "$(dirname "$0")"

t0=$(date +%s)
bin=$(hack/build-bins.sh | tail -n 1)
echo "e2e: control-plane binaries ready after $(( $(date +%s) - t0 ))s in $bin"
export KNOWINGNODE_K8S_BIN=$bin

log=$(mktemp -t knowingnode-e2e-log.XXXXXX)
trap 'rm -f "$log"' EXIT
# The repository's go.work joins this module with the app's, so the app's
# packages come from the working tree and no go.mod is rewritten by a run.
status=0
for mod in ../image .; do
  if ! (cd "$mod" && go vet ./... && go test -v -count=1 -timeout 30m ./...) >"$log" 2>&1; then
    cat "$log"
    status=1
    break
  fi
  grep -E '^(e2e |ok |--- FAIL|FAIL)' "$log" || true
done
echo "e2e: done in $(( $(date +%s) - t0 ))s"
exit $status
