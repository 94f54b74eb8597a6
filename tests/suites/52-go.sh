#!/bin/bash
# Go binding (ffi/go/daxkv): go test -race against the build tree through
# pkg-config, offline. $1: build directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILDDIR}" 2>/dev/null && pwd) || { echo "SUITE go: 0 passed, 1 failed"; exit 1; }
export PKG_CONFIG_PATH="$build/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DAXKV_LIBRARY="$build/lib/.libs/libdaxkv.so.0"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1

if ! command -v go >/dev/null 2>&1; then
    echo "go not found (apt-get install golang-go)"
    echo "SUITE go: 0 passed, 1 failed"
    exit 1
fi

log="$build/go-tests.log"
(cd "$src/ffi/go/daxkv" && go test -race -count=1 -v ./...) >"$log" 2>&1
rc=$?
pass=$(grep -cE '^ *--- PASS' "$log" || true)
fail=$(grep -cE '^ *--- FAIL' "$log" || true)
grep -E '^ *--- FAIL|_test.go:[0-9]+:|^panic|WARNING: DATA RACE' "$log" | head -40
# A build failure, a data race report or a panic outside a test: failed.
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    tail -30 "$log"
    fail=1
fi
echo "SUITE go: $pass passed, $fail failed"
