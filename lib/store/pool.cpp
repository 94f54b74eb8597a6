// The pool: opening a store's devices, placement of new entries, and the
// signals that drains, removals and resizes wait on.
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <nlohmann/json.hpp>

#include "internal/error.hpp"
#include "internal/json_text.hpp"
#include "internal/util.hpp"
#include "store/store.hpp"

namespace daxkv {
namespace {

// The NUMA node of the CPU the caller runs on, or -1.
int current_numa_node() noexcept {
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, nullptr) != 0)
        return -1;
    return static_cast<int>(node);
}

uint64_t unix_ns() noexcept {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

} // namespace

const char *dev_state_name(DevState s) noexcept {
    switch (s) {
    case DevState::active: return "active";
    case DevState::draining: return "draining";
    case DevState::migrating: return "migrating";
    case DevState::resizing: return "resizing";
    case DevState::removing: return "removing";
    case DevState::removed: return "removed";
    case DevState::missing: return "missing";
    }
    return "?";
}

// Map the device and validate (or format) its arena into row.
void Store::make_arena(DeviceSlot &row, const DeviceSpec &d) {
    platform::MapRequest req;
    req.path = d.path;
    req.bytes = d.bytes;
    req.reserve_bytes = cfg_.grow_limit;
    req.create = cfg_.create;
    req.sync = cfg_.durability == arena::Durability::power;
    auto map = platform::Mapping::open(req);
    arena::Arena::Options ao;
    ao.slot_bytes = cfg_.slot_bytes;
    ao.meta_bytes = cfg_.meta_bytes;
    ao.durability = cfg_.durability;
    ao.verify = cfg_.verify;
    ao.reformat = cfg_.reformat;
    ao.threads = cfg_.effective_workers();
    ao.usable_bytes = d.bytes;
    row.numa_node = map->info().numa_node;
    row.arena.reset(new arena::Arena(std::move(map), ao));
    // Slot state for the whole layout, so that growing into the rest of it
    // moves nothing the data path reads without a lock.
    auto slots = static_cast<uint32_t>(row.arena->layout().slot_count);
    row.alloc.reset(new SlotAllocator(slots));
    row.alloc->set_limit(row.arena->usable_slots());
    row.slots.assign(slots, SlotState{});
}

void Store::open_device(const DeviceSpec &d, bool tolerate_missing) {
    DeviceSlot *row = arenas_.next_row();
    if (!row)
        fail(-ENOSPC, "a store holds at most %u devices", kMaxDevices);
    row->path = d.path;
    row->bytes = d.bytes;
    row->id = next_device_id_++;
    try {
        make_arena(*row, d);
        row->state.store(DevState::active);
    } catch (const Error &e) {
        // Absent (-ENOENT) or no longer a usable DAX device (-ENODEV, e.g.
        // onlined as system RAM): the rest of the pool can still serve.
        if (!tolerate_missing || (e.code() != -ENOENT && e.code() != -ENODEV))
            throw;
        row->arena.reset();
        row->alloc.reset(new SlotAllocator(0));
        row->slots.clear();
        row->missing_reason = e.what();
        row->state.store(DevState::missing);
        log(DAXKV_LOG_WARNING, "device %u (%s) is missing: %s; opening without it", row->id,
            d.path.c_str(), e.what());
    }
    arenas_.publish();
}

// The writable device a new entry goes to: least used first (LMCache's
// live/max ascending), the caller's NUMA node first with placement=numa.
uint32_t Store::pick_device() const noexcept {
    const int node = cfg_.placement == Placement::numa ? current_numa_node() : -1;
    uint32_t best = UINT32_MAX;
    bool best_local = false;
    double best_use = 2.0;
    const uint32_t n = arenas_.size();
    for (uint32_t a = 0; a < n; ++a) {
        const DeviceSlot &d = arenas_[a];
        if (!dev_writable(d.state.load(std::memory_order_acquire)))
            continue;
        uint32_t total = d.alloc->slots(), free = d.alloc->free_count();
        if (free == 0 || total == 0)
            continue;
        bool local = node >= 0 && d.numa_node == node;
        double use = 1.0 - double(free) / double(total);
        if ((local && !best_local) || (local == best_local && use < best_use)) {
            best = a;
            best_local = local;
            best_use = use;
        }
    }
    return best;
}

bool Store::any_writable() const noexcept {
    for (uint32_t a = 0; a < arenas_.size(); ++a)
        if (dev_writable(arenas_[a].state.load(std::memory_order_acquire)))
            return true;
    return false;
}

// A slot of a device that is not active was freed (shard lock held: only
// flags, a notification and an event for the event thread here).
void Store::note_slot_freed(uint32_t a) noexcept {
    DeviceSlot &d = arenas_[a];
    if (d.state.load(std::memory_order_acquire) == DevState::draining &&
        d.alloc->used() <= d.quarantined.load() + d.detached.load() && !d.drained.exchange(true)) {
        d.drained_unix_ns.store(unix_ns());
        try {
            post_event(DAXKV_LOG_INFO, format("device %u (%s) is drained: it holds no entries",
                                              d.id, d.path.c_str()));
        } catch (...) {
            // Out of memory: the event is not logged; status and waiters still see it.
        }
    }
    std::lock_guard<std::mutex> g(ev_m_);
    ev_cv_.notify_all();
}

