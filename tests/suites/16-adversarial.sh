#!/bin/bash
# The adversarial suite (tests/adversarial): the library attacked as a
# hostile or unlucky caller would: bad input at every public function, path
# and file-type tricks, damaged and truncated arenas, a full file system,
# other users, re-entrant log callbacks, shutdown racing every blocking call,
# long hotplug sequences against a model, pool histories; then the daxkv
# command (cli.sh) and a short run of the pool kill test. $1: build
# directory. Bounded to well under a minute.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
build=$1
pass=0 fail=0
cd "$build" || { echo "SUITE adversarial: 0 passed, 1 failed"; exit 1; }
timeout 600 ./tests/adversarial/daxkv_adversarial >adversarial.log 2>&1
read -r p f < <(gtest_counts adversarial.log)
pass=$((pass + p)) fail=$((fail + f))
echo "adversarial tests: $p passed, $f failed"
[ "$f" -eq 0 ] || grep -E -A6 '^\[  FAILED  \]|Failure' adversarial.log | head -40
timeout 300 bash "$here/../adversarial/cli.sh" "$PWD" >adversarial-cli.log 2>&1
read -r p f < <(plain_counts adversarial-cli.log)
pass=$((pass + p)) fail=$((fail + f))
echo "daxkv command: $p passed, $f failed"
[ "$f" -eq 0 ] || grep FAIL adversarial-cli.log | head -20
timeout 300 ./tests/crash/pool_kill_test --rounds "${ADV_KILL_ROUNDS:-300}" >adversarial-kill.log 2>&1
read -r p f < <(plain_counts adversarial-kill.log)
pass=$((pass + p)) fail=$((fail + f))
echo "pool histories under kill -9: $p passed, $f failed"
[ "$f" -eq 0 ] || grep -E -A4 '^FAIL|FAILED with seed' adversarial-kill.log | head -20
echo "SUITE adversarial: $pass passed, $fail failed"
