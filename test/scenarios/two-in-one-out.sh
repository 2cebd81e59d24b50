#!/usr/bin/env bash
# A script that writes an unrelated file first, then reads two files and writes one.
set -euo pipefail
case "$1" in
  setup) printf '1\n2\n' > a.txt; printf '3\n' > b.txt ;;
  run)
    /usr/bin/python3 - <<'PY'
with open('unrelated.txt', 'w') as f:
    f.write('written before any input was read\n')
total = 0
for name in ('a.txt', 'b.txt'):
    with open(name) as f:
        total += sum(int(x) for x in f)
with open('sum.txt', 'w') as f:
    f.write(f'{total}\n')
PY
    ;;
esac
