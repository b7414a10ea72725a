#!/usr/bin/env bash
# up.sh: a real Kubernetes cluster of one or two nodes on THIS machine, as
# plain host processes: etcd, kube-apiserver (with the aggregation layer on),
# kube-controller-manager, kube-scheduler, and per node a containerd (Debian's,
# with runc and the CNI bridge plugins) and a kubelet; one kube-proxy (iptables
# mode) for the host's single network namespace, CoreDNS as the cluster DNS,
# bound to the first node's bridge address, and metrics-server behind the
# APIService v1beta1.metrics.k8s.io, so HPAs read real CPU. Nothing is pulled:
# the pause image is imported from a tarball you give it. Tear it down with down.sh (same STATE).
#
# Needs root, Linux cgroups v1 or v2, iptables, and:
#   BIN       control-plane binaries (deploy/e2e/hack/build-bins.sh prints it):
#             etcd kube-apiserver kube-controller-manager kube-scheduler kubectl coredns
#   NODE_BIN  node binaries (build-node-bins.sh prints it): kubelet kube-proxy crictl
#             metrics-server
#   PAUSE_TAR a docker-archive tarball of the sandbox image, tagged $PAUSE_IMAGE
# Optional: NODES (1|2, default 1), STATE (default /tmp/kne2e), PORT_BASE
# (default 17000: every host port of the cluster is PORT_BASE + small offset,
# so it can run beside another cluster on loopback).
#
# Example (as root):
#   BIN=$(deploy/e2e/hack/build-bins.sh | tail -1) \
#   NODE_BIN=$(deploy/e2e/node/cluster/build-node-bins.sh | tail -1) \
#   PAUSE_TAR=/tmp/pause.tar NODES=2 deploy/e2e/node/cluster/up.sh
#   export KUBECONFIG=/tmp/kne2e/admin.kubeconfig; kubectl get nodes
#   deploy/e2e/node/cluster/down.sh
set -euo pipefail

: "${BIN:?BIN: directory of the control-plane binaries}"
: "${NODE_BIN:?NODE_BIN: directory of kubelet, kube-proxy, crictl}"
: "${PAUSE_TAR:?PAUSE_TAR: docker-archive tarball of the pause image}"
NODES=${NODES:-1}
STATE=${STATE:-/tmp/kne2e}
PORT_BASE=${PORT_BASE:-17000}
PAUSE_IMAGE=${PAUSE_IMAGE:-knowingnode.local/pause:e2e}
CNI_BIN=${CNI_BIN:-/usr/lib/cni}
SERVICE_CIDR=10.96.0.0/16
CLUSTER_CIDR=10.244.0.0/16
DNS_IP=10.244.0.1 # the first node's bridge address; CoreDNS binds it
HERE=$(cd "$(dirname "$0")" && pwd)

ETCD_PORT=$((PORT_BASE + 1))
ETCD_PEER_PORT=$((PORT_BASE + 2))
API_PORT=$((PORT_BASE + 3))
COREDNS_READY_PORT=$((PORT_BASE + 4))
PROXY_HEALTH_PORT=$((PORT_BASE + 5))
PROXY_METRICS_PORT=$((PORT_BASE + 6))
METRICS_SERVER_PORT=$((PORT_BASE + 7)) # on NODE_IP: an EndpointSlice may not name loopback
# The HPA controller's sync period: the default 15 s, shortened so the test
# cluster reacts within a few seconds of the metrics changing.
HPA_SYNC_PERIOD=${HPA_SYNC_PERIOD:-2s}
# A Service's endpoints spread over several EndpointSlices from 5 endpoints on
# (the default is 100), so discovery is tested merging them.
MAX_ENDPOINTS_PER_SLICE=${MAX_ENDPOINTS_PER_SLICE:-4}
# kubelet n: PORT_BASE + 10*n (API) and + 10*n + 1 (healthz)

