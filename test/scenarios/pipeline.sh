#!/usr/bin/env bash
# A pipeline with redirections: two inputs through cat | tr | sort into one output, stderr to a
# log, then a count read back from the output with input redirection.
set -euo pipefail
case "$1" in
  setup) printf 'banana\napple\n' > in1.txt; printf 'cherry\n' > in2.txt ;;
  run)
    cat in1.txt in2.txt | tr a-z A-Z | sort > out.txt 2> err.log
    wc -l < out.txt > count.txt ;;
esac
