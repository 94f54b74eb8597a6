// How a pass over every slot of an arena (the recovery scan, daxkv check)
// is shared among threads.
#pragma once

#include <cstdint>
#include <functional>

namespace daxkv {
namespace arena {

// Slots [0, slots) cut into parts of consecutive slots, which threads take
// in turn. The work of a slot is its header and, when values are read, the
// bytes of its value: a few thousand slots of megabytes are as much work
// as millions of small ones. Parts of about 16 MiB of slots (a millisecond
// or more of hashing, against a tenth of that to start a thread; at most
// 1,024 slots, as headers alone go) keep the threads even when the entries
// sit in one end of the arena.
class SlotParts {
public:
    // bytes_per_slot: what judging a slot reads beyond its header (0: none).
    SlotParts(uint64_t slots, uint64_t bytes_per_slot) noexcept;

    uint64_t count() const noexcept { return count_; }

    // fn(part, begin, end) for every part, slots [begin, end), on up to
    // `threads` threads (at most 16), as take_turns() runs items. Returns
    // the threads that ran.
    unsigned run(unsigned threads,
                 const std::function<void(uint64_t part, uint64_t begin, uint64_t end)> &fn) const;

private:
    uint64_t slots_;
    uint64_t part_slots_;
    uint64_t count_;
};

} // namespace arena
} // namespace daxkv
