#!/bin/bash
# Packages: build the .debs from a clean export of the tree, lintian, install
# them, build and run a program against the installed library with
# pkg-config, run the daxkv command, import the Python package, uninstall;
# then build the RPMs from the "make dist" tarball and check their file lists.
#
#   tests/suites/60-packaging.sh BUILDDIR
#
# Needs root (or password-less sudo) to install, and dpkg-dev, debhelper,
# lintian, rpm, plus the Build-Depends of debian/control. Set
# PACKAGING_KEEP=1 to keep the work directory, PACKAGING_CHECK=1 to run
# "make check" inside the Debian build.
# Ends with "SUITE packaging: N passed, M failed" (one count per check).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILDDIR}" 2>/dev/null && pwd) || {
    echo "build directory '$1' does not exist"
    echo "SUITE packaging: 0 passed, 1 failed"
    exit 1
}

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
finish() {
    echo "SUITE packaging: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

if [ "$(id -u)" -eq 0 ]; then
    SUDO=
elif sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "installing packages needs root or password-less sudo"
    bad "privileges"
    finish
fi
missing=
for tool in dpkg-buildpackage dh lintian rpmbuild git pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "missing tools:$missing (apt-get install dpkg-dev debhelper lintian rpm git pkg-config)"
    bad "tools"
    finish
fi

version=$(sed -n 's/^AC_INIT(\[libdaxkv\], *\[\([^]]*\)\].*/\1/p' "$src/configure.ac")
work=$(mktemp -d /tmp/daxkv-packaging.XXXXXX)
log="$build/packaging.log"
: >"$log"
pkgs="libdaxkv0 libdaxkv-dev daxkv-tools python3-daxkv"
installed=
group_existed=no
getent group daxkv >/dev/null 2>&1 && group_existed=yes
arena=/dev/shm/pkgtest.arena

cleanup() {
    if [ -n "$installed" ]; then
        # shellcheck disable=SC2086
        $SUDO dpkg --purge $installed >>"$log" 2>&1 || true
    fi
    if [ "$group_existed" = no ] && getent group daxkv >/dev/null 2>&1; then
        $SUDO groupdel daxkv >>"$log" 2>&1 || true
    fi
    rm -f "$arena"
    if [ "${PACKAGING_KEEP:-0}" = 1 ]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "log: $log"
echo "work directory: $work"

# Refuse to replace packages that were installed by someone else.
for p in $pkgs; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        echo "$p is already installed; remove it first (this suite installs and purges its own build)"
        bad "clean starting state"
        finish
    fi
done

# --- Clean export: tracked files and new files git does not ignore ----------
tree="$work/libdaxkv-$version"
mkdir -p "$tree"
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 cp -a --parents -t "$tree") >>"$log" 2>&1
if [ -f "$tree/debian/control" ] && [ -f "$tree/configure.ac" ]; then
    ok "exported the tree ($(cd "$tree" && find . -type f | wc -l) files)"
else
    bad "export of the tree"
    finish
fi

# --- Versions agree ---------------------------------------------------------
deb_version=$(cd "$tree" && dpkg-parsechangelog -S Version)
if [ "${deb_version%-*}" = "$version" ]; then
    ok "debian/changelog ($deb_version) matches AC_INIT ($version)"
else
    bad "debian/changelog is $deb_version but AC_INIT is $version"
fi

# --- Debian packages --------------------------------------------------------
opts="nocheck parallel=$(nproc)"
[ "${PACKAGING_CHECK:-0}" = 1 ] && opts="parallel=$(nproc)"
echo "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$opts)"
if (cd "$tree" && DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b) >"$build/packaging-deb.log" 2>&1; then
    ok "dpkg-buildpackage built $(ls "$work"/*.deb | wc -l) packages"
else
    tail -40 "$build/packaging-deb.log"
    bad "dpkg-buildpackage (log: $build/packaging-deb.log)"
    finish
fi
ls -l "$work"/*.deb | awk '{print "  " $5 "  " $9}' | sed "s|$work/||"

changes=$(ls "$work"/*.changes | head -n 1)
lintian --fail-on error --display-info --tag-display-limit 0 "$changes" >"$work/lintian.txt" 2>&1
lrc=$?
errors=$(grep -c '^E: ' "$work/lintian.txt" || true)
warnings=$(grep -c '^W: ' "$work/lintian.txt" || true)
infos=$(grep -c '^I: ' "$work/lintian.txt" || true)
grep -E '^(E|W): ' "$work/lintian.txt" | sed 's/^/  /'
if [ "$lrc" -eq 0 ] && [ "$errors" -eq 0 ]; then
    ok "lintian: $errors errors, $warnings warnings, $infos informational tags"
else
    bad "lintian: $errors errors (exit $lrc)"
fi

# --- Install ----------------------------------------------------------------
debs=()
for p in $pkgs; do
    f=$(ls "$work/${p}_"*.deb 2>/dev/null | head -n 1)
    [ -n "$f" ] && debs+=("$f")
done
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${debs[@]}" >>"$log" 2>&1; then
    installed=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Package; done | tr '\n' ' ')
    ok "installed: $installed"
else
    tail -20 "$log"
    installed=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Package; done | tr '\n' ' ')
    bad "apt-get install of the .debs"
    finish
fi

# A consumer program: pkg-config, compile, run (debian/tests/link-libraries).
if (cd "$work" && AUTOPKGTEST_TMP="$work" sh "$tree/debian/tests/link-libraries") >"$work/consumer.txt" 2>&1; then
    ok "consumer program: $(tail -n 1 "$work/consumer.txt")"
else
    sed 's/^/  /' "$work/consumer.txt" | tail -20
    bad "consumer program built with pkg-config against the installed library"
fi

if out=$(daxkv --version 2>&1) && echo "$out" | grep -q "$version"; then
    ok "daxkv --version: $out"
else
    bad "daxkv --version: $out"
fi
rm -f "$arena"
if timeout 300 daxkv bench --count 8 --value-size 1MiB --arena "$arena" --rounds 1 \
    --no-small --no-progress >"$work/bench.txt" 2>&1; then
    ok "daxkv bench --count 8 --value-size 1MiB --arena $arena"
    sed 's/^/  /' "$work/bench.txt" | tail -8
else
    sed 's/^/  /' "$work/bench.txt" | tail -20
    bad "daxkv bench"
fi
rm -f "$arena"
if man -w daxkv >/dev/null 2>&1 && man -w daxkv_get >/dev/null 2>&1 &&
    [ "$(man -w 3 daxkv_get)" != "" ]; then
    ok "man pages installed (daxkv(1), daxkv_get(3) alias)"
else
    bad "man pages not found by man -w"
fi
if getent group daxkv >/dev/null && ls /lib/udev/rules.d/*daxkv*.rules /usr/lib/udev/rules.d/*daxkv*.rules >/dev/null 2>&1; then
    ok "daxkv group created and udev rule installed"
else
    bad "daxkv group or udev rule missing"
fi

if ls "$work"/python3-daxkv_*.deb >/dev/null 2>&1; then
    if (cd / && /usr/bin/python3 -c 'import daxkv, daxkv.lmcache, sys; sys.stdout.write(daxkv.__file__ + "\n")') >"$work/python.txt" 2>&1; then
        ok "system Python imports daxkv ($(cat "$work/python.txt"))"
    else
        sed 's/^/  /' "$work/python.txt" | tail -10
        bad "system Python cannot import daxkv"
    fi
fi

# --- Uninstall --------------------------------------------------------------
# shellcheck disable=SC2086
if $SUDO dpkg --purge $installed >>"$log" 2>&1; then
    left=0
    for p in $installed; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' && left=$((left + 1))
    done
    if [ "$left" -eq 0 ] && [ ! -e /usr/include/daxkv.h ] && ! command -v daxkv >/dev/null; then
        ok "purged: $installed"
    else
        bad "packages left behind after purge"
    fi
    installed=
else
    bad "dpkg --purge $installed"
fi

# --- RPM packages -----------------------------------------------------------
rpmtree="$work/rpm-dist"
mkdir -p "$rpmtree"
cp -a "$tree/." "$rpmtree/"
(cd "$rpmtree" && rm -rf debian/.debhelper debian/tmp && autoreconf -fi &&
    ./configure --quiet && make dist) >"$build/packaging-dist.log" 2>&1
tarball="$rpmtree/libdaxkv-$version.tar.gz"
if [ -f "$tarball" ] && tar -tzf "$tarball" | grep -q "^libdaxkv-$version/rpm/libdaxkv.spec$"; then
    ok "make dist: $(basename "$tarball") contains rpm/libdaxkv.spec"
else
    tail -20 "$build/packaging-dist.log"
    bad "make dist (log: $build/packaging-dist.log)"
    finish
fi
echo "rpmbuild -ta --nodeps $(basename "$tarball")"
if rpmbuild -ta --nodeps --define "_topdir $work/rpmbuild" "$tarball" >"$build/packaging-rpm.log" 2>&1; then
    ok "rpmbuild built $(find "$work/rpmbuild/RPMS" -name '*.rpm' | wc -l) packages"
else
    tail -30 "$build/packaging-rpm.log"
    bad "rpmbuild (log: $build/packaging-rpm.log)"
    finish
fi

nman3=$(ls "$src"/docs/man/*.3 | wc -l)
check_rpm() { # name, then extended regexps every one of which a file must match
    local name=$1 f
    shift
    f=$(find "$work/rpmbuild/RPMS" -name "$name-$version-*.rpm" | head -n 1)
    if [ -z "$f" ]; then
        bad "no $name RPM"
        return
    fi
    rpm -qlp "$f" 2>/dev/null >"$work/$name.list"
    echo "  $(basename "$f"):"
    sed 's/^/    /' "$work/$name.list" | grep -v '/man3/' || true
    grep -q '/man3/' "$work/$name.list" && echo "    ($(grep -c '/man3/' "$work/$name.list") pages in /usr/share/man/man3)"
    local miss=
    for re in "$@"; do
        grep -qE "$re" "$work/$name.list" || miss="$miss $re"
    done
    if grep -qE '\.la$|\.a$' "$work/$name.list"; then
        miss="$miss (no .la/.a expected)"
    fi
    if [ -z "$miss" ]; then
        ok "rpm -qlp $name: $(wc -l <"$work/$name.list") files as expected"
    else
        bad "rpm -qlp $name: missing$miss"
    fi
}
check_rpm libdaxkv '^/usr/lib64/libdaxkv\.so\.0$' '^/usr/lib64/libdaxkv\.so\.0\.[0-9.]+$'
check_rpm libdaxkv-devel '^/usr/include/daxkv\.h$' '^/usr/include/daxkv_version\.h$' \
    '^/usr/lib64/libdaxkv\.so$' '^/usr/lib64/pkgconfig/libdaxkv\.pc$' \
    '^/usr/share/man/man3/libdaxkv\.3' '^/usr/share/man/man3/daxkv_get\.3'
check_rpm daxkv-tools '^/usr/bin/daxkv$' '^/usr/share/man/man1/daxkv\.1'
if f=$(find "$work/rpmbuild/RPMS" -name "libdaxkv-devel-$version-*.rpm" | head -n 1) && [ -n "$f" ]; then
    n=$(rpm -qlp "$f" 2>/dev/null | grep -c '/man3/')
    if [ "$n" -eq "$nman3" ]; then
        ok "libdaxkv-devel ships all $nman3 section 3 pages"
    else
        bad "libdaxkv-devel ships $n section 3 pages, docs/man has $nman3"
    fi
fi

finish
