#!/bin/bash
# Packages: build the .debs from a clean export of the tree, lintian, install
# them; build and run a program against the installed library with
# pkg-config, and the example programs libdaxkv-dev ships; run the daxkv
# command (the shipped library behind it, its man pages, bash completion,
# udev rule and group); import the Python package (dist-info, version,
# dependency on the library's minor release, from virtualenvs too, and
# pip install of ffi/python offline); uninstall. Then build the RPMs from the
# "make dist" tarball, check their file lists, dependencies and
# scriptlets, install them into a scratch root and run the command, the
# examples and the Python module from there.
#
#   tests/suites/60-packaging.sh BUILDDIR
#
# Needs root (or password-less sudo) to install, and dpkg-dev, debhelper,
# lintian, rpm, python3-venv, plus the Build-Depends of debian/control. Set
# PACKAGING_KEEP=1 to keep the work directory, PACKAGING_CHECK=1 to run
# "make check" inside both package builds (the unit suite already runs the
# same tests on the same sources; in the package builds they would cost
# minutes of compiling on two cores).
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
for tool in dpkg-buildpackage dh lintian rpmbuild rpm2cpio cpio git pkg-config script; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "missing tools:$missing (apt-get install dpkg-dev debhelper lintian rpm git pkg-config)"
    bad "tools"
    finish
fi

version=$(sed -n 's/^AC_INIT(\[libdaxkv\], *\[\([^]]*\)\].*/\1/p' "$src/configure.ac")
next_minor=$(echo "$version" | awk -F. '{ print $1 "." $2 + 1 }')
# Packages are built with the system's toolchain and interpreter, as a
# distribution builds them (not a python3 from pyenv or a venv on PATH).
syspath=/usr/sbin:/usr/bin:/sbin:/bin
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
py_version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$tree/ffi/python/daxkv/_version.py")
if [ "$py_version" = "$version" ]; then
    ok "ffi/python/daxkv/_version.py ($py_version) matches AC_INIT"
else
    bad "ffi/python/daxkv/_version.py is '$py_version' but AC_INIT is $version"
fi

# --- Debian packages --------------------------------------------------------
opts="nocheck parallel=$(nproc)"
[ "${PACKAGING_CHECK:-0}" = 1 ] && opts="parallel=$(nproc)"
echo "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$opts)"
if (cd "$tree" && PATH=$syspath DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b) >"$build/packaging-deb.log" 2>&1; then
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

# libdaxkv-dev ships no static library and its .pc file requires no other
# package's: it depends on the library alone (uuid-dev once came along).
devdeps=$(dpkg-deb -f "$work"/libdaxkv-dev_*.deb Depends)
pcreq=$(pkg-config --print-requires --print-requires-private libdaxkv 2>&1)
if [ -z "$pcreq" ] && [ "$(echo "$devdeps" | tr ',' '\n' | sed 's/^ *//;/^$/d' | sed 's/ .*//')" = libdaxkv0 ] &&
    ! dpkg -L libdaxkv-dev | grep -q '\.a$'; then
    ok "libdaxkv-dev depends on libdaxkv0 alone, as its .pc file needs ($devdeps)"
else
    bad "libdaxkv-dev Depends: $devdeps; libdaxkv.pc requires: $pcreq"
fi

# The autopkgtests of debian/tests against the installed packages.
for t in $(sed -n 's/^Tests: //p' "$tree/debian/tests/control"); do
    [ "$t" = link-libraries ] && continue # run above
    mkdir -p "$work/autopkgtest-$t"
    if (cd "$work" && AUTOPKGTEST_TMP="$work/autopkgtest-$t" sh "$tree/debian/tests/$t") >"$work/autopkgtest-$t.txt" 2>&1; then
        ok "debian/tests/$t: $(tail -n 1 "$work/autopkgtest-$t.txt")"
    else
        sed 's/^/  /' "$work/autopkgtest-$t.txt" | tail -15
        bad "debian/tests/$t"
    fi
done

