#!/usr/bin/env bash
# Installs the Debian packages pinned in tools/debian-packages.txt that are not
# installed yet, at the pinned version, with apt (root, or sudo). A package
# already installed at another version is left alone and named, so a developer
# machine is never downgraded behind its owner's back.
set -euo pipefail
list=${1:-$(dirname "$0")/debian-packages.txt}

missing=()
while read -r line; do
  line=${line%%#*}
  [[ -z "${line// }" ]] && continue
  pkg=${line%%=*} want=${line#*=}
  have=$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null || true)
  case "$have" in
    "install ok installed $want") ;;
    "install ok installed "*) echo "deps: $pkg ${have##* } is installed (pinned: $want); keeping it" >&2 ;;
    *) missing+=("$pkg=$want") ;;
  esac
done <"$list"

[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=()
[[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
