#!/usr/bin/env bash
# Installs the Debian packages listed in tools/debian-packages.txt that are not
# installed yet, with apt (root, or sudo).
#
# A pin is the version the tests were proven with, not the only one allowed:
# Debian's security archive replaces versions in place, so a pinned version
# can vanish within days (chromium 156.0.8078.108-1~deb12u1 did). For each
# missing package:
#   - the pinned version is installed when the archive still serves it;
#   - otherwise the archive's candidate is installed, and one line names both;
#   - a package the archive does not have at all fails, naming the package.
# A package already installed at another version is left alone and named, so a
# developer machine is never downgraded behind its owner's back.
#
# DEPS_DRY_RUN=1 prints the apt-get install line instead of running apt (the
# resolution test, tools/debdeps, runs it with a fake apt-cache and dpkg-query).
set -euo pipefail
list=${1:-$(dirname "$0")/debian-packages.txt}

missing=() # "pkg=pin" entries not installed yet
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
[[ "$(id -u)" -eq 0 || -n "${DEPS_DRY_RUN:-}" ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
[[ -n "${DEPS_DRY_RUN:-}" ]] || "${sudo[@]}" apt-get update -qq

# Resolve each missing package against what the archive serves now.
install=() failed=()
for entry in "${missing[@]}"; do
  pkg=${entry%%=*} want=${entry#*=}
  # madison lists every version the archive serves: "pkg | version | source".
  if apt-cache madison "$pkg" 2>/dev/null | awk -F'|' -v v="$want" '{gsub(/ /, "", $2)} $2 == v {found=1} END {exit !found}'; then
    install+=("$pkg=$want")
    continue
  fi
  cand=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" {print $2; exit}')
  if [[ -z "$cand" || "$cand" == "(none)" ]]; then
    failed+=("$pkg")
    continue
  fi
  echo "deps: $pkg pinned $want is no longer in the archive; installing its candidate $cand instead" >&2
  install+=("$pkg=$cand")
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "deps: not in the archive at any version (after apt-get update): ${failed[*]}" >&2
  exit 1
fi

echo "deps: installing ${install[*]}" >&2
if [[ -n "${DEPS_DRY_RUN:-}" ]]; then
  echo "apt-get install -y -qq --no-install-recommends ${install[*]}"
  exit 0
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${install[@]}"
