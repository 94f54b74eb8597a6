// Latency and size histograms of the store.
//
// Recording is lock-free (relaxed atomic increments of one bucket and a
// sum); reading is not a snapshot of one instant, like every counter of the
// store's statistics. count is derived from the buckets when read, so a
// reader always sees count == the sum of the buckets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace daxkv {

// Buckets of a histogram and the bounds' units: the values of
// DAXKV_HIST_BUCKETS, DAXKV_HIST_NS_UNIT and DAXKV_HIST_BYTES_UNIT (lib/capi
// checks them). bucket[i] counts the values in (unit << (i-1), unit << i];
// the last one everything above.
constexpr int kHistBuckets = 24;
constexpr uint64_t kHistNsUnit = 1000;
constexpr uint64_t kHistBytesUnit = 4096;

struct HistogramValues {
    uint64_t count = 0;
    uint64_t sum = 0;
    uint64_t bucket[kHistBuckets] = {};
};

class Histogram {
public:
    static constexpr int kBuckets = kHistBuckets;
    explicit Histogram(uint64_t unit) noexcept : unit_(unit) {}

    // The bucket of v: the smallest i with v <= unit << i (the last bucket
    // takes everything above).
    static int index(uint64_t v, uint64_t unit) noexcept {
        if (v <= unit)
            return 0;
        int i = 64 - __builtin_clzll((v - 1) / unit);
        return i < kBuckets - 1 ? i : kBuckets - 1;
    }
    void record(uint64_t v) noexcept {
        b_[index(v, unit_)].fetch_add(1, std::memory_order_relaxed);
        sum_.fetch_add(v, std::memory_order_relaxed);
    }
    // The values counted in v (its buckets and sum; its count is derived)
    // added at once: a batch's, tallied first in a HistogramValues.
    void add(const HistogramValues &v) noexcept;
    uint64_t unit() const noexcept { return unit_; }
    HistogramValues read() const noexcept;

private:
    uint64_t unit_;
    std::atomic<uint64_t> b_[kBuckets] = {};
    std::atomic<uint64_t> sum_{0};
};

struct Metrics {
    Histogram put_latency{kHistNsUnit}, get_latency{kHistNsUnit}, batch_latency{kHistNsUnit},
        item_bytes{kHistBytesUnit};
    std::atomic<uint64_t> batches{0};
};

// Values a batch moved (stored, or copied out), tallied here and added to
// the store's counters once: an atomic addition each for the count, the
// bytes and the size histogram would be a tenth of the calling thread's
// time in a batch of small values.
class ItemTally {
public:
    explicit ItemTally(const Histogram &sizes) noexcept : unit_(sizes.unit()) {}
    void count(uint64_t len) noexcept {
        ++sizes_.count;
        sizes_.sum += len;
        sizes_.bucket[Histogram::index(len, unit_)]++;
    }
    // Added to the counters of items and bytes and to the size histogram;
    // the tally starts over.
    void add_to(std::atomic<uint64_t> &items, std::atomic<uint64_t> &bytes,
                Histogram &sizes) noexcept {
        if (!sizes_.count)
            return;
        items.fetch_add(sizes_.count, std::memory_order_relaxed);
        bytes.fetch_add(sizes_.sum, std::memory_order_relaxed);
        sizes.add(sizes_);
        sizes_ = HistogramValues();
    }

private:
    uint64_t unit_;
    HistogramValues sizes_; // the items, their bytes and their sizes
};

// Records the time from construction to destruction into h.
class LatencyTimer {
public:
    explicit LatencyTimer(Histogram &h) noexcept : h_(h), t0_(std::chrono::steady_clock::now()) {}
    ~LatencyTimer() {
        auto d = std::chrono::steady_clock::now() - t0_;
        h_.record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    }
    LatencyTimer(const LatencyTimer &) = delete;
    LatencyTimer &operator=(const LatencyTimer &) = delete;

private:
    Histogram &h_;
    std::chrono::steady_clock::time_point t0_;
};

} // namespace daxkv
