#!/bin/bash
# Run test programs inside a QEMU guest that has real Device-DAX devices
# (/dev/dax0.0 and /dev/dax1.0 on two emulated, file-backed NVDIMMs), and
# report the results on the host. See tests/vm/README.md.
#
#   run-guest-tests.sh [options] BUILD_DIR [--] TEST... [--reboot TEST...]
#
# Each TEST is one shell command run in the guest, optionally prefixed with a
# name: "NAME::command args" (leading VAR=value words set its environment).
# Its first word after those, if it names a file on the host
# (absolute, or relative to BUILD_DIR or the current directory), is copied
# into the guest together with the shared libraries `ldd` names. A libtool
# wrapper script is replaced by the real binary in its .libs directory.
#
# "--reboot" ends the command list of the first boot and starts the list of a
# second boot of the same NVDIMM images (for restart and power-loss tests).
#
# Options:
#   --images DIR     keep the NVDIMM images in DIR (created when missing) and
#                    leave them there afterwards; default: a temporary dir
#   --kill-on TEXT   during the first boot, kill QEMU from the host (SIGKILL,
#                    no guest shutdown) as soon as a console line contains
#                    TEXT; commands not finished by then count as killed, not
#                    failed. A guest prints such a line with `echo TEXT`.
#   --timeout SEC    limit for one boot, default 240
#   --test-timeout SEC  limit for one command in the guest, default 120
#   --file PATH      also copy PATH (and its libraries) into the guest, at
#                    /t/<basename>; repeatable
#   --kernel PATH    guest kernel, default the newest /boot/vmlinuz-*
#   --log FILE       keep the guest console log in FILE
#   --no-install     do not apt-get install missing packages
#   -h, --help
#
# Output: one "GUEST-TEST <name> PASS|FAIL" line per command, then
# "guest suite: N passed, N failed". Exit status 0 only if every expected
# result arrived and passed. A guest that fails to boot, dies or times out
# turns every command without a result into a failure, never a skip.

set -u -o pipefail

die() { echo "run-guest-tests: $*" >&2; exit 2; }
note() { echo "run-guest-tests: $*" >&2; }

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

images_dir=""
kill_on=""
boot_timeout=240
test_timeout=120
kernel=""
log_keep=""
install=1
extra_files=()

while [ $# -gt 0 ]; do
    case "$1" in
        --images) images_dir=${2:?}; shift 2 ;;
        --kill-on) kill_on=${2:?}; shift 2 ;;
        --timeout) boot_timeout=${2:?}; shift 2 ;;
        --test-timeout) test_timeout=${2:?}; shift 2 ;;
        --file) extra_files+=("${2:?}"); shift 2 ;;
        --kernel) kernel=${2:?}; shift 2 ;;
        --log) log_keep=${2:?}; shift 2 ;;
        --no-install) install=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
build_dir=$(cd "$1" 2>/dev/null && pwd) || die "build directory $1 not found"
shift
[ "${1:-}" = "--" ] && shift

boot1=()
boot2=()
second=0
for a in "$@"; do
    if [ "$a" = "--reboot" ]; then second=1; continue; fi
    if [ $second -eq 0 ]; then boot1+=("$a"); else boot2+=("$a"); fi
done
[ ${#boot1[@]} -gt 0 ] || [ ${#boot2[@]} -gt 0 ] || die "no test commands given"
[ -z "$kill_on" ] || [ $second -eq 1 ] || note "--kill-on without --reboot: nothing checks the second boot"

# ---------------------------------------------------------------- host tools
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v ndctl >/dev/null || need_pkgs+=(ndctl)
command -v daxctl >/dev/null || need_pkgs+=(daxctl)
if [ -z "$kernel" ] && ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
    need_pkgs+=(linux-image-amd64)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ $install -eq 1 ] || die "missing packages: ${need_pkgs[*]}"
    [ "$(id -u)" -eq 0 ] || die "missing packages (${need_pkgs[*]}); run as root or install them"
    note "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null \
        || die "apt-get install ${need_pkgs[*]} failed"
fi
# busybox-static is statically linked: the guest needs nothing else for its shell.
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || die "/bin/busybox is not static (install busybox-static)"

if [ -z "$kernel" ]; then
    kernel=$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -n 1)
