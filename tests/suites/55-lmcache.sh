#!/bin/bash
# LMCache integration: LMCache's own DAX tests, unedited, against LMCache's
# real DAX code (tests/lmcache/run.py: with LMCache's own core as the
# control, with daxkv.lmcache's DaxCore, and LMCache's adapter tests on
# daxkv's L2 adapter), then daxkv's own tests of the integration
# (tests/lmcache/daxkv_tests). LMCache's files come from $LMCACHE_SRC or
# ../shared/lmcache-upstream beside the repository; without them the suite
# says so in one line and counts nothing.
# $1: build directory. Ends with "SUITE lmcache: N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILDDIR}" 2>/dev/null && pwd) || { echo "SUITE lmcache: 0 passed, 1 failed"; exit 1; }
export DAXKV_LIBRARY="$build/lib/.libs/libdaxkv.so.0"
export PYTHONDONTWRITEBYTECODE=1
py=/usr/bin/python3
. "$here/lib.sh"

missing=""
for m in torch pytest sortedcontainers; do
    "$py" -c "import $m" >/dev/null 2>&1 || missing="$missing $m"
done
if [ -n "$missing" ] || [ ! -e "$DAXKV_LIBRARY" ]; then
    [ -n "$missing" ] && echo "Debian's python3 lacks:$missing (apt-get install python3-torch python3-pytest python3-sortedcontainers)"
    [ -e "$DAXKV_LIBRARY" ] || echo "missing $DAXKV_LIBRARY"
    echo "SUITE lmcache: 0 passed, 1 failed"
    exit 1
fi

pass=0 fail=0
log="$build/lmcache-conformance.log"
"$py" "$src/tests/lmcache/run.py" >"$log" 2>&1
rc=$?
grep -E '^lmcache\[[a-z0-9-]+\]: [0-9]+ passed|^  FAILED' "$log"
if grep -q "LMCache sources not found" "$log"; then
    echo "LMCache's DAX files not found (\$LMCACHE_SRC or ../shared/lmcache-upstream): LMCache's tests not counted"
    p=0 f=0
else
    read -r p f < <(plain_counts "$log") # "0 1" when the run printed no closing line
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        tail -20 "$log"
        f=1
    fi
fi
pass=$((pass + p)) fail=$((fail + f))

log="$build/lmcache-daxkv-tests.log"
(cd "$src/tests/lmcache/daxkv_tests" && "$py" -m pytest -rA -p no:cacheprovider -q .) >"$log" 2>&1
rc=$?
p=$(grep -c '^PASSED ' "$log" || true)
# Summary lines name a test ("ERROR tests/x.py::t"); captured log records
# ("ERROR    daxkv.lmcache: ...") have more spaces and are not counted.
f=$(grep -cE '^(FAILED|ERROR) [^ ]' "$log" || true)
s=$(grep -c '^SKIPPED ' "$log" || true)
grep -E '^(FAILED|ERROR|SKIPPED) [^ ]' "$log" | head -40
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    tail -30 "$log"
    f=1
fi
echo "daxkv's LMCache integration tests: $p passed, $f failed, $s skipped"
pass=$((pass + p)) fail=$((fail + f + s))
echo "SUITE lmcache: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
