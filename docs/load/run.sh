#!/usr/bin/env bash
# Load run: what one request costs each server, side by side in one run.
# For each server it runs ghz (c=50, closed loop) for DURATION and reads the
# server's own CPU time (utime+stime from /proc/PID/stat) around the run, so
# the figure is CPU-seconds per 10k requests, whatever the load tool costs.
# HTTP rows use wrk (Debian's, installed by make deps) the same way.
# The rows whose ratios are goals run ROUNDS times, in an order that rotates
# each round, so that no row always runs first, or in a quieter minute: a
# row's figure is its CPU over all its rounds against its requests over all
# of them, and each ratio says its range over the rounds.
# Every row's raw output (ghz JSON, wrk text) and the summary land in OUT.
# Usage: docs/load/run.sh [DURATION]   (make load; ROUNDS=3 CONC=50 OUT=dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-6s}
CONC=${CONC:-50}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-bin/load/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

export CGO_ENABLED=0
go build -trimpath -o "$TMP/" ./backend ./frontend ./docs/load/bare ./docs/load/barefanout ./docs/load/bareclient
go build -modfile=tools/tools.mod -o "$TMP/ghz" github.com/bojand/ghz/cmd/ghz
# The peers, pinned in their own modfile so they never move ours.
go build -modfile=tools/peers.mod -o "$TMP/" github.com/stefanprodan/podinfo/cmd/podinfo fortio.org/fortio
TICK=$(getconf CLK_TCK)
command -v wrk >/dev/null || { echo "wrk not found: install Debian's wrk (make deps)" >&2; exit 1; }

cpu() { awk -v t="$TICK" '{print ($14+$15)/t}' "/proc/$1/stat"; }
cpus() { local p; for p in "$@"; do cpu "$p"; done | awk '{s += $1} END {print s}'; }
rss() { awk '/VmHWM/{print $2/1024}' "/proc/$1/status"; }
rssnow() { awk '/VmRSS/{print $2/1024}' "/proc/$1/status"; }
gc()  { curl -s "http://$1/metrics" | awk '/^go_gc_duration_seconds_count/{print $2}'; }

