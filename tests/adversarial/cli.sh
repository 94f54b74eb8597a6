#!/bin/bash
# The daxkv command attacked from outside: paths that are not UTF-8 in
# --json output (lossless, as arrays of bytes), sizes at their bounds, failed
# formats that must leave the target as it was, and paths that lead into
# /dev. Prints "N passed, M failed". $1: build directory.
#
# Bad inputs tried here: info, check, probe and format --json on a path
# with bytes 0xff 0xfe; format --slot-bytes 2^64-1, 2^63 and 2^64-832;
# format of a new file, an empty file, a zeroed file and a file of foreign
# bytes with a slot larger than the file; format through /dev/shm/../NAME
# and through a symlink to a missing /dev node; bench with a chunk count of
# 2^64-1, and one into an arena too small for its chunks (its arena must
# not be left behind); bench (each mode that takes --arena but --gpu) at a file of
# random bytes and at an arena whose lock another process holds, bench
# --migrate with random bytes at its second arena's name; format with a --size of 4097, 8191, 12288 and 64 KiB of a 1 MiB
# arena; info and check on a file of 0 bytes; info, check and check
# --repair by a user who may read the arena but not write it; info on an arena cut short; info and check on a sparse copy of
# an arena and on 1 TiB of sparse zeros; info, check, check --repair and
# a refused format with standard input, output or error closed; output
# to a full device (/dev/full) and to a closed standard output.
set -u
build=$1
daxkv=$build/tools/daxkv
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/daxkv-adv-cli.XXXXXX")
devname=/dev/daxkv-adv-cli-$$
trap 'rm -rf "$dir"; rm -f "$devname"' EXIT

# expect RC DESCRIPTION -- COMMAND...: the exit status is RC (a signal is
# 128+N and never expected).
expect() {
    local want=$1 what=$2 got
    shift 3
    "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, expected $want"; head -5 "$dir/err"; fi
}
# json_path FILE: the "path" field, decoded (a string, or an array of bytes).
json_path() {
    python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["path"]
sys.stdout.buffer.write(bytes(p) if isinstance(p, list) else p.encode())' "$1"
}

# A path that is not UTF-8: every --json command answers, losslessly.
weird=$(printf '%s/arena-\xff\xfe' "$dir")
expect 0 "format --json of a non-UTF-8 path" -- "$daxkv" format "$weird" --slot-bytes 4096 --size 1MiB --json
if [ "$(json_path "$dir/out" | od -An -tx1)" = "$(printf '%s' "$weird" | od -An -tx1)" ]; then ok; else bad "format --json path is not the path"; fi
for cmd in info check probe; do
    expect 0 "$cmd --json of a non-UTF-8 path" -- "$daxkv" $cmd "$weird" --json
    if [ "$(json_path "$dir/out" | od -An -tx1)" = "$(printf '%s' "$weird" | od -An -tx1)" ]; then ok; else bad "$cmd --json path is not the path"; fi
done
# A valid UTF-8 path stays a string.
utf=$dir/arena-é
expect 0 "format --json of a UTF-8 path" -- "$daxkv" format "$utf" --slot-bytes 4096 --size 1MiB --json
if python3 -c 'import json,sys; assert isinstance(json.load(open(sys.argv[1]))["path"], str)' "$dir/out"; then ok; else bad "a UTF-8 path is not a string"; fi

# Sizes at the bounds: a clear refusal, never a signal, nothing created.
for slot in 18446744073709551615 9223372036854775808 18446744073709550784; do
    expect 1 "format --slot-bytes $slot" -- "$daxkv" format "$dir/big" --slot-bytes $slot --size 1MiB
    [ -e "$dir/big" ] && bad "format --slot-bytes $slot left a file" || ok
done
expect 2 "bench with 2^64-1 chunks" -- "$daxkv" bench --arena "$dir/bench" --count 18446744073709551615 \
    --value-size 1GiB --no-progress
