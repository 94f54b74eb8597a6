// Runtime changes of the pool: add, remove (migrate, evict, drain) and
// resize, after LMCache's MP DAX adapter, with what it lacks (hotplug.cpp
// and migrate.cpp say how). Hotplug goes through the index, the slot
// states, the entries and the reservations like any other path: it holds
// no shard lock of its own making and touches no shard's internals.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "store/core.hpp"
#include "store/entries.hpp"
#include "store/gpu.hpp"
#include "store/reads.hpp"
#include "store/reports.hpp"
#include "store/reservations.hpp"

namespace daxkv {

// What a migration or eviction did.
struct MoveStats {
    uint64_t moved_keys = 0, moved_bytes = 0, deleted_keys = 0, freed = 0;
    uint64_t evicted_keys = 0; // destinations' entries evicted to make room
};

// What a removal or resize reports (lib/capi makes daxkv_hotplug_result of it).
struct HotplugResult {
    DevState state = DevState::active; // of the device after the call
    uint32_t index = 0;                 // its pool row
    uint64_t old_bytes = 0, new_bytes = 0;
    MoveStats moved;
    // A removal or shrink that failed after it had moved or deleted
    // entries (woken by shutdown while it waited for leases): what it did
    // is reported with the failure, since it stays done.
    bool partial = false;
};

// The modes of remove and resize: the values of DAXKV_MIGRATE, DAXKV_EVICT
// and DAXKV_DRAIN (lib/capi checks them).
enum class MoveMode : int { migrate = 1, evict = 2, drain = 3 };

class Hotplug {
public:
    Hotplug(Core &core, Entries &entries, Reads &reads, Reservations &reservations, Gpu &gpu,
            Reports &reports)
        : c_(core), entries_(entries), reads_(reads), reservations_(reservations), gpu_(gpu),
          reports_(reports) {}
    Hotplug(const Hotplug &) = delete;
    Hotplug &operator=(const Hotplug &) = delete;

    // Each: 0, or the expected outcome -EBUSY (the device is busy: pinned,
    // leased or reserved entries, another state, or already in the pool
    // with another size) or -ESHUTDOWN (a removal or shrink woken by
    // shutdown while it waited to empty the device: out.partial when it
    // had moved or deleted entries); throws Error otherwise (-EPERM without
    // hotplug=1, -ENOENT no such device, -ENOSPC no room, -EIO, ...).
    int add(const std::string &path, uint64_t bytes);
    int remove(const std::string &path, MoveMode mode, unsigned flags, HotplugResult &out);
    int resize(const std::string &path, uint64_t bytes, MoveMode mode, unsigned flags,
               HotplugResult &out);
    // 0 drained, or the expected outcome -ETIMEDOUT; throws Error (-EINVAL
    // not draining, -ENOENT, -ESHUTDOWN).
    int wait_drained(const std::string &path, int timeout_ms);

    // Tests only: called between the copy and the switch phases of a
    // migration (phase 1), after the switch (phase 2), after an eviction's
    // first entry is deleted (phase 3), once a device added takes new
    // entries (phase 4), and when a migration that must evict has raised
    // its destinations' gates, before it counts the room (phase 5), and
    // once the room is counted, before it is made (phase 6), with no lock
    // held.
    void set_hook(std::function<void(int phase)> fn) { hook_ = std::move(fn); }

private:
    struct Move;
    void check_enabled(const char *what) const;
    // Keys of the committed entries on device a at slot from_slot or above.
    // *blocked: one of them is pinned or leased, or a slot there is leased
    // (a get copying out of a slot is not: it ends on its own).
    std::vector<std::string> keys_on(uint32_t a, uint32_t from_slot, bool *blocked);
    // A removal or shrink of device a that fails with rc after it began to
    // empty the device: rc, with out filled (partial) when it had moved or
    // deleted entries.
    static int failed_after(int rc, DevState old_state, uint32_t a, uint64_t old_bytes,
                            const MoveStats &ms, HotplugResult &out) noexcept;
    // After device a stopped handing out slots at from_slot and above:
    // without force, -EBUSY (nothing changed yet) when a reservation took
    // one there after the first check; 0 otherwise.
    int recheck_reservations(uint32_t a, uint32_t from_slot, bool force);
    // migrate.cpp.
    void migrate_keys(uint32_t src, const std::vector<std::string> &keys, bool same_device,
                      MoveStats &ms);
    // migrate_keys, whose failure after it evicted entries of its
    // destinations is returned (its message recorded) rather than thrown,
    // so that the result reports the evictions (failed_after): they cannot
    // be undone. Any other failure is thrown.
    int migrate_or_report(uint32_t src, const std::vector<std::string> &keys, bool same_device,
                          MoveStats &ms);
    // Evict an entry of the destinations (to) to make room for a copy. A
    // read holds its entry for a moment: one found with nothing evictable
    // is tried again for a while before it gives up.
    bool evict_for_copy(const std::function<bool(uint32_t)> &to);
    int evict_keys(uint32_t src, const std::vector<std::string> &keys, bool force,
                   MoveStats &ms);
    int wait_until_empty(uint32_t a, uint32_t from_slot, bool migrate, bool force,
                         bool same_device, MoveStats &ms);

    Core &c_;
    Entries &entries_;
    Reads &reads_;
    Reservations &reservations_;
    Gpu &gpu_;
    Reports &reports_;
    // One runtime change at a time (never taken by the data path): the
    // change under way holds the turn, the others wait for it. A caller
    // that would wait for a change waiting for a lease of the caller's
    // thread fails instead (-EDEADLK), and one that would begin after the
    // store was shut down with -ESHUTDOWN. what: the call, for the message.
    class Turn;
    void take_turn(const char *what);
    void give_turn() noexcept;
    bool busy_ = false; // guarded by the pool's signals' lock
    std::function<void(int)> hook_;
};

} // namespace daxkv
