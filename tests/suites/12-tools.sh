#!/bin/bash
# The daxkv command: its command line (help for every command, short and
# long options, usage errors that name the option and the value, exit
# statuses), the man page of every command, bash completion, list and probe
# in daxctl's JSON, the progress display on a terminal; then info, check and
# format on file arenas: exit statuses, JSON that parses, damage (payload,
# header, torn commit word, superblock copies) found, reported and repaired,
# and format's refusals; the project's shell scripts under shellcheck.
# $1: build directory.
#
# Bad inputs tried here: no command, unknown commands and options, options
# without their value, values given to flags, ambiguous abbreviations, sizes
# and counts that do not parse or are out of range, choices outside their
# list, options of another benchmark, two benchmarks at once, no PATH, a
# second PATH, a missing file, a file of random bytes, an all-zero file, a
# daxkv arena (valid and with both superblocks damaged) given to format
# without --force, --slot-bytes 0, a slot larger than the file, stats and
# status --watch writing to /dev/full and to a closed standard output,
# --interval ' 1', '+1', '0x10' and '0X1p2', a
# statistics page whose status has a number for state, an array for
# version, null for eviction and a device with a number for its path, an
# object for its kind, a string for its slots and false for its uuid, and
# terminal commands (ESC, BEL, C1 CSI) in its store id and a device path,
# and each of the first 300 allocations of check failing (out of memory).
set -u
build=$1
pass=0 fail=0
src=$(cd "$(dirname "$0")/../.." && pwd)
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

# --- The command line -------------------------------------------------------
cmds=$("$daxkv" --list-cmds)
if [ -n "$cmds" ] && echo "$cmds" | grep -qx bench && echo "$cmds" | grep -qx list; then ok; else bad "--list-cmds: $cmds"; fi
expect 2 "no command" -- "$daxkv"
if grep -q '^usage: daxkv COMMAND' "$dir/err"; then ok; else bad "no command prints the usage on stderr"; fi
expect 0 "daxkv --help" -- "$daxkv" --help
for c in $cmds; do
    if ! grep -qE "^  $c " "$dir/out"; then bad "daxkv --help does not list $c"; else ok; fi
done
expect 0 "daxkv --version" -- "$daxkv" --version
if grep -qE '^daxkv [0-9.]+ \(library [0-9.]+\)$' "$dir/out"; then ok; else bad "--version: $(cat "$dir/out")"; fi
expect 2 "an unknown command" -- "$daxkv" frobnicate
expect 2 "an option before the command" -- "$daxkv" --json list
expect 2 "help for an unknown command" -- "$daxkv" help frobnicate
# Every command: --help, -h and `daxkv help CMD` print the same help on
# stdout and exit 0; the help, --list-opts and the man page agree.
for c in $cmds; do
    expect 0 "$c --help" -- "$daxkv" "$c" --help
    cp "$dir/out" "$dir/help.$c"
    if head -n 1 "$dir/out" | grep -q "^usage: daxkv $c" && [ ! -s "$dir/err" ]; then ok; else bad "$c --help: $(head -n 1 "$dir/out")"; fi
    expect 0 "$c -h" -- "$daxkv" "$c" -h
    if cmp -s "$dir/out" "$dir/help.$c"; then ok; else bad "$c -h differs from $c --help"; fi
    expect 0 "help $c" -- "$daxkv" help "$c"
    if cmp -s "$dir/out" "$dir/help.$c"; then ok; else bad "help $c differs from $c --help"; fi
    # --help needs none of the command's arguments or required options.
    expect 0 "$c --help with an argument" -- "$daxkv" "$c" --help an-argument
    expect 0 "$c --list-opts" -- "$daxkv" "$c" --list-opts
    page="$src/docs/man/daxkv-$c.1"
    [ -f "$page" ] || bad "no man page docs/man/daxkv-$c.1"
    missing=
    while read -r opt _; do
        case $opt in
        --*)
            grep -q -- " $opt\( \|$\)" "$dir/help.$c" || missing="$missing help:$opt"
            [ -f "$page" ] && ! grep -q -- "$(echo "$opt" | sed 's/-/\\\\-/g')\([^a-z-]\|$\)" "$page" &&
                missing="$missing man:$opt"
            ;;
        esac
    done <"$dir/out"
    if [ -z "$missing" ]; then ok; else bad "$c: options missing from its help or man page:$missing"; fi
done

