// A store: one or more devices (a pool) holding key-value entries, opened
// from a Config. Store puts the parts together and takes them apart; the
// work is theirs:
//
//   core.hpp         the shared parts: pool, slot states, index, history,
//                    counters, copy rules, the calls in flight
//   entries.hpp      committed entries: retire, evict, remove, pin
//   writes.hpp       put, put_batch (claim -> copy -> commit)
//   reservations.hpp write in place: reserve, commit, abort
//   reads.hpp        get, get_batch, contains, leases
//   gpu.hpp          the batches between GPU memory and the arenas
//   async.hpp        submitted batches, completions
//   reports.hpp      statistics, status, the statistics page
//   hotplug.hpp      device add, remove, resize, drain
//
// lib/capi calls the part a function needs; nothing in lib/store calls
// lib/capi.
#pragma once

#include <memory>

#include "platform/fork.hpp"
#include "store/async.hpp"
#include "store/config.hpp"
#include "store/core.hpp"
#include "store/entries.hpp"
#include "store/gpu.hpp"
#include "store/hotplug.hpp"
#include "store/reads.hpp"
#include "store/reports.hpp"
#include "store/reservations.hpp"
#include "store/writes.hpp"

namespace daxkv {

class Store {
public:
    // Open every device of cfg (with hotplug, a configured device that is
    // absent is reported, not fatal), recover the index, start the copy
    // engine and the statistics page (whose bytes encode makes). Throws
    // Error; a failed open leaves the devices as they were.
    static std::shared_ptr<Store> open(const Config &cfg, StatsEncoder encode);
    // After shutdown (daxkv_close), or when the last lease or reservation
    // of a closed store ends.
    ~Store();
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;

    // The statistics page goes, every submitted batch completes or is
    // cancelled, later calls get -ESHUTDOWN, calls that wait are woken, and
    // the calls in flight are waited for.
    void shutdown();

    // This process is a child forked after the open (platform/fork.hpp):
    // the store's threads are not here and its devices are the parent's.
    bool inherited() const noexcept { return platform::fork_generation() != generation_; }

    const Config &config() const noexcept { return core_->cfg; }
    Core &core() noexcept { return *core_; }
    Entries &entries() noexcept { return *entries_; }
    Writes &writes() noexcept { return *writes_; }
    Reservations &reservations() noexcept { return *reservations_; }
    Reads &reads() noexcept { return *reads_; }
    Gpu &gpu() noexcept { return *gpu_; }
    AsyncQueue &async() noexcept { return *async_; }
    Reports &reports() noexcept { return *reports_; }
    Hotplug &hotplug() noexcept { return *hotplug_; }

private:
    explicit Store(const Config &cfg);

    // In the order they are built: each may use the ones above it, and is
    // destroyed before them.
    std::unique_ptr<Core> core_;
    std::unique_ptr<Entries> entries_;
    std::unique_ptr<Writes> writes_;
    std::unique_ptr<Reservations> reservations_;
    std::unique_ptr<Reads> reads_;
    std::unique_ptr<Gpu> gpu_;
    std::unique_ptr<AsyncQueue> async_;
    std::unique_ptr<Reports> reports_;
    std::unique_ptr<Hotplug> hotplug_;
    const uint64_t generation_ = platform::fork_generation();
};

} // namespace daxkv
