#!/usr/bin/env bash
# restart.sh NAME...: starts again daemons of a cluster that up.sh started
# (same STATE) and that have died, e.g. killed by a chaos test: with the same
# command line, in their own session, appending to the same log. A daemon
# that still runs is left alone.
set -euo pipefail
STATE=${STATE:-/tmp/kne2e}
for name in "$@"; do
  [[ -f "$STATE/cmds/$name" ]] || { echo "restart: no command recorded for $name in $STATE/cmds" >&2; exit 1; }
  if [[ -f "$STATE/pids/$name" ]] && kill -0 "$(cat "$STATE/pids/$name")" 2>/dev/null; then
    echo "restart: $name still runs" >&2
    continue
  fi
  # A kubelet exits at once when its containerd, restarted just before it,
  # does not serve CRI yet ("server is not initialized yet", seen in a CI
  # run): start it again until it stays up, as a service manager would.
  for try in 1 2 3 4 5 6 7 8 9 10; do
    eval "setsid $(cat "$STATE/cmds/$name") >>\"\$STATE/logs/\$name.log\" 2>&1 </dev/null &"
    echo $! >"$STATE/pids/$name"
    [[ $name == kubelet-* ]] || break
    sleep 3
    kill -0 "$(cat "$STATE/pids/$name")" 2>/dev/null && break
    echo "restart: $name exited at once (try $try); starting it again" >&2
  done
done
