#!/usr/bin/env bash
# Builds WAMR's ahead-of-time compiler, `wamrc`, once, and prints its path. It is built from the WAMR
# inside the Fluent Bit source tarball that ../shared/tools/build-fluent-bit.sh builds (WAMR 2.4.1 for
# Fluent Bit 5.1.1), so that the AOT files it writes are the ones that Fluent Bit loads, against
# Debian's LLVM 15 (apt-get install -y llvm-15-dev); about 5 minutes on 2 cores.
#   usage: tests/fluent-bit/wamrc.sh    (cache: ${XDG_CACHE_HOME:-~/.cache}/newterms-wamrc; NEWTERMS_SHARED
#   overrides ../shared)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${NEWTERMS_SHARED:-$here/../../../shared}
version=5.1.1
tarball=$shared/vendor/fluent-bit-$version.tar.xz
llvm=/usr/lib/llvm-15/lib/cmake/llvm
bin=${XDG_CACHE_HOME:-$HOME/.cache}/newterms-wamrc/fluent-bit-$version/wamrc
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
if [ ! -d "$llvm" ]; then
  echo "wamrc.sh: LLVM 15 is missing; on Debian: apt-get install -y llvm-15-dev" >&2
  exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/newterms-wamrc.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xJf "$tarball" -C "$work" --wildcards "fluent-bit-$version/lib/wasm-micro-runtime-*"
compiler=$(echo "$work"/fluent-bit-$version/lib/wasm-micro-runtime-*/wamr-compiler)
mkdir -p "$compiler/build"
cd "$compiler/build"
cmake .. -DCMAKE_BUILD_TYPE=Release -DWAMR_BUILD_WITH_CUSTOM_LLVM=1 -DLLVM_DIR="$llvm" >"$work/cmake.log" 2>&1 \
  || { tail -30 "$work/cmake.log" >&2; exit 1; }
make -j"$(nproc)" wamrc >"$work/make.log" 2>&1 || { grep -E "error" "$work/make.log" | head -8 >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
cp wamrc "$bin"
echo "$bin"
