#!/usr/bin/env bash
# One idempotent set-up for every entry point (demo, test, bench): Debian packages, npm ci, build.
# Each step is skipped when it is already satisfied, so a second run costs a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'bootstrap: %s\n' "$*" >&2; }

mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/apt-packages.txt | awk '{print $1}')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then log "missing Debian packages (need root to install): ${missing[*]}"; exit 1; fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

lock_hash=$(sha256sum package.json package-lock.json | sha256sum | cut -c1-64)
if [ ! -f node_modules/.prov-lock-hash ] || [ "$(cat node_modules/.prov-lock-hash)" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'nodedir' >&2 || true
  [ -d node_modules/better-sqlite3 ] || { log "npm ci failed"; exit 1; }
  echo "$lock_hash" > node_modules/.prov-lock-hash
fi

log "build: tsc"
npx tsc -p tsconfig.json
# A room that needs more than tsc (BPF objects, the web bundle) keeps its own build.sh.
for room in collector kernel ebpf graph web cli test; do
  if [ -x "$room/build.sh" ]; then log "build: $room"; "$room/build.sh"; fi
done