fi
[ -r "$kernel" ] || die "kernel $kernel not readable (run as root: Debian's vmlinuz is mode 0600)"
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[ -d "$moddir" ] || die "$moddir missing for kernel $kernel"

# ----------------------------------------------------------------- temp space
work=$(mktemp -d "${TMPDIR:-/tmp}/daxkv-vm.XXXXXX") || die "mktemp failed"
qemu_pid=""
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -KILL "$qemu_pid" 2>/dev/null
        wait "$qemu_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$images_dir" ]; then
    images_dir=$work/images
fi
mkdir -p "$images_dir" || die "cannot create $images_dir"
for i in 0 1; do
    img=$images_dir/nv$i.img
    # Sparse files: 512 MiB each costs only what the guest writes.
    [ -f "$img" ] || truncate -s 512M "$img" || die "cannot create $img"
    [ "$(stat -c %s "$img")" -eq $((512 << 20)) ] || die "$img is not 512 MiB"
done

# ----------------------------------------------------------- the initramfs
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,t,etc,lib,lib64,usr/bin,run,"$moddir"}
cp /bin/busybox "$root/bin/busybox"
for applet in sh mount umount insmod mkdir cat echo sleep ls grep sed timeout poweroff \
              date chgrp chmod chown ln rm dmesg mknod tr seq head tail wc env id; do
    ln -sf busybox "$root/bin/$applet"
done

