#!/bin/bash
# libFuzzer over the recovery parser (tests/fuzz/fuzz_recovery.cpp) and over
# the statistics page and configuration readers (tests/fuzz/fuzz_peek.cpp):
# a tree built with clang, ASan+UBSan and -fsanitize=fuzzer next to the main
# build, the recovery seed corpus replayed, then FUZZ_SECONDS (default 60)
# of fuzzing for each target, the two side by side. $1: main build
# directory. Crash inputs are kept in build-fuzz/fuzz-work/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
root=$(dirname "$1")
dir="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-60}
pass=0 fail=0
if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
    echo "clang is missing (Debian: clang, libclang-rt-14-dev)"
    echo "SUITE fuzz: 0 passed, 1 failed"
    exit 1
fi
mkdir -p "$dir"
if (cd "$dir" && { [ -f Makefile ] || "$src/configure" --quiet CC=clang CXX=clang++ \
        --enable-sanitizers=address,undefined --enable-fuzzer \
        CFLAGS="-O1 -g" CXXFLAGS="-O1 -g"; } &&
        make -j"$(nproc)" tests/fuzz/fuzz_recovery tests/fuzz/fuzz_peek tests/fuzz/make_seeds \
            >build.log 2>&1); then
    pass=$((pass + 1))
    echo "fuzz targets built with clang (ASan, UBSan, libFuzzer)"
else
    echo "fuzz build failed"
    tail -20 "$dir/build.log" 2>/dev/null || tail -20 "$dir/config.log"
    echo "SUITE fuzz: $pass passed, 1 failed"
    exit 1
fi
cd "$dir" || exit 1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The seeds alone, each run once.
rm -rf fuzz-work && mkdir -p fuzz-work/seeds fuzz-work/corpus
if ./tests/fuzz/make_seeds fuzz-work/seeds && n=$(ls fuzz-work/seeds | wc -l) && [ "$n" -gt 0 ] &&
    ./tests/fuzz/fuzz_recovery -runs=0 fuzz-work/seeds >fuzz-seeds.log 2>&1; then
    pass=$((pass + 1))
    echo "seed corpus: $n images replayed"
else
    fail=$((fail + 1))
    echo "seed corpus replay failed"; tail -30 fuzz-seeds.log
fi
# Bounded fuzzing, both targets at once (each is one process on one core):
# start_fuzzer MAKE-TARGET LOG, then finish_fuzzer PID LOG CORPUS WHAT.
start_fuzzer() {
    make FUZZ_SECONDS="$seconds" "$1" >"$2" 2>&1 &
    fuzzer_pid=$!
}
finish_fuzzer() {
    if wait "$1"; then
        pass=$((pass + 1))
        echo "fuzzing $4: $seconds s, $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$2" | grep -Eo '[0-9]+$') runs, no failure;" \
            "corpus $(ls "$3" | wc -l) inputs"
    else
        fail=$((fail + 1))
        echo "fuzzing $4 found a failure:"
        grep -E -A25 'ERROR: |expectation violated|runtime error|Test unit written' "$2" | head -60
    fi
}
start_fuzzer fuzz fuzz.log
recovery_pid=$fuzzer_pid
start_fuzzer fuzz-peek fuzz-peek.log
peek_pid=$fuzzer_pid
finish_fuzzer "$recovery_pid" fuzz.log fuzz-work/corpus "the recovery parser"
finish_fuzzer "$peek_pid" fuzz-peek.log fuzz-work/peek-corpus "the page and configuration readers"
echo "SUITE fuzz: $pass passed, $fail failed"
