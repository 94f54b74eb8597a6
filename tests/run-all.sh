#!/bin/bash
# Build libdaxkv from scratch and run every test suite: unit and C API
# tests, the sanitizer builds, the real /dev/dax guest rig, the ABI checks,
# the language bindings and the packages. Each suite ends with a line
# "SUITE <name>: N passed, M failed"; the last line here is the total.
#
#   tests/run-all.sh [--only NAME[,NAME]] [--build DIR]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build="$src/build"
only=""
while [ $# -gt 0 ]; do
    case $1 in
    --only) only=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--only NAME,...] [--build DIR]" >&2; exit 2 ;;
    esac
done
. "$src/tests/suites/lib.sh"

total_pass=0 total_fail=0
echo "== building in $build"
(cd "$src" && [ -x configure ] || autoreconf -fi >/dev/null 2>&1) || true
if ! build_tree "$src" "$build" CFLAGS="-O2 -g" CXXFLAGS="-O2 -g"; then
    tail -30 "$build/build.log"
    echo "build: 0 passed, 1 failed"
    echo "0 passed, 1 failed"
    exit 1
fi

for suite in "$src"/tests/suites/[0-9]*.sh; do
    name=$(basename "$suite" .sh)
    name=${name#*-}
    if [ -n "$only" ] && ! echo ",$only," | grep -q ",$name,"; then
        continue
    fi
    echo "== suite $name"
    start=$(date +%s)
    log="$build/suite-$name.log"
    bash "$suite" "$build" 2>&1 | tee "$log"
    line=$(grep -E '^SUITE [^:]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "suite $name ended without a result line: counted as failed"
        total_fail=$((total_fail + 1))
    else
        p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
        f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
        total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
    fi
    echo "   ($(($(date +%s) - start)) s)"
done
echo "== total"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
