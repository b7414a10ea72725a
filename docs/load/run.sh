#!/usr/bin/env bash
# Load run: what one request costs each server, side by side in one run.
# For each server it runs ghz (c=50, closed loop) for DURATION and reads the
# server's own CPU time (utime+stime from /proc/PID/stat) around the run, so
# the figure is CPU-seconds per 10k requests, whatever the load tool costs.
# Usage: docs/load/run.sh [DURATION]   (make load)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
CONC=${CONC:-50}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

export CGO_ENABLED=0
go build -trimpath -o "$TMP/" ./backend ./frontend ./docs/load/bare
go build -modfile=tools/tools.mod -o "$TMP/ghz" github.com/bojand/ghz/cmd/ghz
# The peers, pinned in their own modfile so they never move ours.
go build -modfile=tools/peers.mod -o "$TMP/" github.com/stefanprodan/podinfo/cmd/podinfo fortio.org/fortio
TICK=$(getconf CLK_TCK)

cpu() { awk -v t="$TICK" '{print ($14+$15)/t}' "/proc/$1/stat"; }
rss() { awk '/VmHWM/{print $2/1024}' "/proc/$1/status"; }
gc()  { curl -s "http://$1/metrics" | awk '/^go_gc_duration_seconds_count/{print $2}'; }

# measure NAME PID ADDR CALL [DATA] [ADMIN]
measure() {
  local name=$1 pid=$2 addr=$3 call=$4 data=${5:-'{}'} admin=${6:-}
  "$TMP/ghz" --insecure --call "$call" -d "$data" -c 4 -n 2000 "$addr" >/dev/null # warm up
  local c0 g0="" ; c0=$(cpu "$pid"); [ -n "$admin" ] && g0=$(gc "$admin")
  "$TMP/ghz" --insecure --call "$call" -d "$data" -c "$CONC" -z "$DURATION" --format json "$addr" >"$TMP/$name.json"
  local c1 g1="" ; c1=$(cpu "$pid"); [ -n "$admin" ] && g1=$(gc "$admin")
  python3 - "$name" "$TMP/$name.json" "$c0" "$c1" "$(rss "$pid")" "$g0" "$g1" <<'PY'
import json, sys
name, path, c0, c1, rss, g0, g1 = sys.argv[1:]
r = json.load(open(path))
n = r["count"]; ok = r.get("statusCodeDistribution", {}).get("OK", 0)
cpu = float(c1) - float(c0)
lat = {d["percentage"]: d["latency"] / 1e6 for d in r.get("latencyDistribution") or []}
gcs = f"{(float(g1)-float(g0))/n*1e4:6.1f}" if g0 and g1 else "   n/a"
print(f"{name:28s} {n:8d} req {r['rps']:8.0f} rps  ok {ok/n*100:5.1f}%  "
      f"CPU {cpu/n*1e4:6.3f} s/10k  GC/10k {gcs}  p50 {lat.get(50,0):6.2f} ms  p99 {lat.get(99,0):6.2f} ms  peak RSS {float(rss):5.1f} MB")
PY
}

start() { "$@" 2>"$TMP/$(basename "$1").$$.log" & PIDS+=($!); sleep 0.5; }

ID_ENV=(POD_NAME=backend-0 POD_NAMESPACE=load POD_IP=127.0.0.1 NODE_NAME=node-a NODE_IP=127.0.0.1 SERVICE_ACCOUNT=backend LOG_LEVEL=warn)
echo "ghz c=$CONC for $DURATION per row; CPU = the server's utime+stime per 10k requests"
env "${ID_ENV[@]}" "$TMP/bare" --grpc-addr 127.0.0.1:19190 2>/dev/null & PIDS+=($!); BARE=$!
env "${ID_ENV[@]}" "$TMP/backend" --grpc-addr 127.0.0.1:19090 --admin-addr 127.0.0.1:19091 --downward-dir "" 2>/dev/null & PIDS+=($!); BACK=$!
sleep 1
"$TMP/podinfo" --port 19898 --grpc-port 19999 --level error >/dev/null 2>&1 & PIDS+=($!); PODINFO=$!
"$TMP/fortio" server -http-port 18078 -grpc-port 18079 -redirect-port disabled >/dev/null 2>&1 & PIDS+=($!); FORTIO=$!
sleep 1
measure "podinfo gRPC Info" "$PODINFO" 127.0.0.1:19999 info.InfoService/Info
measure "fortio gRPC Ping" "$FORTIO" 127.0.0.1:18079 fgrpc.PingServer/Ping
measure "bare grpc-go (reference)" "$BARE" 127.0.0.1:19190 knowingnode.v1.IdentityService/GetIdentity
measure "backend GetIdentity" "$BACK" 127.0.0.1:19090 knowingnode.v1.IdentityService/GetIdentity '{}' 127.0.0.1:19091

# A frontend fanning out to 3 backends: its cost per fan-out and per backend call.
for i in 1 2 3; do
  env POD_NAME=backend-$i NODE_NAME=node-$((i%2)) POD_IP=127.0.0.1 LOG_LEVEL=warn \
    "$TMP/backend" --grpc-addr 127.0.0.1:1909$((i+2)) --admin-addr "" --downward-dir "" 2>/dev/null & PIDS+=($!)
done
env POD_NAME=frontend-0 NODE_NAME=node-a LOG_LEVEL=warn "$TMP/frontend" --grpc-addr 127.0.0.1:19080 --http-addr 127.0.0.1:18080 --downward-dir "" \
  --target backends=static:///127.0.0.1:19093,127.0.0.1:19094,127.0.0.1:19095 2>/dev/null & PIDS+=($!); FRONT=$!
sleep 1
measure "frontend FanOut EACH x3" "$FRONT" 127.0.0.1:19080 knowingnode.v1.FanOutService/FanOut '{}' 127.0.0.1:18080
