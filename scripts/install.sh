#!/usr/bin/env bash
# Installs this built checkout on a board as a systemd service (A/B-ready layout):
#   /opt/edge-gateway/releases/<version>/   the release (dist/src, node_modules, config, systemd, docs)
#   /opt/edge-gateway/current -> releases/<version>
#   /etc/edge-gateway/gateway.yaml           the site config (never overwritten)
#   /etc/edge-gateway/secrets.env            secrets read with `!env NAME` (root only, mode 0600)
#   /var/lib/edge-gateway/                   state (created by systemd's StateDirectory=)
#
# Usage (after `npm ci && npm run build` on the board, or on a machine of the same architecture):
#   sudo scripts/install.sh [--config FILE] [--no-start] [--root DIR]
# --config  the YAML to install as /etc/edge-gateway/gateway.yaml if none is there yet
#           (default: config/examples/raspberry-pi.yaml)
# --root    install below DIR instead of / (staging an image; no user, no systemctl; the config's
#           absolute paths point at the board, so its errors are shown but do not stop the staging)
# The config in place is validated with every error shown; an error other than a missing secret
# stops the install before the release is touched. Missing secrets or TLS files: installed, not started.
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
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

[ -f "$here/dist/src/main.js" ] || { echo "install.sh: run 'npm ci && npm run build' first" >&2; exit 1; }
[ -d "$here/node_modules" ] || { echo "install.sh: node_modules missing; run 'npm ci' first" >&2; exit 1; }
[ -f "$config" ] || { echo "install.sh: no config file $config" >&2; exit 1; }
version="$(node -p "require('$here/package.json').version")"
etc="$root/etc/edge-gateway"
schema=/opt/edge-gateway/current/config/gateway.schema.json

# 1. Site configuration and secrets (never overwritten).
mkdir -p "$etc"
if [ ! -f "$etc/gateway.yaml" ]; then
  # Editors find the installed schema through the modeline (yaml-language-server).
  sed "s|^# yaml-language-server: \$schema=.*|# yaml-language-server: \$schema=$schema|" "$config" > "$etc/gateway.yaml.tmp"
  chmod 0640 "$etc/gateway.yaml.tmp"
  mv "$etc/gateway.yaml.tmp" "$etc/gateway.yaml"
  echo "config: $etc/gateway.yaml (from $config); edit it, then: edge-gateway check-config /etc/edge-gateway/gateway.yaml"
fi
# Management tokens for configs that read them with !file (never printed, mode 0640).
for t in read-token admin-token; do
  f="$etc/$t"
  [ -f "$f" ] || (umask 0027 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$f")
done
# Secrets for `!env NAME`: systemd reads this file as root (EnvironmentFile= in the unit) before it
# drops to the gateway user, who cannot read it. A template naming what the config asks for.
secrets="$etc/secrets.env"
if [ ! -f "$secrets" ]; then
  (
    umask 0077
    {
      echo "# Secrets for edge-gateway: NAME=value lines, read by systemd (EnvironmentFile= in"
      echo "# edge-gateway.service) for the config's \`!env NAME\`. Keep it root-owned, mode 0600."
      grep -o '!env [A-Za-z_][A-Za-z0-9_]*' "$etc/gateway.yaml" | sort -u | sed 's/^!env \(.*\)$/# \1=/' || true
    } > "$secrets"
  )
fi

# 2. Validate the config in place, with the secrets the unit will give it; show every error.
# The unit's EnvironmentFile= syntax (systemd.exec(5)): NAME=value, # or ; comments, optional quotes.
load_secrets() {
  local line name value
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*|';'*) continue ;; esac
    name="${line%%=*}"; value="${line#*=}"
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    export "$name=$value"
  done < "$secrets"
}
check_out="$( (load_secrets; node "$here/dist/src/main.js" check-config "$etc/gateway.yaml") 2>&1)" && valid=1 || valid=0
ready=1
if [ "$valid" = 0 ]; then
  echo "$check_out" >&2
  # Missing secrets are expected until they are provisioned; any other error is a broken config.
  others="$(echo "$check_out" | grep -E '^  ' | grep -v 'EGW_CONFIG_SECRET' || true)"
  if [ -n "$others" ]; then
    echo "install.sh: $etc/gateway.yaml is not valid; fix it and run install.sh again (the release was not installed)" >&2
    exit 1
  elif [ -n "$root" ]; then
    echo "install.sh: note: the staged config's secrets refer to the board's files; check it there" >&2
  else
    echo "install.sh: provision the secrets above (!env NAME: a NAME=value line in $secrets; !file: that file)," >&2
    echo "            then: edge-gateway check-config /etc/edge-gateway/gateway.yaml && systemctl start edge-gateway" >&2
    ready=0
  fi
fi
# Certificates and keys the config names must exist before the gateway can start.
while read -r f; do
  [ -n "$f" ] && [ ! -e "$root$f" ] && { echo "install.sh: missing file $f (named in gateway.yaml); provision it before starting" >&2; ready=0; }
