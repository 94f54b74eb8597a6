// What a store tells about itself: its statistics (in the store's own
// terms; lib/capi makes daxkv_stats of them), its status and its pool's
// status as JSON, the per-device figures of the Prometheus text, and the
// statistics page it publishes for other processes (stats_page.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/core.hpp"
#include "store/stats_page.hpp"

namespace daxkv {

class AsyncQueue;

// The statistics of daxkv_stats, field for field.
struct StatsSnapshot {
    uint32_t devices = 0;
    uint64_t slot_bytes = 0, meta_bytes = 0, capacity_bytes = 0;
    uint64_t slots_total = 0, slots_used = 0, slots_free = 0;
    uint64_t entries = 0, entries_pinned = 0, slots_inflight = 0, slots_pending_free = 0;
    uint64_t leases_active = 0, slots_leased = 0;
    CounterValues counters; // counters.hpp
    uint64_t batches = 0, async_submitted = 0, async_completed = 0, async_cancelled = 0;
    HistogramValues put_latency, get_latency, batch_latency, item_bytes;
    uint64_t recovered_entries = 0, recovery_dropped_torn = 0, recovery_dropped_corrupt = 0,
             recovery_dropped_stale = 0, recovery_usec = 0;
};

// One device's figures for the Prometheus text.
struct DeviceGauges {
    std::string path;
    uint64_t slots = 0, slots_free = 0;
};

// The bytes a statistics page carries for a snapshot (the public
// daxkv_stats, which only lib/capi makes: other processes read the page
// through daxkv_stats_peek).
using StatsEncoder = std::string (*)(const StatsSnapshot &);

class Reports {
public:
    Reports(Core &core, const AsyncQueue &async);
    // The page goes first: readers stop seeing the store as it closes.
    ~Reports() { stop_publishing(); }
    Reports(const Reports &) = delete;
    Reports &operator=(const Reports &) = delete;

    StatsSnapshot stats() const;
    std::string status_json() const;
    std::string pool_status_json() const;
    std::vector<DeviceGauges> device_gauges() const;
    // The store's id: its first device's arena uuid (stable across
    // restarts, so that its Prometheus series continue).
    const std::string &store_id() const noexcept { return store_id_; }

    // The statistics page (stats_interval; none for 0). A page that cannot
    // be made is logged: statistics never keep a store from opening.
    void start_publishing(StatsEncoder encode);
    // Shutdown stops publishing while hotplug calls are still inside the
    // store: the publisher goes only once none of them uses it.
    void stop_publishing() noexcept {
        std::lock_guard<std::mutex> g(publisher_m_);
        publisher_.reset();
    }
    // A device joined or left the pool: the page is named after it (or no
    // longer) and published at once (nothing once publishing stopped).
    void device_added(const std::string &path) noexcept;
    void device_removed(const std::string &path) noexcept;

private:
    Core &c_;
    const AsyncQueue &async_;
    std::string store_id_;
    std::mutex publisher_m_; // publisher_ after the open: its reset and its users
    std::unique_ptr<StatsPublisher> publisher_;
};

} // namespace daxkv
