#!/bin/bash
# Unit tests (GoogleTest), the C API test and the symbol check, on the main
# build. $1: build directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
build=$1
pass=0 fail=0
cd "$build" || { echo "SUITE unit: 0 passed, 1 failed"; exit 1; }
./tests/unit/daxkv_unit >unit.log 2>&1
read -r p f < <(gtest_counts unit.log)
pass=$((pass + p)) fail=$((fail + f))
echo "unit tests: $p passed, $f failed"
[ "$f" -eq 0 ] || grep -E '^\[  FAILED  \]|Failure|error:' unit.log | head -20
./tests/capi/capi_test >capi.log 2>&1
read -r p f < <(plain_counts capi.log)
pass=$((pass + p)) fail=$((fail + f))
echo "C API test: $p passed, $f failed"
[ "$f" -eq 0 ] || grep FAIL capi.log | head -20
if top_srcdir="$here/../.." top_builddir=. "$here/../abi/check-symbols.sh" >symbols.log 2>&1; then
    pass=$((pass + 1))
else
    fail=$((fail + 1))
    cat symbols.log
fi
echo "SUITE unit: $pass passed, $fail failed"
