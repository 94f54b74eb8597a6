#!/bin/bash
# daxkv info, check and format on file arenas: exit statuses, JSON that
# parses, damage (payload, header, torn commit word, superblock copies)
# found, reported and repaired, and format's refusals. $1: build directory.
#
# Bad inputs tried here: no PATH, unknown options, a missing file, a file of
# random bytes, an all-zero file, a daxkv arena (valid and with both
# superblocks damaged) given to format without --force, --slot-bytes 0, a
# slot larger than the file.
set -u
build=$1
pass=0 fail=0
cd "$build" || { echo "SUITE tools: 0 passed, 1 failed"; exit 1; }
daxkv=$PWD/tools/daxkv
base=/tmp
[ -w /dev/shm ] && base=/dev/shm
dir=$(mktemp -d "$base/daxkv-tools.XXXXXX")
trap 'rm -rf "$dir"' EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect RC DESCRIPTION -- COMMAND...: the exit status is RC.
expect() {
    local want=$1 what=$2 got
    shift 3
    "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, expected $want"; cat "$dir/out" "$dir/err" | head -20; fi
}
# jq-like: json FILE PYTHON-EXPRESSION (on j) -> prints the value.
json() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# check_json DESCRIPTION FILE EXPR: EXPR (on j) is true.
check_json() {
    local v
    if v=$(json "$2" "$3" 2>&1) && [ "$v" = True ]; then ok; else bad "$1: $3 is ${v:-?}"; head -c 2000 "$2"; fi
}
flip() { python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2]); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^int(sys.argv[3])]))' "$1" "$2" "${3:-1}"; }

# Usage errors.
expect 2 "info without PATH" -- "$daxkv" info
expect 2 "check without PATH" -- "$daxkv" check
expect 2 "format without --slot-bytes" -- "$daxkv" format "$dir/x"
expect 2 "format --slot-bytes 0" -- "$daxkv" format "$dir/x" --slot-bytes 0 --size 1MiB
expect 2 "check with an unknown option" -- "$daxkv" check "$dir/x" --bogus
expect 0 "check --help" -- "$daxkv" check --help
# A missing file.
expect 1 "info on a missing file" -- "$daxkv" info "$dir/missing"
expect 4 "check on a missing file" -- "$daxkv" check "$dir/missing"
expect 1 "format a missing file without --size" -- "$daxkv" format "$dir/missing" --slot-bytes 4096
expect 1 "format with a slot larger than the file" -- "$daxkv" format "$dir/tiny" --slot-bytes 2MiB --size 1MiB

# Format a new file; refuse to format it again without --force.
a=$dir/a.arena
expect 0 "format a new file" -- "$daxkv" format "$a" --slot-bytes 64KiB --size 8MiB --json
cp "$dir/out" "$dir/format.json"
check_json "format --json" "$dir/format.json" 'j["slot_bytes"] == 65536 and j["slot_count"] > 100 and j["arena_bytes"] == 8*2**20'
cp "$a" "$dir/a.copy"
expect 1 "format over a daxkv arena without --force" -- "$daxkv" format "$a" --slot-bytes 4096
if grep -q -- --force "$dir/err" && cmp -s "$a" "$dir/a.copy"; then ok; else bad "the refusal names --force and leaves the file as it was"; fi
expect 0 "info on a fresh arena" -- "$daxkv" info "$a" --json
cp "$dir/out" "$dir/info.json"
check_json "info --json on a fresh arena" "$dir/info.json" 'j["state"] == "arena" and j["entries"]["live"] == 0 and j["superblock"]["recoverable"] and not j["damaged"]'
expect 0 "check on a fresh arena" -- "$daxkv" check "$a"

# Foreign and zeroed files.
f=$dir/foreign.bin
head -c 4194304 /dev/urandom >"$f"
cp "$f" "$dir/f.copy"
expect 1 "info on foreign data" -- "$daxkv" info "$f" --json
check_json "info --json on foreign data" "$dir/out" 'j["state"] == "foreign"'
expect 4 "check on foreign data" -- "$daxkv" check "$f"
expect 1 "format over foreign data without --force" -- "$daxkv" format "$f" --slot-bytes 4096
if cmp -s "$f" "$dir/f.copy"; then ok; else bad "a refused format changed foreign data"; fi
expect 0 "format --force over foreign data" -- "$daxkv" format "$f" --slot-bytes 4096 --force
expect 0 "check after format --force" -- "$daxkv" check "$f"
z=$dir/zero.bin
truncate -s 4MiB "$z"
expect 1 "info on a zeroed file" -- "$daxkv" info "$z"
expect 0 "format a zeroed file without --force" -- "$daxkv" format "$z" --slot-bytes 4096

# An arena with 8 entries (slots 0-7: the allocator hands out the lowest
# free slots), damaged three ways.
e=$dir/e.arena
expect 0 "bench leaves 8 entries" -- "$daxkv" bench --arena "$e" --count 8 --value-size 64KiB \
    --rounds 1 --no-small --no-progress --keep