# The example programs of libdaxkv-dev, built with their Makefile.
exdir=/usr/share/doc/libdaxkv-dev/examples
if [ -f "$exdir/Makefile" ] && [ -f "$exdir/put_get.c" ] && ! compgen -G "$exdir/*.gz" >/dev/null; then
    rm -rf "$work/examples" && cp -r "$exdir" "$work/examples"
    if (cd "$work/examples" && make run) >"$work/examples.txt" 2>&1 &&
        [ "$(grep -c ': .*\(read back\|restored\|in place\)' "$work/examples.txt")" -eq 3 ]; then
        ok "examples in $exdir built with their Makefile and run"
    else
        sed 's/^/  /' "$work/examples.txt" | tail -20
        bad "the examples of libdaxkv-dev do not build or run"
    fi
else
    bad "libdaxkv-dev ships no usable examples in $exdir: $(ls "$exdir" 2>&1 | tr '\n' ' ')"
fi

if out=$(daxkv --version 2>&1) && echo "$out" | grep -q "^daxkv $version (library $version)$"; then
    ok "daxkv --version: $out"
else
    bad "daxkv --version: $out"
fi
# The installed command runs the installed library.
libpath=$(ldd "$(command -v daxkv)" | sed -n 's/^\s*libdaxkv\.so\.0 => \([^ ]*\).*/\1/p')
if [ -n "$libpath" ] && dpkg -S "$(readlink -f "$libpath")" 2>/dev/null | grep -q '^libdaxkv0'; then
    ok "daxkv links libdaxkv.so.0 from libdaxkv0 ($libpath)"
else
    bad "daxkv does not run the packaged libdaxkv.so.0 (ldd: ${libpath:-none})"
fi
missing=
for c in $(daxkv --list-cmds); do
    daxkv "$c" --help >/dev/null 2>&1 || missing="$missing $c--help"
    man -w "daxkv-$c" >/dev/null 2>&1 || missing="$missing daxkv-$c(1)"
done
if [ -z "$missing" ]; then
    ok "every command has --help and a man page: $(daxkv --list-cmds | tr '\n' ' ')"
else
    bad "missing:$missing"
fi
comp=/usr/share/bash-completion/completions/daxkv
if [ -f "$comp" ] && [ "$(bash -c '. "$1"; COMP_WORDS=(daxkv che); COMP_CWORD=1; _daxkv; echo "${COMPREPLY[*]}"' _ "$comp")" = check ]; then
    ok "bash completion installed and completes commands"
else
    bad "bash completion missing or not working ($comp)"
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

# Python: the module, its dist-info and its version; the dependency on the
# library's minor release; virtualenvs.
pycheck='import daxkv, daxkv.lmcache, importlib.metadata as m, sys
v = m.version("daxkv")
assert v == daxkv.__version__ == sys.argv[1], (v, daxkv.__version__)
assert daxkv.version().startswith(sys.argv[1]), daxkv.version()
print(daxkv.__file__)'
if ls "$work"/python3-daxkv_*.deb >/dev/null 2>&1; then
    if (cd / && /usr/bin/python3 -c "$pycheck" "$version") >"$work/python.txt" 2>&1; then
        ok "system Python imports daxkv $version with its dist-info ($(cat "$work/python.txt"))"
    else
        sed 's/^/  /' "$work/python.txt" | tail -10
        bad "system Python: import daxkv, importlib.metadata.version, __version__"
    fi
    deps=$(dpkg-deb -f "$work"/python3-daxkv_*.deb Depends)
    if echo "$deps" | grep -qF "libdaxkv0 (>= $version)" && echo "$deps" | grep -qF "libdaxkv0 (<< $next_minor~)"; then
        ok "python3-daxkv depends on libdaxkv0 (>= $version), (<< $next_minor~)"
    else
        bad "python3-daxkv Depends: $deps"
    fi
    # A virtualenv with the system site packages uses the package's module.
    if /usr/bin/python3 -m venv --system-site-packages "$work/venv-system" >>"$log" 2>&1 &&
        (cd / && "$work/venv-system/bin/python" -c "$pycheck" "$version") >"$work/venv1.txt" 2>&1 &&
        grep -q '^/usr/lib/python3/dist-packages/daxkv/' "$work/venv1.txt"; then
        ok "a virtualenv with --system-site-packages imports the packaged daxkv"
    else
        sed 's/^/  /' "$work/venv1.txt" 2>/dev/null | tail -10
        bad "virtualenv with --system-site-packages"
    fi
