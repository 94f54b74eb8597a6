# shellcheck shell=bash
# Shared helpers for the suite scripts (sourced, not run).

# Count a GoogleTest binary's per-test results from its output file.
# Prints "PASSED FAILED"; a test that started but never finished (a crash)
# counts as failed, and so does a binary that never reached its closing
# "[==========] N tests ... ran." line without a test to blame (missing,
# not built, or dead before its first test). Skipped tests (GTEST_SKIP: a
# sanitizer that cannot run them, file-only tests on a device) count
# neither way; they are named on stderr.
gtest_counts() {
    local log=$1 ok failed runs skipped
    ok=$(grep -c '^\[       OK \]' "$log" || true)
    failed=$(grep -cE '^\[  FAILED  \] .*\([0-9]+ ms\)$' "$log" || true)
    skipped=$(grep -cE '^\[  SKIPPED \] .*\([0-9]+ ms\)$' "$log" || true)
    runs=$(grep -c '^\[ RUN      \]' "$log" || true)
    if [ "$runs" -gt $((ok + failed + skipped)) ]; then
        failed=$((runs - ok - skipped))
    elif ! grep -qE '^\[==========\] [0-9]+ tests? from [0-9]+ test suites? ran\.' "$log"; then
        failed=$((failed + 1))
        echo "($log: the test binary did not run to its end: $(head -c 200 "$log" | head -n 1))" >&2
    fi
    if [ "$skipped" -gt 0 ]; then
        echo "($skipped skipped: $(grep -E '^\[  SKIPPED \] .*\([0-9]+ ms\)$' "$log" |
            sed -E 's/^\[  SKIPPED \] ([^ ]+).*/\1/' | tr '\n' ' '))" >&2
    fi
    echo "$ok $failed"
}

# Count a "N passed, M failed" closing line in a log. Prints "PASSED FAILED".
plain_counts() {
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then
        echo "0 1"
    else
        echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/'
    fi
}

# Configure and build the tree in $2 from source dir $1 with extra configure
# arguments; the log goes to $2/build.log. BUILD_TARGETS, when set, names the
# only targets to make (a suite that runs a few programs of a second tree
# need not compile the rest: on two cores the whole tree takes minutes).
# Otherwise the library, the command and the Python module are built with
# the configured flags, and then the test programs at -O0 -g: what the tests
# check is the library, and on two cores the optimizer spent 236 s on the
# test programs against 126 s at -O0 (the main tree's build in two CI runs
# from a fresh clone: 6.6 minutes at -O2, 3.5 at -O0). The suites that run
# them took about the same time either way (unit 71 s against 67 s,
# adversarial 21 s, crash 39 s, tools 26 s), except the unit run inside the
# guest rig's virtual machine: 126 s against 72 s.
build_tree() {
    local src=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    (cd "$dir" && { [ -f Makefile ] || "$src/configure" --quiet "$@"; } &&
        if [ -n "${BUILD_TARGETS:-}" ]; then
            # shellcheck disable=SC2086
            make -j"$(nproc)" $BUILD_TARGETS >build.log 2>&1
        else
            make -j"$(nproc)" >build.log 2>&1 &&
                make -j"$(nproc)" check TESTS= CFLAGS="-O0 -g" CXXFLAGS="-O0 -g" >>build.log 2>&1
        fi)
}

# A second tree for a suite that runs a few test programs:
# build_test_tree SRC DIR "PROGRAMS" CONFIGURE-ARGS... configures DIR, builds
# the library and the fake CUDA runtime its tests load with the configured
# flags, then PROGRAMS at -O0 -g, the tree's other flags (the sanitizers
# among them) unchanged. What these suites check is the library; an
# optimizing compiler spends minutes on the large test files on two cores
# (one of them takes a minute at -O1 with ASan and UBSan, 20 s at -O0).
build_test_tree() {
    local src=$1 dir=$2 programs=$3
    shift 3
    # shellcheck disable=SC2086 # the programs are words
    BUILD_TARGETS="lib/libdaxkv.la tests/fakecuda/libfakecudart.la" build_tree "$src" "$dir" "$@" &&
        (cd "$dir" && make -j"$(nproc)" CFLAGS="-O0 -g" CXXFLAGS="-O0 -g" $programs >>build.log 2>&1)
}

# The test programs every second tree runs (a suite adds its own).
# shellcheck disable=SC2034 # used by the suites that source this
TEST_PROGRAMS="tests/unit/daxkv_unit tests/capi/capi_test"
