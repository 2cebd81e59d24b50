#!/usr/bin/env bash
# Compile two C files (one header) and link them; gcc's temporaries go to $TMPDIR.
set -euo pipefail
case "$1" in
  setup)
    printf 'int twice(int x);\n' > util.h
    printf '#include "util.h"\nint twice(int x) { return 2 * x; }\n' > util.c
    printf '#include "util.h"\nint main(void) { return twice(0); }\n' > main.c
    printf 'not part of the build\n' > README ;;
  run)
    gcc -c main.c -o main.o
    gcc -c util.c -o util.o
    gcc main.o util.o -o prog
    ./prog ;;
esac
