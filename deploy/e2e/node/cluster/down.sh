#!/usr/bin/env bash
# down.sh: tears down what up.sh started (same STATE), whatever state it is
# in, and leaves nothing behind: pods (through the CRI, so CNI releases their
# addresses and hostPort rules), containers, shims, daemons, mounts, network
# namespaces, bridges, cgroups, the kube-proxy/kubelet/CNI iptables chains,
# and the sysctls it changed. With KEEP_LOGS=<dir> the logs are copied there
# first. Idempotent: safe to run twice or after a failed up.sh.
set -uo pipefail

STATE=${STATE:-/tmp/kne2e}
NODE_BIN=${NODE_BIN:-}
log() { printf '%s down: %s\n' "$(date -u +%H:%M:%S.%N | cut -c1-12)" "$*" >&2; }
[[ -d "$STATE" ]] || { log "nothing at $STATE"; exit 0; }
[[ -z "$NODE_BIN" && -f "$STATE/node-bin" ]] && NODE_BIN=$(cat "$STATE/node-bin")

if [[ -n "${KEEP_LOGS:-}" && -d "$STATE/logs" ]]; then
  mkdir -p "$KEEP_LOGS" && cp -r "$STATE/logs/." "$KEEP_LOGS/" 2>/dev/null
  # The pods' own logs, per node.
  for d in "$STATE"/node*/pod-logs; do
    [[ -d "$d" ]] && cp -rL "$d" "$KEEP_LOGS/$(basename "$(dirname "$d")")-pod-logs" 2>/dev/null
  done
  log "logs kept in $KEEP_LOGS"
fi

