// The devices of a store (its pool): a fixed-capacity table of rows, one
// per device, and the Pool that opens them, places new entries, and carries
// the signals that drains, removals and resizes wait on.
//
// The table never moves a device once it is published, so the data path can
// index it without a lock while hotplug appends to it: a device is filled in
// completely, then the count is raised with release order. A removed device
// keeps its row (a tombstone, as LMCache keeps them) with its arena unmapped.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "arena/arena.hpp"
#include "store/config.hpp"
#include "store/events.hpp"
#include "store/gate.hpp"
#include "store/slot_allocator.hpp"

namespace daxkv {

// LMCache's DaxDeviceState, plus "missing" (configured but absent at open).
// The values are the public DAXKV_DEV_* (lib/capi checks them).
enum class DevState : uint8_t {
    active = 0,
    draining = 1,
    migrating = 2,
    resizing = 3,
    removing = 4,
    removed = 5,
    missing = 6,
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

// One device of the pool: the arena, its slot allocator, and what hotplug
// needs to know about it (the state of each slot is slot_states.hpp's).
struct DeviceRow {
    // Null once removed, or when missing. Shared with the reservations a
    // forced removal cancelled: their callers may still write into their
    // slots, so the device stays mapped until the last of them ends.
    std::shared_ptr<arena::Arena> arena;
    std::unique_ptr<SlotAllocator> alloc;
    // Pool bookkeeping. path, bytes, id and numa_node are written before the
    // device is published and never after.
    std::string path;
    uint64_t bytes = 0; // as asked for at open, add or the last resize (0: whole device)
    uint32_t id = 0;    // never reused within a store
    int numa_node = -1;
    std::atomic<DevState> state{DevState::active};
    // The state a removal or resize under way found the device in (written
    // before the state that says so): a wait for a drain begun during the
    // change of a draining device waits on, as one begun before it does.
    std::atomic<DevState> changing_from{DevState::active};
    // While set, new leases of entries on this device at lease_gate_from
    // or above wait: a removal (from slot 0) or shrink (from its new end)
    // that must not see one arrive (without force: from its check of the
    // leases to its end), or that waits for the old ones (a forced shrink).
    // Entries below a shrink's end are never waited for: a thread holding
    // a lease above the end may lease them while the shrink waits for it.
    // Looked at under the entry's shard lock (Reads::lease).
    std::atomic<bool> lease_gate{false};
    std::atomic<uint32_t> lease_gate_from{0}; // written before the gate is raised
    // While set, a forced removal or shrink waits for the leases of this
    // device at leases_awaited_from and above: a thread holding one of them
    // must not wait for that call (held_slots.hpp). Changed under the
    // signals' lock, which the waits that look at it hold.
    std::atomic<bool> leases_awaited{false};
    std::atomic<uint32_t> leases_awaited_from{0};
    // While set, new pins of entries on this device wait: a removal by
    // eviction without force, from its check of the pins to its end (an
    // entry pinned after the check would be deleted, or stop the eviction
    // half done). Looked at under the entry's shard lock.
    std::atomic<bool> pin_gate{false};
    // A draining device that became empty.
    std::atomic<bool> drained{false};
    std::atomic<uint64_t> drained_unix_ns{0};
    // Slots dropped for a failed checksum or a fault: taken for good,
    // holding nothing.
    std::atomic<uint32_t> quarantined{0};
    // Slots of reservations that a forced removal or shrink cancelled: their
    // callers hold them until commit or abort, and they hold nothing.
    std::atomic<uint32_t> detached{0};
    // Why a configured device is missing (for status and logs).
    std::string missing_reason;
};

class DeviceTable {
public:
    DeviceTable() : rows_(new DeviceRow[kMaxDevices]) {}
    uint32_t size() const noexcept { return n_.load(std::memory_order_acquire); }
    DeviceRow &operator[](size_t i) noexcept { return rows_[i]; }
    const DeviceRow &operator[](size_t i) const noexcept { return rows_[i]; }
    DeviceRow *begin() noexcept { return rows_.get(); }
    DeviceRow *end() noexcept { return rows_.get() + size(); }
    const DeviceRow *begin() const noexcept { return rows_.get(); }
    const DeviceRow *end() const noexcept { return rows_.get() + size(); }
    // The row the next device goes into (nullptr when the table is full);
    // publish() makes it visible. Only one thread appends at a time.
    DeviceRow *next_row() noexcept { return size() < kMaxDevices ? &rows_[size()] : nullptr; }
    void publish() noexcept { n_.fetch_add(1, std::memory_order_release); }

private:
    std::unique_ptr<DeviceRow[]> rows_;
    std::atomic<uint32_t> n_{0};
};

class Pool {
public:
    Pool(const Config &cfg, const CallGate &gate, EventThread &events)
        : cfg_(cfg), gate_(gate), events_(events) {}
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;

