#!/usr/bin/env bash
# Installs this built checkout on a board as a systemd service (A/B-ready layout):
#   /opt/edge-gateway/releases/<version>/   the release (dist, node_modules, config, systemd)
#   /opt/edge-gateway/current -> releases/<version>
#   /etc/edge-gateway/gateway.yaml           the site config (never overwritten)
#   /var/lib/edge-gateway/                   state (created by systemd's StateDirectory=)
#
# Usage (after `npm ci && npm run build` on the board, or on a machine of the same architecture):
#   sudo scripts/install.sh [--config FILE] [--no-start] [--root DIR]
# --config  the YAML to install as /etc/edge-gateway/gateway.yaml if none is there yet
#           (default: config/examples/raspberry-pi.yaml)
# --root    install below DIR instead of / (staging an image; no user, no systemctl)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
config="$here/config/examples/raspberry-pi.yaml"
start=1
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --root) root="${2%/}"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

[ -f "$here/dist/src/main.js" ] || { echo "install.sh: run 'npm ci && npm run build' first" >&2; exit 1; }
[ -d "$here/node_modules" ] || { echo "install.sh: node_modules missing; run 'npm ci' first" >&2; exit 1; }
version="$(node -p "require('$here/package.json').version")"
node "$here/dist/src/main.js" check-config "$config" >/dev/null 2>&1 ||
  echo "install.sh: note: $config does not validate here (secrets may live only on the board); check it there" >&2

release="$root/opt/edge-gateway/releases/$version"
echo "installing edge-gateway $version into $release"
mkdir -p "$release"
# Copy into a temp dir and rename, so a cut power never leaves a half-copied release in place.
tmp="$release.tmp-$$"
rm -rf "$tmp"
mkdir -p "$tmp"
cp -a "$here/package.json" "$here/package-lock.json" "$here/README.md" "$here/dist" "$here/node_modules" \
  "$here/config" "$here/systemd" "$here/docs" "$here/vendor" "$tmp/"
# Only what runs: dev tools (TypeScript, eslint, benchmark references) stay behind.
(cd "$tmp" && npm prune --omit=dev --no-audit --no-fund >/dev/null 2>&1) ||
  echo "install.sh: note: npm prune failed; the release keeps its dev dependencies" >&2
rm -rf "$release"
mv "$tmp" "$release"
ln -sfn "releases/$version" "$root/opt/edge-gateway/current.new"
mv -T "$root/opt/edge-gateway/current.new" "$root/opt/edge-gateway/current"

# The CLI on PATH (check-config, ctl, hash-password), always the current release.
chmod +x "$release/dist/src/main.js"
mkdir -p "$root/usr/local/bin"
ln -sfn /opt/edge-gateway/current/dist/src/main.js "$root/usr/local/bin/edge-gateway"

mkdir -p "$root/etc/edge-gateway"
if [ ! -f "$root/etc/edge-gateway/gateway.yaml" ]; then
  install -m 0640 "$config" "$root/etc/edge-gateway/gateway.yaml"
  echo "config: $root/etc/edge-gateway/gateway.yaml (from $config); edit it, then: edge-gateway check-config"
fi
# Management tokens for configs that read them with !file (never printed, mode 0640).
for t in read-token admin-token; do
  f="$root/etc/edge-gateway/$t"
  [ -f "$f" ] || (umask 0027 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$f")
done
mkdir -p "$root/etc/systemd/system"
install -m 0644 "$here/systemd/edge-gateway.service" "$root/etc/systemd/system/edge-gateway.service"

if [ -n "$root" ]; then
  echo "staged below $root (no user created, systemd not touched)"
  exit 0
fi
id edge-gateway >/dev/null 2>&1 ||
  useradd --system --no-create-home --home-dir /var/lib/edge-gateway --shell /usr/sbin/nologin \
    --groups dialout edge-gateway
chgrp edge-gateway /etc/edge-gateway /etc/edge-gateway/gateway.yaml /etc/edge-gateway/*-token
chmod 0750 /etc/edge-gateway
systemctl daemon-reload
systemctl enable edge-gateway.service
if [ "$start" = 1 ]; then
  systemctl restart edge-gateway.service
  echo "started: systemctl status edge-gateway; journalctl -u edge-gateway -f"
fi
