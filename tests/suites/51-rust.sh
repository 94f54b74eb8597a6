#!/bin/bash
# Rust bindings (ffi/rust: daxkv-sys + daxkv), cargo test --offline against
# the build tree through pkg-config. $1: build directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILDDIR}" 2>/dev/null && pwd) || { echo "SUITE rust: 0 passed, 1 failed"; exit 1; }
export PKG_CONFIG_PATH="$build/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DAXKV_LIBRARY="$build/lib/.libs/libdaxkv.so.0"
# Build products stay with the build tree they were linked against.
export CARGO_TARGET_DIR="$build/ffi-rust-target"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin:/root/.cargo/bin"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found"
    echo "SUITE rust: 0 passed, 1 failed"
    exit 1
fi

log="$build/rust-tests.log"
(cd "$src/ffi/rust" && cargo test --offline --workspace --no-fail-fast) >"$log" 2>&1
rc=$?
pass=0 fail=0
while read -r p f; do
    pass=$((pass + p)) fail=$((fail + f))
done < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$log")
grep -E '^test .* FAILED$|^---- ' "$log" | head -40
# A build failure produces no result lines: never report it as success.
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    grep -E '^error' -A8 "$log" | head -40
    fail=1
fi
echo "SUITE rust: $pass passed, $fail failed"
