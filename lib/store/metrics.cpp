#include "store/metrics.hpp"

namespace daxkv {

void Histogram::add(const HistogramValues &v) noexcept {
    for (int i = 0; i < kBuckets; ++i)
        if (v.bucket[i])
            b_[i].fetch_add(v.bucket[i], std::memory_order_relaxed);
    if (v.sum)
        sum_.fetch_add(v.sum, std::memory_order_relaxed);
}

HistogramValues Histogram::read() const noexcept {
    HistogramValues out;
    for (int i = 0; i < kBuckets; ++i) {
        out.bucket[i] = b_[i].load(std::memory_order_relaxed);
        out.count += out.bucket[i];
    }
    out.sum = sum_.load(std::memory_order_relaxed);
    return out;
}

} // namespace daxkv
