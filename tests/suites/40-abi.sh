#!/bin/bash
# ABI guard: the built library against the committed baseline, the public
# header under strict C99 and C++17 compilers, and one set of exported names
# in the library, the version script, the header and the manual pages.
#
#   tests/suites/40-abi.sh BUILDDIR
#
# Needs abigail-tools (abidiff), binutils, groff, a C and a C++ compiler.
# Ends with "SUITE abi: N passed, M failed" (one count per check).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILDDIR}" 2>/dev/null && pwd) || {
    echo "build directory '$1' does not exist"
    echo "SUITE abi: 0 passed, 1 failed"
    exit 1
}

lib="$build/lib/.libs/libdaxkv.so.0"
map="$src/lib/libdaxkv.map"
header="$src/include/daxkv.h"
mandir="$src/docs/man"
baseline="$src/tests/abi/libdaxkv.abi"
CC=${CC:-cc}
CXX=${CXX:-c++}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# Print the differences of two sorted name lists, labelled.
show_diff() {
    comm -23 "$1" "$2" | sed "s/^/  only in $3: /"
    comm -13 "$1" "$2" | sed "s/^/  only in $4: /"
}

if [ ! -e "$lib" ]; then
    echo "missing $lib (build the library first: make lib/libdaxkv.la)"
    echo "SUITE abi: 0 passed, 1 failed"
    exit 1
fi

# --- 1. SONAME --------------------------------------------------------------
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "libdaxkv.so.0" ]; then
    ok "SONAME is $soname"
else
    bad "SONAME is '$soname', expected libdaxkv.so.0"
fi

# --- 2. abidiff against the committed baseline ------------------------------
# Exit status bits (abidiff(1)): 1 error, 2 usage error, 4 ABI change,
# 8 incompatible ABI change. Additions are reported but do not fail: they
# are checked against the version script and the symbols file instead.
hdrs=(--headers-dir2 "$src/include")
[ -f "$build/include/daxkv_version.h" ] && hdrs+=(--header-file2 "$build/include/daxkv_version.h")
if ! command -v abidiff >/dev/null 2>&1; then
    bad "abidiff not found (apt-get install abigail-tools)"
elif [ ! -f "$baseline" ]; then
    bad "no baseline $baseline"
else
    abidiff --no-added-syms "${hdrs[@]}" "$baseline" "$lib" >"$tmp/abidiff.txt" 2>&1
    rc=$?
    if [ $((rc & 3)) -ne 0 ]; then
        bad "abidiff could not compare (exit $rc)"
        sed 's/^/  /' "$tmp/abidiff.txt" | head -40
    elif [ $((rc & 12)) -ne 0 ]; then
        bad "abidiff: the ABI changed against tests/abi/libdaxkv.abi (exit $rc)"
        sed 's/^/  /' "$tmp/abidiff.txt" | head -80
    else
        ok "abidiff: no change to the baseline's interfaces"
    fi
    abidiff --added-fns --added-vars "${hdrs[@]}" "$baseline" "$lib" >"$tmp/added.txt" 2>&1
    if grep -qE 'Added (function|variable)' "$tmp/added.txt"; then
        echo "  additions since the baseline (new map node, symbols file and man pages needed):"
        grep -E "^\s+\[A\]" "$tmp/added.txt" | sed 's/^\s*/    /'
    fi
fi

# --- 3. The header under strict compilers -----------------------------------
cat >"$tmp/use.c" <<'EOF'
#include <daxkv.h>
#include <daxkv.h> /* include guard */

int use(daxkv_store *s);
int use(daxkv_store *s) {
    struct daxkv_stats st;
    daxkv_item it;
    daxkv_device_info info;
    it.status = 0;
    info.struct_size = (uint32_t)sizeof info;
    st.struct_size = (uint32_t)sizeof st;
    (void)it;
    (void)info;
    if (DAXKV_VERSION_CHECK(0, 0, 0) && daxkv_version_number() == 0)
        return DAXKV_E_CORRUPT;
    return daxkv_stats(s, &st);
}
EOF
cp "$tmp/use.c" "$tmp/use.cpp"
incs=(-I"$src/include" -I"$build/include")
if "$CC" -std=c99 -pedantic -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Werror \
    "${incs[@]}" -c "$tmp/use.c" -o "$tmp/use_c.o" >"$tmp/cc.txt" 2>&1; then
    ok "daxkv.h compiles as C99 (-pedantic -Wall -Wextra -Werror)"
else
    bad "daxkv.h does not compile as C99"
    sed 's/^/  /' "$tmp/cc.txt" | head -20
fi
if "$CXX" -std=c++17 -pedantic -Wall -Wextra -Wshadow -Werror \
    "${incs[@]}" -c "$tmp/use.cpp" -o "$tmp/use_cxx.o" >"$tmp/cxx.txt" 2>&1; then
    ok "daxkv.h compiles as C++17 (-pedantic -Wall -Wextra -Wshadow -Werror)"
else
    bad "daxkv.h does not compile as C++17"
    sed 's/^/  /' "$tmp/cxx.txt" | head -20
fi

# --- 4. One set of names ----------------------------------------------------
# Exported: every defined dynamic symbol (name@version).
nm -D --defined-only --with-symbol-versions "$lib" 2>/dev/null |
    awk '{print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
# Symbols without the DAXKV_ version node (or leaked C++ symbols).
nm -D --defined-only --with-symbol-versions "$lib" 2>/dev/null |
    awk '{print $3}' | grep -vE '^(DAXKV_[0-9.]+(@@?DAXKV_[0-9.]+)?|daxkv_[a-z0-9_]+@@?DAXKV_[0-9.]+)$' >"$tmp/unversioned" || true
