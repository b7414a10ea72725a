#!/usr/bin/env bash
# Takes docs/page.png: the browser page of the `make run` topology, as the
# README shows it. Needs Chromium (make chromium) and the local ports free.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
go build -o bin/local ./deploy/local
bin/local -bin bin >/dev/null 2>&1 &
run=$!
profile=$(mktemp -d)
trap 'kill -TERM $run 2>/dev/null; wait $run 2>/dev/null || true; rm -rf "$profile"' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done
# Warm the connections, so the latencies shown are those of a running system.
for _ in 1 2 3; do curl -fs "http://127.0.0.1:8080/v1/fanout?target=srv" >/dev/null; done
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1280,1000 --virtual-time-budget=5000 \
  --screenshot="$PWD/docs/page.png" "http://127.0.0.1:8080/?target=srv" 2>"$profile/chromium.log" || { cat "$profile/chromium.log"; exit 1; }
echo "wrote docs/page.png"
