#!/usr/bin/env bash
# tar a small tree into an archive, then unpack it elsewhere.
set -euo pipefail
case "$1" in
  setup) mkdir -p src/sub; printf 'a\n' > src/a.txt; printf 'b\n' > src/b.txt; printf 'c\n' > src/sub/c.txt; printf 'x\n' > unrelated.txt ;;
  run)
    tar cf arch.tar src
    mkdir out
    tar xf arch.tar -C out ;;
esac