[ -e "$dir/bench" ] && bad "the refused bench left a file" || ok
# A bench that fails after its store is open (an arena too small for its
# chunks: the warm-up put_batch finds no room) removes its arena as a
# finished one does; it used to leave the file behind.
expect 1 "bench into an arena too small for its chunks" -- "$daxkv" bench --arena "$dir/bench" \
    --count 4 --value-size 4KiB --size 16KiB --no-small --rounds 1 --no-progress
[ -e "$dir/bench" ] && bad "a bench that failed after opening left its arena" || ok

# A failed format leaves the target as it was.
head -c 1048576 /dev/urandom >"$dir/foreign"
truncate -s 1MiB "$dir/zeroed"
: >"$dir/empty"
for f in foreign zeroed empty; do
    cp "$dir/$f" "$dir/$f.before"
    expect 1 "format --force of $f with a slot larger than it" -- \
        "$daxkv" format "$dir/$f" --slot-bytes 2MiB --size 1MiB --force
    cmp -s "$dir/$f" "$dir/$f.before" && ok || bad "a failed format changed $f"
done
expect 1 "format of a new file with a slot larger than it" -- \
    "$daxkv" format "$dir/new" --slot-bytes 2MiB --size 1MiB
[ -e "$dir/new" ] && bad "a failed format left a new file" || ok

# A format with a --size below what the file holds judges the whole file:
# an arena there is an arena (not foreign data, not a damaged arena),
# refused without --force and left as it was.
expect 0 "format a 1 MiB arena to format smaller" -- "$daxkv" format "$dir/larger" --slot-bytes 4096 --size 1MiB
cp "$dir/larger" "$dir/larger.before"
for size in 4097 8191 12288 64KiB; do
    expect 1 "format --size $size of a larger arena without --force" -- \
        "$daxkv" format "$dir/larger" --slot-bytes 4096 --size $size
    grep -q "holds a daxkv arena (0 live entries" "$dir/err" && ok || bad "format --size $size of a larger arena: $(head -c 200 "$dir/err")"
    cmp -s "$dir/larger" "$dir/larger.before" && ok || bad "a refused format --size $size changed the arena"
done

# bench replaces only an arena of its own at --arena: a file of other data
# and an arena a running store holds (its lock taken here by a stand-in)
# are refused and left where they were, whatever the mode.
head -c 65536 /dev/urandom >"$dir/precious"
cp "$dir/precious" "$dir/precious.before"
# Zeros in front of the data (a disk image's first 32 KiB): it was taken for
# a file of zeros, which the benchmark replaces, and removed.
{ head -c 32768 /dev/zero; head -c 65536 /dev/urandom; } >"$dir/imagelike"
cp "$dir/imagelike" "$dir/imagelike.before"
expect 0 "format an arena to hold" -- "$daxkv" format "$dir/held" --slot-bytes 4096 --size 1MiB
cp "$dir/held" "$dir/held.before"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(60)' "$dir/held" "$dir/held.locked" &
holder=$!
for _ in $(seq 100); do [ -e "$dir/held.locked" ] && break; sleep 0.05; done
small="--count 2 --value-size 64KiB --rounds 1 --no-small --no-progress"
for target in precious imagelike held; do
    for mode in "" "--reopen --count 100" "--verify-cost --count 2 --value-size 64KiB" \
        "--sweep --min-size 64KiB --max-size 64KiB --bytes 1MiB --workers 1 --rounds 1" \
        "--workload lmcache --tokens 512 --docs 1 --queries 1"; do
        # shellcheck disable=SC2086 # the options are words
        if [ -z "$mode" ]; then set -- $small; else set -- $mode; fi
        "$daxkv" bench "$@" --arena "$dir/$target" >"$dir/out" 2>"$dir/err"
        rc=$?
        [ $rc -eq 1 ] && ok || bad "bench ${mode:-(default)} --arena $target: exit $rc, $(head -c 200 "$dir/err")"
        cmp -s "$dir/$target" "$dir/$target.before" && ok || bad "bench ${mode:-(default)} --arena $target replaced it"
    done