fi
# pip installs ffi/python into a virtualenv offline (no index), built by
# Debian's setuptools; the virtualenv's copy is the one imported.
rm -rf "$work/pysrc" && cp -r "$tree/ffi/python" "$work/pysrc"
if /usr/bin/python3 -m venv --system-site-packages "$work/venv-pip" >>"$log" 2>&1 &&
    PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv-pip/bin/pip" install --no-build-isolation \
        "$work/pysrc" >"$work/pip.txt" 2>&1 &&
    (cd / && "$work/venv-pip/bin/python" -c "$pycheck" "$version") >"$work/venv2.txt" 2>&1 &&
    grep -q "^$work/venv-pip/lib/python3[.0-9]*/site-packages/daxkv/" "$work/venv2.txt"; then
    ok "pip install --no-build-isolation ./ffi/python offline into a virtualenv ($(cat "$work/venv2.txt"))"
else
    sed 's/^/  /' "$work/pip.txt" "$work/venv2.txt" 2>/dev/null | tail -15
    bad "pip install of ffi/python into a virtualenv"
fi

# --- Uninstall --------------------------------------------------------------
hash -r # forget where daxkv was found, so that the check below looks again
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
rpm_check=--without=check
[ "${PACKAGING_CHECK:-0}" = 1 ] && rpm_check=--with=check
echo "rpmbuild -ta --nodeps $rpm_check $(basename "$tarball")"
if PATH=$syspath rpmbuild -ta --nodeps "$rpm_check" --define "_topdir $work/rpmbuild" "$tarball" \
    >"$build/packaging-rpm.log" 2>&1; then
    ok "rpmbuild built $(find "$work/rpmbuild/RPMS" -name '*.rpm' | wc -l) packages"
else
    tail -30 "$build/packaging-rpm.log"
    bad "rpmbuild (log: $build/packaging-rpm.log)"
    finish
fi
# With PACKAGING_CHECK=1, %check ran make check: the unit tests, the C API
# test and the examples.
if [ "$rpm_check" = --without=check ]; then
    echo "(%check not run: PACKAGING_CHECK=1 runs it)"
elif grep -q '^PASS: tests/unit/daxkv_unit' "$build/packaging-rpm.log" &&
    grep -q '^PASS: examples/batch' "$build/packaging-rpm.log" &&
    grep -q '^# FAIL: *0$' "$build/packaging-rpm.log"; then
    ok "%check ran make check ($(grep -m1 '^# PASS:' "$build/packaging-rpm.log" | tr -s ' '))"
else
    bad "%check did not run the unit tests and examples (log: $build/packaging-rpm.log)"
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
check_rpm daxkv-tools '^/usr/bin/daxkv$' '^/usr/share/man/man1/daxkv\.1' \
    '^/usr/share/man/man1/daxkv-list\.1' '^/usr/share/man/man1/daxkv-bench\.1' \
    '^/usr/share/bash-completion/completions/daxkv$' '^/usr/lib/udev/rules\.d/60-daxkv-tools\.rules$'
check_rpm python3-daxkv '/daxkv/__init__\.py$' '/daxkv/lmcache/__init__\.py$' "/daxkv-$version\.dist-info/METADATA\$"
rpmfile() { find "$work/rpmbuild/RPMS" -name "$1-$version-*.rpm" | head -n 1; }
# The documentation directory: libdaxkv-devel, or libdaxkv-devel-VERSION
# with older rpm configurations (Debian's rpm).
if [ "$(grep -cE '^/usr/share/doc/libdaxkv-devel(-[0-9.]+)?/examples/(Makefile|put_get\.c)$' "$work/libdaxkv-devel.list")" -eq 2 ] &&
    [ "$(grep -cE '^/usr/share/doc/libdaxkv-devel(-[0-9.]+)?/examples/.*\.(o|mk)$' "$work/libdaxkv-devel.list")" -eq 0 ]; then
    ok "libdaxkv-devel ships the examples (and no build objects)"
else
    bad "libdaxkv-devel examples: $(grep examples "$work/libdaxkv-devel.list" | tr '\n' ' ')"
fi
f=$(rpmfile python3-daxkv)
req=$(rpm -qp --requires "$f" 2>/dev/null)
if echo "$req" | grep -qx "libdaxkv >= $version" && echo "$req" | grep -qx "libdaxkv < $next_minor~"; then
    ok "python3-daxkv requires libdaxkv >= $version, < $next_minor~"
