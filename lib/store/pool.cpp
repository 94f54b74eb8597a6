// The pool: opening a store's devices, placement of new entries, and the
// signals that drains, removals and resizes wait on.
#include <sched.h>
#include <sys/stat.h>
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
    req.reserve_bytes = cfg_.grow_auto ? auto_grow_limit(d.path) : cfg_.grow_limit;
    req.create = cfg_.create;
    req.sync = cfg_.durability == arena::Durability::power;
    arena::Arena::Options ao;
    ao.slot_bytes = cfg_.slot_bytes;
    ao.meta_bytes = cfg_.meta_bytes;
    ao.durability = cfg_.durability;
    ao.verify = cfg_.verify;
    ao.reformat = cfg_.reformat;
    ao.threads = cfg_.effective_workers();
    ao.usable_bytes = d.bytes;
    const bool payload = cfg_.capacity == Capacity::payload && d.bytes;
    if (payload)
        size_for_payloads(d.bytes, req, ao);
    auto map = platform::Mapping::open(req);
    if (payload && cfg_.grow_auto && map->info().kind == platform::DeviceKind::devdax) {
        // Room to grow over the whole device: the slots it holds with their
        // headers (auto_grow_limit mapped all of it).
        const uint64_t whole =
            arena::compute_layout(map->size(), ao.slot_bytes, ao.meta_bytes).slot_count;
        ao.slot_count = std::max(ao.slot_count, whole);
    }
    auto fits = [&](uint64_t slots) {
        return arena::layout_for_slots(slots, ao.slot_bytes, ao.meta_bytes).arena_bytes <=
               map->size();
    };
    if (ao.slot_count && !fits(ao.slot_count)) {
        // A Device-DAX device without room for all of it on top of the
        // payloads: first the room to grow goes, then slots, so that the
        // slot headers fit inside the device.
        const uint64_t asked = d.bytes / cfg_.slot_bytes;
        const bool without_room = ao.slot_count > asked && fits(asked);
        log(DAXKV_LOG_WARNING,
            "%s: the device's %llu bytes have no room for the slot headers on top of %s; %s",
            d.path.c_str(), static_cast<unsigned long long>(map->size()),
            without_room ? "the room to grow (grow_limit)" : "the payloads asked for",
            without_room ? "the arena cannot grow past its opened size"
                         : "the arena holds the slots that fit (fewer than asked for)");
        ao.slot_count = without_room ? asked : 0;
        ao.usable_bytes = map->size();
    }
    if (payload && ao.slot_count) {
        // The slots asked for are in use, after however many headers the
        // final layout has.
        const arena::Layout lay =
            arena::layout_for_slots(ao.slot_count, ao.slot_bytes, ao.meta_bytes);
        ao.usable_bytes = lay.data_offset + std::min(d.bytes / cfg_.slot_bytes, ao.slot_count) *
                                                cfg_.slot_bytes;
    }
    row.numa_node = map->info().numa_node;
    row.arena.reset(new arena::Arena(std::move(map), ao));
    // Slot state for the whole layout, so that growing into the rest of it
    // moves nothing the data path reads without a lock.
    auto slots = static_cast<uint32_t>(row.arena->layout().slot_count);
    row.alloc.reset(new SlotAllocator(slots));
    row.alloc->set_limit(row.arena->usable_slots());
    row.slots.assign(slots, SlotState{});
}

// capacity=payload: bytes (and grow_limit) count the slots' payloads, as
// LMCache sizes its arenas (N x slot_bytes); the superblocks and slot headers
// go on top of them, so the device is asked for that much more. A file is
// created or extended that much larger; a file shorter than the payloads is
// refused.
void Store::size_for_payloads(uint64_t bytes, platform::MapRequest &req,
                              arena::Arena::Options &ao) const {
    const uint64_t slots = bytes / cfg_.slot_bytes;
    if (slots == 0)
        fail(-EINVAL, "%s: %llu bytes do not hold one slot of %llu bytes", req.path.c_str(),
             static_cast<unsigned long long>(bytes),
             static_cast<unsigned long long>(cfg_.slot_bytes));
    // req.reserve_bytes is grow_limit in payload bytes here (auto: a
    // Device-DAX device's room is counted after it is mapped).
    const uint64_t grow = req.reserve_bytes == UINT64_MAX ? 0 : req.reserve_bytes;
    const uint64_t laid_out = std::max(slots, grow / cfg_.slot_bytes);
    const arena::Layout room = arena::layout_for_slots(laid_out, cfg_.slot_bytes, cfg_.meta_bytes);
    if (room.slot_count == 0)
        fail(-EINVAL, "%s: %llu slots of %llu bytes are more than one arena can address",
             req.path.c_str(), static_cast<unsigned long long>(laid_out),
             static_cast<unsigned long long>(cfg_.slot_bytes));
    const uint64_t page = 4096;
    req.bytes = round_up(room.data_offset + slots * cfg_.slot_bytes, page);
    if (req.reserve_bytes != UINT64_MAX)
        req.reserve_bytes = laid_out > slots ? round_up(room.arena_bytes, page) : 0;
    req.min_existing = slots * cfg_.slot_bytes;
    req.fit = true;
    ao.slot_count = laid_out;
    ao.usable_bytes = req.bytes;
}

// grow_limit=auto for one device: an arena already in a file keeps the room
// it was laid out with (so that a reopen finds the same layout); a file that
// holds no arena of this slot and metadata size can grow to its own size; a
// Device-DAX device to all of it (UINT64_MAX: "map the whole device"). In
// payload bytes with capacity=payload.
uint64_t Store::auto_grow_limit(const std::string &path) const {
    if (path == "mem:")
        return 0;
    if (platform::is_dax_char_device(path))
        return UINT64_MAX;
    const arena::SuperblockReport rep = arena::Arena::inspect_file(path);
    const bool payload = cfg_.capacity == Capacity::payload;
    if ((rep.valid_a || rep.valid_b) && rep.sb.slot_bytes == cfg_.slot_bytes &&
        rep.sb.meta_bytes == cfg_.meta_bytes)
        return payload ? rep.sb.slot_count * rep.sb.slot_bytes : rep.sb.arena_bytes;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return static_cast<uint64_t>(st.st_size);
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

std::vector<DeviceGauges> Store::device_gauges() const {
    std::vector<DeviceGauges> out;
    for (const auto &d : arenas_) {
        if (!dev_counted(d.state.load(std::memory_order_acquire)))
            continue;
        DeviceGauges g;
        g.path = d.path;
        g.slots = d.alloc->slots();
        g.slots_free = d.alloc->free_count();
        out.push_back(std::move(g));
    }
    return out;
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
    j["placement"] = config_word(cfg_.placement);
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
