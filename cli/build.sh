#!/usr/bin/env bash
# Build the native `prov` client (cli/prov-client.c) as dist/cli/prov, next to dist/cli/main.js
# (which it runs when no rebuild server answers). Idempotent: nothing is done when the binary is
# newer than its source. A failed compile leaves no binary (use `node dist/cli/main.js`) and
# does not fail the bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
src="cli/prov-client.c cli/client-run.c cli/fast-start.c cli/client-util.c cli/sha256.c"
out=dist/cli/prov
fresh=1
for f in $src cli/client-run.h cli/fast-start.h cli/client-util.h cli/sha256.h; do [ -x "$out" ] && [ "$out" -nt "$f" ] || fresh=0; done
[ "$fresh" = 1 ] && exit 0
mkdir -p dist/cli
cc=${CC:-cc}
# Static against musl when musl-gcc is there, else static against glibc, else dynamic. On this
# VM a static glibc program takes 0.6 ms from exec to main (glibc's start-up asks the CPU for its
# features, and each CPUID traps to the hypervisor), a static musl one 0.06 ms; a dynamic one
# 0.75 ms. The client runs once per `prov rebuild`, so that is wall time of every rebuild.
musl=$(command -v musl-gcc || true)
if { [ -n "$musl" ] && "$musl" -O2 -Wall -Wextra -static -o "$out.tmp" $src 2>/dev/null; } \
  || "$cc" -O2 -Wall -Wextra -static -o "$out.tmp" $src 2>/dev/null || "$cc" -O2 -Wall -Wextra -o "$out.tmp" $src; then
  mv "$out.tmp" "$out"
else
  rm -f "$out.tmp"
  echo "cli/build.sh: could not compile $src; the native client is missing (node dist/cli/main.js still works)" >&2
fi
