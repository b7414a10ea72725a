#!/usr/bin/env bash
# ORCA load run, side by side in one run:
# 1. what per-call ORCA reporting costs the backend: three backends, one
#    as it runs by default (each connection given each new sample once),
#    one with a report on every call (--orca-every-call) and one with
#    --no-orca, loaded in turn
#    (ROUNDS rounds, the order rotating, bin/load
#    closed loop at CONC workers for COUNT calls), each one's own CPU time
#    (utime+stime from /proc/PID/stat) around its run: CPU-s per 10k calls;
# 2. which pod gets the calls under each policy: three backends, backend-2
#    slowed (fault latency) and claiming a high utilization, loaded by
#    bin/load under each policy in turn: per-pod share, reported load and p99.
# Usage: docs/load/orca.sh   (OUT=dir COUNT=40000 CONC=50 ROUNDS=2 POLICY_TIME=10s)
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-40000}
CONC=${CONC:-50}
ROUNDS=${ROUNDS:-2}
POLICY_TIME=${POLICY_TIME:-10s}
OUT=${OUT:-bin/load/orca-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

export CGO_ENABLED=0
go build -trimpath -o "$TMP/" ./backend ./loadtest/cmd/load
TICK=$(getconf CLK_TCK)
cpu() { awk -v t="$TICK" '{print ($14+$15)/t}' "/proc/$1/stat"; }

# backend NAME PORT ARGS...: starts a backend, waits until it serves.
backend() {
  local name=$1 port=$2; shift 2
  POD_NAME=$name DRAIN_DELAY=0s "$TMP/backend" --grpc-addr "127.0.0.1:$port" --admin-addr "" --downward-dir "" \
    --log-level warn "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    "$TMP/load" --target "127.0.0.1:$port" --count 1 --rate 0 --concurrency 1 >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "$name did not start" >&2; exit 1
}

echo "== ORCA per-call reporting: backend CPU-s per 10k calls (bin/load, c=$CONC, $COUNT calls, closed loop)" | tee "$OUT/summary.txt"
backend orca-default 19301
ON=${PIDS[-1]}
backend orca-off 19302 --no-orca
OFF=${PIDS[-1]}
backend orca-every 19303 --orca-every-call
EVERY=${PIDS[-1]}
for r in $(seq "$ROUNDS"); do
  order="default off every"
  [ $((r % 3)) = 2 ] && order="off every default" # no side always goes first
  [ $((r % 3)) = 0 ] && order="every default off"
  for side in $order; do
    case $side in
      default) pid=$ON port=19301 ;;
      off) pid=$OFF port=19302 ;;
      every) pid=$EVERY port=19303 ;;
    esac
    "$TMP/load" --target "127.0.0.1:$port" --rate 0 --concurrency 4 --count 2000 >/dev/null 2>&1 # warm up
    c0=$(cpu "$pid")
    "$TMP/load" --target "127.0.0.1:$port" --rate 0 --concurrency "$CONC" --count "$COUNT" --duration 10m \
      --json "$OUT/cost-$side-$r.jsonl" >/dev/null 2>&1
    c1=$(cpu "$pid")
    python3 - "$side" "$r" "$c0" "$c1" "$OUT/cost-$side-$r.jsonl" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
side, r, c0, c1, f = sys.argv[1:]
s = [json.loads(l) for l in open(f)][-1]
print(f"round {r} ORCA {side:7s}: {s['ok']:6d} ok  {s['rate']:7.0f}/s  CPU {(float(c1)-float(c0))/s['ok']*1e4:6.3f} s/10k  p99 {s['latency']['p99']/1e6:6.2f} ms")
PY
  done
done
kill "$ON" "$OFF" "$EVERY"; wait "$ON" "$OFF" "$EVERY" 2>/dev/null || true

echo "== policies: 3 backends, backend-2 slowed by 5ms and claiming utilization 0.8 (bin/load 300/s, c=$CONC, $POLICY_TIME after 3s warm-up)" | tee -a "$OUT/summary.txt"
backend backend-0 19311 --orca-utilization 0.2
backend backend-1 19312 --orca-utilization 0.2
backend backend-2 19313 --orca-utilization 0.8 --fault-latency 5ms
TARGET=static:///127.0.0.1:19311,127.0.0.1:19312,127.0.0.1:19313
for policy in pick_first round_robin weighted_round_robin least_request ring_hash; do
  "$TMP/load" --target "$TARGET" --policy "$policy" --rate 300 --concurrency "$CONC" --warmup 3s --duration "$POLICY_TIME" \
    --wrr-blackout 1s --json "$OUT/policy-$policy.jsonl" --plot "$OUT/policy-$policy.png" >"$OUT/policy-$policy.txt" 2>&1
  python3 - "$policy" "$OUT/policy-$policy.jsonl" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
policy, f = sys.argv[1:]
s = [json.loads(l) for l in open(f)][-1]
pods = []
for p in sorted(set(s.get("byPod") or {}) | set(s.get("loadByPod") or {})):
    l = (s.get("loadByPod") or {}).get(p, {})
    share = (s.get("byPod") or {}).get(p, 0) / max(s["ok"], 1)
    w = f" w {l.get('weightShare', 0):.2f}" if policy == "weighted_round_robin" else ""
    pods.append(f"{p} {share:5.1%} (app {l.get('applicationUtilization', 0):.2f} qps {l.get('qps', 0):4.0f}{w})")
print(f"{s['policy']:21s} p99 {s['latency']['p99']/1e6:6.2f} ms  " + "; ".join(pods))
PY
done
echo "results in $OUT"