done
kill $holder 2>/dev/null
wait $holder 2>/dev/null
# A file of zeros alone, written or sparse, is replaced.
head -c 65536 /dev/zero >"$dir/zeros-written"
truncate -s 64M "$dir/zeros-sparse"
head -c 100 /dev/zero >"$dir/zeros-short" # shorter than a superblock: it was refused
for target in zeros-written zeros-sparse zeros-short; do
    expect 0 "bench --arena over a file of zeros ($target)" -- "$daxkv" bench $small --arena "$dir/$target"
done
# --migrate: the directory's two arena files, one of them other data.
mkdir "$dir/mig"
cp "$dir/precious.before" "$dir/mig/daxkv-bench-mig1.arena"
expect 1 "bench --migrate with other data at its second arena's name" -- \
    "$daxkv" bench --migrate --count 2 --value-size 64KiB --rounds 1 --no-progress --arena "$dir/mig"
cmp -s "$dir/mig/daxkv-bench-mig1.arena" "$dir/precious.before" && ok || bad "bench --migrate replaced other data"
[ -e "$dir/mig/daxkv-bench-mig0.arena" ] && bad "a refused bench --migrate left its first arena" || ok

# A file of 0 bytes holds no arena: info and check say so (exit 1 and 4),
# without telling to give a size, which neither takes.
: >"$dir/zero-bytes"
for cmd in info check; do
    want=1
    [ $cmd = check ] && want=4
    expect $want "$cmd on a file of 0 bytes" -- "$daxkv" $cmd "$dir/zero-bytes"
    if grep -q "no arena" "$dir/err" && ! grep -q "give the arena size" "$dir/err"; then ok; else bad "$cmd on a file of 0 bytes: $(head -c 200 "$dir/err")"; fi
done

