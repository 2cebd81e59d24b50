#!/usr/bin/env bash
# cp, mv, hard and symbolic links: names change, identity follows the inode.
set -euo pipefail
case "$1" in
  setup) printf 'source\n' > src.txt; printf 'other\n' > other.txt ;;
  run)
    cp src.txt copy.txt
    mv copy.txt moved.txt
    ln moved.txt hard.txt
    ln -s moved.txt soft.txt
    cat soft.txt > final.txt
    cp other.txt other2.txt
    rm other.txt ;;
esac
