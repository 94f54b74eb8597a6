#!/bin/bash
# The unit, C API and adversarial tests again, built with ASan+UBSan and
# with TSan: the library at -O1, the test programs at -O0 (build_test_tree).
# The ASan+UBSan tree is also the build without libdaxctl (configure
# --without-daxctl: device discovery reads sysfs only, and the unit suite's
# discovery tests drive that reader over fixture trees); it checks that
# neither the library nor the daxkv command depends on libdaxctl, and runs
# the command there. The TSan tree and the main build use libdaxctl.
# $1: main build directory (its parent holds the sanitizer build trees).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
root=$(dirname "$1")
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "$*: ok"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# The tree in $1 was configured --without-daxctl: nothing in it may need
# libdaxctl, and the daxkv command lists devices through sysfs and formats
# an arena (its UUID from libuuid, which this build links on its own).
check_without_daxctl() {
    local dir=$1 lib arena
    if grep -q '^#define HAVE_DAXCTL 1' "$dir/config.h"; then
        bad "configure --without-daxctl still defined HAVE_DAXCTL"
    else
        ok "configure --without-daxctl: HAVE_DAXCTL undefined"
    fi
    lib=$(ls "$dir"/lib/.libs/libdaxkv.so.* 2>/dev/null | head -n 1)
    if [ -n "$lib" ] && ! readelf -d "$lib" | grep NEEDED | grep -q daxctl; then
        ok "libdaxkv without libdaxctl does not need it"
    else
        bad "${lib:-libdaxkv.so} missing or linked against libdaxctl"
    fi
    arena=$(mktemp -u /tmp/daxkv-nodaxctl.XXXXXX)
    if (cd "$dir" && ./tools/daxkv list >list.json 2>&1 &&
        ./tools/daxkv format "$arena" --slot-bytes 4KiB --size 4MiB >format.log 2>&1 &&
        ./tools/daxkv info "$arena" --json >info.json 2>&1) &&
        grep -q '"uuid": "[0-9a-f-]\{36\}"' "$dir/info.json" &&
        ! readelf -d "$dir/tools/.libs/daxkv" 2>/dev/null | grep NEEDED | grep -q daxctl; then
        ok "daxkv list, format and info without libdaxctl"
    else
        bad "daxkv without libdaxctl"; cat "$dir/list.json" "$dir/format.log" "$dir/info.json" | head -20
    fi
    rm -f "$arena"
}

# run_shards DIR PROGRAM LOG [PREFIX...]: the GoogleTest PROGRAM of DIR in
# as many shards as there are CPUs, side by side (GTEST_TOTAL_SHARDS), each
# into LOG.N, all of them into LOG; prints "PASSED FAILED" summed over the
# shards, each judged on its own by gtest_counts (a shard that died is a
# failure even where the others ran to their end). The tests under the
# sanitizers spend much of their time on one thread: on two cores two
# shards took the unit tests from 236 s to 172 s under TSan and from 90 s
# to 62 s under ASan+UBSan, the adversarial tests from 38 s to 25 s.
run_shards() {
    local dir=$1 prog=$2 log=$3 n i p f pass_all=0 fail_all=0
    shift 3
    n=$(nproc)
    for ((i = 0; i < n; i++)); do
        (cd "$dir" && GTEST_TOTAL_SHARDS=$n GTEST_SHARD_INDEX=$i "$@" "$prog" >"$log.$i" 2>&1) &
    done
    wait
    : >"$log"
    for ((i = 0; i < n; i++)); do
        cat "$log.$i" >>"$log"
        read -r p f < <(gtest_counts "$log.$i")
        pass_all=$((pass_all + p)) fail_all=$((fail_all + f))
    done
    echo "$pass_all $fail_all"
}

for kind in asan tsan; do
    case $kind in
    asan) flags=address,undefined programs="tools/daxkv" configure=--without-daxctl ;;
    tsan) flags=thread programs="" configure="" ;;
    esac
    dir="$root/build-$kind"
    # shellcheck disable=SC2086
    if ! build_test_tree "$src" "$dir" "$TEST_PROGRAMS tests/adversarial/daxkv_adversarial $programs" \
        --enable-sanitizers=$flags $configure CFLAGS="-O1 -g" CXXFLAGS="-O1 -g"; then
        echo "$kind: build failed"; tail -20 "$dir/build.log"
        fail=$((fail + 1)); continue
    fi
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # die_after_fork=0: the adversarial tests run scenarios in forked children.
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0
    # TSan needs the legacy address-space layout on kernels with high ASLR entropy.
    run=""
    [ $kind = tsan ] && setarch "$(uname -m)" -R true 2>/dev/null && run="setarch $(uname -m) -R"
    # shellcheck disable=SC2086
    read -r p f < <(run_shards "$dir" ./tests/unit/daxkv_unit "$dir/unit.log" $run)
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
    # shellcheck disable=SC2086
    read -r p f < <(run_shards "$dir" ./tests/adversarial/daxkv_adversarial "$dir/adversarial.log" \
        $run timeout 900)
    if grep -qE 'ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/adversarial.log"; then
        f=$((f + 1)); grep -E -A12 'ERROR: |WARNING: ThreadSanitizer|runtime error:' "$dir/adversarial.log" | head -40
    fi
    [ "$f" -eq 0 ] || grep -E -A6 '^\[  FAILED  \]|Failure' "$dir/adversarial.log" | head -20
    echo "$kind adversarial tests: $p passed, $f failed"
    pass=$((pass + p)) fail=$((fail + f))
    [ $kind = asan ] && check_without_daxctl "$dir"
done
echo "SUITE sanitizers: $pass passed, $fail failed"
