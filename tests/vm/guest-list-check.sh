#!/bin/sh
# In the guest: `daxkv list --json` names the same devices with the same
# size, alignment and mode as `daxctl list`. Usage: guest-list-check.sh DAXKV
daxkv=${1:-daxkv}
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
ours=$("$daxkv" list --json | tuples)
theirs=$(daxctl list | tuples)
echo "daxkv list:  $ours"
echo "daxctl list: $theirs"
[ -n "$theirs" ] && [ "$ours" = "$theirs" ]
