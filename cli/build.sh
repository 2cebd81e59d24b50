#!/usr/bin/env bash
# Build the native `prov` client (cli/prov-client.c) as dist/cli/prov, next to dist/cli/main.js
# (which it runs when no rebuild server answers). Idempotent: nothing is done when the binary is
# newer than its source. A failed compile leaves no binary (use `node dist/cli/main.js`) and
# does not fail the bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
src=cli/prov-client.c
out=dist/cli/prov
[ -x "$out" ] && [ "$out" -nt "$src" ] && exit 0
mkdir -p dist/cli
cc=${CC:-cc}
# Static when the C library allows it: no dynamic loader and no libc relocation at each start
# (about 0.1–0.2 ms of a rebuild's wall time here); dynamic otherwise.
if "$cc" -O2 -Wall -Wextra -static -o "$out.tmp" "$src" 2>/dev/null || "$cc" -O2 -Wall -Wextra -o "$out.tmp" "$src"; then
  mv "$out.tmp" "$out"
else
  rm -f "$out.tmp"
  echo "cli/build.sh: could not compile $src; the native client is missing (node dist/cli/main.js still works)" >&2
fi