# Copy a file to the same absolute path in the guest (resolving symlinks on
# the host so that the guest gets real files).
copy_abs() {
    local src=$1 dst=$root$1
    mkdir -p "$(dirname "$dst")"
    [ -e "$dst" ] || cp -L "$src" "$dst" || die "cannot copy $src"
}
# Copy an ELF file's shared libraries, as `ldd` names them (recursively, since
# ldd lists the whole closure), plus the dynamic loader.
copy_libs() {
    local line lib
    file_is_static "$1" && return 0
    while read -r line; do
        case "$line" in
            *"=> not found"*) die "$1: missing library: ${line%% *}" ;;
            *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
            /*) lib=${line%% (*} ;;
            *) continue ;;
        esac
        copy_abs "$lib"
    done < <(LD_LIBRARY_PATH="${lib_path:-}" ldd "$1")
}

# libdaxkv from the build tree (autotools keeps it in .libs/); its directory
# is searched first by ldd and in the guest through LD_LIBRARY_PATH=/t/lib.
lib_path=""
mkdir -p "$root/t/lib"
while IFS= read -r so; do
    cp -P "$so" "$root/t/lib/" || die "cannot copy $so"
    d=$(dirname "$so")
    case ":$lib_path:" in *":$d:"*) ;; *) lib_path=${lib_path:+$lib_path:}$d ;; esac
done < <(find "$build_dir" -name 'libdaxkv.so*' \( -type f -o -type l \) 2>/dev/null)

for tool in ndctl daxctl; do
    p=$(command -v $tool) || die "$tool not found"
    copy_abs "$p"
    copy_libs "$p"
done

# Resolve a command's program to a host file and copy it to /t/<name>.
# Prints the guest path, or nothing if the word is not a host file (a busybox
# applet or a guest path).
stage_program() {
    local word=$1 host="" base real
    case "$word" in
        /*) [ -f "$word" ] && host=$word ;;
        *)  if [ -f "$build_dir/$word" ]; then host=$build_dir/$word
            elif [ -f "$word" ]; then host=$(pwd)/$word
            fi ;;
    esac
    [ -n "$host" ] || return 0
    base=$(basename "$host")
    real=$host
    # A libtool wrapper script: the real program is in .libs/.
    if head -c 4 "$host" | grep -q '^#!' && grep -q 'libtool' "$host" 2>/dev/null; then
        for c in "$(dirname "$host")/.libs/$base" "$(dirname "$host")/.libs/lt-$base"; do
            [ -f "$c" ] && { real=$c; break; }
        done
    fi
    if [ -e "$root/t/$base" ]; then
        # Two different programs with one name cannot share /t.
        cmp -s "$real" "$root/t/$base" || die "two different programs named $base"
    else
        cp -L "$real" "$root/t/$base" || die "cannot copy $real"
        if head -c 4 "$real" | grep -q 'ELF'; then copy_libs "$real"; fi
    fi
    echo "/t/$base"
}

for f in ${extra_files[@]+"${extra_files[@]}"}; do
    [ -f "$f" ] || die "--file $f not found"
    cp -L "$f" "$root/t/$(basename "$f")"
    if head -c 4 "$f" | grep -q 'ELF'; then copy_libs "$f"; fi
done

# Write one boot's command list: one line "name<TAB>command" per test.
declare -A seen_names=()
write_list() {
    local out=$1; shift
    local spec name cmd first rest guest envs idx=0
    : > "$out"
    for spec in "$@"; do
        idx=$((idx + 1))
        if [[ "$spec" =~ ^([A-Za-z0-9_.:-]+)::(.*)$ ]]; then
            name=${BASH_REMATCH[1]}; cmd=${BASH_REMATCH[2]}
        else
            cmd=$spec; name=""
        fi
        # Leading NAME=value words set the environment of the command.
        envs=""
        while [[ "$cmd" =~ ^([A-Za-z_][A-Za-z0-9_]*=[^\ ]*)\ +(.*)$ ]]; do
            envs+="${BASH_REMATCH[1]} "; cmd=${BASH_REMATCH[2]}
        done
        first=${cmd%% *}
        rest=""
        [ "$first" != "$cmd" ] && rest=" ${cmd#* }"
        guest=$(stage_program "$first") || exit 2
        [ -n "$guest" ] && cmd=$guest$rest
        cmd=$envs$cmd
        if [ -z "$name" ]; then
            name=$(basename "$first" | tr -c 'A-Za-z0-9_.-\n' '_')
        fi
        if [ -n "${seen_names[$name]:-}" ]; then name=$name.$idx; fi
        seen_names[$name]=1
        case "$cmd" in *$'\t'*|*$'\n'*) die "test command may not contain tabs or newlines: $cmd" ;; esac
        printf '%s\t%s\n' "$name" "$cmd" >> "$out"
    done
}

# Modules: the required ones plus their dependencies (modules.dep), each
# after what it needs; compressed modules are unpacked on the host because
# busybox insmod loads only plain .ko files.
want_mods="libnvdimm nd_btt nd_pmem nd_e820 nfit device_dax dax_pmem kmem"
declare -A mod_done=()
mod_order=()
mod_path() { sed -n "s#^\\([^:]*/$1\\.ko\\(\\.[a-z]*\\)\\{0,1\\}\\):.*#\\1#p" "$moddir/modules.dep" | head -n 1; }
add_mod() {
    local m=$1 rel deps d
    [ -n "${mod_done[$m]:-}" ] && return 0
    mod_done[$m]=1
    rel=$(mod_path "$m")
    if [ -z "$rel" ]; then
        # Built into the kernel: nothing to load.
        grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null && return 0
        die "module $m not found in $moddir"
    fi
    deps=$(grep -E "^$rel:" "$moddir/modules.dep" | cut -d: -f2)
    for d in $deps; do
        d=$(basename "$d"); d=${d%%.ko*}
        add_mod "$d"
    done
    mod_order+=("$m")
    local src=$moddir/$rel dst=$root/$moddir/$m.ko
    case "$rel" in
        *.ko) cp "$src" "$dst" ;;
        *.ko.xz) xz -dc "$src" > "$dst" ;;
        *.ko.zst) zstd -qdc "$src" > "$dst" ;;
        *.ko.gz) gzip -dc "$src" > "$dst" ;;
        *) die "unknown module format $rel" ;;
    esac || die "cannot unpack $src"
}
for m in $want_mods; do add_mod "$m"; done
printf '%s\n' "${mod_order[@]}" > "$root/etc/modules.order"

