// Opening a Device-DAX character device safely, before the arena maps it.
#pragma once

#include <cstdint>
#include <string>

#include "platform/device.hpp"

namespace daxkv {
namespace platform {

struct DaxOpenResult {
    int fd = -1;            // O_RDWR|O_CLOEXEC, holding flock(LOCK_EX); the caller closes it
    DeviceInfo info;        // the device as discovery sees it; info.path is the path given
    uint64_t map_bytes = 0; // length to map: a multiple of info.align, <= info.size
};

// Open a /dev/daxX.Y path (or a symlink to one) for exclusive use and
// decide how much of it to map. requested_bytes = 0 means the whole device;
// any request is rounded down to the device alignment.
//
// Errors (daxkv::Error; no fd stays open on any of them):
//   -ENOENT etc.  the path does not exist (the errno of stat/open)
//   -ENODEV       not a DAX character device; a device in system-ram (kmem)
//                 mode or disabled; alignment unknown
//   -EACCES       no permission to open the node (message names its group)
//   -EINVAL       the request is smaller than one alignment unit, or this
//                 process has PR_SET_THP_DISABLE set while the device
//                 alignment is above the page size (every fault would SIGBUS)
//   -ENOSPC       the request exceeds the device (message has both sizes)
//   -EBUSY        another open file holds the device lock (message names the
//                 holder's pid when /proc/locks shows it)
//
// It does not map. The arena maps map_bytes at offset 0 with MAP_SHARED
// (MAP_SHARED_VALIDATE|MAP_SYNC is accepted by every devdax device), at an
// address aligned to info.align; MAP_PRIVATE fails on devdax.
//
// The lock is a flock() on the node's inode: it excludes every opener of the
// same node (including symlinks and bind mounts of it), but not of a second
// node created with mknod for the same device number (e.g. a container's
// --device copy).
DaxOpenResult open_devdax(const std::string &path, uint64_t requested_bytes);

// The pid holding a flock/POSIX lock on the inode (st_dev, st_ino), read
// from /proc/locks, or -1 if none is visible (e.g. in another pid namespace
// or an OFD lock). The holder may be the calling process itself when it
// opened the device twice. Exposed for tests.
long lock_holder_pid(uint64_t st_dev, uint64_t st_ino);

// Take an exclusive, non-blocking flock on fd (a device or a file arena).
// On conflict throws Error(-EBUSY) naming the holder's pid when
// lock_holder_pid sees it, and saying so when the holder is this process.
void lock_exclusive(int fd, const std::string &what);

} // namespace platform
} // namespace daxkv
