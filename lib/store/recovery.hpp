// Recovery: the committed entries the devices hold, brought into the index
// by one rule, at open (every device, the index empty) and when a device is
// added at run time (the index in use): of two commits of one key the
// newest wins and the other is withdrawn; an entry that the pool history
// says was removed or replaced while its device was away is withdrawn.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arena/arena.hpp"
#include "store/core.hpp"

namespace daxkv {

// Whether row a's device, as found (at open, or added), is judged by its
// own removal table as well as by its floor, which may count changes it
// never saw: its record names an open that was not closed on it, and a
// device found in this open (History::note_found, every device of the
// open already noted) was closed cleanly at the end of that open or a later
// one (an image taken while that open ran, or a device that crashed with
// it and stayed away), or another device mapped now carries its uuid (a
// copy beside its device, or the device beside its copy: after a crash no
// device is marked closed). Pool's mapping lock held, or no other thread.
bool judged_by_own_table(const Core &core, uint32_t a);

// At open: every device scanned, the index rebuilt shard by shard on up to
// 16 threads, the winners' slots taken, and the pool history started above
// everything the devices know of. Fills core.recovered.
void recover_pool(Core &core);

// A device added at run time into row a, whose history floor was floor
// before it joined: its entries, found by its arena's scan() before the row
// took it (a scan that fails leaves the pool as it was), join the index.
// own: the device's own removal table when its floor cannot be trusted
// (History::open_id), else empty.
void adopt_device(Core &core, uint32_t a, uint64_t floor, const std::vector<uint64_t> &own,
                  const std::vector<arena::RecoveredEntry> &found,
                  const arena::RecoveryCounts &counts);

// The scan of the arena of the device at path, at an open or an add:
// arena.scan(), its unreadable slots into unreadable.
std::vector<arena::RecoveredEntry> scan_device(arena::Arena &arena, const std::string &path,
                                               arena::RecoveryCounts &counts,
                                               std::vector<uint32_t> &unreadable);

// The slots of row a whose values the scan could not read (arena::Arena::
// scan's unreadable): taken and quarantined, counted as copy faults, and
// logged.
void quarantine_unreadable(Core &core, uint32_t a, const std::vector<uint32_t> &slots);

namespace testing {
// Called with each device's path just before recovery scans it, at an open
// or a daxkv_device_add (tests: to truncate the file under the mapping, as
// bad media would fault).
extern std::function<void(const std::string &path)> before_recovery_scan;
} // namespace testing

} // namespace daxkv