void Store::wait_lease_gate(uint32_t a) {
    std::unique_lock<std::mutex> g(ev_m_);
    ev_cv_.wait(g, [&] {
        return !arenas_[a].lease_gate.load(std::memory_order_acquire) || shutting_.load();
    });
    if (shutting_.load())
        fail(-ESHUTDOWN, "the store is shut down");
}

void Store::post_event(int level, std::string msg) noexcept {
    if (!log_enabled(level))
        return;
    std::lock_guard<std::mutex> g(events_->m);
    if (events_->stop)
        return;
    try {
        events_->events.emplace_back(level, std::move(msg));
        if (!ev_thread_.joinable()) {
            // The thread holds the queue, never the store.
            ev_thread_ = std::thread([q = events_] {
                std::unique_lock<std::mutex> lk(q->m);
                for (;;) {
                    q->cv.wait(lk, [&] { return q->stop || !q->events.empty(); });
                    if (q->stop)
                        return;
                    std::vector<std::pair<int, std::string>> out;
                    out.swap(q->events);
                    lk.unlock();
                    for (const auto &e : out)
                        log(e.first, "%s", e.second.c_str());
                    lk.lock();
                }
            });
        }
    } catch (...) {
        return; // out of memory or threads: the event is dropped
    }
    events_->cv.notify_one();
}

void Store::stop_events() noexcept {
    {
        std::lock_guard<std::mutex> g(events_->m);
        events_->stop = true;
        events_->cv.notify_all();
    }
    if (!ev_thread_.joinable())
        return;
    // A log callback on the event thread that closed the store: the store
    // goes, the thread ends on its own (it reads only the queue).
    if (ev_thread_.get_id() == std::this_thread::get_id())
        ev_thread_.detach();
    else
        ev_thread_.join();
}

uint64_t Store::usable_bytes(uint32_t a) const {
    const DeviceSlot &d = arenas_[a];
    return uint64_t(d.alloc->slots()) * cfg_.slot_bytes;
}

std::string Store::pool_status_json() const {
    const uint32_t n = arenas_.size();
    struct Counts {
        uint64_t live = 0, locked = 0, borrowed = 0;
    };
    std::vector<Counts> per(n);
    // Pins and borrows live in the index: one pass over the shards.
    for (size_t i = 0; i < kShards; ++i) {
        Shard &sh = shards_[i];
        std::lock_guard<std::mutex> g(sh.m);
        for (const auto &kv : sh.map) {
            const Entry *e = kv.second.get();
            if (!e->committed || e->ref.arena >= n)
                continue;
            Counts &c = per[e->ref.arena];
            c.live++;
            c.locked += e->pins > 0;
            c.borrowed += arenas_[e->ref.arena].slots[e->ref.slot].leases > 0;
        }
    }
    nlohmann::json j;
    uint64_t cap = 0, used = 0, live = 0, locked = 0, borrowed = 0;
    bool healthy = !shutting_.load();
    uint32_t counted = 0;
    nlohmann::json devs = nlohmann::json::array();
    std::shared_lock<std::shared_mutex> pool(pool_m_);
    for (uint32_t a = 0; a < n; ++a) {
        const DeviceSlot &d = arenas_[a];
        DevState st = d.state.load(std::memory_order_acquire);
        uint64_t slots = d.alloc->slots(), in_use = d.alloc->used();
        bool mapped = d.arena != nullptr;
        if (dev_counted(st)) {
            cap += slots * cfg_.slot_bytes;
            used += in_use * cfg_.slot_bytes;
            live += in_use;
            locked += per[a].locked;
            borrowed += per[a].borrowed;
            counted++;
            healthy = healthy && mapped;
        }
        nlohmann::json dj = {
            {"index", a},
            {"device_id", d.id},
            {"device_path", json_bytes(d.path)},
            {"state", dev_state_name(st)},
            {"is_healthy", mapped && dev_counted(st)},
            {"max_dax_size_bytes", slots * cfg_.slot_bytes},
            {"slot_bytes", cfg_.slot_bytes},
            {"max_slots", slots},
            {"formatted_slots", d.alloc->formatted()},
            {"live_slot_count", in_use},
            {"entry_count", per[a].live},
            {"locked_key_count", per[a].locked},
            {"borrowed_slot_count", per[a].borrowed},
            {"lease_gate", d.lease_gate.load()},
            {"numa_node", d.numa_node},
            {"supports_restart_recovery", mapped && cfg_.durability != arena::Durability::none &&
                                              !d.arena->mapping().volatile_memory()},
        };
        if (st == DevState::draining) {
            dj["drained"] = d.drained.load();
            if (d.drained.load())
                dj["drained_unix_ns"] = d.drained_unix_ns.load();
        }
        if (st == DevState::missing)
            dj["error"] = "device not found at open";
        devs.push_back(std::move(dj));
    }
    j["hotplug_enabled"] = cfg_.hotplug;
    j["slot_bytes"] = cfg_.slot_bytes;
    j["placement"] = cfg_.placement == Placement::numa ? "numa" : "least_used";
    j["total_capacity_bytes"] = cap;
    j["total_used_bytes"] = used;
    j["live_slot_count"] = live;
    j["locked_key_count"] = locked;
    j["borrowed_slot_count"] = borrowed;
    j["num_devices"] = counted;
    j["is_healthy"] = healthy;
    j["devices"] = std::move(devs);
    return j.dump();
}

} // namespace daxkv