NODE_IP=${NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')}
[[ -n "$NODE_IP" ]] || NODE_IP=$(hostname -I | awk '{print $1}')

log() { printf '%s up: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl coredns; do
  [[ -x "$BIN/$b" ]] || die "missing $BIN/$b"
done
for b in kubelet kube-proxy crictl metrics-server; do [[ -x "$NODE_BIN/$b" ]] || die "missing $NODE_BIN/$b"; done
for b in containerd containerd-shim-runc-v2 runc ctr iptables ip openssl unshare; do
  command -v "$b" >/dev/null || die "missing $b (apt-get install containerd runc containernetworking-plugins iptables conntrack iproute2 openssl)"
done
[[ -x "$CNI_BIN/bridge" && -x "$CNI_BIN/host-local" && -x "$CNI_BIN/portmap" && -x "$CNI_BIN/loopback" ]] ||
  die "missing CNI plugins in $CNI_BIN (apt-get install containernetworking-plugins)"
[[ -e "$STATE/pids" ]] && die "$STATE already holds a cluster: run down.sh first"

mkdir -p "$STATE"/{pids,cmds,logs,pki,etcd}
# nftables tables that exist before (iptables-nft creates its tables on first
# use): down.sh removes the ones we brought, once empty.
nft list tables 2>/dev/null >"$STATE/nft-tables.before" || true
# containerd's shims put their sockets under /run/containerd/s whatever the
# config says: down.sh removes the directory if this cluster created it.
[[ -e /run/containerd ]] || touch "$STATE/created-run-containerd"
# Likewise libcni's result cache in /var/lib/cni, and the kubelet's log
# directories: /var/log/containers is hard-coded in the kubelet (its symlinks
# to the pod logs), and /var/log/pods is made even with podLogsDir set. On a
# machine that never ran a kubelet, down.sh removes them again.
for p in /var/lib/cni /var/log/containers /var/log/pods; do
  [[ -e $p ]] || touch "$STATE/created-${p//\//-}"
done
echo "$NODES" >"$STATE/nodes"
echo "$NODE_IP" >"$STATE/node-ip"
echo "$NODE_BIN" >"$STATE/node-bin" # down.sh's crictl and kube-proxy --cleanup

# Sysctls we change, saved so that down.sh restores them.
: >"$STATE/sysctls"
set_sysctl() {
  local key=$1 val=$2 f="/proc/sys/${1//.//}"
  [[ -w "$f" ]] || return 0
  echo "$key $(cat "$f")" >>"$STATE/sysctls"
  echo "$val" >"$f"
}
set_sysctl net.ipv4.ip_forward 1
set_sysctl net.bridge.bridge-nf-call-iptables 1
# kube-proxy sets this itself for NodePorts on 127.0.0.1; saved to restore it.
# The kubelet sets its "kernel defaults" itself, kube-proxy may set
# route_localnet: saved to be restored.
for k in net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic \
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
  f="/proc/sys/${k//.//}"
  [[ -r "$f" ]] && set_sysctl "$k" "$(cat "$f")"
done

# A shared mount over STATE: the kubelets run in their own mount namespaces
# (below) and the volumes they mount under STATE must reach containerd.
mount --bind "$STATE" "$STATE"
mount --make-shared "$STATE"

# Started daemons: one pid file each, for down.sh.
# start runs a daemon of the cluster in its own session, and keeps its
# command line so that restart.sh can run it again after a crash.
start() {
  local name=$1; shift
  printf '%q ' "$@" >"$STATE/cmds/$name"
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name"
}
wait_for() {
  local what=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "$what not ready; see $STATE/logs"
}

# ---- keys and kubeconfigs -------------------------------------------------
openssl genrsa -out "$STATE/pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$STATE/pki/sa.key" -pubout -out "$STATE/pki/sa.pub" 2>/dev/null
TOKEN=$(openssl rand -hex 16)
echo "$TOKEN,admin,admin,system:masters" >"$STATE/pki/tokens.csv"
cat >"$STATE/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kne2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: kne2e
  context: {cluster: kne2e, user: admin}
current-context: kne2e
EOF
KC="$STATE/admin.kubeconfig"

# The aggregation layer: the API server proxies /apis/metrics.k8s.io to
# metrics-server as the "front-proxy-client", a client cert from a CA of its
# own; metrics-server trusts the X-Remote-* headers of that CA's clients
# (it reads the CA from kube-system/extension-apiserver-authentication).
# metrics-server serves a cert of a second CA, named for its Service as the
# aggregator checks it, and that CA is the APIService's caBundle.
pki() { openssl "$@" 2>/dev/null; }
issue() { # issue CA NAME SUBJECT EXT: a 2-day cert NAME signed by CA
  local ca=$1 name=$2 subj=$3 ext=$4
  pki req -new -newkey rsa:2048 -nodes -keyout "$STATE/pki/$name.key" -out "$STATE/pki/$name.csr" -subj "$subj"
  pki x509 -req -in "$STATE/pki/$name.csr" -CA "$STATE/pki/$ca.crt" -CAkey "$STATE/pki/$ca.key" \
    -CAcreateserial -days 2 -out "$STATE/pki/$name.crt" -extfile <(printf '%s\n' "$ext")
}
for ca in front-proxy-ca metrics-server-ca; do
  pki req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kne2e-$ca" \
    -keyout "$STATE/pki/$ca.key" -out "$STATE/pki/$ca.crt"
done
issue front-proxy-ca front-proxy-client /CN=front-proxy-client \
  "extendedKeyUsage=clientAuth"
issue metrics-server-ca metrics-server /CN=metrics-server \
  "extendedKeyUsage=serverAuth
subjectAltName=DNS:metrics-server.kube-system.svc,IP:$NODE_IP"

# ---- control plane --------------------------------------------------------
log "etcd, kube-apiserver"
start etcd "$BIN/etcd" --data-dir "$STATE/etcd" --name kne2e \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "kne2e=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn --quota-backend-bytes 1073741824

# Pods reach it as in any cluster: the default/kubernetes Service's VIP,
# whose endpoint the API server keeps at NODE_IP:API_PORT (so it listens on
# every address, loopback for the kubeconfigs too; a token is still needed).
# Its serving cert is self-signed for the VIP; the controller-manager
# publishes its CA to every namespace (kube-root-ca.crt, --root-ca-file).
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 0.0.0.0 --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
  --cert-dir "$STATE/pki/apiserver" \
  --token-auth-file "$STATE/pki/tokens.csv" --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$STATE/pki/sa.pub" --service-account-signing-key-file "$STATE/pki/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --requestheader-client-ca-file "$STATE/pki/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --requestheader-group-headers X-Remote-Group --requestheader-username-headers X-Remote-User \
  --proxy-client-cert-file "$STATE/pki/front-proxy-client.crt" \
  --proxy-client-key-file "$STATE/pki/front-proxy-client.key" \
  --enable-aggregator-routing=true \
  --allow-privileged=false --profiling=false --v=0
wait_for kube-apiserver 240 "$BIN/kubectl" --kubeconfig "$KC" get --raw /readyz

log "controller-manager, scheduler"
start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$KC" \
  --leader-elect=false --secure-port 0 --service-account-private-key-file "$STATE/pki/sa.key" \
  --use-service-account-credentials=false --cluster-cidr "$CLUSTER_CIDR" --allocate-node-cidrs=false \
  --service-cluster-ip-range "$SERVICE_CIDR" --controllers '*,-nodeipam' \
  --concurrent-deployment-syncs 10 --horizontal-pod-autoscaler-sync-period "$HPA_SYNC_PERIOD" \
  --max-endpoints-per-slice "$MAX_ENDPOINTS_PER_SLICE" --root-ca-file "$STATE/pki/apiserver/apiserver.crt" \
  --profiling=false
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$KC" --leader-elect=false --secure-port 0 --profiling=false

# ---- nodes ----------------------------------------------------------------
: >"$STATE/resolv.conf" # pods get only the cluster DNS and its search path

node_up() {
  local n=$1 name="kne2e-node$1" dir="$STATE/node$1"
  local bridge="cni$((n - 1))" subnet="10.244.$((n - 1)).0/24" gw="10.244.$((n - 1)).1"
  local kport=$((PORT_BASE + 10 * n)) hport=$((PORT_BASE + 10 * n + 1))
  mkdir -p "$dir"/{cni,cni-ipam,kubelet,containerd,runc,varlib}
  echo "$bridge" >>"$STATE/bridges"

  # The bridge exists before the first pod so CoreDNS can bind its address.
  ip link add "$bridge" type bridge
  ip addr add "$gw/24" dev "$bridge"
  ip link set "$bridge" up

  cat >"$dir/cni/10-kne2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kne2e-$bridge",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$dir/cni-ipam",
                "ranges": [[{ "subnet": "$subnet", "gateway": "$gw" }]],
                "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true },
      "conditionsV4": ["!", "-d", "127.0.0.0/8"] }
  ]
}
EOF

  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$dir/containerd.sock"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$dir/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$dir/cni"
    max_conf_num = 1
