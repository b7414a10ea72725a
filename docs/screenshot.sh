#!/usr/bin/env bash
# Regenerates every picture the README and docs/ show of the page and the
# report, from the current code, in Chromium (make deps installs it):
#   docs/page.png, docs/page-failed.png  the page over three backends on two
#                                        nodes, then with one stopped (TestBrowserPage)
#   docs/matrix.png                      the matrix heatmap (TestBrowserMatrix)
#   docs/report-*.png                    each committed docs/report-*.html, opened
#                                        from disk as a user would
# The plots (docs/autoscale-*.png, docs/load-*.png, docs/balancing-*.png), the
# reports (docs/report-*.html) and docs/matrix-cluster.png come from real
# runs instead: make e2e-node (bin/e2e-node/<time>/) and make load write them.
set -euo pipefail
cd "$(dirname "$0")/.."
KNOWINGNODE_SCREENSHOT="$PWD/docs/page.png" KNOWINGNODE_MATRIX_SCREENSHOT="$PWD/docs/matrix.png" \
  go test -count=1 -run 'TestBrowserPage$|TestBrowserMatrix$' ./frontend/web
echo "wrote docs/page.png docs/page-failed.png docs/matrix.png"

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
for html in docs/report-*.html; do
  png="${html%.html}.png"
  # The report makes no network request; virtual time lets its charts draw.
  chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1280,1400 --virtual-time-budget=5000 \
    --hide-scrollbars --screenshot="$PWD/$png" "file://$PWD/$html" 2>"$profile/chromium.log" ||
    { cat "$profile/chromium.log"; exit 1; }
  echo "wrote $png"
done
