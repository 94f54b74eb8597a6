#include "arena/slot_parts.hpp"

#include <algorithm>

#include "internal/take_turns.hpp"

namespace daxkv {
namespace arena {

SlotParts::SlotParts(uint64_t slots, uint64_t bytes_per_slot) noexcept
    : slots_(slots),
      part_slots_(std::clamp<uint64_t>((uint64_t(16) << 20) / std::max<uint64_t>(bytes_per_slot, 1),
                                       1, 1024)),
      count_(std::max<uint64_t>(1, (slots + part_slots_ - 1) / part_slots_)) {}

unsigned SlotParts::run(
    unsigned threads,
    const std::function<void(uint64_t part, uint64_t begin, uint64_t end)> &fn) const {
    return take_turns(count_, std::min(threads, 16u), [&](uint64_t i) {
        fn(i, i * part_slots_, std::min(slots_, (i + 1) * part_slots_));
    });
}

} // namespace arena
} // namespace daxkv
