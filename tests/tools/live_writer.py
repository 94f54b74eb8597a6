"""A store that keeps working until told to stop, for the daxkv stats and
status tests: it opens PATH, writes and reads values in a loop, creates
READY once the first values are in, and closes the store when STOP appears.

    live_writer.py PATH READY STOP
"""
import os
import sys
import time

import daxkv


def main() -> int:
    path, ready, stop = sys.argv[1:4]
    with daxkv.Store(path=path, size=16 << 20, slot_bytes=65536, stats_interval=50) as store:
        value = bytes(range(256)) * 256
        n = 0
        while not os.path.exists(stop):
            key = b"k%d" % (n % 64)
            store.put(key, value, replace=True)
            store.get(key)
            store.get(b"missing")
            n += 1
            if n == 64:
                time.sleep(0.2)  # at least one publication after these
                open(ready, "w").close()
            time.sleep(0.001)
    return 0


if __name__ == "__main__":
    sys.exit(main())
