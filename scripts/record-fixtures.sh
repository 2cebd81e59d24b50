#!/usr/bin/env bash
# Re-record the scenario fixture journals (test/fixtures/scenarios/<name>/) from real runs under
# eBPF capture. Needs root (eBPF). Usage: scripts/record-fixtures.sh [scenario ...]
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
ebpf/build.sh
exec node dist/test/scenarios/record.js "$@"