# Stops the processes of the named pid files at once: SIG (TERM by default)
# to all, then KILL whatever still runs after GRACE tenths of a second.
stop() {
  local sig=${SIG:-TERM} grace=${GRACE:-30} pids=() f pid
  for name in "$@"; do
    f="$STATE/pids/$name"
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    kill -"$sig" "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$f"
  done
  for ((i = 0; i < grace; i++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && return 0
    sleep 0.1
  done
}
pidnames() { for f in "$STATE"/pids/$1; do [[ -e "$f" ]] && basename "$f"; done; }

# 1. Nothing may start new pods or rewrite rules while we remove them.
#    Their state is thrown away, so no grace is needed.
SIG=KILL stop kube-controller-manager kube-scheduler kube-proxy $(pidnames 'kubelet-node*')

log "pods"
# 2. Pods, through each node's CRI: CNI DEL frees IPs, veths and hostPorts.
for dir in "$STATE"/node*/; do
  sock="$dir/containerd.sock"
  [[ -S "$sock" ]] || continue
  if [[ -n "$NODE_BIN" && -x "$NODE_BIN/crictl" ]]; then
    "$NODE_BIN/crictl" -r "unix://$sock" -t 20s rmp -fa >/dev/null 2>&1 ||
      log "crictl rmp in $dir failed; falling back to runc"
  fi
  # Whatever is left: kill the containers with runc directly, and drop
  # libcni's cached results of their sandboxes (no CNI DEL ran for them).
  # The shim keeps runc's state under <Root>/<containerd namespace>.
  for root in "$dir"/runc/*/; do
    [[ -d "$root" ]] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      runc --root "$root" kill "$id" KILL 2>/dev/null
      runc --root "$root" delete -f "$id" 2>/dev/null
      rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null
    done
  done
done

log "runtimes"
# 3. The runtimes, and the shims they started (found by their socket path,
#    which is unique to this STATE, and ended by pid).
GRACE=20 stop $(pidnames 'containerd-node*')
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
  case "$cmd" in
    *containerd-shim*"$STATE/"*) kill -KILL "${p#/proc/}" 2>/dev/null && log "killed shim ${p#/proc/}" ;;
  esac
done

log "control plane"
# Last resort, and a check: any process still in the kubelets' cgroup trees
# is a container of ours whose runtime is gone. Killed by pid.
if [[ -f "$STATE/cgroups" ]]; then
  for ((round = 0; round < 20; round++)); do
    mapfile -t left < <(while read -r cg; do
      for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        [[ -d "${h%/}$cg" ]] && find "${h%/}$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
      done
    done <"$STATE/cgroups" | sort -u)
    [[ ${#left[@]} -eq 0 ]] && break
    [[ $round -eq 0 ]] && log "killing ${#left[@]} container processes left in the node cgroups"
    kill -KILL "${left[@]}" 2>/dev/null
    sleep 0.2
  done
fi

# 4. DNS and the control plane.
SIG=KILL stop coredns kube-apiserver etcd
SIG=KILL stop $(pidnames '*')

log "iptables"
# 5. iptables: kube-proxy's own clean-up, then any chain of ours left
#    (KUBE-* from kube-proxy and the kubelet, CNI-* from portmap/bridge).
if [[ -n "$NODE_BIN" && -x "$NODE_BIN/kube-proxy" ]]; then
  "$NODE_BIN/kube-proxy" --cleanup >/dev/null 2>&1
fi
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for t in filter nat mangle raw; do
    "$ipt" -t "$t" -S 2>/dev/null | grep -E -- '-j (KUBE|CNI)-' | grep -E '^-A ' | while read -r line; do
      # The rule as printed, quoted comments included, with -A turned into -D.
      eval "\"\$ipt\" -t \"\$t\" ${line/-A /-D }" 2>/dev/null
    done
    for c in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
      "$ipt" -t "$t" -F "$c" 2>/dev/null
    done
    for c in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
      "$ipt" -t "$t" -X "$c" 2>/dev/null
    done
  done
done
# The kubelet (1.33+) and kube-proxy may also keep nftables tables of their own.
if command -v nft >/dev/null; then
  for fam_tab in "ip kube-proxy" "ip6 kube-proxy" "ip kubelet" "ip6 kubelet"; do
    nft list table $fam_tab >/dev/null 2>&1 && nft delete table $fam_tab
  done
fi
# Tables that iptables-nft created for us and that are now empty of rules.
if command -v nft >/dev/null && [[ -f "$STATE/nft-tables.before" ]]; then
  nft list tables 2>/dev/null | while read -r _ fam tab; do
    grep -qx "table $fam $tab" "$STATE/nft-tables.before" && continue
    nft -j list table "$fam" "$tab" 2>/dev/null | grep -q '"rule"' && continue
    nft delete table "$fam" "$tab"
  done
fi
command -v conntrack >/dev/null && conntrack -D -s 10.244.0.0/16 >/dev/null 2>&1

log "bridges, mounts, cgroups, sysctls"
# 6. Bridges, and any veth still attached to them (a namespace can outlive
#    its pod for a while, e.g. with sockets in TIME_WAIT).
if [[ -f "$STATE/bridges" ]]; then
  while read -r br; do
    ip link show "$br" >/dev/null 2>&1 || continue
    for v in $(ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$v" 2>/dev/null
    done
    ip link del "$br"
  done <"$STATE/bridges"
fi

# 7. Mounts under STATE, deepest first (pod volumes, rootfs overlays, netns,
#    shm, and STATE's own shared bind mount last).
for ((round = 0; round < 5; round++)); do
  mapfile -t mnts < <(awk -v s="$STATE" '$5 == s || index($5, s "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
  [[ ${#mnts[@]} -eq 0 ]] && break
  for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

# 8. The kubelets' cgroup trees, leaves first.
if [[ -f "$STATE/cgroups" ]]; then
  while read -r cg; do
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
      d="${h%/}$cg"
      [[ -d "$d" ]] || continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  done <"$STATE/cgroups"
fi

# A shim that was killed (not stopped through the CRI) leaves its socket in
# /run/containerd/s: remove those made since up.sh started that nothing
# listens on any more.
if [[ -d /run/containerd/s && -f "$STATE/nodes" ]]; then
  listening=$(ss -xlH 2>/dev/null)
  find /run/containerd/s -maxdepth 1 -type s -newer "$STATE/nodes" 2>/dev/null | while read -r sock; do
    grep -qF "$sock" <<<"$listening" || rm -f "$sock"
  done
fi
# The shims' socket directory and libcni's cache, when they were ours.
if [[ -f "$STATE/created-run-containerd" ]]; then
  rmdir /run/containerd/s /run/containerd 2>/dev/null
fi
if [[ -f "$STATE/created--var-lib-cni" ]]; then
  rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null
fi
# The kubelet's log directories, when this cluster made them: only our
# kubelets wrote there (their pods are gone, and so are the links to them).
for p in /var/log/containers /var/log/pods; do
  [[ -f "$STATE/created-${p//\//-}" ]] && rm -rf "$p"
done

# 9. Sysctls back to what they were.
if [[ -f "$STATE/sysctls" ]]; then
  tac "$STATE/sysctls" | while read -r key val; do
    echo "$val" >"/proc/sys/${key//.//}" 2>/dev/null
  done
fi

rm -rf "$STATE"
log "down: $STATE removed"
