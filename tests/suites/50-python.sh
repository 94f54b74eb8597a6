#!/bin/bash
# Python binding (ffi/python): pytest against the build tree's library.
# $1: build directory. Ends with "SUITE python: N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILDDIR}" 2>/dev/null && pwd) || { echo "SUITE python: 0 passed, 1 failed"; exit 1; }
export DAXKV_LIBRARY="$build/lib/.libs/libdaxkv.so.0"
export LD_LIBRARY_PATH="$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$build/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PYTHONDONTWRITEBYTECODE=1

# Debian's interpreter has python3-pytest and python3-numpy; a python3 from
# pyenv or a venv earlier on PATH may not.
py=""
for cand in /usr/bin/python3 python3; do
    if "$cand" -c 'import pytest' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ] || [ ! -e "$DAXKV_LIBRARY" ]; then
    [ -z "$py" ] && echo "no python3 with pytest (apt-get install python3-pytest)"
    [ -e "$DAXKV_LIBRARY" ] || echo "missing $DAXKV_LIBRARY"
    echo "SUITE python: 0 passed, 1 failed"
    exit 1
fi

log="$build/python-tests.log"
(cd "$src/ffi/python" && "$py" -m pytest -rA -p no:cacheprovider -q tests) >"$log" 2>&1
rc=$?
pass=$(grep -c '^PASSED ' "$log" || true)
fail=$(grep -cE '^(FAILED|ERROR) ' "$log" || true)
skip=$(grep -c '^SKIPPED ' "$log" || true)
grep -E '^(FAILED|ERROR|SKIPPED) ' "$log" | head -40
# pytest exits 0 (all passed) or 1 (some failed); anything else means it did
# not run the tests properly (usage error, collection error, crash).
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    tail -30 "$log"
    fail=1
fi
echo "python tests: $pass passed, $fail failed, $skip skipped"

# The benchmark must at least run (its figures are informational here).
if (cd "$src/ffi/python" && "$py" bench.py --seconds 0.3) >"$build/python-bench.log" 2>&1; then
    pass=$((pass + 1))
    cat "$build/python-bench.log"
else
    fail=$((fail + 1))
    tail -20 "$build/python-bench.log"
fi
echo "SUITE python: $pass passed, $fail failed"