EOF
  log "node $name: containerd"
  start "containerd-node$n" containerd --config "$dir/containerd.toml"
  wait_for "containerd node$n" 120 ctr -a "$dir/containerd.sock" version
  ctr -a "$dir/containerd.sock" -n k8s.io images import --no-unpack=false "$PAUSE_TAR" >/dev/null
  [[ -n "${IMPORT_TARS:-}" ]] && for t in $IMPORT_TARS; do
    ctr -a "$dir/containerd.sock" -n k8s.io images import "$t" >/dev/null
  done

  # The kubelet's cgroup root, in every v1 hierarchy (or the v2 tree).
  echo "/kne2e-node$n" >>"$STATE/cgroups"
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -e "$h/cgroup.procs" ]] && mkdir -p "$h/kne2e-node$n"
  done

  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /kne2e-node$n
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/containerd.sock
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 40
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
fileCheckFrequency: 20s
shutdownGracePeriod: 0s
localStorageCapacityIsolation: true
podLogsDir: $dir/pod-logs
EOF
  cat >"$dir/run-kubelet.sh" <<EOF
#!/usr/bin/env bash
# The kubelet in its own mount namespace: it hard-codes
# /var/lib/kubelet/device-plugins, which two kubelets on one host would
# share; a private tmpfs there keeps them apart (and the host clean). STATE is
# a shared mount, so the volumes it mounts there reach containerd.
set -e
mount --make-private /
mount -t tmpfs -o size=16m kne2e-varlib /var/lib
mkdir -p /var/lib/kubelet/device-plugins
exec "$NODE_BIN/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$KC" --root-dir "$dir/kubelet" \\
  --cert-dir "$dir/kubelet/pki" --hostname-override "$name" --node-ip "$NODE_IP" \\
  --node-labels "kne2e/node=$n,topology.kubernetes.io/zone=kne2e-zone-$n,topology.kubernetes.io/region=kne2e" --v=1