# Usage errors: exit 2, nothing on stdout, one line naming the option and
# the value (and a pointer to --help), not the whole usage.
# usage_error DESCRIPTION WORD... -- COMMAND...: each WORD is in the message.
usage_error() {
    local what=$1 words=() w
    shift
    while [ "$1" != -- ]; do words+=("$1"); shift; done
    shift
    "$@" >"$dir/out" 2>"$dir/err"
    local rc=$? miss=
    for w in "${words[@]}"; do grep -qF -- "$w" "$dir/err" || miss="$miss [$w]"; done
    if [ "$rc" -eq 2 ] && [ ! -s "$dir/out" ] && [ -z "$miss" ] && [ "$(wc -l <"$dir/err")" -le 2 ] &&
        grep -q "^Try 'daxkv" "$dir/err"; then
        ok
    else
        bad "$what: exit $rc (want 2), missing$miss in: $(head -c 300 "$dir/err")"
    fi
}
usage_error "bench --count 0" "--count" "'0'" -- "$daxkv" bench --count 0
usage_error "bench --count abc" "--count" "'abc'" -- "$daxkv" bench --count abc
usage_error "bench --count -1" "--count" "'-1'" -- "$daxkv" bench --count -1
usage_error "bench -n 2000000" "--count" "'2000000'" -- "$daxkv" bench -n 2000000
usage_error "bench --size 1XB" "--size" "'1XB'" -- "$daxkv" bench --size 1XB
usage_error "bench --size=" "--size" "''" -- "$daxkv" bench --size=
usage_error "bench --value-size 0" "--value-size" "'0'" -- "$daxkv" bench --value-size 0
usage_error "bench --small-size 2MiB" "--small-size" "'2MiB'" -- "$daxkv" bench --small-size 2MiB
usage_error "bench --rounds 1K" "--rounds" "'1K'" -- "$daxkv" bench --rounds 1K
usage_error "bench --workers 300" "--workers" "'300'" -- "$daxkv" bench --workers 300
usage_error "bench --verify bogus" "--verify" "'bogus'" -- "$daxkv" bench --verify bogus
usage_error "bench --durability disk" "--durability" "'disk'" -- "$daxkv" bench --durability disk
usage_error "bench --nt-stores maybe" "--nt-stores" "'maybe'" -- "$daxkv" bench --nt-stores maybe
usage_error "bench count x value-size" "--count" "--value-size" "64GiB" -- "$daxkv" bench --count 2 --value-size 64GiB
usage_error "bench --gpu --small-count 5" "--small-count" "'5'" "--gpu" -- "$daxkv" bench --gpu --small-count 5
usage_error "bench --plot without --sweep" "--plot" "'x.png'" "--sweep" -- "$daxkv" bench --plot x.png
usage_error "bench --gpu --sweep" "--gpu" "--sweep" -- "$daxkv" bench --gpu --sweep
usage_error "bench --workload nosuch" "--workload" "'nosuch'" -- "$daxkv" bench --workload nosuch
usage_error "bench --workload lmcache --model X" "--model" "'X'" -- "$daxkv" bench --workload lmcache --model X
usage_error "bench --workload lmcache --chunk-tokens above --tokens" "--chunk-tokens" "'1000'" "--tokens" -- "$daxkv" bench --workload lmcache --tokens 100 --chunk-tokens 1000
usage_error "bench --reopen value larger than the slot" "--value-size" "'8KiB'" -- "$daxkv" bench --reopen --value-size 8KiB
usage_error "bench --reopen beyond 64 TiB" "--count" "--slot-bytes" "64GiB" -- "$daxkv" bench --reopen --count 4294967295 --slot-bytes 64GiB
usage_error "bench --sweep --max-size below --min-size" "--max-size" "'4KiB'" -- "$daxkv" bench --sweep --min-size 1MiB --max-size 4KiB
usage_error "bench --staging-bytes 1XB" "--staging-bytes" "'1XB'" -- "$daxkv" bench --gpu --staging-bytes 1XB
usage_error "bench --count without a value" "--count" "needs a value" -- "$daxkv" bench --count
usage_error "bench -n without a value" "--count" "needs a value" -- "$daxkv" bench -n
usage_error "an unknown long option" "'--bogus'" -- "$daxkv" bench --bogus
usage_error "an unknown short option" "'-Z'" -- "$daxkv" bench -Z
usage_error "a value given to a flag" "--json" "'--json=1'" -- "$daxkv" list --json=1
usage_error "an ambiguous abbreviation" "'--c'" "--count" "--chunk-tokens" -- "$daxkv" bench --c 3
usage_error "list --dev foo" "--dev" "'foo'" -- "$daxkv" list --dev foo
usage_error "list -d dax0.x" "--dev" "'dax0.x'" -- "$daxkv" list -d dax0.x
# Numbers that wrapped to dax4294967295.0 were taken for a device.
usage_error "list -d dax-1.0" "--dev" "'dax-1.0'" -- "$daxkv" list -d dax-1.0
usage_error "list -d 4294967296.0" "--dev" "'4294967296.0'" -- "$daxkv" list -d 4294967296.0
usage_error "list -d dax1.0.0" "--dev" "'dax1.0.0'" -- "$daxkv" list -d dax1.0.0
usage_error "list with an argument" "'extra'" -- "$daxkv" list extra
usage_error "probe without PATH" "PATH" -- "$daxkv" probe
usage_error "info with two paths" "'second'" -- "$daxkv" info first second
usage_error "format --meta-bytes 128KiB" "--meta-bytes" "'128KiB'" -- "$daxkv" format "$dir/x" --slot-bytes 4KiB --meta-bytes 128KiB
usage_error "format --size 0" "--size" "'0'" -- "$daxkv" format "$dir/x" --slot-bytes 4KiB --size 0
# Below one page: a usage error (it was the library's refusal, exit 1).
usage_error "format --size 1" "--size" "'1'" -- "$daxkv" format "$dir/x" --slot-bytes 4KiB --size 1
usage_error "format without --slot-bytes" "--slot-bytes" -- "$daxkv" format "$dir/x"
usage_error "version with an argument" "'now'" -- "$daxkv" version now
# The library's units are the tool's: 1TiB parses (the arena may then not
# fit, which is a failed operation with its reason, not a usage error).
"$daxkv" bench --size 1TiB --count 1 --value-size 64KiB --rounds 1 --no-small --no-progress \
    --arena "$dir/tib.arena" >"$dir/out" 2>"$dir/err"
rc=$?
if [ "$rc" -ne 2 ] && ! grep -q "usage\|Try 'daxkv" "$dir/err" && { [ "$rc" -eq 0 ] || [ -s "$dir/err" ]; }; then ok; else bad "bench --size 1TiB: exit $rc: $(cat "$dir/err")"; fi
rm -f "$dir/tib.arena"
expect 0 "a TiB suffix in --size of format is the library's unit" -- "$daxkv" help format

