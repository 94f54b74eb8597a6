#include "store/metrics.hpp"

namespace daxkv {

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
