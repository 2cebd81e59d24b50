#!/usr/bin/env bash
# Builds the BPF objects into ebpf/build/: vmlinux.h from the running kernel's BTF (bpftool),
# then every *.bpf.c with clang -target bpf (CO-RE). Idempotent: skips what is up to date.
set -euo pipefail
cd "$(dirname "$0")"
out=build
mkdir -p "$out"
log() { printf 'ebpf/build: %s\n' "$*" >&2; }

btf=/sys/kernel/btf/vmlinux
if [ ! -r "$btf" ]; then log "no kernel BTF at $btf (CONFIG_DEBUG_INFO_BTF off): eBPF capture cannot be built here"; exit 1; fi
command -v bpftool >/dev/null || { log "bpftool missing (apt: bpftool)"; exit 1; }
command -v clang >/dev/null || { log "clang missing (apt: clang)"; exit 1; }

# vmlinux.h follows the running kernel: regenerate when the BTF blob changed (new kernel).
stamp=$(stat -c '%s' "$btf")-$(uname -r)
if [ ! -s "$out/vmlinux.h" ] || [ "$(cat "$out/.btf-stamp" 2>/dev/null)" != "$stamp" ]; then
  log "vmlinux.h from $btf"
  bpftool btf dump file "$btf" format c > "$out/vmlinux.h.tmp"
  mv "$out/vmlinux.h.tmp" "$out/vmlinux.h"
  echo "$stamp" > "$out/.btf-stamp"
fi

arch=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
for src in *.bpf.c; do
  obj="$out/${src%.c}.o"
  if [ -f "$obj" ] && [ "$obj" -nt "$src" ] && [ "$obj" -nt prov.h ] && [ "$obj" -nt "$out/vmlinux.h" ]; then continue; fi
  log "clang $src"
  clang -g -O2 -target bpf -D__TARGET_ARCH_$arch -I"$out" -I. -Wall -Wno-unused-function \
    -c "$src" -o "$obj.tmp"
  llvm-strip -g "$obj.tmp" 2>/dev/null || true
  mv "$obj.tmp" "$obj"
done
