#!/bin/bash
# The unit, C API and adversarial tests again, built with ASan+UBSan and
# with TSan: the library at -O1, the test programs at -O0 (build_test_tree).
# $1: main build directory (its parent holds the sanitizer build trees).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
root=$(dirname "$1")
pass=0 fail=0
for kind in asan tsan; do
    case $kind in
    asan) flags=address,undefined ;;
    tsan) flags=thread ;;
    esac
    dir="$root/build-$kind"
    if ! build_test_tree "$src" "$dir" "$TEST_PROGRAMS tests/adversarial/daxkv_adversarial" \
        --enable-sanitizers=$flags CFLAGS="-O1 -g" CXXFLAGS="-O1 -g"; then
        echo "$kind: build failed"; tail -20 "$dir/build.log"
        fail=$((fail + 1)); continue
    fi
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # die_after_fork=0: the adversarial tests run scenarios in forked children.
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0
    # TSan needs the legacy address-space layout on kernels with high ASLR entropy.
    run=""
    [ $kind = tsan ] && setarch "$(uname -m)" -R true 2>/dev/null && run="setarch $(uname -m) -R"
    (cd "$dir" && $run ./tests/unit/daxkv_unit >unit.log 2>&1)
    read -r p f < <(gtest_counts "$dir/unit.log")
    if grep -qE 'ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/unit.log"; then
        f=$((f + 1)); grep -E -A12 'ERROR: |WARNING: ThreadSanitizer|runtime error:' "$dir/unit.log" | head -40
    fi
    echo "$kind unit tests: $p passed, $f failed"
    pass=$((pass + p)) fail=$((fail + f))
    (cd "$dir" && $run ./tests/capi/capi_test >capi.log 2>&1)
    read -r p f < <(plain_counts "$dir/capi.log")
    if grep -qE 'ERROR: |WARNING: ThreadSanitizer|runtime error:' "$dir/capi.log"; then
        f=$((f + 1)); head -40 "$dir/capi.log"
    fi
    echo "$kind C API test: $p passed, $f failed"
    pass=$((pass + p)) fail=$((fail + f))
    (cd "$dir" && $run timeout 900 ./tests/adversarial/daxkv_adversarial >adversarial.log 2>&1)
    read -r p f < <(gtest_counts "$dir/adversarial.log")
    if grep -qE 'ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/adversarial.log"; then
        f=$((f + 1)); grep -E -A12 'ERROR: |WARNING: ThreadSanitizer|runtime error:' "$dir/adversarial.log" | head -40
    fi
    [ "$f" -eq 0 ] || grep -E -A6 '^\[  FAILED  \]|Failure' "$dir/adversarial.log" | head -20
    echo "$kind adversarial tests: $p passed, $f failed"
    pass=$((pass + p)) fail=$((fail + f))
done
echo "SUITE sanitizers: $pass passed, $fail failed"
