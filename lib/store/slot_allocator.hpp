// Free-slot bookkeeping of one arena: a two-level bitmap that hands out the
// lowest free slot first (keeps arenas compact, so they can shrink). A limit
// below the arena's slot count hides the slots above it (a shrunk device):
// they are never handed out and not counted as free capacity.
#pragma once

#include <algorithm>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace daxkv {

class SlotAllocator {
public:
    explicit SlotAllocator(uint32_t slots);
    // Lowest free slot, or UINT32_MAX when none is free.
    uint32_t allocate();
    // Take a specific slot (recovery). Returns false if it was not free.
    bool take(uint32_t slot);
    void release(uint32_t slot);
    // Usable slots (the limit) and the free ones among them, as one
    // allocation or release left them both. Read without the lock: every
    // write picks a device by these (Pool::pick_device), so they must not
    // cost a lock each.
    struct Occupancy {
        uint32_t slots = 0;
        uint32_t free = 0;
    };
    Occupancy occupancy() const noexcept {
        const uint64_t v = occupancy_.load(std::memory_order_acquire);
        return Occupancy{static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)};
    }
    // Free slots below the limit.
    uint32_t free_count() const noexcept { return occupancy().free; }
    // Usable slots (the limit).
    uint32_t slots() const noexcept { return occupancy().slots; }
    // Slots of the arena, usable or not.
    uint32_t formatted() const noexcept { return slots_; }
    // Slots taken anywhere in the arena (above the limit too).
    uint32_t used() const;
    // The occupancy and used() as of one moment (under the lock): during a
    // shrink, slots above the limit are taken but neither usable nor free.
    struct Census {
        Occupancy occupancy;
        uint32_t used = 0;
        // The slots a report counts as the device's: the usable ones, and
        // during a shrink or removal those past the new end still taken
        // (used + free, never less than the limit), so that used never
        // exceeds them.
        uint64_t counted() const noexcept {
            return std::max<uint64_t>(occupancy.slots, uint64_t(used) + occupancy.free);
        }
    };
    Census census() const;
    // Slots taken at or above from (a shrink waits for these to empty).
    uint32_t used_from(uint32_t from) const;
    // One past the highest slot taken (0 when none is): a shrink to n slots
    // finds nothing to move when this is at most n.
    uint32_t used_end() const;
    // Hide (or show again) the slots at and above limit; clamped to the
    // arena's slot count.
    void set_limit(uint32_t limit);
    // Start over for an arena of `slots` slots, all free and none usable
    // (limit 0) until set_limit: a device added back into its old row
    // keeps the row's allocator, which a writer that chose the row before
    // the device left may still be calling.
    void reset(uint32_t slots);

private:
    // bit set = free. summary_ bit w set = words_[w] has a free bit.
    bool is_free(uint32_t slot) const noexcept {
        return (words_[slot / 64] >> (slot % 64)) & 1;
    }
    // limit_ and free_low_ published together (m_ held).
    void publish() noexcept {
        occupancy_.store(uint64_t(limit_) << 32 | free_low_, std::memory_order_release);
    }
    uint32_t slots_;
    uint32_t limit_;
    uint32_t free_;      // everywhere
    uint32_t free_low_;  // below limit_
    std::vector<uint64_t> words_;
    std::vector<uint64_t> summary_;
    std::atomic<uint64_t> occupancy_{0}; // limit_ << 32 | free_low_
    mutable std::mutex m_;
};

} // namespace daxkv
