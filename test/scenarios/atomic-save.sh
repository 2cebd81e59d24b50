#!/usr/bin/env bash
# An editor's atomic save: write the new content to a temporary name, rename it over the old.
set -euo pipefail
case "$1" in
  setup) printf 'draft\n' > doc.txt; printf 'more\n' > edit.txt ;;
  run)
    { cat doc.txt; cat edit.txt; } > .doc.txt.swp
    mv -f .doc.txt.swp doc.txt ;;
esac
