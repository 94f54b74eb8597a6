// What the store tells about where entries live: a lease's or
// reservation's slot, a device's payload area, and the committed keys
// (a cursor over the index). Plain C++ values; lib/capi turns them into the
// public structs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace daxkv {

class Store;
struct LeaseState;
struct ReservationState;

// One entry's slot and the address of its device's first payload, so that
// payload_base + offset is the entry's first byte.
struct SlotLocation {
    uint32_t device_id = 0;
    uint32_t slot = 0;
    uint32_t generation = 0;
    uint64_t offset = 0; // slot * slot_bytes
    char *payload_base = nullptr;
};

// A device's arena as laid out, and how much of it is in use.
struct DeviceLayout {
    uint32_t device_id = 0;
    uint32_t index = 0; // row of the pool
    int state = 0;      // DevState (its value)
    uint64_t slot_bytes = 0;
    uint64_t layout_slots = 0; // slots laid out (room to grow included)
    uint64_t usable_slots = 0;
    uint64_t used_end = 0;     // one past the highest slot that is not free
    uint64_t arena_bytes = 0;
    uint64_t data_offset = 0;
    char *payload_base = nullptr; // null when the device is not mapped
};

// A committed entry as the cursor reports it (copied out of the index and
// the slot header under the entry's shard lock).
struct KeyRecord {
    std::string key;
    std::string meta;
    uint64_t value_len = 0;
    uint64_t seq = 0;
    uint32_t device_id = 0;
    uint32_t slot = 0;
    uint32_t generation = 0;
    uint32_t pins = 0;
    uint32_t leases = 0;
};

// Walks the committed keys one index shard at a time: each shard is copied
// whole under its lock, so a key that stays committed for the whole walk is
// reported exactly once (a replace during the walk gives one of its
// versions), while a key added or removed meanwhile may or may not be. No
// lock is held between calls.
class KeyCursor {
public:
    // A walk of every device (device_path null) or of one device of the
    // pool. Throws Error: -ESHUTDOWN, -ENOENT no such device.
    KeyCursor(std::shared_ptr<Store> store, const std::string *device_path);
    // The next key, or nullptr at the end. The record stays valid until the
    // next call. Throws Error(-ESHUTDOWN) once the store is shut down.
    const KeyRecord *next();
    const Store &store() const noexcept { return *store_; }

private:
    std::shared_ptr<Store> store_;
    int device_ = -1; // a pool row, or -1 for every device
    size_t shard_ = 0;
    std::vector<KeyRecord> batch_;
    size_t pos_ = 0;
};

// A lease keeps its slot, and so its device's mapping, in place; a
// reservation holds its slot until commit or abort (-EINVAL once it holds
// none).
SlotLocation locate(Store &s, const LeaseState &l);
SlotLocation locate(Store &s, const ReservationState &r);
// The device of the pool at path. Throws Error (-ENOENT, -ESHUTDOWN).
DeviceLayout describe_device(Store &s, const std::string &path);

} // namespace daxkv
