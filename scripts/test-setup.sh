#!/usr/bin/env bash
# Installs the Debian test peers listed in scripts/test-peers.txt that are missing, so that
# `npm test` passes on a fresh Debian machine. Runs first in `npm test` (and so in .ci/run).
#   scripts/test-setup.sh [--dry-run]
# --dry-run  print what would be installed and the exact commands, change nothing.
# Not root: uses sudo; without sudo, prints the command to run as root and exits 1.
# Not Debian (no apt-get/dpkg-query): prints the missing package names and exits 1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  '') ;;
  *) echo "test-setup.sh: unknown option $1" >&2; exit 2 ;;
esac

mapfile -t peers < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/test-peers.txt" | grep -v '^$')
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-setup.sh: not a Debian system; the integration tests need these (Debian package names): ${peers[*]}" >&2
  echo "test-setup.sh: install their equivalents, then run: npm run build && node scripts/run-tests.mjs" >&2
  exit 1
fi
missing=()
for p in "${peers[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "$dry" = 1 ] && echo "test-setup.sh: every test peer is installed (${#peers[@]} packages)"
  exit 0
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "test-setup.sh: missing test peers: ${missing[*]}; as root run:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
update=("${sudo[@]}" apt-get update -qq)
# sudo resets the environment: pass DEBIAN_FRONTEND through env(1).
install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}")
echo "test-setup.sh: installing missing test peers: ${missing[*]}" >&2
if [ "$dry" = 1 ]; then
  echo "would run: ${update[*]}"
  echo "would run: ${install[*]}"
  exit 0
fi
"${update[@]}"
"${install[@]}"
# A freshly installed mosquitto starts a system broker on 1883; the tests start their own brokers.
if [[ " ${missing[*]} " == *" mosquitto "* ]]; then
  if [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
  else
    "${sudo[@]}" service mosquitto stop >/dev/null 2>&1 || true
  fi
fi
