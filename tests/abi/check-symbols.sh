#!/bin/sh
# The library exports exactly the daxkv_* names of the version script, each
# under a DAXKV_ version node, and nothing else.
set -eu
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
lib="$top_builddir/lib/.libs/libdaxkv.so"
map="$top_srcdir/lib/libdaxkv.map"
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$3 !~ /^DAXKV_/ {print $3}' | sed 's/@.*//' | sort -u > "$tmp/exported"
grep -E '^[[:space:]]+daxkv_[a-z0-9_]+;' "$map" | tr -d ' \t;' | sort -u > "$tmp/mapped"
bad=0
if ! diff -u "$tmp/mapped" "$tmp/exported"; then
    echo "FAIL: exported symbols differ from $map (- map only, + exported only)"
    bad=1
fi
if nm -D --defined-only "$lib" | awk '$3 !~ /^DAXKV_/ {print $3}' | grep -v '@@\?DAXKV_' | grep -q .; then
    echo "FAIL: symbols without a DAXKV_ version node:"
    nm -D --defined-only "$lib" | awk '$3 !~ /^DAXKV_/ {print $3}' | grep -v '@@\?DAXKV_'
    bad=1
fi
[ $bad -eq 0 ] && echo "ok: $(wc -l < "$tmp/exported") symbols, all in the map"
exit $bad