expect 0 "info on the bench arena" -- "$daxkv" info "$e" --json
cp "$dir/out" "$dir/e.json"
check_json "8 live entries" "$dir/e.json" 'j["entries"]["live"] == 8 and j["recovery"]["would_recover"] == 8'
hoff=$(json "$dir/e.json" 'j["layout"]["header_offset"]')
hbytes=$(json "$dir/e.json" 'j["layout"]["header_bytes"]')
doff=$(json "$dir/e.json" 'j["layout"]["data_offset"]')
sbytes=$(json "$dir/e.json" 'j["layout"]["slot_bytes"]')
flip "$e" $((doff + 100))                    # slot 0: a payload bit
flip "$e" $((hoff + hbytes + 8))             # slot 1: seq, so commit != seq (torn)
flip "$e" $((hoff + 2 * hbytes + 64)) 2      # slot 2: a key bit (header checksum)
cp "$e" "$dir/e.damaged"
expect 3 "check finds the damage" -- "$daxkv" check "$e" --json
cp "$dir/out" "$dir/check.json"
check_json "check --json counts" "$dir/check.json" 'j["recovery"]["bad_value"] == 1 and j["recovery"]["dropped_torn"] == 1 and j["recovery"]["bad_header"] == 1 and j["entries"]["live"] == 5 and j["damaged"] and j["exit_status"] == 3'
check_json "check --json findings" "$dir/check.json" '[(f["slot"], f["reason"]) for f in j["findings"]] == [(0, "bad-value"), (1, "torn"), (2, "bad-header")] and j["findings"][0]["key"].startswith("bench/chunk/")'
if cmp -s "$e" "$dir/e.damaged"; then ok; else bad "check without --repair changed the arena"; fi
expect 0 "info on a damaged arena" -- "$daxkv" info "$e"
if grep -q "drop 1 torn, 2 corrupt" "$dir/out"; then ok; else bad "info reports the drops"; cat "$dir/out"; fi
expect 3 "check --no-values skips payloads" -- "$daxkv" check "$e" --no-values --json
check_json "headers only" "$dir/out" 'j["recovery"]["bad_value"] == 0 and j["recovery"]["dropped_torn"] == 1'
expect 1 "check --repair" -- "$daxkv" check "$e" --repair
if grep -q "repaired: 3 entries dropped" "$dir/out"; then ok; else bad "repair reports 3 drops"; cat "$dir/out"; fi
expect 0 "check after repair is clean" -- "$daxkv" check "$e" --json
check_json "5 entries after repair" "$dir/out" 'j["entries"]["live"] == 5 and not j["damaged"]'
# The repaired arena opens with the five good entries and nothing dropped.
expect 0 "info after repair" -- "$daxkv" info "$e" --json
check_json "an open would drop nothing" "$dir/out" 'j["recovery"]["dropped_torn"] + j["recovery"]["dropped_corrupt"] + j["recovery"]["dropped_stale"] == 0'

# Superblock copies.
flip "$e" 100
expect 3 "check finds a damaged superblock copy" -- "$daxkv" check "$e" --json
check_json "copy A damaged" "$dir/out" 'j["superblock"]["copy_a"] == "damaged" and j["superblock"]["copy_b"] == "valid"'
expect 1 "check --repair rewrites it" -- "$daxkv" check "$e" --repair
expect 0 "clean again" -- "$daxkv" check "$e"
flip "$e" 100
flip "$e" $((4096 + 100))
expect 1 "info: both copies damaged" -- "$daxkv" info "$e" --json
check_json "damaged-arena" "$dir/out" 'j["state"] == "damaged-arena"'
expect 4 "check: both copies damaged" -- "$daxkv" check "$e"
expect 1 "format over a damaged arena without --force" -- "$daxkv" format "$e" --slot-bytes 64KiB
expect 0 "format --force over a damaged arena" -- "$daxkv" format "$e" --slot-bytes 64KiB --force
expect 0 "info: formatted, empty" -- "$daxkv" info "$e" --json
check_json "empty after format" "$dir/out" 'j["entries"]["live"] == 0 and j["entries"]["committed_headers"] == 0'

# An arena last used with durability=none has no entries to check.
n=$dir/n.arena
expect 0 "bench with durability=none" -- "$daxkv" bench --arena "$n" --count 4 --value-size 64KiB \
    --rounds 1 --no-small --no-progress --keep --durability none
expect 0 "info on a durability=none arena" -- "$daxkv" info "$n" --json
check_json "not recoverable" "$dir/out" 'not j["superblock"]["recoverable"] and j["entries"]["live"] == 0'
expect 0 "check on a durability=none arena" -- "$daxkv" check "$n"

echo "SUITE tools: $pass passed, $fail failed"
