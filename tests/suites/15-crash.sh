#!/bin/bash
# Kill tests: a writer SIGKILLed at random moments, the arena reopened (in
# another durability and verify mode) and every acknowledged put, replace,
# remove, batch and reservation checked, with evicting and durability=none
# rounds among them (tests/crash/kill_test);
# the same across the histories of a pool, with hotplug calls killed and
# devices missing at some opens and back at later ones
# (tests/crash/pool_kill_test); and opens that create their file arena,
# killed while they create it: the path holds a whole arena or nothing
# (tests/crash/create_kill_test). One pass or failure per round. $1: build
# directory. KILL_ROUNDS (default 1000 each: about 5, 8 and 25 s) and KILL_SEED
# (default: random, printed) replay a run.
set -u
build=$1
rounds=${KILL_ROUNDS:-1000}
cd "$build" || { echo "SUITE crash: 0 passed, 1 failed"; exit 1; }
pass=0 fail=0
for t in kill_test pool_kill_test create_kill_test; do
    if [ ! -x tests/crash/$t ]; then
        echo "tests/crash/$t is not built"
        fail=$((fail + 1))
        continue
    fi
    args=(--rounds "$rounds")
    [ -n "${KILL_SEED:-}" ] && args+=(--seed "$KILL_SEED")
    timeout 600 ./tests/crash/$t "${args[@]}" >$t.log 2>&1
    rc=$?
    grep -E '^(pool |create )?kill test' $t.log | head -1
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' $t.log | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t ended without a result (exit status $rc)"
        tail -20 $t.log
        fail=$((fail + 1))
        continue
    fi
    echo "$t: $line"
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\2/')
    if [ "$rc" -ne 0 ]; then
        grep -E -A8 '^FAIL' $t.log | head -40
        grep -E 'FAILED with seed' $t.log
        [ "$f" -eq 0 ] && f=1
    fi
    pass=$((pass + p)) fail=$((fail + f))
done
echo "SUITE crash: $pass passed, $fail failed"
