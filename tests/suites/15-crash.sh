#!/bin/bash
# Kill test: a writer SIGKILLed at random moments, the arena reopened and
# every acknowledged put, replace and remove checked (tests/crash). One pass
# or failure per round. $1: build directory. KILL_ROUNDS (default 1000, about 5 s) and
# KILL_SEED (default: random, printed) replay a run.
set -u
build=$1
rounds=${KILL_ROUNDS:-1000}
cd "$build" || { echo "SUITE crash: 0 passed, 1 failed"; exit 1; }
if [ ! -x tests/crash/kill_test ]; then
    echo "tests/crash/kill_test is not built"
    echo "SUITE crash: 0 passed, 1 failed"
    exit 1
fi
args=(--rounds "$rounds")
[ -n "${KILL_SEED:-}" ] && args+=(--seed "$KILL_SEED")
timeout 600 ./tests/crash/kill_test "${args[@]}" >crash.log 2>&1
rc=$?
grep -E '^kill test' crash.log | head -1
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' crash.log | tail -n 1)
if [ -z "$line" ]; then
    echo "kill test ended without a result (exit status $rc)"
    tail -20 crash.log
    echo "SUITE crash: 0 passed, 1 failed"
    exit 1
fi
echo "kill test: $line"
if [ "$rc" -ne 0 ]; then
    grep -E -A8 '^FAIL' crash.log | head -40
    grep -E 'FAILED with seed' crash.log
fi
p=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1/')
f=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\2/')
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
echo "SUITE crash: $p passed, $f failed"