# Requests, rps, % ok, p50 and p99 (ms) of a ghz JSON result and of wrk's text.
cat >"$TMP/ghzstat.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = r["count"]
lat = {d["percentage"]: d["latency"] / 1e6 for d in r.get("latencyDistribution") or []}
print(n, r["rps"], r.get("statusCodeDistribution", {}).get("OK", 0) / n * 100, lat.get(50, 0), lat.get(99, 0))
PY
cat >"$TMP/wrkstat.py" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
n = int(re.search(r"(\d+) requests in", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
unit = {"us": 1e-3, "ms": 1, "s": 1e3}
def q(p):
    m = re.search(rf"^\s*{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    return float(m.group(1)) * unit[m.group(2)] if m else 0
print(n, re.search(r"Requests/sec:\s*([\d.]+)", t).group(1), (n - (int(bad.group(1)) if bad else 0)) / n * 100, q(50), q(99))
PY

# row NAME CPU0 CPU1 RSS G0 G1 REQS RPS OKPCT P50MS P99MS: prints a row and
# appends it to the summary; a row of round R is named "NAME #R", and its
# CPU seconds and requests go to raw.tsv, which the totals and ratios read.
row() {
  local base=$1 round=1
  if [[ $1 == *" #"* ]]; then base=${1% #*} round=${1##* #}; fi
  printf '%s\t%s\t%s\t%s\n' "$base" "$(python3 -c "print($3 - $2)")" "$7" "$round" >>"$OUT/raw.tsv"
  python3 - "$@" <<'PY' | tee -a "$OUT/summary.txt"
import sys
name, c0, c1, rss, g0, g1, n, rps, ok, p50, p99 = sys.argv[1:]
n = int(n); cpu = (float(c1) - float(c0)) / n * 1e4
gcs = f"{(float(g1)-float(g0))/n*1e4:6.1f}" if g0 and g1 else "   n/a"
# "-" is a figure the row does not have (the bare client keeps no latencies
# and is not the server whose RSS the others show): n/a, never a zero.
def f(v, fmt, w):
    return f"{'n/a':>{w}s}" if v == "-" else format(float(v), fmt)
print(f"{name:30s} {n:8d} req {float(rps):8.0f} rps  ok {float(ok):5.1f}%  "
      f"CPU {cpu:7.3f} s/10k  GC/10k {gcs}  p50 {f(p50, '7.2f', 7)} ms  p99 {f(p99, '7.2f', 7)} ms  peak RSS {f(rss, '5.1f', 5)} MB")
PY
}

# measure NAME PID ADDR CALL [DATA] [ADMIN] [CONC] [-n COUNT]: a gRPC row with ghz.
# With CALLED=N (a fan-out row over the first N fan-out backends), the CPU
# those N backends spent answering it goes to raw.tsv too, as the row
# "NAME, its backends" with N calls per request: what a backend call costs
# its backend in that very fan-out.
measure() {
  local name=$1 pid=$2 addr=$3 call=$4 data=${5:-'{}'} admin=${6:-} conc=${7:-$CONC} count=${8:-}
  local f="$OUT/$(echo "$name" | tr -c 'A-Za-z0-9=\n' _).json" run=(-z "$DURATION")
  [ -n "$count" ] && run=(-n "$count")
  "$TMP/ghz" --insecure --call "$call" -d "$data" -c 4 -n 200 "$addr" >/dev/null # warm up
  local c0 g0="" b0=""; c0=$(cpu "$pid"); [ -n "$admin" ] && g0=$(gc "$admin"); [ -n "${CALLED:-}" ] && b0=$(cpus "${FANPIDS[@]:0:$CALLED}")
  "$TMP/ghz" --insecure --call "$call" -d "$data" -c "$conc" "${run[@]}" --format json "$addr" >"$f"
  local c1 g1="" b1=""; c1=$(cpu "$pid"); [ -n "$admin" ] && g1=$(gc "$admin"); [ -n "${CALLED:-}" ] && b1=$(cpus "${FANPIDS[@]:0:$CALLED}")
  local stat; stat=$(python3 "$TMP/ghzstat.py" "$f")
  row "$name" "$c0" "$c1" "$(rss "$pid")" "$g0" "$g1" $stat
  if [ -n "${CALLED:-}" ]; then
    local base=$name round=1
    if [[ $name == *" #"* ]]; then base=${name% #*} round=${name##* #}; fi
    printf '%s\t%s\t%s\t%s\n' "$base, its backends" "$(python3 -c "print($b1 - $b0)")" "$(( ${stat%% *} * CALLED ))" "$round" >>"$OUT/raw.tsv"
  fi
}

# measure_client NAME PID ADDR: a row whose requests are the bare grpc-go
# client's (docs/load/bareclient, c=$CONC, no decoding), its own CPU from
# getrusage, and PID's (the server's) in the same seconds as "NAME, its
# server": what one grpc-go call costs its client against its server.
measure_client() {
  local name=$1 pid=$2 addr=$3
  local base=$name round=1
  if [[ $name == *" #"* ]]; then base=${name% #*} round=${name##* #}; fi
  local c0 c1 out; c0=$(cpu "$pid")
  out=$("$TMP/bareclient" --target "$addr" --concurrency "$CONC" --duration "$DURATION" --warmup 200ms)
  c1=$(cpu "$pid")
  read -r _ n _ s _ rps <<<"$out"
  row "$name" 0 "$s" - "" "" "$n" "$rps" 100 - -
  printf '%s\t%s\t%s\t%s\n' "$base, its server" "$(python3 -c "print($c1 - $c0)")" "$n" "$round" >>"$OUT/raw.tsv"
}

# measure_http NAME PID URL [ADMIN]: an HTTP GET row with wrk (2 threads,
# CONC connections); ok counts 2xx answers.
measure_http() {
  local name=$1 pid=$2 url=$3 admin=${4:-}
  local f="$OUT/$(echo "$name" | tr -c 'A-Za-z0-9=\n' _).wrk.txt"
  wrk -t2 -c4 -d1s "$url" >/dev/null # warm up
  local c0 g0="" ; c0=$(cpu "$pid"); [ -n "$admin" ] && g0=$(gc "$admin")
  wrk -t2 -c"$CONC" -d"$DURATION" --latency "$url" >"$f"
  local c1 g1="" ; c1=$(cpu "$pid"); [ -n "$admin" ] && g1=$(gc "$admin")
  row "$name" "$c0" "$c1" "$(rss "$pid")" "$g0" "$g1" $(python3 "$TMP/wrkstat.py" "$f")
}

start() { "$@" 2>"$TMP/$(basename "$1").$$.log" & PIDS+=($!); sleep 0.5; }

ID_ENV=(POD_NAME=backend-0 POD_NAMESPACE=load POD_IP=127.0.0.1 NODE_NAME=node-a NODE_IP=127.0.0.1 SERVICE_ACCOUNT=backend LOG_LEVEL=warn)
echo "ghz/wrk c=$CONC for $DURATION per row; CPU = the server's utime+stime per 10k requests; raw results in $OUT" | tee "$OUT/summary.txt"
env "${ID_ENV[@]}" "$TMP/bare" --grpc-addr 127.0.0.1:19190 2>/dev/null & PIDS+=($!); BARE=$!
env "${ID_ENV[@]}" "$TMP/backend" --grpc-addr 127.0.0.1:19090 --admin-addr 127.0.0.1:19091 --downward-dir "" 2>/dev/null & PIDS+=($!); BACK=$!
# The same backend with its ORCA reports off, and on every call: what a
# per-call load report costs (issue 24's goal: at most +5 %).
env "${ID_ENV[@]}" "$TMP/backend" --grpc-addr 127.0.0.1:19092 --admin-addr "" --downward-dir "" --no-orca 2>/dev/null & PIDS+=($!); BACK_NOORCA=$!
env "${ID_ENV[@]}" "$TMP/backend" --grpc-addr 127.0.0.1:19093 --admin-addr "" --downward-dir "" --orca-every-call 2>/dev/null & PIDS+=($!); BACK_ORCAEVERY=$!
sleep 1
"$TMP/podinfo" --port 19898 --grpc-port 19999 --level error >/dev/null 2>&1 & PIDS+=($!); PODINFO=$!
"$TMP/fortio" server -http-port 18078 -grpc-port 18079 -redirect-port disabled >/dev/null 2>&1 & PIDS+=($!); FORTIO=$!
sleep 1
# One frontend over 30 backends, with targets of 1, 3, 10 and 30 of them:
# its cost per fan-out at each width, and so the marginal cost per backend.
ADDRS=() FANPIDS=()
for i in $(seq 1 30); do
  env POD_NAME=backend-$i NODE_NAME=node-$((i%2)) POD_IP=127.0.0.1 LOG_LEVEL=warn \
    "$TMP/backend" --grpc-addr 127.0.0.1:$((19200+i)) --admin-addr "" --downward-dir "" 2>/dev/null & PIDS+=($!)
  ADDRS+=(127.0.0.1:$((19200+i))) FANPIDS+=($!)
done
targets() { local IFS=,; for n in "$@"; do echo "--target n$n=static:///${ADDRS[*]:0:$n}"; done; }
# Admission limits above what c=$CONC needs: a refused fan-out costs little,
# and counting it would make a fan-out look cheap.
ADMIT=(--max-fanouts $((CONC * 2)) --max-backend-calls $((CONC * 2 * 64)))
env POD_NAME=frontend-0 NODE_NAME=node-a LOG_LEVEL=warn "$TMP/frontend" --grpc-addr 127.0.0.1:19080 --http-addr 127.0.0.1:18080 --downward-dir "" \
  "${ADMIT[@]}" $(targets 3 1 10 30) 2>/dev/null & PIDS+=($!); FRONT=$!
# The bare fan-out (docs/load/barefanout) over the same targets: a plain
# grpc-go FanOut with none of the frontend's metrics, health or summary.
"$TMP/barefanout" --grpc-addr 127.0.0.1:19180 $(targets 3 1 10 30) 2>/dev/null & PIDS+=($!); BAREFAN=$!
sleep 2

# The rows, each a command; a round runs them all, its order rotated by
# one from the round before.
ROWS=(
  'measure "podinfo gRPC Info #$R" "$PODINFO" 127.0.0.1:19999 info.InfoService/Info'
  'measure "fortio gRPC Ping #$R" "$FORTIO" 127.0.0.1:18079 fgrpc.PingServer/Ping'
  'measure "bare grpc-go (reference) #$R" "$BARE" 127.0.0.1:19190 knowingnode.v1.IdentityService/GetIdentity'
  'measure "backend GetIdentity #$R" "$BACK" 127.0.0.1:19090 knowingnode.v1.IdentityService/GetIdentity "{}" 127.0.0.1:19091'
  'measure "backend, ORCA off #$R" "$BACK_NOORCA" 127.0.0.1:19092 knowingnode.v1.IdentityService/GetIdentity'
  'measure "backend, ORCA every call #$R" "$BACK_ORCAEVERY" 127.0.0.1:19093 knowingnode.v1.IdentityService/GetIdentity'
  'measure_http "podinfo HTTP /api/info #$R" "$PODINFO" http://127.0.0.1:19898/api/info'
  'measure_http "frontend REST /v1/identity #$R" "$FRONT" http://127.0.0.1:18080/v1/identity 127.0.0.1:18080'
  'measure_http "frontend REST /v1/fanout N=3 #$R" "$FRONT" "http://127.0.0.1:18080/v1/fanout?target=n3" 127.0.0.1:18080'
)
ROWS+=('measure_client "bare grpc-go client call #$R" "$BACK" 127.0.0.1:19090')
for n in 1 3 10 30; do
  ROWS+=("CALLED=$n measure \"frontend FanOut EACH N=$n #\$R\" \"\$FRONT\" 127.0.0.1:19080 knowingnode.v1.FanOutService/FanOut '{\"target\":\"n$n\"}' 127.0.0.1:18080")
  ROWS+=("measure \"bare fan-out N=$n #\$R\" \"\$BAREFAN\" 127.0.0.1:19180 knowingnode.v1.FanOutService/FanOut '{\"target\":\"n$n\"}'")
done
for R in $(seq "$ROUNDS"); do
  echo "-- round $R of $ROUNDS" | tee -a "$OUT/summary.txt"
  for k in $(seq 0 $((${#ROWS[@]} - 1))); do
    eval "${ROWS[$(((k + R - 1) % ${#ROWS[@]}))]}"
  done
done

# 1,000 endpoints: 4 bare reference servers with 250 listeners each. One
# frontend per width, so its RSS is what holding that many connections costs;
# fan-outs one at a time (c=1), so p99 is one fan-out's under no other load.
WIDE=()
for i in 1 2 3 4; do
  "$TMP/bare" --grpc-addr 127.0.0.$i:0 --listeners 250 --addr-file "$TMP/wide.$i" 2>/dev/null & PIDS+=($!)
done
for i in 1 2 3 4; do
  for _ in $(seq 100); do [ -s "$TMP/wide.$i" ] && break; sleep 0.1; done
  mapfile -t -O "${#WIDE[@]}" WIDE <"$TMP/wide.$i"
done
for n in 10 100 1000; do
  env POD_NAME=frontend-w NODE_NAME=node-a LOG_LEVEL=warn "$TMP/frontend" --grpc-addr 127.0.0.1:19081 --http-addr 127.0.0.1:18081 --downward-dir "" \
    "${ADMIT[@]}" --target "w=static:///$(IFS=,; echo "${WIDE[*]:0:$n}")" 2>/dev/null & PIDS+=($!); W=$!
  sleep 2
  "$TMP/ghz" --insecure --call knowingnode.v1.FanOutService/FanOut -d '{}' -c 1 -n 3 127.0.0.1:19081 >/dev/null # connect all
  echo "frontend fan-out width $n: RSS holding $n connections $(rssnow "$W") MB" | tee -a "$OUT/summary.txt"
  measure "frontend FanOut EACH w=$n c=1" "$W" 127.0.0.1:19081 knowingnode.v1.FanOutService/FanOut '{}' 127.0.0.1:18081 1 $((20000 / n + 20))
  kill "$W"; wait "$W" 2>/dev/null || true
done

# Totals over the rounds, and the ratios from them, with their range over
# the rounds (a round's ratio is of that round's two rows).
python3 - "$OUT/raw.tsv" "$OUT/totals.txt" "$ROUNDS" <<'PY' | tee -a "$OUT/summary.txt"
import sys
from collections import defaultdict
raw, totals_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
cpu, req = defaultdict(float), defaultdict(int)
per = defaultdict(dict)  # name -> round -> CPU-s per 10k
for line in open(raw):
    name, c, n, r = line.rstrip("\n").split("\t")
    cpu[name] += float(c); req[name] += int(n)
    per[name][int(r)] = float(c) / int(n) * 1e4
tot = {k: cpu[k] / req[k] * 1e4 for k in cpu}
with open(totals_path, "w") as f:
    for k in cpu:
        f.write(f"{k:30s} {req[k]:8d} req over {len(per[k])} rounds  CPU {tot[k]:7.3f} s/10k\n")
print(f"\ntotals over the rounds (CPU-s per 10k requests; per round)")
for k in cpu:
    print(f"  {k:34s} {tot[k]:7.3f}   " + " ".join(f"{per[k][r]:.3f}" for r in sorted(per[k])))
def rng(f):
    # f(round) -> ratio or None; the range over the rounds that have both.
    v = sorted(x for x in (f(r) for r in range(1, rounds + 1)) if x is not None)
    return f"  (rounds {v[0]:.2f}-{v[-1]:.2f})" if len(v) > 1 else ""
def at(name, r): return per.get(name, {}).get(r)
def pair(a, b, label, goal=None):
    if a not in tot or b not in tot:
        return
    g = f"  goal <= {goal}" if goal else ""
    print(f"  {label:38s} {tot[a] / tot[b]:5.2f}x{rng(lambda r: at(a, r) / at(b, r) if at(a, r) and at(b, r) else None)}{g}")
print("\nratios (CPU per request, totals over the rounds)")
pair("backend GetIdentity", "podinfo gRPC Info", "backend / podinfo gRPC", 0.75)
pair("backend GetIdentity", "bare grpc-go (reference)", "backend / bare grpc-go", 0.65)
pair("backend GetIdentity", "backend, ORCA off", "backend (ORCA default) / ORCA off", 1.05)
pair("backend, ORCA every call", "backend, ORCA off", "backend ORCA every call / ORCA off")
pair("frontend REST /v1/identity", "podinfo HTTP /api/info", "REST /v1/identity / podinfo HTTP", 0.8)
be = "backend GetIdentity"
def marg(n, r=None):
    g = (lambda k: at(k, r)) if r else (lambda k: tot.get(k))
    a, b, c = g(f"frontend FanOut EACH N={n}"), g("frontend FanOut EACH N=1"), g(be)
    return (a - b) / (n - 1) / c if a and b and c else None
pair("frontend FanOut EACH N=1", be, "fan-out N=1 / backend call", 3)
for n, goal in ((10, 1.3), (30, None)):
    if marg(n) is not None:
        print(f"  {'marginal per backend / backend call':38s} {marg(n):5.2f}x{rng(lambda r: marg(n, r))}" + (f"  goal <= {goal}" if goal else "") + f"  ((N={n} - N=1) / {n - 1})")
# The same marginal call against what the backends spent per call in those
# very fan-outs (N=10): the backend call above is one backend saturated by
# ghz over one connection, where its runtime batches the most; a fan-out's
# backends answer fewer calls each, and pay more per call for it.
def margabs(n, r=None):
    g = (lambda k: at(k, r)) if r else (lambda k: tot.get(k))
    a, b = g(f"frontend FanOut EACH N={n}"), g("frontend FanOut EACH N=1")
    return (a - b) / (n - 1) if a and b else None
fb = "frontend FanOut EACH N=10, its backends"
if margabs(10) is not None and fb in tot:
    print(f"  {'marginal per backend / its backends':38s} {margabs(10) / tot[fb]:5.2f}x{rng(lambda r: margabs(10, r) / at(fb, r) if margabs(10, r) and at(fb, r) else None)}"
          f"  (a backend's own CPU per call in the N=10 fan-outs: {tot[fb]:.3f} s/10k)")
# What one grpc-go call costs a client that does nothing else, against what
# it costs the server, in the same seconds: the least a caller built on
# grpc-go pays per call, in the unit of the goal above.
pair("bare grpc-go client call", "bare grpc-go client call, its server", "a grpc-go client call / its server's")
for n, goal in ((1, 1.1), (3, None), (10, 1.0), (30, 1.0)):
    pair(f"frontend FanOut EACH N={n}", f"bare fan-out N={n}", f"fan-out / bare fan-out, N={n}", goal)
pair("frontend REST /v1/fanout N=3", "frontend FanOut EACH N=3", "REST /v1/fanout / gRPC, N=3", 1.25)
w = {n: tot.get(f"frontend FanOut EACH w={n} c=1") for n in (10, 100, 1000)}
if all(w.values()):
    print("  CPU per backend call at width 10/100/1000: " + " / ".join(f"{w[n] / n:.3f}" for n in w) + " s/10k fan-outs per backend")
PY

# CPU per fan-out against N, beside N times the backend's own cost.
go run ./docs/load/ncurve -summary "$OUT/totals.txt" -o "$OUT/ncurve.png"
echo "N-curve: $OUT/ncurve.png"