    // The rows (published ones: size()).
    DeviceTable &rows() noexcept { return rows_; }
    const DeviceTable &rows() const noexcept { return rows_; }
    uint32_t size() const noexcept { return rows_.size(); }
    DeviceRow &operator[](uint32_t a) noexcept { return rows_[a]; }
    const DeviceRow &operator[](uint32_t a) const noexcept { return rows_[a]; }
    // The arena of a row that holds a committed entry, a borrow or a write
    // (then it is mapped).
    arena::Arena &arena(uint32_t a) const noexcept { return *rows_[a].arena; }

    // Opening. open_device appends a row for d (missing, with
    // tolerate_missing, when it is absent); map_device maps d and validates
    // or formats its arena into row (map_device_once, once more where
    // another open created the same new file first). Both throw Error.
    DeviceRow &open_device(const DeviceSpec &d, bool tolerate_missing);
    void map_device(DeviceRow &row, const DeviceSpec &d) const;
    uint32_t next_device_id() noexcept { return next_id_++; }
    // The pool row of path among devices not removed (messages never name
    // the path). Throws -ENOENT when there is none, -EBUSY for two ("mem:").
    uint32_t find(const std::string &path) const;
    uint64_t usable_bytes(uint32_t a) const noexcept;
    // Where the copy workers run: the NUMA node of most of the capacity.
    std::vector<int> worker_cpus() const;

    // Placement: the writable device a new entry goes to (least used, the
    // caller's NUMA node first with placement=numa), UINT32_MAX for none.
    uint32_t pick_device() const noexcept;
    bool any_writable() const noexcept;
    // Durability=power: fence the write-backs staged on every device
    // (arena.hpp: the batched commit protocol).
    void fence_all() const noexcept;

