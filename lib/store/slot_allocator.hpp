// Free-slot bookkeeping of one arena: a two-level bitmap that hands out the
// lowest free slot first (keeps arenas compact, so they can shrink).
#pragma once

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
    uint32_t free_count() const;
    uint32_t slots() const noexcept { return slots_; }

private:
    // bit set = free. summary_ bit w set = words_[w] has a free bit.
    uint32_t slots_;
    uint32_t free_;
    std::vector<uint64_t> words_;
    std::vector<uint64_t> summary_;
    mutable std::mutex m_;
};

} // namespace daxkv
