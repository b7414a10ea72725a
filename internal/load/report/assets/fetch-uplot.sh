#!/bin/sh
# Fetches the pinned uPlot from npm, checks the tarball against the pinned
# integrity (npm's sha512) and writes the files the report embeds. Run by
# `go generate ./internal/load/report/`; assets_test.go then checks the bytes.
set -eu
cd "$(dirname "$0")"
version=$(awk '$1=="version"{print $2}' uplot.pin)
want=$(awk '$1=="integrity"{print $2}' uplot.pin)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null)
tgz="$tmp/uplot-$version.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$want" ]; then
	echo "fetch-uplot: uplot@$version tarball integrity $got, pinned $want" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$tmp"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" .
cp "$tmp/package/LICENSE" uPlot.LICENSE
sha256sum -c --quiet <<SUMS
$(awk '$1=="sha256"{print $2"  "$3}' uplot.pin)
SUMS
