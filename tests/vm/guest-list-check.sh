#!/bin/sh
# In the guest: `daxkv list` follows `daxctl list`. The same devices with the
# same size, alignment and mode; daxctl's fields first and in daxctl's order;
# one device (-d) as a bare object; -u sizes as daxctl -u prints them.
# Usage: guest-list-check.sh DAXKV
daxkv=${1:-daxkv}
status=0
fail() { echo "FAIL: $*"; status=1; }
# One "chardev size align mode" line per JSON object, whatever the key order.
tuples() {
    tr -d ' \n\t' | tr '}' '\n' | while read -r obj; do
        c=$(echo "$obj" | sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p')
        s=$(echo "$obj" | sed -n 's/.*"size":\([0-9]*\).*/\1/p')
        a=$(echo "$obj" | sed -n 's/.*"align":\([0-9]*\).*/\1/p')
        m=$(echo "$obj" | sed -n 's/.*"mode":"\([^"]*\)".*/\1/p')
        [ -n "$c" ] && echo "$c $s $a $m"
    done | sort
}
# The member names of a one-device listing, in order.
keys() { tr -d ' \n\t' | grep -o '"[a-z_]*":' | tr -d '":' | tr '\n' ' '; }
# The size member of a one-device listing, quoted (-u) or not.
size_of() { tr -d '\n' | sed -n 's/.*"size": *"\{0,1\}\([^",}]*\)"\{0,1\}[,}].*/\1/p'; }

ours=$("$daxkv" list | tuples)
theirs=$(daxctl list | tuples)
echo "daxkv list:  $ours"
echo "daxctl list: $theirs"
[ -n "$theirs" ] && [ "$ours" = "$theirs" ] || fail "daxkv list and daxctl list name other devices"

for dev in $(daxctl list | tuples | cut -d' ' -f1); do
    one=$("$daxkv" list -d "$dev")
    case $(echo "$one" | tr -d ' \n\t') in
    "{"*) ;;
    *) fail "daxkv list -d $dev is not a bare object: $one" ;;
    esac
    [ "$(echo "$one" | tuples)" = "$(daxctl list -d "$dev" | tuples)" ] || fail "list -d $dev differs from daxctl list -d $dev"
    ok=$(echo "$one" | keys)
    tk=$(daxctl list -d "$dev" | keys)
    echo "$dev: daxkv members: $ok; daxctl members: $tk"
    case "$ok" in
    "$tk"*) ;;
    *) fail "$dev: daxkv list does not start with daxctl's members in daxctl's order" ;;
    esac
    for short in "${dev#dax}" "/dev/$dev"; do
        [ "$("$daxkv" list --dev "$short" | tuples)" = "$(echo "$one" | tuples)" ] || fail "list --dev $short is not $dev"
    done
    hu=$("$daxkv" list -u -d "$dev" | size_of)
    th=$(daxctl list -u -d "$dev" | size_of)
    echo "$dev: daxkv -u size: $hu; daxctl -u size: $th"
    [ -n "$th" ] && [ "$hu" = "$th" ] || fail "$dev: -u size differs from daxctl's"
done
exit $status