# An arena its reader may read but not write: info and check look at it
# (check --repair, which writes, is refused). Run as an unprivileged user
# when the suite runs as root, which may write anything. The program and
# its library are copied where that user may run them: the build tree may
# lie in a directory only root may enter (a fresh clone under mktemp -d).
if [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null && id nobody >/dev/null 2>&1 &&
    [ -x "$build/tools/.libs/daxkv" ]; then
    mkdir "$dir/shared" "$dir/shared/bin"
    cp "$build/tools/.libs/daxkv" "$build"/lib/.libs/libdaxkv.so* "$dir/shared/bin/"
    chmod 755 "$dir" "$dir/shared" "$dir/shared/bin"
    as_nobody() { runuser -u nobody -- env LD_LIBRARY_PATH="$dir/shared/bin" "$dir/shared/bin/daxkv" "$@"; }
    expect 0 "format an arena to share read-only" -- "$daxkv" format "$dir/shared/ro" --slot-bytes 4096 --size 1MiB
    chmod 644 "$dir/shared/ro"
    expect 0 "info on an arena readable, not writable" -- as_nobody info "$dir/shared/ro"
    expect 0 "check on an arena readable, not writable" -- as_nobody check "$dir/shared/ro"
    expect 4 "check --repair on an arena readable, not writable" -- as_nobody check --repair "$dir/shared/ro"
    grep -qi "permission denied" "$dir/err" && ok || bad "check --repair without write permission: $(head -c 200 "$dir/err")"
    chmod 700 "$dir"
else
    echo "info and check of an arena its reader may not write: not run (needs root, runuser, the user nobody and a libtool build's tools/.libs/daxkv)"
fi

# Nothing is created in /dev, whatever the path says.
expect 1 "format of /dev/shm/../NAME" -- "$daxkv" format "/dev/shm/..${devname#/dev}" --slot-bytes 4096 --size 1MiB
[ -e "$devname" ] && bad "format created $devname" || ok
ln -s "$devname" "$dir/link"
expect 1 "format through a symlink to a missing /dev node" -- "$daxkv" format "$dir/link" --slot-bytes 4096 --size 1MiB
[ -e "$devname" ] && bad "format created $devname through a symlink" || ok

# An arena cut short is reported as such (never a SIGBUS).
expect 0 "format an arena to cut" -- "$daxkv" format "$dir/cut" --slot-bytes 4096 --size 1MiB
truncate -s 600KiB "$dir/cut"
"$daxkv" info "$dir/cut" --json >"$dir/out" 2>"$dir/err"
rc=$?
if [ $rc -lt 128 ]; then ok; else bad "info on a cut arena died (exit $rc)"; fi

# Looking at a sparse arena leaves it sparse: info and check change nothing
# (on tmpfs the blocks would be memory), and a sparse file of zeros far
# larger than its file system is an empty device, not -ENOSPC.
expect 0 "format an arena to copy sparse" -- "$daxkv" format "$dir/full" --slot-bytes 4096 --size 64MiB
cp --sparse=always "$dir/full" "$dir/sparse"
before=$(stat -c %b "$dir/sparse")
expect 0 "info on a sparse arena" -- "$daxkv" info "$dir/sparse"
expect 0 "check on a sparse arena" -- "$daxkv" check "$dir/sparse" --no-progress
after=$(stat -c %b "$dir/sparse")
[ "$after" -eq "$before" ] && ok || bad "info and check filled a sparse arena ($before -> $after blocks)"
truncate -s 1T "$dir/zeros" 2>/dev/null
if [ -e "$dir/zeros" ]; then
    expect 1 "info on 1 TiB of sparse zeros (an empty device)" -- "$daxkv" info "$dir/zeros"
    grep -q "no arena" "$dir/out" && ok || bad "info on sparse zeros does not say there is no arena: $(head -2 "$dir/out" "$dir/err")"
    expect 4 "check on 1 TiB of sparse zeros" -- "$daxkv" check "$dir/zeros" --no-progress
    grep -q -i "nospc\|no room\|reserve" "$dir/err" && bad "check on sparse zeros tried to reserve blocks" || ok
fi

# Standard streams closed: the arena the command opens must not take their
# numbers, or what the command prints (a refusal, a report) is written into
# the arena. The program itself, not the libtool wrapper script, which
# would occupy a closed descriptor with its own file.
real=$build/tools/.libs/daxkv
[ -x "$real" ] || real=$daxkv
run_real() { LD_LIBRARY_PATH=$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$real" "$@"; }
expect 0 "format an arena for the closed-stream checks" -- "$daxkv" format "$dir/std" --slot-bytes 4096 --size 1MiB
cp "$dir/std" "$dir/std.before"
for closed in 0 1 2; do
    for cmd in "format --slot-bytes 8192" "info" "info --json" "check" "check --repair --json"; do
        # shellcheck disable=SC2086 # the command's words
        case $closed in
        0) run_real $cmd "$dir/std" <&- >/dev/null 2>&1 ;;
        1) run_real $cmd "$dir/std" >&- 2>/dev/null ;;
        2) run_real $cmd "$dir/std" 2>&- >/dev/null ;;
        esac
        cmp -s "$dir/std" "$dir/std.before" && ok || {
            bad "daxkv $cmd with descriptor $closed closed changed the arena"
            cp "$dir/std.before" "$dir/std"
        }
    done
done

# Output that cannot be written is a failure with its reason, not exit 0.
for cmd in "info" "info --json" "check" "probe" "version" "help" "info --help"; do
    args=("$dir/std")
    case $cmd in version | help | *--help) args=() ;; esac
    # shellcheck disable=SC2086 # the command's words
    "$daxkv" $cmd "${args[@]}" >/dev/full 2>"$dir/err"
    rc=$?
    want=1
    [ "$cmd" = check ] && want=4
    if [ $rc -eq $want ] && grep -q "write error" "$dir/err"; then ok; else bad "daxkv $cmd >/dev/full: exit $rc (want $want), $(head -c 200 "$dir/err")"; fi
done
"$daxkv" info "$dir/std" >&- 2>"$dir/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "write error" "$dir/err"; then ok; else bad "daxkv info with standard output closed: exit $rc, $(head -c 200 "$dir/err")"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
