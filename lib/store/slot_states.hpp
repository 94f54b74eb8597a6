// The state of every slot of the pool, and every change of it, in one
// owner: a slot is free, being written (inflight), committed, waiting for
// its last borrower to be freed (pending_free), or quarantined; it counts
// its borrows (reads copying out of it and leases) and, of those, its
// leases; its generation changes each time it is handed out.
//
// Nothing but SlotStates writes a slot's state (the fields are private).
// Every change is made with the shard lock of the key whose entry or write
// owns the slot held: that lock is what orders them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "store/pool.hpp"

namespace daxkv {

// A slot of the pool, as handed out: its device row, its index there and
// its generation at the time.
struct SlotRef {
    uint32_t arena = UINT32_MAX;
    uint32_t slot = UINT32_MAX;
    uint32_t gen = 0;
    bool valid() const noexcept { return slot != UINT32_MAX; }
};

enum class SlotStatus : uint8_t { free, inflight, committed, pending_free, quarantined };

class SlotState {
public:
    SlotState() = default;
    // Copied only while nothing refers to the slot (size_device).
    SlotState(const SlotState &o) noexcept
        : generation_(o.generation_), borrows_(o.borrows_), leases_(o.leases()),
          quarantined_(o.quarantined()), status_(o.status_) {}
    SlotState &operator=(const SlotState &o) noexcept {
        generation_ = o.generation_;
        borrows_ = o.borrows_;
        leases_.store(o.leases(), std::memory_order_relaxed);
        quarantined_.store(o.quarantined(), std::memory_order_relaxed);
        status_ = o.status_;
        return *this;
    }
    uint32_t generation() const noexcept { return generation_; }
    uint32_t borrows() const noexcept { return borrows_; }
    uint32_t leases() const noexcept { return leases_.load(std::memory_order_relaxed); }
    bool quarantined() const noexcept { return quarantined_.load(std::memory_order_relaxed); }
    SlotStatus status() const noexcept { return status_; }

private:
    friend class SlotStates;
    uint32_t generation_ = 0;
    uint32_t borrows_ = 0; // leases and reads copying out of the slot
    // Of the borrows, the leases (they block hotplug). Changed under the
    // shard lock like the rest; atomic so that hotplug can count the leased
    // slots of a device without knowing their keys (leased_from).
    std::atomic<uint32_t> leases_{0};
    // status_ is quarantined, for good: atomic so that hotplug can count
    // the quarantined slots of part of a device (idle_quarantined_from).
    std::atomic<bool> quarantined_{false};
    SlotStatus status_ = SlotStatus::free;
};

class SlotStates {
public:
    explicit SlotStates(Pool &pool);
    SlotStates(const SlotStates &) = delete;
    SlotStates &operator=(const SlotStates &) = delete;

    // State for every slot of device a's layout (all free), so that growing
    // into the rest of it moves nothing the data path reads without a lock.
    // Before the row is published or while nothing refers to it.
    void size_device(uint32_t a, uint32_t slots);
    const SlotState &at(const SlotRef &r) const noexcept { return rows_[r.arena][r.slot]; }

    // Writes. A slot the allocator handed out becomes inflight with a new
    // generation (the returned ref carries it); it is committed, or
    // released when the write is abandoned or cancelled.
    SlotRef start_write(uint32_t a, uint32_t slot) noexcept;
    void commit(const SlotRef &r) noexcept;
    void release(const SlotRef &r) noexcept;
    // A slot that could not be written or read back (a SIGBUS,
    // sigbus=handle) by a write, which is abandoned, or by the withdrawal
    // of its entry: never handed out again. Borrows of it still end.
    void quarantine_faulted(const SlotRef &r) noexcept;
    // A committed version is replaced or removed: free, or pending_free
    // while it is borrowed (freed by the last end_borrow).
    void retire(const SlotRef &r) noexcept;
    // A slot the allocator handed out but nothing was written to.
    void give_back(uint32_t a, uint32_t slot) noexcept;
    // Writes in flight, counted from their claim (before they have a slot)
    // to their commit or abandon.
    void write_started() noexcept { inflight_++; }
    void write_ended() noexcept { inflight_--; }

    // Reads and leases.
    void borrow(const SlotRef &r) noexcept { rows_[r.arena][r.slot].borrows_++; }
    void end_borrow(const SlotRef &r) noexcept;
    // A borrow whose bytes cannot be trusted (a failed checksum, a fault)
    // ends, and the slot is never handed out again.
    void quarantine(const SlotRef &r) noexcept;
    void lease(const SlotRef &r) noexcept;
    void end_lease(const SlotRef &r) noexcept;
    // The slots of device a at from_slot or above that hold a lease, those
    // of replaced or removed entries included. Exact for the leases marked
    // before the caller took (and dropped) every shard lock; hotplug calls
    // it after its scan of the index, with the device's lease gate up.
    uint32_t leased_from(uint32_t a, uint32_t from_slot) const noexcept;
    // The quarantined slots of device a at from_slot or above that no lease
    // holds: they hold nothing a removal or shrink must wait for. One still
    // leased (its entry dropped by a read that failed while the lease was
    // held) is waited for as any leased slot: its bytes stay mapped.
    uint32_t idle_quarantined_from(uint32_t a, uint32_t from_slot) const noexcept;

    // Recovery: a committed entry found on device a.
    void take_recovered(uint32_t a, uint32_t slot, uint32_t generation);
    // Recovery: a slot of device a whose value could not be read (a
    // SIGBUS, sigbus=handle): taken and quarantined, never handed out.
    void quarantine_recovered(uint32_t a, uint32_t slot);

    int64_t inflight() const noexcept { return inflight_.load(); }
    int64_t pending_free() const noexcept { return pending_free_.load(); }
    int64_t leases() const noexcept { return leases_.load(); }
    int64_t leased_slots() const noexcept { return leased_slots_.load(); }

private:
    void free(const SlotRef &r) noexcept;
    // st, a slot of device a, quarantined for good (counted once).
    void mark_quarantined(SlotState &st, uint32_t a) noexcept;

    Pool &pool_;
    std::unique_ptr<std::vector<SlotState>[]> rows_;
    std::atomic<int64_t> inflight_{0}, pending_free_{0}, leases_{0}, leased_slots_{0};
};

} // namespace daxkv