# A minimal user database, so that tests can run unprivileged children and
# see group names on device nodes.
cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
daxkv:x:990:
nogroup:x:65534:
EOF

cat > "$root/init" <<'INIT'
#!/bin/sh
# Guest init: bring up both Device-DAX devices, run the tests of this boot,
# print one result line per test on the console, power off.
export PATH=/t:/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/t/lib
export HOME=/tmp DAXKV_GUEST=1 GTEST_COLOR=no
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo 1 > /proc/sys/kernel/printk
boot=$(cat /etc/boot)
echo "GUEST-BOOT $boot"

setup_ok=1
for m in $(cat /etc/modules.order); do
    insmod /lib/modules/$(uname -r)/$m.ko || { echo "GUEST-INFO insmod $m failed"; setup_ok=0; }
done
# Wait for the NVDIMM bus to be probed (nfit is asynchronous).
for i in $(seq 1 100); do
    [ -e /sys/bus/nd/devices/namespace1.0 ] && [ -e /sys/bus/nd/devices/namespace0.0 ] && break
    sleep 0.1
done
for n in 0 1; do
    if [ -e /dev/dax$n.0 ]; then
        # A second boot of the same image: the devdax mode is stored on it.
        echo "GUEST-INFO dax$n.0 found on the image"
    else
        # A new image is label-less and raw: make it a devdax namespace,
        # dax0.0 with 4 KiB alignment (page faults; the unit suite's small
        # arenas fit it), dax1.0 with 2 MiB (huge-page faults, the common
        # production setting).
        echo "GUEST-INFO dax$n.0 created"
        align=2M
        [ $n -eq 0 ] && align=4K
        ndctl create-namespace -f -e namespace$n.0 -m devdax -a $align > /tmp/ns$n.json 2>&1 \
            || { cat /tmp/ns$n.json; }
    fi
    for i in $(seq 1 50); do [ -e /dev/dax$n.0 ] && break; sleep 0.1; done
    if [ -c /dev/dax$n.0 ]; then
        echo "GUEST-TEST setup-dax$n.0 PASS"
    else
        echo "GUEST-TEST setup-dax$n.0 FAIL"
        setup_ok=0
    fi
done
daxctl list 2>&1 | tr -d '\n' | sed 's/^/GUEST-INFO daxctl list: /'; echo

tab=$(printf '\t')
while IFS="$tab" read -r name cmd; do
    [ -n "$name" ] || continue
    echo "GUEST-START $name"
    start=$(date +%s)
    # Run in a subshell so a test's `cd` or exports do not leak; stdin from
    # /dev/null so a test cannot eat the command list.
    timeout -s KILL @TEST_TIMEOUT@ sh -c "$cmd" < /dev/null
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then res=PASS; else res=FAIL; fi
    echo "GUEST-TEST $name $res rc=$rc secs=$secs"
done < /etc/tests

echo "GUEST-DONE $boot"
sync
poweroff -f
INIT
sed -i "s/@TEST_TIMEOUT@/$test_timeout/" "$root/init"
chmod 755 "$root/init"

# ---------------------------------------------------------------- boot
pass=0
fail=0