else
    bad "python3-daxkv requires: $(echo "$req" | tr '\n' ' ')"
fi
f=$(rpmfile daxkv-tools)
scripts=$(rpm -qp --scripts "$f" 2>/dev/null)
if echo "$scripts" | grep -q 'groupadd -r daxkv' && echo "$scripts" | grep -q 'udevadm trigger' &&
    rpm -qp --requires "$f" 2>/dev/null | grep -q '^libdaxkv\.so\.0()(64bit)'; then
    ok "daxkv-tools creates the group, triggers udev, requires libdaxkv.so.0"
else
    bad "daxkv-tools scriptlets or requirements: $scripts"
fi

# Install the RPMs into a scratch root (this is not an RPM system: no
# scriptlets, dependencies from the host) and run what they installed.
rpmroot="$work/rpmroot"
mkdir -p "$rpmroot"
while IFS= read -r f; do
    (cd "$rpmroot" && rpm2cpio "$f" | cpio -idm --quiet) >>"$log" 2>&1
done < <(find "$work/rpmbuild/RPMS" -name '*.rpm' ! -name '*-debug*')
if out=$(LD_LIBRARY_PATH="$rpmroot/usr/lib64" "$rpmroot/usr/bin/daxkv" --version 2>&1) &&
    [ "$out" = "daxkv $version (library $version)" ] &&
    LD_LIBRARY_PATH="$rpmroot/usr/lib64" ldd "$rpmroot/usr/bin/daxkv" | grep -q "$rpmroot/usr/lib64/libdaxkv.so.0"; then
    ok "the RPMs' daxkv runs their libdaxkv.so.0: $out"
else
    bad "the RPMs' daxkv: $out"
fi
rm -rf "$work/rpm-examples"
cp -r "$(dirname "$(find "$rpmroot/usr/share/doc" -path '*/libdaxkv-devel*/examples/Makefile')")" "$work/rpm-examples" 2>>"$log"
sysdirs=$(pkg-config --variable pc_path pkg-config)
if (cd "$work/rpm-examples" &&
    PKG_CONFIG_SYSROOT_DIR="$rpmroot" PKG_CONFIG_LIBDIR="$rpmroot/usr/lib64/pkgconfig:$sysdirs" \
        make run LDFLAGS="-Wl,-rpath,$rpmroot/usr/lib64") >"$work/rpm-examples.txt" 2>&1; then
    ok "the RPMs' examples build against their header and library and run"
else
    sed 's/^/  /' "$work/rpm-examples.txt" | tail -15
    bad "the RPMs' examples"
fi
sitelib=$(dirname "$(find "$rpmroot" -type d -name "daxkv-$version.dist-info" | head -n 1)")
if (cd / && PYTHONPATH="$sitelib" DAXKV_LIBRARY="$rpmroot/usr/lib64/libdaxkv.so.0" \
    /usr/bin/python3 -c "$pycheck" "$version") >"$work/rpm-python.txt" 2>&1 &&
    grep -q "^$sitelib/daxkv/" "$work/rpm-python.txt"; then
    ok "the RPM's Python module imports with its dist-info (${sitelib#$rpmroot})"
else
    sed 's/^/  /' "$work/rpm-python.txt" | tail -10
    bad "the RPM's Python module"
fi
if f=$(find "$work/rpmbuild/RPMS" -name "libdaxkv-devel-$version-*.rpm" | head -n 1) && [ -n "$f" ]; then
    n=$(rpm -qlp "$f" 2>/dev/null | grep -c '/man3/')
    if [ "$n" -eq "$nman3" ]; then
        ok "libdaxkv-devel ships all $nman3 section 3 pages"
    else
        bad "libdaxkv-devel ships $n section 3 pages, docs/man has $nman3"
    fi
    # As libdaxkv-dev: the library (and what rpm adds itself), nothing else.
    req=$(rpm -qpR "$f" 2>/dev/null | grep -vE '^(libdaxkv(\(x86-64\))? = |libdaxkv\.so\.0|/usr/bin/pkg-config$|pkgconfig$|rpmlib\()' | tr '\n' ' ')
    if [ -z "$req" ]; then
        ok "libdaxkv-devel requires the library alone"
    else
        bad "libdaxkv-devel also requires: $req"
    fi
fi

finish
