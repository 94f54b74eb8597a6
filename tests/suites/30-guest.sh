#!/bin/bash
# The real-device rig: boots Debian's kernel under QEMU (TCG) with two
# emulated NVDIMMs, makes /dev/dax0.0 and /dev/dax1.0, and runs the device
# tests inside the guest. A guest that does not boot or report counts as
# failed tests, never as a skip. $1: build directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
vm="$here/../vm"
log="$build/guest.log"
rm -f "$log"
# The daxkv command is a libtool wrapper in the build tree; the guest needs
# the real program.
daxkv="$build/tools/.libs/daxkv"
[ -f "$daxkv" ] || daxkv="$build/tools/daxkv"
"$vm/run-guest-tests.sh" --log "$build/guest-console.log" \
    --file "$daxkv" --file "$vm/guest-list-check.sh" \
    --kill-on 'PERSIST-WRITTEN m1' "$build" \
    'discovery::tests/vm/guest_devdax_test --gtest_filter=Discovery.*' \
    'open-checks::tests/vm/guest_devdax_test --gtest_filter=Open.*' \
    'capi-on-dax0::tests/capi/capi_test /dev/dax0.0' \
    'list-matches-daxctl::/t/guest-list-check.sh /t/daxkv' \
    'system-ram::tests/vm/guest_devdax_test --gtest_filter=SystemRam.*' \
    'persist-write::tests/vm/guest_devdax_test --persist-write m1' \
    --reboot \
    'persist-check::tests/vm/guest_devdax_test --persist-check m1' \
    'persist-mismatch-detected::! tests/vm/guest_devdax_test --persist-check other' \
    'discovery-after-restart::tests/vm/guest_devdax_test --gtest_filter=Discovery.*' \
    2>&1 | tee "$log"
line=$(grep -E '^guest suite: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
if [ -z "$line" ]; then
    echo "SUITE guest: 0 passed, 1 failed"
else
    echo "SUITE guest: ${line#guest suite: }"
fi
