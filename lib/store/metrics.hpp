// Latency and size histograms of the store, and the Prometheus text
// rendering of daxkv_stats.
//
// Recording is lock-free (relaxed atomic increments of one bucket and a
// sum); reading is not a snapshot of one instant, like every counter of
// daxkv_stats. count is derived from the buckets when read, so a reader
// always sees count == the sum of the buckets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "daxkv.h"

namespace daxkv {

class Histogram {
public:
    static constexpr int kBuckets = DAXKV_HIST_BUCKETS;
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
    void read(daxkv_histogram &out) const noexcept;

private:
    uint64_t unit_;
    std::atomic<uint64_t> b_[kBuckets] = {};
    std::atomic<uint64_t> sum_{0};
};

struct Metrics {
    Histogram put_latency{DAXKV_HIST_NS_UNIT}, get_latency{DAXKV_HIST_NS_UNIT},
        batch_latency{DAXKV_HIST_NS_UNIT}, item_bytes{DAXKV_HIST_BYTES_UNIT};
    std::atomic<uint64_t> batches{0};
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

// One device's figures for the Prometheus text.
struct DeviceGauges {
    std::string path;
    uint64_t slots = 0, slots_free = 0;
};

// daxkv_stats (a full struct) in the Prometheus text exposition format,
// every sample labelled store="store_id", and per-device gauges labelled
// with the device's path too.
std::string prometheus_text(const struct daxkv_stats &s, const std::string &store_id,
                            const std::vector<DeviceGauges> &devices);

} // namespace daxkv
