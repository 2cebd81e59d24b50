#!/usr/bin/env bash
# Builds the lineage explorer bundle (web/ui → web/ui/dist) with Vite, after type-checking it.
# Idempotent: skipped when no source under web/ui or web/server/view (shared with the UI) and
# no lock file changed since the last build (a hash of them is kept in web/ui/dist/.stamp).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=web/ui/dist/.stamp
hash=$( { find web/ui -path web/ui/dist -prune -o -type f -print; find web/server/view -type f -name '*.ts'; echo package-lock.json; } \
  | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && [ -f web/ui/dist/index.html ]; then
  exit 0
fi
npx tsc -p web/ui/tsconfig.json
npx vite build --config web/ui/vite.config.ts
echo "$hash" > "$stamp"
