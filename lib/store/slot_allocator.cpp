#include "store/slot_allocator.hpp"

namespace daxkv {

SlotAllocator::SlotAllocator(uint32_t slots)
    : slots_(slots), limit_(slots), free_(slots), free_low_(slots), words_((slots + 63) / 64, ~uint64_t(0)),
      summary_((words_.size() + 63) / 64, ~uint64_t(0)) {
    // Clear the bits past the last slot in the last word, and the summary
    // bits past the last word.
    if (slots % 64)
        words_.back() = (uint64_t(1) << (slots % 64)) - 1;
    if (words_.size() % 64)
        summary_.back() = (uint64_t(1) << (words_.size() % 64)) - 1;
    publish();
}

uint32_t SlotAllocator::allocate() {
    std::lock_guard<std::mutex> g(m_);
    for (size_t s = 0; s < summary_.size(); ++s) {
        if (!summary_[s])
            continue;
        size_t w = s * 64 + static_cast<size_t>(__builtin_ctzll(summary_[s]));
        unsigned b = static_cast<unsigned>(__builtin_ctzll(words_[w]));
        if (w * 64 + b >= limit_)
            return UINT32_MAX; // the lowest free slot is above the limit
        words_[w] &= ~(uint64_t(1) << b);
        if (!words_[w])
            summary_[s] &= ~(uint64_t(1) << (w % 64));
        --free_;
        --free_low_;
        publish();
        return static_cast<uint32_t>(w * 64 + b);
    }
    return UINT32_MAX;
}

bool SlotAllocator::take(uint32_t slot) {
    std::lock_guard<std::mutex> g(m_);
    if (slot >= slots_)
        return false;
    size_t w = slot / 64;
    uint64_t bit = uint64_t(1) << (slot % 64);
    if (!(words_[w] & bit))
        return false;
    words_[w] &= ~bit;
    if (!words_[w])
        summary_[w / 64] &= ~(uint64_t(1) << (w % 64));
    --free_;
    if (slot < limit_)
        --free_low_;
    publish();
    return true;
}

void SlotAllocator::release(uint32_t slot) {
    std::lock_guard<std::mutex> g(m_);
    size_t w = slot / 64;
    uint64_t bit = uint64_t(1) << (slot % 64);
    if (slot >= slots_ || (words_[w] & bit))
        return; // out of range or already free: never double-count
    words_[w] |= bit;
    summary_[w / 64] |= uint64_t(1) << (w % 64);
    ++free_;
    if (slot < limit_)
        ++free_low_;
    publish();
}

uint32_t SlotAllocator::used() const {
    std::lock_guard<std::mutex> g(m_);
    return slots_ - free_;
}

SlotAllocator::Census SlotAllocator::census() const {
    std::lock_guard<std::mutex> g(m_);
    return Census{Occupancy{limit_, free_low_}, slots_ - free_};
}

uint32_t SlotAllocator::used_from(uint32_t from) const {
    std::lock_guard<std::mutex> g(m_);
    uint32_t used = 0;
    for (uint32_t s = from; s < slots_; ++s)
        used += !is_free(s);
    return used;
}

uint32_t SlotAllocator::used_end() const {
    std::lock_guard<std::mutex> g(m_);
    for (size_t w = words_.size(); w-- > 0;) {
        // Bits past the last slot are clear in the last word: not slots.
        const bool partial = w + 1 == words_.size() && slots_ % 64;
        const uint64_t slots_in_word = partial ? (uint64_t(1) << (slots_ % 64)) - 1 : ~uint64_t(0);
        const uint64_t taken = ~words_[w] & slots_in_word;
        if (taken)
            return static_cast<uint32_t>(w * 64 + 64 - static_cast<unsigned>(__builtin_clzll(taken)));
    }
    return 0;
}

void SlotAllocator::set_limit(uint32_t limit) {
    std::lock_guard<std::mutex> g(m_);
    limit_ = limit < slots_ ? limit : slots_;
    uint32_t n = 0;
    for (uint32_t w = 0; w < limit_ / 64; ++w)
        n += static_cast<uint32_t>(__builtin_popcountll(words_[w]));
    for (uint32_t s = limit_ / 64 * 64; s < limit_; ++s)
        n += is_free(s);
    free_low_ = n;
    publish();
}

void SlotAllocator::reset(uint32_t slots) {
    SlotAllocator fresh(slots);
    std::lock_guard<std::mutex> g(m_);
    slots_ = fresh.slots_;
    limit_ = 0;
    free_ = fresh.free_;
    free_low_ = 0;
    words_.swap(fresh.words_);
    summary_.swap(fresh.summary_);
    publish();
}

} // namespace daxkv