# Boot once with the given list; parses the console and updates pass/fail.
run_boot() {
    local boot=$1 list=$2 kill_text=$3
    local initrd=$work/initrd-$boot.cpio.gz log=$work/console-$boot.log
    cp "$list" "$root/etc/tests"
    echo "$boot" > "$root/etc/boot"
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd" \
        || die "building the initramfs failed"

    local t0=$SECONDS
    : > "$log"
    # -no-reboot with panic=-1: a guest panic ends QEMU instead of looping.
    qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 1G,slots=2,maxmem=4G -smp 2 \
        -nographic -no-reboot -display none -monitor none -nic none -vga none -serial "file:$log" \
        -object memory-backend-file,id=mem0,share=on,mem-path="$images_dir/nv0.img",size=512M,align=2M \
        -device nvdimm,id=nv0,memdev=mem0 \
        -object memory-backend-file,id=mem1,share=on,mem-path="$images_dir/nv1.img",size=512M,align=2M \
        -device nvdimm,id=nv1,memdev=mem1 \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init" \
        > "$work/qemu-$boot.out" 2>&1 < /dev/null &
    qemu_pid=$!

    local status=running killed=0
    while kill -0 "$qemu_pid" 2>/dev/null; do
        if [ -n "$kill_text" ] && tr -d '\r' < "$log" | grep -qF -- "$kill_text"; then
            # Simulated power loss: no sync, no shutdown, the guest just stops.
            kill -KILL "$qemu_pid" 2>/dev/null
            killed=1
            break
        fi
        if [ $((SECONDS - t0)) -ge "$boot_timeout" ]; then
            kill -KILL "$qemu_pid" 2>/dev/null
            status=timeout
            break
        fi
        sleep 0.2
    done
    wait "$qemu_pid" 2>/dev/null
    qemu_pid=""
    local secs=$((SECONDS - t0))

    # Drop carriage returns and the firmware's terminal escape sequences.
    tr -d '\r' < "$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' > "$log.clean"
    if [ -n "$log_keep" ]; then
        { echo "===== boot $boot"; cat "$log.clean"; cat "$work/qemu-$boot.out"; } >> "$log_keep"
    fi

    local name cmd line
    for name in setup-dax0.0 setup-dax1.0; do
        line=$(grep -E "^GUEST-TEST $name (PASS|FAIL)" "$log.clean" | tail -n 1)
        if [ -n "$line" ]; then
            echo "boot $boot: $line"
            case "$line" in *" PASS"*) pass=$((pass + 1)) ;; *) fail=$((fail + 1)) ;; esac
        elif [ $killed -eq 0 ]; then
            echo "boot $boot: GUEST-TEST $name FAIL (no result)"; fail=$((fail + 1))
        fi
    done
    while IFS=$'\t' read -r name cmd; do
        line=$(grep -E "^GUEST-TEST $(printf '%s' "$name" | sed 's/[.[\*^$]/\\&/g') (PASS|FAIL)" "$log.clean" | tail -n 1)
        if [ -n "$line" ]; then
            echo "boot $boot: $line"
            case "$line" in *" PASS "*|*" PASS") pass=$((pass + 1)) ;; *) fail=$((fail + 1)) ;; esac
        elif [ $killed -eq 1 ] && grep -qx "GUEST-START $name" "$log.clean"; then
            echo "boot $boot: GUEST-TEST $name KILLED (QEMU killed on '$kill_text' as asked)"
        elif [ $killed -eq 1 ]; then
            echo "boot $boot: GUEST-TEST $name FAIL (not started before the kill)"; fail=$((fail + 1))
        else
            echo "boot $boot: GUEST-TEST $name FAIL (no result: ${status/running/guest ended early})"
            fail=$((fail + 1))
        fi
    done < "$list"
    if [ -n "$kill_text" ] && [ $killed -eq 0 ]; then
        echo "boot $boot: GUEST-TEST kill-on FAIL ('$kill_text' never appeared)"
        fail=$((fail + 1))
    fi
    if [ $killed -eq 0 ] && [ "$status" = running ] && ! grep -q "^GUEST-DONE $boot" "$log.clean"; then
        echo "boot $boot: GUEST-TEST boot-$boot FAIL (guest did not finish; last console lines follow)"
        tail -n 25 "$log.clean" | awk '{ print "    | " $0 }'
        fail=$((fail + 1))
    elif [ "$status" = timeout ]; then
        echo "boot $boot: guest timed out after ${boot_timeout}s; last console lines follow"
        tail -n 25 "$log.clean" | awk '{ print "    | " $0 }'
    fi
    echo "boot $boot: ${secs}s$([ $killed -eq 1 ] && echo ', killed from the host')"
}

write_list "$work/list1" ${boot1[@]+"${boot1[@]}"}
write_list "$work/list2" ${boot2[@]+"${boot2[@]}"}
run_boot 1 "$work/list1" "$kill_on"
if [ $second -eq 1 ]; then
    run_boot 2 "$work/list2" ""
fi

echo "guest suite: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