# Short options and --name=value give the same as the long ones.
expect 0 "format with short options" -- "$daxkv" format "$dir/short.arena" -b 4KiB -s 4MiB -m 0 -j
check_json "format -b -s -m -j" "$dir/out" 'j["slot_bytes"] == 4096 and j["meta_bytes"] == 0 and j["arena_bytes"] == 4*2**20'
expect 0 "check with short options" -- "$daxkv" check -j -n "$dir/short.arena"
check_json "check -j -n (options before PATH)" "$dir/out" 'j["state"] == "arena" and j["exit_status"] == 0'
expect 0 "format with --name=value" -- "$daxkv" format "$dir/short.arena" --slot-bytes=8KiB --force --json
check_json "--slot-bytes=8KiB" "$dir/out" 'j["slot_bytes"] == 8192'
expect 0 "-- ends the options" -- "$daxkv" info -j -- "$dir/short.arena"

# --- list and probe: daxctl list's JSON ---------------------------------------
expect 0 "list" -- "$daxkv" list
check_json "list prints JSON (a list, or one device as an object)" "$dir/out" 'isinstance(j, (list, dict))'
expect 0 "list -u -i -j -d all" -- "$daxkv" list -u -i -j -d all
check_json "list -d all" "$dir/out" 'isinstance(j, (list, dict))'
expect 1 "list -d a device that is not there" -- "$daxkv" list -d dax97.3
grep -q "dax97.3" "$dir/err" && ok || bad "list -d dax97.3 names it: $(cat "$dir/err")"
# list and probe print JSON always, a failure too (stdout was empty).
check_json "list -d dax97.3: the error" "$dir/out" 'j["error"]["code"] == -2 and "dax97.3" in j["error"]["message"]' 
expect 0 "probe mem:" -- "$daxkv" probe mem:
check_json "probe mem:" "$dir/out" 'j["kind"] == "memory" and j["path"] == "mem:" and list(j)[-2:] == ["kind", "path"]'
truncate -s 8MiB "$dir/probe.file"
expect 0 "probe a file" -- "$daxkv" probe "$dir/probe.file"
check_json "probe a file" "$dir/out" 'j["kind"] == "file" and j["size"] == 8*2**20'
expect 0 "probe -u" -- "$daxkv" probe -u "$dir/probe.file"
check_json "probe -u: daxctl's human size" "$dir/out" 'j["size"] == "8.00 MiB (8.39 MB)"'
truncate -s 4000KiB "$dir/probe.small"
expect 0 "probe -u, below 5000 KiB" -- "$daxkv" probe --human "$dir/probe.small"
check_json "probe -u: small sizes stay numbers, as daxctl's" "$dir/out" 'j["size"] == 4000*1024'
expect 1 "probe a missing path" -- "$daxkv" probe "$dir/missing"
check_json "probe a missing path: the error" "$dir/out" 'j["error"]["code"] == -2 and j["path"].endswith("/missing")' 
expect 1 "probe a character device that is not DAX" -- "$daxkv" probe /dev/null
if grep -q "not a Device-DAX device" "$dir/err"; then ok; else bad "probe /dev/null says why: $(cat "$dir/err")"; fi

# --- Progress: on a terminal only, never with --json or --no-progress --------
# script(1) gives the command a terminal; the display erases its line with ESC [K.
on_tty() { script -qec "$1" /dev/null >"$dir/tty" 2>&1; }
esc=$(printf '\033')
expect 0 "format a file for the progress checks" -- "$daxkv" format "$dir/p.arena" --slot-bytes 4KiB --size 64MiB
on_tty "'$daxkv' check '$dir/p.arena'"
if grep -q "$esc\[K" "$dir/tty" && grep -q "checking slots" "$dir/tty" && grep -q "clean" "$dir/tty"; then ok; else bad "check on a terminal shows its progress"; od -c "$dir/tty" | head; fi
on_tty "'$daxkv' check '$dir/p.arena' --json"
if ! grep -q "$esc" "$dir/tty" && python3 -c 'import json,sys; json.loads(open(sys.argv[1]).read().replace("\r",""))' "$dir/tty"; then ok; else bad "check --json on a terminal draws no progress"; fi
on_tty "'$daxkv' info --no-progress '$dir/p.arena'"
if ! grep -q "$esc" "$dir/tty"; then ok; else bad "info --no-progress draws no progress"; fi
on_tty "'$daxkv' format '$dir/p.arena' --slot-bytes 4KiB --force"
if grep -q "clearing slot headers" "$dir/tty"; then ok; else bad "format on a terminal shows its progress"; fi
on_tty "'$daxkv' bench --reopen --count 3000 --rounds 2 --arena '$dir/reopen.arena'"
if grep -q "reopen 2 of 2" "$dir/tty" && grep -q "filling the arena" "$dir/tty" && grep -q "all 3000 entries recovered" "$dir/tty"; then ok; else bad "bench --reopen on a terminal shows its progress"; tail -c 600 "$dir/tty"; fi
on_tty "'$daxkv' bench --migrate --count 8 --value-size 64KiB --rounds 1 --arena '$dir'"
if grep -q "migration 2 of 2" "$dir/tty" && grep -q "verified after the migrations: yes" "$dir/tty"; then ok; else bad "bench --migrate on a terminal shows its progress"; tail -c 600 "$dir/tty"; fi
expect 0 "check off a terminal" -- "$daxkv" check "$dir/p.arena"
if ! grep -q "$esc" "$dir/err" && [ ! -s "$dir/err" ]; then ok; else bad "check off a terminal draws nothing on stderr"; fi
expect 0 "bench --reopen --json" -- "$daxkv" bench --reopen --count 2000 --rounds 1 --arena "$dir/reopen.arena" --json
check_json "bench --reopen --json" "$dir/out" 'j["entries"] == 2000'
expect 0 "bench --migrate -j" -- "$daxkv" bench --migrate -n 8 --value-size 64KiB -r 1 -a "$dir" -j
check_json "bench --migrate -j" "$dir/out" 'j["verified"] and j["count"] == 8'
expect 1 "bench --migrate into a directory that is not there" -- "$daxkv" bench --migrate -n 4 --value-size 64KiB -r 1 -a "$dir/absent"
grep -q "absent: No such file or directory" "$dir/err" && ok || bad "bench --migrate -a absent: $(cat "$dir/err")"

