#!/bin/bash
# The GPU checks and the GPU benchmark, for a machine with an NVIDIA GPU, a
# driver and a CUDA 12 or 13 runtime (libcudart.so.12/.13 where the dynamic
# loader finds it). Not part of tests/run-all.sh: the CI machines have no GPU.
#
#   tests/gpu/run-gpu-tests.sh [--build DIR] [--fake]
#
# Builds the tree in DIR (default build-gpu next to the sources) unless it is
# built already, runs tests/gpu/gpu_check against the real runtime, then
# `daxkv bench --gpu --json` and judges the speed bar of issue 7: DAX -> GPU
# with a registered arena at least 0.9x, staged at least 0.8x pinned-host ->
# GPU cudaMemcpy of the same bytes in the same run. Ends with
# "N passed, M failed". No GPU counts as failed, never as skipped.
#
# --fake runs everything against the test suite's fake runtime instead
# (DAXKV_TEST_CUDART), to check this script on a machine without a GPU; the
# speed bar is then reported but not judged.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
build="$src/build-gpu"
fake=0
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --fake) fake=1; shift ;;
    *) echo "usage: $0 [--build DIR] [--fake]" >&2; exit 2 ;;
    esac
done
. "$src/tests/suites/lib.sh"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

(cd "$src" && [ -x configure ] || autoreconf -fi >/dev/null 2>&1) || true
if ! build_tree "$src" "$build" CFLAGS="-O2 -g" CXXFLAGS="-O2 -g"; then
    tail -30 "$build/build.log"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ $fake = 1 ]; then
    export DAXKV_TEST_CUDART="$build/tests/fakecuda/.libs/libfakecudart.so"
    echo "== fake CUDA runtime: $DAXKV_TEST_CUDART (no GPU figures)"
else
    unset DAXKV_TEST_CUDART
    command -v nvidia-smi >/dev/null && nvidia-smi -L
fi

echo "== GPU checks"
(cd "$build" && ./tests/gpu/gpu_check) >"$build/gpu-check.log" 2>&1
cat "$build/gpu-check.log"
read -r p f < <(plain_counts "$build/gpu-check.log")
pass=$((pass + p)) fail=$((fail + f))

echo "== daxkv bench --gpu"
json="$build/bench-gpu.json"
if (cd "$build" && ./tools/daxkv bench --gpu --json) >"$json" 2>"$build/bench-gpu.err"; then
    ok "bench --gpu ran and verified every chunk"
else
    bad "bench --gpu: $(cat "$build/bench-gpu.err")"
fi
(cd "$build" && ./tools/daxkv bench --gpu) 2>&1 | tee "$build/bench-gpu.txt"
if [ -s "$json" ]; then
    judge=$([ $fake = 1 ] && echo 0 || echo 1)
    out=$(python3 - "$json" "$judge" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
judge = sys.argv[2] == "1"
bars = [("registered", 0.9), ("staged", 0.8)]
for path, bar in bars:
    r = j[path]
    if "skipped" in r:
        print(("FAIL" if judge else "note"), f"{path}: not measured: {r['skipped']}")
        continue
    ratio = r["dax_to_gpu_vs_pinned"]
    verdict = "ok  " if ratio >= bar else "FAIL"
    if not judge:
        verdict = "note"
    print(verdict, f"{path}: DAX -> GPU {r['dax_to_gpu_gb_per_s']:.2f} GB/s = {ratio:.2f} x "
          f"pinned cudaMemcpy ({j['pinned_h2d_gb_per_s']:.2f} GB/s), bar {bar} x; "
          f"GPU -> DAX {r['gpu_to_dax_gb_per_s']:.2f} GB/s = {r['gpu_to_dax_vs_pinned']:.2f} x; "
          f"GPU: {j['gpu']}")
PY
)
    echo "$out"
    pass=$((pass + $(echo "$out" | grep -c '^ok'))) fail=$((fail + $(echo "$out" | grep -c '^FAIL')))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
