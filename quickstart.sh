#!/bin/bash
# libdaxkv quick start, on a fresh Debian 12 machine, as root:
#
#   ./quickstart.sh bench   install what the build needs, build, and run the
#                           main job: store and restore KV chunks on a
#                           file-backed arena, verify them, print the speed
#   ./quickstart.sh test    install what the tests need, build from scratch,
#                           run every suite; ends with "N passed, N failed"
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)

build_deps="build-essential autoconf automake libtool pkg-config libxxhash-dev
  nlohmann-json3-dev libdaxctl-dev libndctl-dev libgtest-dev libnuma-dev uuid-dev"
test_deps="qemu-system-x86 linux-image-amd64 busybox-static ndctl daxctl kmod cpio xz-utils
  python3 python3-pytest python3-numpy python3-torch python3-sortedcontainers python3-prometheus-client golang-go cargo
  debhelper devscripts lintian rpm rpm2cpio abigail-tools groff-base man-db clang libclang-rt-14-dev gnuplot-nox
  dh-python pybuild-plugin-pyproject python3-all python3-setuptools python3-wheel python3-pip python3-venv shellcheck"

install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "quickstart: missing packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "quickstart: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case "${1:-}" in
bench)
    shift
    # shellcheck disable=SC2086
    install $build_deps
    (cd "$src" && autoreconf -fi >/dev/null 2>&1)
    mkdir -p "$src/build"
    (cd "$src/build" && { [ -f Makefile ] || ../configure --quiet CFLAGS="-O2 -g" CXXFLAGS="-O2 -g"; } &&
        make -j"$(nproc)" >/dev/null)
    exec "$src/build/tools/daxkv" bench "$@"
    ;;
test)
    shift
    # shellcheck disable=SC2086
    install $build_deps $test_deps
    (cd "$src" && autoreconf -fi >/dev/null 2>&1)
    exec "$src/tests/run-all.sh" "$@"
    ;;
*)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