if [ -s "$tmp/unversioned" ]; then
    bad "exported symbols outside a DAXKV_ version node"
    sed 's/^/  /' "$tmp/unversioned" | head -20
else
    ok "every exported symbol is daxkv_* with a DAXKV_ version ($(wc -l <"$tmp/exported") symbols)"
fi
# Exported names other than the nodes themselves.
grep -vE '^DAXKV_[0-9.]+$' "$tmp/exported" >"$tmp/exported.fn"
# Version script: the names under "global:" of every node.
sed -e 's:/\*.*\*/::' "$map" | awk '
    /global:/ { g = 1; next }
    /local:/ || /}/ { g = 0 }
    g { gsub(/[ \t;]/, ""); if ($0 != "") print }' | sort -u >"$tmp/map"
# Header: every DAXKV_API function.
grep -v '^#' "$header" | tr '\n' ' ' | grep -oE 'DAXKV_API [^;(]*\(' |
    grep -oE '[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\($' | tr -d ' (' | sort -u >"$tmp/header"
# Manual pages: function names in the NAME sections of section 3 pages
# (libdaxkv.3 is the overview) and the names of the .so alias pages.
: >"$tmp/man.raw"
for page in "$mandir"/*.3; do
    name=$(basename "$page" .3)
    [ "$name" = libdaxkv ] && continue
    if grep -q '^\.so ' "$page"; then
        echo "$name" >>"$tmp/man.raw"
    else
        sed -n '/^\.SH NAME/{n;p}' "$page" | sed 's/ *\\-.*//' | tr ',' '\n' |
            tr -d ' ' >>"$tmp/man.raw"
    fi
done
grep -v '^$' "$tmp/man.raw" | sort -u >"$tmp/man"

compare() { # label-a file-a label-b file-b
    if cmp -s "$2" "$4"; then
        ok "$1 and $3 name the same $(wc -l <"$2") functions"
    else
        bad "$1 and $3 differ"
        show_diff "$2" "$4" "$1" "$3"
    fi
}
compare "exported symbols" "$tmp/exported.fn" "libdaxkv.map" "$tmp/map"
compare "exported symbols" "$tmp/exported.fn" "daxkv.h" "$tmp/header"
compare "exported symbols" "$tmp/exported.fn" "man pages" "$tmp/man"
if grep -q '^_Z' "$tmp/exported"; then
    bad "C++ (mangled) symbols are exported"
else
    ok "no C++ (mangled) symbols exported"
fi

# --- 5. Manual pages render without warnings --------------------------------
man_bad=0 man_n=0
for page in "$mandir"/*.[0-9]; do
    man_n=$((man_n + 1))
    base=$(basename "$page")
    if grep -q '^\.so ' "$page"; then
        # An alias: one .so line naming a page that exists and is not an alias.
        target=$(sed -n 's/^\.so \(.*\)$/\1/p' "$page")
        t="$mandir/$(basename "$target")"
        if [ "$(grep -cv '^\.\\"' "$page")" -ne 1 ] || [ ! -f "$t" ] ||
            grep -q '^\.so ' "$t" || [ "$(dirname "$target")" != "man3" ]; then
            echo "  $base: bad alias '.so $target'"
            man_bad=$((man_bad + 1))
        fi
        continue
    fi
    th=$(sed -n 's/^\.TH \([^ ]*\) \([^ ]*\).*/\1 \2/p' "$page")
    want="$(basename "$page" | sed 's/\.[0-9]$//' | tr '[:lower:]' '[:upper:]') ${base##*.}"
    if [ "$th" != "$want" ]; then
        echo "  $base: .TH says '$th', expected '$want'"
        man_bad=$((man_bad + 1))
    fi
    out=$(LC_ALL=C.UTF-8 groff -man -ww -z -t "$page" 2>&1)
    if [ -n "$out" ]; then
        echo "$out" | sed "s|^|  $base: |" | head -10
        man_bad=$((man_bad + 1))
    fi
done
if [ "$man_n" -eq 0 ]; then
    bad "no manual pages in $mandir"
elif [ "$man_bad" -eq 0 ]; then
    ok "$man_n manual pages render without groff warnings; aliases resolve"
else
    bad "$man_bad of $man_n manual pages have problems"
fi
if command -v man >/dev/null 2>&1; then
    out=$(cd "$tmp" && for p in "$mandir"/*.[0-9]; do
        grep -q '^\.so ' "$p" && continue
        MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$p" 2>&1 >/dev/null
    done)
    if [ -z "$out" ]; then
        ok "man -l formats every page without warnings"
    else
        bad "man -l warnings"
        echo "$out" | sed 's/^/  /' | head -20
    fi
fi

# --- 6. pkg-config's static libraries ----------------------------------------
# A program linked statically needs the libraries libdaxkv itself links:
# pkg-config --static --libs gave -luuid alone, and such a link missed the
# XXH3_*, daxctl_* and numa_* symbols. Every library libtool recorded for
# libdaxkv (dependency_libs) must be among them.
la="$build/lib/libdaxkv.la"
if ! command -v pkg-config >/dev/null 2>&1 || [ ! -f "$la" ]; then
    echo "pkg-config or $la missing: static libraries not checked"
else
    static=" $(PKG_CONFIG_PATH="$build/pkgconfig" pkg-config --static --libs libdaxkv-uninstalled) "
    missing=""
    for dep in $(sed -n "s/^dependency_libs='\(.*\)'/\1/p" "$la"); do
        case "$dep" in
        -l*) case "$static" in *" $dep "*) ;; *) missing="$missing $dep" ;; esac ;;
        esac
    done
    if [ -z "$missing" ]; then
        ok "pkg-config --static --libs names every library libdaxkv links"
    else
        bad "pkg-config --static --libs lacks:$missing"
    fi
fi

echo "SUITE abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