EOF
  chmod +x "$dir/run-kubelet.sh"
  log "node $name: kubelet"
  start "kubelet-node$n" unshare -m --propagation unchanged "$dir/run-kubelet.sh"
}

for ((n = 1; n <= NODES; n++)); do node_up "$n"; done

# ---- kube-proxy and CoreDNS -----------------------------------------------
# All nodes share the host's network namespace, so ONE kube-proxy programs
# the Service rules for all of them.
cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $KC
mode: iptables
hostnameOverride: kne2e-node1
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTH_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
clusterCIDR: $CLUSTER_CIDR
# The node's IP only: NodePorts on 127.0.0.1 would need route_localnet.
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  masqueradeAll: true
  syncPeriod: 10s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
EOF
log "kube-proxy, coredns"
start kube-proxy "$NODE_BIN/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=0

cat >"$STATE/Corefile" <<EOF
.:53 {
    bind $DNS_IP
    errors
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KC kne2e
        pods insecure
        ttl 5
        fallthrough in-addr.arpa ip6.arpa
    }
}
EOF
start coredns "$BIN/coredns" -conf "$STATE/Corefile"
wait_for coredns 120 bash -c "exec 3<>/dev/tcp/127.0.0.1/$COREDNS_READY_PORT && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && grep -q 200 <&3"

for ((n = 1; n <= NODES; n++)); do
  wait_for "node kne2e-node$n Ready" 240 bash -c \
    "'$BIN/kubectl' --kubeconfig '$KC' get node kne2e-node$n -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
done
# ---- metrics-server -------------------------------------------------------
# A host process like CoreDNS, scraping each kubelet's /metrics/resource at
# its node-status port (the kubelets serve self-signed certs, hence
# --kubelet-insecure-tls). The API server reaches it through a selector-less
# Service whose EndpointSlice names the host (--enable-aggregator-routing
# dials the endpoint, not the ClusterIP).
log "metrics-server"
start metrics-server "$NODE_BIN/metrics-server" --kubeconfig "$KC" \
  --authentication-kubeconfig "$KC" --authorization-kubeconfig "$KC" \
  --bind-address "$NODE_IP" --secure-port "$METRICS_SERVER_PORT" \
  --tls-cert-file "$STATE/pki/metrics-server.crt" --tls-private-key-file "$STATE/pki/metrics-server.key" \
  --kubelet-insecure-tls --kubelet-preferred-address-types InternalIP --kubelet-use-node-status-port \
  --metric-resolution 10s --kubelet-request-timeout 5s --profiling=false
CA_BUNDLE=$(base64 -w0 <"$STATE/pki/metrics-server-ca.crt")
"$BIN/kubectl" --kubeconfig "$KC" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  type: ClusterIP
  ports:
    - name: https
      port: 443
      targetPort: $METRICS_SERVER_PORT
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: metrics-server
addressType: IPv4
endpoints:
  - addresses: ["$NODE_IP"]
    conditions: {ready: true}
ports:
  - name: https
    port: $METRICS_SERVER_PORT
    protocol: TCP
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service:
    name: metrics-server
    namespace: kube-system
    port: 443
  caBundle: $CA_BUNDLE
EOF

wait_for "default service account" 120 "$BIN/kubectl" --kubeconfig "$KC" get serviceaccount default -n default
# metrics-server is Available after its first scrape of the kubelets (one
# --metric-resolution). A cluster without it still runs everything but the
# HPAs, so this is a warning here; the autoscale scenarios wait for it.
ok=0
for ((i = 0; i < 240; i++)); do
  "$BIN/kubectl" --kubeconfig "$KC" get apiservice v1beta1.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null | grep -qx True && { ok=1; break; }
  sleep 0.25
done
if [[ $ok == 1 ]]; then
  log "metrics-server available (kubectl top works)"
else
  log "WARNING: APIService v1beta1.metrics.k8s.io not Available after 60 s: HPAs will not scale; see $STATE/logs/metrics-server.log"
fi
log "cluster up: $NODES node(s) at $NODE_IP; KUBECONFIG=$KC"
