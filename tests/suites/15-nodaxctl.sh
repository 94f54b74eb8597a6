#!/bin/bash
# The build without libdaxctl (configure --without-daxctl): device discovery
# then reads sysfs only. Builds a second tree next to the main one, runs the
# unit suite (its discovery tests drive the sysfs reader over fixture trees)
# and the C API test there, and checks that the library does not depend on
# libdaxctl. $1: main build directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
dir="$(dirname "$1")/build-nodaxctl"
pass=0 fail=0
if ! build_test_tree "$src" "$dir" "$TEST_PROGRAMS tools/daxkv" --without-daxctl CFLAGS="-O2 -g" CXXFLAGS="-O2 -g"; then
    echo "build --without-daxctl failed"; tail -20 "$dir/build.log"
    echo "SUITE nodaxctl: 0 passed, 1 failed"
    exit 1
fi
cd "$dir" || exit 1
if grep -q '^#define HAVE_DAXCTL 1' config.h; then
    echo "FAIL: configure --without-daxctl still defined HAVE_DAXCTL"; fail=$((fail + 1))
else
    pass=$((pass + 1))
fi
lib=$(ls lib/.libs/libdaxkv.so.* 2>/dev/null | head -n 1)
if [ -n "$lib" ] && ! readelf -d "$lib" | grep NEEDED | grep -q daxctl; then
    echo "libdaxkv does not need libdaxctl: ok"; pass=$((pass + 1))
else
    echo "FAIL: ${lib:-libdaxkv.so} missing or linked against libdaxctl"; fail=$((fail + 1))
fi
./tests/unit/daxkv_unit >unit.log 2>&1
read -r p f < <(gtest_counts unit.log)
echo "unit tests without libdaxctl: $p passed, $f failed"
[ "$f" -eq 0 ] || grep -E '^\[  FAILED  \]|Failure' unit.log | head -20
pass=$((pass + p)) fail=$((fail + f))
./tests/capi/capi_test >capi.log 2>&1
read -r p f < <(plain_counts capi.log)
echo "C API test without libdaxctl: $p passed, $f failed"
pass=$((pass + p)) fail=$((fail + f))
# The daxkv command of this build: list through sysfs, and an arena formatted
# (its UUID from libuuid, which this build links without libdaxctl) and read.
arena=$(mktemp -u /tmp/daxkv-nodaxctl.XXXXXX)
if ./tools/daxkv list >list.json 2>&1 && ./tools/daxkv format "$arena" --slot-bytes 4KiB --size 4MiB >format.log 2>&1 &&
    ./tools/daxkv info "$arena" --json >info.json 2>&1 && grep -q '"uuid": "[0-9a-f-]\{36\}"' info.json &&
    ! readelf -d tools/.libs/daxkv 2>/dev/null | grep NEEDED | grep -q daxctl; then
    echo "daxkv list, format and info without libdaxctl: ok"; pass=$((pass + 1))
else
    echo "FAIL: daxkv without libdaxctl"; cat list.json format.log info.json | head -20; fail=$((fail + 1))
fi
rm -f "$arena"
echo "SUITE nodaxctl: $pass passed, $fail failed"
