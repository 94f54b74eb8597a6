// The devices of a store (its pool): per-device state for runtime add,
// remove and resize, and the fixed-capacity table that holds them.
//
// The table never moves a device once it is published, so the data path can
// index it without a lock while hotplug appends to it: a device is filled in
// completely, then the count is raised with release order. A removed device
// keeps its row (a tombstone, as LMCache keeps them) with its arena unmapped.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "arena/arena.hpp"
#include "daxkv.h"
#include "store/slot_allocator.hpp"

namespace daxkv {

enum class SlotStatus : uint8_t { free, inflight, committed, pending_free, quarantined };

struct SlotState {
    uint32_t generation = 0;
    uint32_t borrows = 0; // leases and reads copying out of the slot
    uint32_t leases = 0;  // of the borrows, the leases (they block hotplug)
    SlotStatus status = SlotStatus::free;
};

// LMCache's DaxDeviceState, plus "missing" (configured but absent at open).
enum class DevState : uint8_t {
    active = DAXKV_DEV_ACTIVE,
    draining = DAXKV_DEV_DRAINING,
    migrating = DAXKV_DEV_MIGRATING,
    resizing = DAXKV_DEV_RESIZING,
    removing = DAXKV_DEV_REMOVING,
    removed = DAXKV_DEV_REMOVED,
    missing = DAXKV_DEV_MISSING,
};

const char *dev_state_name(DevState s) noexcept;
// Readable: lookups find entries on it. Writable: new entries may go there.
// Counted: its slots are part of the pool's capacity.
inline bool dev_readable(DevState s) noexcept {
    return s == DevState::active || s == DevState::draining || s == DevState::migrating ||
           s == DevState::resizing || s == DevState::removing;
}
inline bool dev_writable(DevState s) noexcept { return s == DevState::active; }
inline bool dev_counted(DevState s) noexcept { return dev_readable(s); }

// One device of the pool (the arena, its slot allocator and slot states,
// and what hotplug needs to know about it).
struct DeviceSlot {
    // Null once removed, or when missing. Shared with the reservations a
    // forced removal cancelled: their callers may still write into their
    // slots, so the device stays mapped until the last of them ends.
    std::shared_ptr<arena::Arena> arena;
    std::unique_ptr<SlotAllocator> alloc;
    std::vector<SlotState> slots;
    // Pool bookkeeping. path, bytes, id and numa_node are written before the
    // device is published and never after.
    std::string path;
    uint64_t bytes = 0; // as asked for at open or add (0: whole device)
    uint32_t id = 0;    // never reused within a store
    int numa_node = -1;
    std::atomic<DevState> state{DevState::active};
    // While set, new leases of entries on this device wait (resize).
    std::atomic<bool> lease_gate{false};
    // A draining device that became empty.
    std::atomic<bool> drained{false};
    std::atomic<uint64_t> drained_unix_ns{0};
    // Slots dropped for a failed checksum: taken for good, holding nothing.
    std::atomic<uint32_t> quarantined{0};
    // Slots of reservations that a forced removal or shrink cancelled: their
    // callers hold them until commit or abort, and they hold nothing.
    std::atomic<uint32_t> detached{0};
    // Why a configured device is missing (for status and logs).
    std::string missing_reason;
};

// Most devices one store holds over its lifetime (tombstones included).
constexpr uint32_t kMaxDevices = 64;

class DeviceTable {
public:
    DeviceTable() : rows_(new DeviceSlot[kMaxDevices]) {}
    uint32_t size() const noexcept { return n_.load(std::memory_order_acquire); }
    DeviceSlot &operator[](size_t i) noexcept { return rows_[i]; }
    const DeviceSlot &operator[](size_t i) const noexcept { return rows_[i]; }
    DeviceSlot *begin() noexcept { return rows_.get(); }
    DeviceSlot *end() noexcept { return rows_.get() + size(); }
    const DeviceSlot *begin() const noexcept { return rows_.get(); }
    const DeviceSlot *end() const noexcept { return rows_.get() + size(); }
    // The row the next device goes into (nullptr when the table is full);
    // publish() makes it visible. Only one thread appends at a time.
    DeviceSlot *next_row() noexcept { return size() < kMaxDevices ? &rows_[size()] : nullptr; }
    void publish() noexcept { n_.fetch_add(1, std::memory_order_release); }

private:
    std::unique_ptr<DeviceSlot[]> rows_;
    std::atomic<uint32_t> n_{0};
};

} // namespace daxkv