# --- Bash completion ----------------------------------------------------------
completions() { # WORDS...: what completing the last word offers, one a line
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _daxkv; if ((${#COMPREPLY[@]})); then printf "%s\n" "${COMPREPLY[@]}"; fi' \
        _ "$src/tools/bash-completion/daxkv" "$@"
}
comp() { completions "$@" | paste -sd ' '; } # the same on one line
[ "$(comp "$daxkv" li)" = list ] && ok || bad "completion of a command: $(comp "$daxkv" li)"
[ "$(comp "$daxkv" check --re)" = --repair ] && ok || bad "completion of an option: $(comp "$daxkv" check --re)"
[ "$(comp "$daxkv" bench --verify r)" = "recover read" ] && ok || bad "completion of a value: $(comp "$daxkv" bench --verify r)"
[ -z "$(comp "$daxkv" bench --count "")" ] && ok || bad "no completion after --count"
[ "$(comp "$daxkv" help fo)" = format ] && ok || bad "completion after help: $(comp "$daxkv" help fo)"
# A file name with a space is one completion, not a word per part.
compdir=$(mktemp -d "$base/daxkv-comp.XXXXXX")
: >"$compdir/two words.arena"
mapfile -t offered < <(completions "$daxkv" info "$compdir/two w")
got="${#offered[@]} ${offered[0]-}"
[ "$got" = "1 $compdir/two words.arena" ] && ok || bad "completion of a file name with a space: $got"
rm -rf "$compdir"
# The project's shell scripts (the suites, the guest rig, the completion,
# the package scripts): no shellcheck warning.
if command -v shellcheck >/dev/null; then
    mapfile -t scripts < <(cd "$src" && {
        ls quickstart.sh .ci/run tests/run-all.sh tests/*/*.sh debian/*.postinst
        grep -l '^#!/bin/sh' debian/tests/*
    } 2>/dev/null)
    if out=$(cd "$src" && shellcheck -S warning "${scripts[@]}" && shellcheck -S warning -s bash tools/bash-completion/daxkv 2>&1); then
        ok
    else
        bad "shellcheck on ${#scripts[@]} scripts and the completion:"; echo "$out" | head -30
    fi
else
    echo "shellcheck not installed: the scripts are not checked (apt-get install shellcheck)"
fi

# --- Usage errors of the arena commands ---------------------------------------
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
if [ ! -e "$dir/tiny" ]; then ok; else bad "a failed format left the file it created"; fi

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
flip "$e" $((doff + 100))                    # slot 0: a payload bit
flip "$e" $((hoff + hbytes + 8))             # slot 1: seq, so commit != seq (torn)
flip "$e" $((hoff + 2 * hbytes + 64)) 2      # slot 2: a key bit (header checksum)
cp "$e" "$dir/e.damaged"
expect 3 "check finds the damage" -- "$daxkv" check "$e" --json
cp "$dir/out" "$dir/check.json"
check_json "check --json counts" "$dir/check.json" 'j["recovery"]["bad_value"] == 1 and j["recovery"]["dropped_torn"] == 1 and j["recovery"]["bad_header"] == 1 and j["recovery"]["unreadable"] == 0 and j["entries"]["live"] == 5 and j["damaged"] and j["exit_status"] == 3'
check_json "check --json findings" "$dir/check.json" '[(f["slot"], f["reason"]) for f in j["findings"]] == [(0, "bad-value"), (1, "torn"), (2, "bad-header")] and j["findings"][0]["key"].startswith("bench/chunk/")'
if cmp -s "$e" "$dir/e.damaged"; then ok; else bad "check without --repair changed the arena"; fi
# Out of memory at each of the first 300 allocations (a preloaded malloc
# that fails its n-th call): check never says the damage was repaired (1)
# nor aborts (134, an exception out of the command table); it finds the
# damage (3) or could not check (4), and changes nothing.
bin=$PWD/tools/.libs/daxkv
if ! command -v cc >/dev/null || [ ! -x "$bin" ]; then
    echo "(no cc, or no uninstalled binary at $bin: the out-of-memory sweep is not run)"
else
    cat >"$dir/failmalloc.c" <<'C'
#include <errno.h>
#include <stdlib.h>
extern void *__libc_malloc(size_t);
static long left = -1;
__attribute__((constructor)) static void arm(void) {
    const char *n = getenv("DAXKV_TEST_FAIL_MALLOC");
    left = n ? atol(n) : -1;
}
void *malloc(size_t n) {
    if (left > 0 && --left == 0) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}
C
    if cc -shared -fPIC -O2 -o "$dir/failmalloc.so" "$dir/failmalloc.c" 2>"$dir/err"; then
        wrong=""
        for n in $(seq 1 300); do
            DAXKV_TEST_FAIL_MALLOC=$n LD_PRELOAD="$dir/failmalloc.so" LD_LIBRARY_PATH="$PWD/lib/.libs" \
                "$bin" check "$e" >/dev/null 2>&1
            rc=$?
            [ $rc -eq 3 ] || [ $rc -eq 4 ] || wrong="$wrong $n:$rc"
        done
        if [ -z "$wrong" ]; then ok; else bad "check out of memory (allocation:exit status):$wrong"; fi
        if cmp -s "$e" "$dir/e.damaged"; then ok; else bad "check out of memory changed the arena"; fi
    else
        bad "cannot build the malloc shim: $(cat "$dir/err")"
    fi
fi
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
# An arena cut short (a truncated file) is not called damaged: its
# superblocks are intact, and the open refuses it naming both sizes.
expect 0 "format an arena to cut" -- "$daxkv" format "$dir/cut" --slot-bytes 4096 --size 1MiB
truncate -s 900000 "$dir/cut"
expect 1 "info: a cut arena" -- "$daxkv" info "$dir/cut" --json
check_json "truncated, naming where its slots end" "$dir/out" 'j["state"] == "truncated" and j["slots_end_bytes"] == 1048576'
expect 4 "check: a cut arena" -- "$daxkv" check "$dir/cut"
grep -q "cut short" "$dir/out" && ! grep -q "damaged" "$dir/out" && ok || bad "check of a cut arena: $(cat "$dir/out")"
expect 1 "format over a cut arena without --force" -- "$daxkv" format "$dir/cut" --slot-bytes 4096
grep -q "cut short" "$dir/err" && ok || bad "format of a cut arena did not say why it refused: $(cat "$dir/err")"
# Cut below its two superblock blocks (8 KiB), with its first copy whole:
# as the open says, cut short, not foreign data; inside its first page too
# (1000 bytes: it said "less than one page: no arena fits in it").
for cut in 5000 4096 1000; do
    expect 0 "format an arena to cut to $cut bytes" -- "$daxkv" format "$dir/cut$cut" --slot-bytes 4096 --size 1MiB
    truncate -s $cut "$dir/cut$cut"
    expect 1 "info: an arena cut to $cut bytes" -- "$daxkv" info "$dir/cut$cut" --json
    check_json "cut to $cut bytes: truncated" "$dir/out" 'j["state"] == "truncated" and j["slots_end_bytes"] == 1048576'
    expect 4 "check: an arena cut to $cut bytes" -- "$daxkv" check "$dir/cut$cut"
    grep -q "cut short" "$dir/out" && ok || bad "check of an arena cut to $cut bytes: $(cat "$dir/out" "$dir/err")"
    # named with the bytes the file holds, not the whole pages mapped
    grep -q "only $cut are there" "$dir/out" && ok || bad "check of an arena cut to $cut bytes: $(cat "$dir/out")"
    # Cut inside the second copy (or before it), only the first is whole.
    if [ "$cut" -lt 8192 ]; then want="first superblock copy is intact"; else want="superblocks are intact"; fi
    grep -q "$want" "$dir/out" && ok || bad "check of an arena cut to $cut bytes: $(cat "$dir/out")"
done
# A failed open with --json still prints one JSON document: the error.
expect 1 "info --json of a path that is not there" -- "$daxkv" info "$dir/not-there" --json
check_json "info --json: the error" "$dir/out" 'j["error"]["code"] == -2 and j["error"]["text"] == "not found" and "does not exist" in j["error"]["message"] and j["path"].endswith("not-there")'
expect 4 "check --json of a directory" -- "$daxkv" check "$dir" --json
check_json "check --json: the error" "$dir/out" 'j["error"]["code"] == -21'
expect 1 "format --json where the directory is not there" -- "$daxkv" format "$dir/none/x" --slot-bytes 4KiB --size 1MiB --json
check_json "format --json: the error" "$dir/out" 'j["error"]["code"] == -2'
# A format refused without --force (what is there is kept) is a document
# too: -EEXIST (stdout was empty).
expect 1 "format --json over an arena without --force" -- "$daxkv" format "$e" --slot-bytes 4KiB --json
check_json "format --json refused: the error" "$dir/out" 'j["error"]["code"] == -17 and "--force" in j["error"]["message"]'
# stats and status of a path no running store publishes for.
expect 1 "stats --json, no store" -- "$daxkv" stats "$dir/none-running" --json
check_json "stats --json: the error" "$dir/out" 'j["error"]["code"] < 0 and j["path"].endswith("none-running")'
expect 1 "status --json, no store" -- "$daxkv" status "$dir/none-running" --json
check_json "status --json: the error" "$dir/out" 'j["error"]["code"] < 0 and j["path"].endswith("none-running")'
# A file shorter than a page is named with its size (it said "arena size 0").
head -c 100 /dev/urandom >"$dir/short"
expect 1 "info: a file of 100 bytes" -- "$daxkv" info "$dir/short"
grep -q "holds 100 bytes, less than one page" "$dir/err" && ok || bad "info of a 100-byte file: $(cat "$dir/err")"
head -c 1000 /dev/zero >"$dir/short0"
expect 4 "check: a file of 1000 zero bytes" -- "$daxkv" check "$dir/short0"
grep -q "holds 1000 bytes, less than one page" "$dir/err" && ok || bad "check of a 1000-byte file: $(cat "$dir/err")"
expect 0 "info: formatted, empty" -- "$daxkv" info "$e" --json
check_json "empty after format" "$dir/out" 'j["entries"]["live"] == 0 and j["entries"]["committed_headers"] == 0'

# The benchmark's limit: one figure and the loop it was measured with per
# thread count (1, 2 and the store's workers), and the ratios are the
# figures divided by the limit at the store's worker count.
expect 0 "bench --json with 3 workers" -- "$daxkv" bench --arena "$dir/lim.arena" --count 8 \
    --value-size 64KiB --rounds 2 --workers 3 --no-small --json
check_json "bench: the limit of each thread count, its loop, and the ratios to it" "$dir/out" \
    'sorted(j["limit_gb_per_s"]) == sorted(j["limit_loop"]) == ["1_thread", "2_threads", "3_threads"] and all(v > 0 for v in j["limit_gb_per_s"].values()) and all(isinstance(v, str) and v for v in j["limit_loop"].values()) and abs(j["store_vs_limit"] * j["limit_gb_per_s"]["3_threads"] - j["store_gb_per_s"]) < 1e-6 * j["store_gb_per_s"] and abs(j["restore_vs_limit"] * j["limit_gb_per_s"]["3_threads"] - j["restore_gb_per_s"]) < 1e-6 * j["restore_gb_per_s"] and j["verified_chunks"] == 8 and j["mismatched_chunks"] == 0'

# An arena last used with durability=none has no entries to check.
n=$dir/n.arena
expect 0 "bench with durability=none" -- "$daxkv" bench --arena "$n" --count 4 --value-size 64KiB \
    --rounds 1 --no-small --no-progress --keep --durability none
expect 0 "info on a durability=none arena" -- "$daxkv" info "$n" --json
check_json "not recoverable" "$dir/out" 'not j["superblock"]["recoverable"] and j["entries"]["live"] == 0'
expect 0 "check on a durability=none arena" -- "$daxkv" check "$n"

# --- An interrupted bench removes its arena ----------------------------------
# Ctrl-C (SIGINT) or SIGTERM left the arena file behind (in /dev/shm, its
# size in memory); the process still dies of the signal. (A background job
# of a script starts with SIGINT ignored: env gives it the default back.)
for sig in INT TERM; do
    arena=$dir/interrupted.arena
    rm -f "$arena"
    env --default-signal=INT "$daxkv" bench --arena "$arena" --count 64 --value-size 1MiB --rounds 1000 --no-small --no-progress >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 300); do [ -s "$arena" ] && break; sleep 0.1; done
    sleep 0.5
    kill -$sig $pid
    wait $pid
    got=$?
    if [ -e "$arena" ]; then bad "SIG$sig left the bench arena behind"; rm -f "$arena"; else ok; fi
    want=$((128 + $(kill -l $sig)))
    if [ "$got" -eq "$want" ]; then ok; else bad "SIG$sig: the bench exited $got, not $want (dying of the signal)"; fi
done

# --- Logging without code: DAXKV_LOG_LEVEL and DAXKV_LOG_FILE ---------------
logrun() { "$daxkv" bench --arena "$dir/log.arena" --count 2 --value-size 64KiB --rounds 1 --no-small --no-progress; }
expect 0 "no DAXKV_LOG_LEVEL: nothing logged" -- logrun
if [ ! -s "$dir/err" ]; then ok; else bad "the library printed without being asked: $(head -3 "$dir/err")"; fi
DAXKV_LOG_LEVEL=info expect 0 "DAXKV_LOG_LEVEL=info" -- logrun
if grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z daxkv\[[0-9]+\] info: opened store: 1 device' "$dir/err"; then ok; else bad "info lines on stderr: $(head -3 "$dir/err")"; fi
DAXKV_LOG_LEVEL=6 expect 0 "DAXKV_LOG_LEVEL=6 (DAXKV_LOG_INFO)" -- logrun
if grep -q ' info: opened store' "$dir/err"; then ok; else bad "DAXKV_LOG_LEVEL=6: $(head -3 "$dir/err")"; fi
for quiet in warning err 4 bogus 99 ""; do
    DAXKV_LOG_LEVEL=$quiet expect 0 "DAXKV_LOG_LEVEL=$quiet" -- logrun
    if ! grep -q ' info: ' "$dir/err"; then ok; else bad "DAXKV_LOG_LEVEL=$quiet logged info: $(head -3 "$dir/err")"; fi
done
DAXKV_LOG_LEVEL=INFO DAXKV_LOG_FILE=$dir/daxkv.log expect 0 "DAXKV_LOG_FILE" -- logrun
if [ ! -s "$dir/err" ] && grep -q ' info: opened store' "$dir/daxkv.log"; then ok; else bad "DAXKV_LOG_FILE: stderr '$(head -2 "$dir/err")', file '$(head -2 "$dir/daxkv.log" 2>&1)'"; fi
DAXKV_LOG_LEVEL=info DAXKV_LOG_FILE=$dir/daxkv.log expect 0 "DAXKV_LOG_FILE appends" -- logrun
if [ "$(grep -c ' info: opened store' "$dir/daxkv.log")" -eq 2 ]; then ok; else bad "DAXKV_LOG_FILE is appended to"; fi
DAXKV_LOG_LEVEL=info DAXKV_LOG_FILE=$dir/per-pid- expect 0 "DAXKV_LOG_FILE ending in -" -- logrun
if ls "$dir"/per-pid-[0-9]* >/dev/null 2>&1; then ok; else bad "DAXKV_LOG_FILE=...- names a file per process: $(ls "$dir")"; fi
DAXKV_LOG_LEVEL=info DAXKV_LOG_FILE=$dir/no/such/dir/log expect 0 "DAXKV_LOG_FILE that cannot be opened" -- logrun
if grep -q "cannot open DAXKV_LOG_FILE $dir/no/such/dir/log" "$dir/err" && grep -q ' info: opened store' "$dir/err"; then ok; else bad "an unusable DAXKV_LOG_FILE falls back to stderr: $(head -3 "$dir/err")"; fi
# A FIFO nobody reads: the library's load waited in open(2) for a reader.
mkfifo "$dir/log.fifo"
DAXKV_LOG_LEVEL=info DAXKV_LOG_FILE=$dir/log.fifo expect 0 "DAXKV_LOG_FILE a FIFO without a reader" -- timeout 60 "$daxkv" bench --arena "$dir/log.arena" --count 2 --value-size 64KiB --rounds 1 --no-small --no-progress
if grep -q "cannot open DAXKV_LOG_FILE $dir/log.fifo" "$dir/err" && grep -q ' info: opened store' "$dir/err"; then ok; else bad "a FIFO without a reader as DAXKV_LOG_FILE falls back to stderr: $(head -3 "$dir/err")"; fi
rm -f "$dir/log.fifo"

# --- A running store: stats and status read it without stopping it ----------
# A writer (tests/tools/live_writer.py, through the Python binding) keeps a
# store open on a file and works on it; the commands read what it publishes.
export DAXKV_STATS_DIR=$dir/stats
mkdir -p "$DAXKV_STATS_DIR"
live=$dir/live.arena
expect 1 "stats of a missing file" -- "$daxkv" stats "$live"
if grep -q "$live" "$dir/err"; then ok; else bad "stats names the missing path: $(cat "$dir/err")"; fi
: >"$live"
expect 1 "stats with no store running" -- "$daxkv" stats "$live"
if grep -q "no running store publishes statistics for $live" "$dir/err"; then ok; else bad "stats names the path: $(cat "$dir/err")"; fi
rm -f "$live"
expect 1 "status with no store running" -- "$daxkv" status "$live"
for bad_args in "--interval 0" "--interval 0.05" "--interval abc" "--interval 3601" "--count 0" "--count x" "--json --prometheus"; do
    # shellcheck disable=SC2086 # the options are words
    expect 2 "stats $bad_args" -- "$daxkv" stats "$live" $bad_args
    if grep -qE -- "^daxkv stats: --(interval|count|json)" "$dir/err"; then ok; else bad "stats $bad_args names the option: $(head -1 "$dir/err")"; fi
done
# strtod's leniencies are not the tool's: leading blanks, a sign, hex.
for v in " 1" "+1" "0x10" "0X1p2"; do
    expect 2 "stats --interval '$v'" -- "$daxkv" stats "$live" --interval "$v"
done
expect 2 "stats without PATH" -- "$daxkv" stats
expect 2 "status with two PATHs" -- "$daxkv" status "$live" "$live"
expect 2 "status --prometheus (not an option of status)" -- "$daxkv" status "$live" --prometheus

# A page in this format whose status has fields of other types (as a
# publisher of another version may write them): status and stats show what
# they can, not a JSON type error. A stand-in writes the page and holds it
# as a running store would. Its store id and a device path hold terminal
# commands (the page's directory is anyone's to write): status and stats
# show them as \xNN, never as control characters.
forged=$dir/forged.arena
: >"$forged"
python3 -c '
import fcntl, os, struct, sys, time
st = os.stat(sys.argv[1])
status = b"{\"state\":5,\"version\":[1],\"eviction\":null,\"devices\":[{\"path\":7,\"kind\":{},\"slots\":\"many\",\"uuid\":false},3,{\"path\":\"/x\\u001b]0;owned\\u0007\\u009b2J\"}]}"
page = bytearray(32 * 1024)
page[0:56] = b"DAXKVSTP" + struct.pack("<QQQQQQ", 1, 2, os.getpid(), time.time_ns(), 0, len(status))
sid = b"st\x1b]0;x\x07\xc2\x9bore"
page[56:56 + len(sid)] = sid
page[8192:8192 + len(status)] = status
name = os.path.join(sys.argv[2], "daxkv-stats.f%x.%x" % (st.st_dev, st.st_ino))
open(name, "wb").write(page)
f = open(name, "rb")
fcntl.flock(f, fcntl.LOCK_SH)
open(sys.argv[3], "w").close()
time.sleep(30)' "$forged" "$DAXKV_STATS_DIR" "$dir/forged.ready" &
forger=$!
for _ in $(seq 100); do [ -e "$dir/forged.ready" ] && break; sleep 0.05; done
for cmd in status "status --json" stats "stats --json" "stats --prometheus"; do
    # shellcheck disable=SC2086 # the options are words
    expect 0 "$cmd of a page with fields of other types" -- "$daxkv" $cmd "$forged"
    case $cmd in
    status | stats)
        if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]' "$dir/out"; then
            bad "$cmd wrote a page's control characters to the terminal: $(od -c "$dir/out" | head -5)"
        elif grep -qF 'x1b]0;' "$dir/out"; then ok; else bad "$cmd shows the escaped text: $(cat "$dir/out")"; fi
        ;;
    esac
done
kill $forger 2>/dev/null
wait $forger 2>/dev/null
rm -f "$DAXKV_STATS_DIR"/daxkv-stats.*

start_writer() {
    rm -f "$dir/ready" "$dir/stop"
    DAXKV_LIBRARY=$PWD/lib/.libs/libdaxkv.so PYTHONPATH=$src/ffi/python \
        python3 "$src/tests/tools/live_writer.py" "$live" "$dir/ready" "$dir/stop" >"$dir/writer.log" 2>&1 &
    writer=$!
    for _ in $(seq 300); do [ -e "$dir/ready" ] && return 0; kill -0 $writer 2>/dev/null || break; sleep 0.1; done
    bad "the live writer did not start: $(tail -5 "$dir/writer.log")"
    return 1
}
stop_writer() { touch "$dir/stop"; wait "$writer"; }

if start_writer; then
    expect 0 "stats of a running store" -- "$daxkv" stats "$live"
    if head -1 "$dir/out" | grep -qE "^store [0-9a-f-]{36}, pid $writer, published"; then ok; else bad "stats names the store and its pid: $(head -1 "$dir/out")"; fi
    for line in "  slots " "  entries " "  gets " "  puts " "  bytes " "  put_latency "; do
        if grep -q "^$line" "$dir/out"; then ok; else bad "stats shows '$line'"; fi
    done
    expect 0 "stats --json" -- "$daxkv" stats "$live" --json
    check_json "counters of the writer" "$dir/out" 'j["puts"] >= 64 and j["slots_total"] > 0 and j["hits"] > 0 and j["misses"] > 0 and j["slot_bytes"] == 65536'
    check_json "histograms with their buckets" "$dir/out" 'j["put_latency"]["count"] > 0 and len(j["put_latency"]["buckets"]) == 24 and j["item_bytes"]["unit"] == 4096'
    expect 0 "stats --prometheus" -- "$daxkv" stats "$live" -p
    if grep -qE '^daxkv_puts_total\{store="[0-9a-f-]{36}"\} [0-9]+' "$dir/out" && grep -q '^# TYPE daxkv_put_latency_seconds histogram' "$dir/out"; then ok; else bad "stats --prometheus: $(head -5 "$dir/out")"; fi
    expect 0 "status --json" -- "$daxkv" status "$live" --json
    check_json "status names the writer and the device" "$dir/out" "j['publisher']['pid'] == $writer and j['devices'][0]['path'] == '$live' and j['state'] == 'open'"
    expect 0 "status" -- "$daxkv" status "$live"
    if head -1 "$dir/out" | grep -qE "^store [0-9a-f-]{36}: open, pid $writer" && grep -q "^  $live: file" "$dir/out"; then ok; else bad "status: $(cat "$dir/out")"; fi
    # --watch: JSON Lines, counters that only grow, rates from the second report.
    expect 0 "stats --count 3 --json" -- "$daxkv" stats "$live" --count 3 --interval 0.2 --json
    if python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 3, rows
assert all(a["puts"] <= b["puts"] for a, b in zip(rows, rows[1:]))
assert rows[2]["puts"] > rows[0]["puts"], "the writer wrote nothing in 0.4 s"
' "$dir/out"; then ok; else bad "stats --count 3 --json: $(cat "$dir/out")"; fi
    expect 0 "stats --watch --count 2" -- "$daxkv" stats "$live" -w -c 2 -i 0.2
    if [ "$(grep -c '^store ' "$dir/out")" -eq 2 ] && [ "$(grep -c '^  per second ' "$dir/out")" -eq 1 ]; then ok; else bad "two reports, rates in the second: $(cat "$dir/out")"; fi
    expect 0 "status --count 2 --json" -- "$daxkv" status "$live" -c 2 -i 0.1 --json
    if [ "$(wc -l <"$dir/out")" -eq 2 ]; then ok; else bad "status --count 2 --json prints two lines"; fi
    # A watch whose output cannot be written (a full disk behind it, or
    # standard output closed) ends at once with the reason, not never.
    for sink in full closed; do
        if [ $sink = full ]; then
            timeout 20 "$daxkv" stats "$live" --watch --interval 0.1 >/dev/full 2>"$dir/err"
        else
            timeout 20 "$daxkv" status "$live" --watch --interval 0.1 >&- 2>"$dir/err"
        fi
        rc=$?
        if [ $rc -eq 1 ] && grep -q "write error" "$dir/err"; then ok; else bad "a watch writing to a $sink standard output: exit $rc, $(head -c 200 "$dir/err")"; fi
    done
    # A watch ends, with the reason, when the store goes away.
    "$daxkv" stats "$live" --watch --interval 0.1 >"$dir/watch.out" 2>"$dir/watch.err" &
    watcher=$!
    sleep 0.5
    stop_writer
    for _ in $(seq 50); do kill -0 $watcher 2>/dev/null || break; sleep 0.1; done
    if kill -0 $watcher 2>/dev/null; then
        kill $watcher
        bad "stats --watch still runs after the store closed"
    else
        wait $watcher
        rc=$?
        if [ $rc -eq 1 ] && grep -q "no running store" "$dir/watch.err"; then ok; else bad "watch after close: exit $rc, $(cat "$dir/watch.err")"; fi
    fi
    expect 1 "stats after the store closed" -- "$daxkv" stats "$live"
    if [ -z "$(ls -A "$DAXKV_STATS_DIR")" ]; then ok; else bad "the closed store left its page: $(ls "$DAXKV_STATS_DIR")"; fi
    # A store that dies (SIGKILL) leaves a page no one holds: reported absent.
    if start_writer; then
        kill -9 "$writer"
        wait "$writer" 2>/dev/null
        expect 1 "stats of a store that was killed" -- "$daxkv" stats "$live"
        if grep -q "no longer running" "$dir/err"; then ok; else bad "a killed store: $(cat "$dir/err")"; fi
    fi
fi
unset DAXKV_STATS_DIR

echo "SUITE tools: $pass passed, $fail failed"
