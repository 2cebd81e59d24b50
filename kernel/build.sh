#!/usr/bin/env bash
# Build kernel/mmhold.c as dist/kernel/libprovmmhold.so (loaded by kernel/mmhold.ts through
# koffi). Idempotent: nothing is done when the library is newer than its source. A failed
# compile leaves no library: daemons then run without a memory holder, and the test that
# checks it (kernel/mmhold.test) fails saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
src=kernel/mmhold.c
out=dist/kernel/libprovmmhold.so
[ -f "$out" ] && [ "$out" -nt "$src" ] && exit 0
mkdir -p dist/kernel
if "${CC:-cc}" -O2 -Wall -Wextra -fPIC -shared -o "$out.tmp" "$src"; then
  mv "$out.tmp" "$out"
else
  rm -f "$out.tmp"
  echo "kernel/build.sh: could not compile $src; provfs daemons run without their memory holder" >&2
fi