    // Signals. A slot of device a was freed (any lock may be held: only
    // flags, a notification and an event for the event thread). Also
    // called when a device goes back to draining after a removal or
    // resize of it failed: slots freed meanwhile did not count, as it was
    // not draining then, and it may be empty already.
    void slot_freed(uint32_t a) noexcept;
    // Whether a new lease of the entry in slot of device a must wait.
    bool lease_gated(uint32_t a, uint32_t slot) const noexcept {
        return rows_[a].lease_gate.load(std::memory_order_acquire) &&
               slot >= rows_[a].lease_gate_from.load(std::memory_order_relaxed);
    }
    // Raise (for the slots at from_slot and above) or lower device a's
    // lease gate.
    void set_lease_gate(uint32_t a, bool on, uint32_t from_slot = 0) noexcept {
        if (on)
            rows_[a].lease_gate_from.store(from_slot, std::memory_order_relaxed);
        set_gate(rows_[a].lease_gate, on);
    }
    // Wait while device a's lease gate is up; throws -ESHUTDOWN at shutdown,
    // and -EDEADLK when the change behind the gate waits for a lease the
    // calling thread holds.
    void wait_lease_gate(uint32_t a);
    // A forced change of device a waits (on) or no longer waits (off) for
    // the leases at from_slot and above.
    void set_leases_awaited(uint32_t a, bool on, uint32_t from_slot = 0) noexcept;
    // Throw -EDEADLK, with a message that names the lease, when the calling
    // thread holds a lease of device a at from_slot or above. what: the
    // start of the message, before " would wait for a lease".
    void fail_if_caller_leases(uint32_t a, uint32_t from_slot, const char *what) const {
        fail_if_caller_holds(a, from_slot, false, what);
    }
    // The same for the leases and the open reservations of device a.
    void fail_if_caller_holds_slots(uint32_t a, const char *what) const {
        fail_if_caller_holds(a, 0, true, what);
    }
    // The same for the leases a forced change under way waits for. Called
    // with the signals' lock held.
    void fail_if_caller_holds_awaited_lease(const char *what) const;
    bool pin_gated(uint32_t a) const noexcept {
        return rows_[a].pin_gate.load(std::memory_order_acquire);
    }
    void set_pin_gate(uint32_t a, bool on) noexcept { set_gate(rows_[a].pin_gate, on); }
    // Wait while device a's pin gate is up; throws -ESHUTDOWN at shutdown.
    void wait_pin_gate(uint32_t a) { wait_gate(rows_[a].pin_gate); }
    // Wait for the next signal (a slot freed, a gate lowered, shutdown), at
    // most until `until`. The caller looks at what it waits for under the
    // lock signals() returns, so that no signal is missed.
    std::unique_lock<std::mutex> signals() const { return std::unique_lock<std::mutex>(ev_m_); }
    void wait_signal(std::unique_lock<std::mutex> &g,
                     std::chrono::steady_clock::time_point until) const {
        ev_cv_.wait_until(g, until);
    }
    void wait_signal(std::unique_lock<std::mutex> &g) const { ev_cv_.wait(g); }
    // Wake every waiter (shutdown, a change of the pool giving its turn back).
    void wake_all() noexcept;

    // Shared by readers of every device's arena (status, stats); exclusive
    // to change a row's mapping (a removal, an add into an old row).
    std::shared_mutex &mapping_lock() const noexcept { return mapping_m_; }

private:
    void fail_if_caller_holds(uint32_t a, uint32_t from_slot, bool reservations,
                              const char *what) const;
    void set_gate(std::atomic<bool> &gate, bool on) noexcept;
    void wait_gate(const std::atomic<bool> &gate);
    void map_device_once(DeviceRow &row, const DeviceSpec &d) const;
    void size_for_payloads(uint64_t bytes, platform::MapRequest &req,
                           arena::Arena::Options &ao) const;
    uint64_t auto_grow_limit(const std::string &path, bool *holds_entries) const;

    const Config &cfg_;
    const CallGate &gate_;
    EventThread &events_;
    DeviceTable rows_;
    std::atomic<uint32_t> next_id_{0};
    mutable std::shared_mutex mapping_m_;
    mutable std::mutex ev_m_;
    mutable std::condition_variable ev_cv_;
};

namespace testing {
// Called with a device's path once it is mapped, before its arena is read
// (the tests cut a file there, as bad media under its superblocks).
extern std::function<void(const std::string &path)> device_mapped;
} // namespace testing

// The lease and pin gates of a device that a change raised, lowered again
// when it ends, whatever its outcome.
class DeviceGates {
public:
    DeviceGates(Pool &pool, uint32_t a) : pool_(pool), a_(a) {}
    ~DeviceGates() {
        if (leases_)
            pool_.set_lease_gate(a_, false);
        if (pins_)
            pool_.set_pin_gate(a_, false);
    }
    DeviceGates(const DeviceGates &) = delete;
    DeviceGates &operator=(const DeviceGates &) = delete;
    // New leases of the entries at from_slot and above (a shrink's new
    // end; 0: the whole device) wait.
    void leases(uint32_t from_slot = 0) {
        if (!leases_)
            pool_.set_lease_gate(a_, true, from_slot);
        leases_ = true;
    }
    void pins() {
        if (!pins_)
            pool_.set_pin_gate(a_, true);
        pins_ = true;
    }

private:
    Pool &pool_;
    uint32_t a_;
    bool leases_ = false, pins_ = false;
};

} // namespace daxkv