done < <(grep -oE '^\s*[a-z_]*_file:\s*/[^ #]+' "$etc/gateway.yaml" | sed -E 's/^[^:]*:\s*//' | sort -u)

# 3. The release: only what runs. No tests, benchmarks, TypeScript sources or backups.
release="$root/opt/edge-gateway/releases/$version"
echo "installing edge-gateway $version into $release"
mkdir -p "$root/opt/edge-gateway/releases"
# Copy into a temp dir and rename, so a cut power never leaves a half-copied release in place.
tmp="$release.tmp-$$"
rm -rf "$tmp"
mkdir -p "$tmp/dist"
cp -a "$here/package.json" "$here/package-lock.json" "$here/README.md" "$here/LICENSE" "$here/CHANGELOG.md" \
  "$here/config" "$here/systemd" "$here/docs" "$here/vendor" "$tmp/"
# A copy, never a link: node_modules may be a symlink (a shared checkout), and the prune below
# must not reach through it into the original.
cp -a "$(readlink -f "$here/node_modules")" "$tmp/node_modules"
cp -a "$here/dist/src" "$tmp/dist/"
# Only what runs: dev tools (TypeScript, eslint, benchmark references) stay behind.
(cd "$tmp" && npm prune --omit=dev --no-audit --no-fund >/dev/null 2>&1) ||
  echo "install.sh: note: npm prune failed; the release keeps its dev dependencies" >&2
# onnxruntime-node ships prebuilt libraries for every OS and CPU (~290 MB): keep this machine's only.
case "$(uname -m)" in x86_64) ort_arch=x64 ;; aarch64 | arm64) ort_arch=arm64 ;; *) ort_arch="" ;; esac
if [ -n "$ort_arch" ] && [ -d "$tmp/node_modules/onnxruntime-node/bin" ]; then
  for d in "$tmp"/node_modules/onnxruntime-node/bin/napi-v*/*/*; do
    case "$d" in */linux/"$ort_arch") ;; *) rm -rf "$d" ;; esac
  done
fi
# better-sqlite3 compiled from source leaves its intermediates and the SQLite sources (~30 MB).
bs="$tmp/node_modules/better-sqlite3"
rm -rf "$bs/deps" "$bs/build/Release/obj" "$bs/build/Release/obj.target" "$bs/build/Release/.deps" \
  "$bs/build/Release/sqlite3.a" "$bs/build/Release/test_extension.node"
# Config migration backups (*.bak) and editor leftovers are not part of a release.
find "$tmp" -path "$tmp/node_modules" -prune -o \( -name '*.bak' -o -name '*.orig' -o -name '*~' \) -type f -print0 |
  xargs -0 rm -f
rm -rf "$release"
mv "$tmp" "$release"
ln -sfn "releases/$version" "$root/opt/edge-gateway/current.new"
mv -T "$root/opt/edge-gateway/current.new" "$root/opt/edge-gateway/current"

# The CLI on PATH (check-config, ctl, hash-password), always the current release.
chmod +x "$release/dist/src/main.js"
mkdir -p "$root/usr/local/bin"
ln -sfn /opt/edge-gateway/current/dist/src/main.js "$root/usr/local/bin/edge-gateway"
mkdir -p "$root/etc/systemd/system"
install -m 0644 "$here/systemd/edge-gateway.service" "$root/etc/systemd/system/edge-gateway.service"
install -m 0644 "$here/systemd/edge-gateway-rollback.service" "$root/etc/systemd/system/edge-gateway-rollback.service"
# The OTA trial script lives outside the releases (root-owned), so no release can replace the code
# that decides whether it is rolled back (docs/ota.md).
install -d -m 0755 "$root/usr/local/lib/edge-gateway"
install -m 0755 "$here/systemd/edge-gateway-trial" "$root/usr/local/lib/edge-gateway/edge-gateway-trial"

if [ -n "$root" ]; then
  echo "staged below $root (no user created, systemd not touched)"
  exit 0
fi
id edge-gateway >/dev/null 2>&1 ||
  useradd --system --no-create-home --home-dir /var/lib/edge-gateway --shell /usr/sbin/nologin \
    --groups dialout edge-gateway
chgrp edge-gateway /etc/edge-gateway /etc/edge-gateway/gateway.yaml /etc/edge-gateway/*-token
# OTA: the gateway unpacks new releases and swaps current/previous (the running release's files stay root's).
chown edge-gateway:edge-gateway /opt/edge-gateway /opt/edge-gateway/releases
chmod 0750 /etc/edge-gateway
chown root:root "$secrets"
chmod 0600 "$secrets"
systemctl daemon-reload
systemctl enable edge-gateway.service
if [ "$start" = 1 ] && [ "$ready" = 1 ]; then
  systemctl restart edge-gateway.service
  echo "started: systemctl status edge-gateway; journalctl -u edge-gateway -f"
elif [ "$start" = 1 ]; then
  echo "not started: provision what is listed above, then: systemctl start edge-gateway"
fi
