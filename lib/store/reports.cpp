#include "store/reports.hpp"

#include <shared_mutex>
#include <uuid/uuid.h>

#include <nlohmann/json.hpp>

#include "daxkv_version.h"
#include "internal/error.hpp"
#include "internal/json_text.hpp"
#include "internal/util.hpp"
#include "store/async.hpp"

namespace daxkv {
namespace {

// The uuid of the first device's arena; a random one for a store that opens
// without a mapped device.
std::string first_arena_uuid(const Pool &pool) {
    for (const auto &d : pool.rows())
        if (d.arena)
            return uuid_text(d.arena->superblock().uuid);
    uuid_t u;
    uuid_generate(u);
    return uuid_text(u);
}

uint64_t nonneg(int64_t v) noexcept { return v < 0 ? uint64_t(0) : static_cast<uint64_t>(v); }

} // namespace

Reports::Reports(Core &core, const AsyncQueue &async)
    : c_(core), async_(async), store_id_(first_arena_uuid(core.pool)) {}

StatsSnapshot Reports::stats() const {
    StatsSnapshot s;
    s.slot_bytes = c_.cfg.slot_bytes;
    s.meta_bytes = c_.cfg.meta_bytes;
    {
        // A device added back into its old row swaps the row's allocator.
        std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
        for (const auto &a : c_.pool.rows()) {
            // A removed (or missing) device's row counts nothing: a slot
            // quarantined while it was removed stayed taken in its
            // allocator, and was counted as used for good.
            if (!dev_counted(a.state.load(std::memory_order_relaxed)))
                continue;
            s.devices++;
            // Taken slots are counted wherever they lie: during a shrink
            // those past the new end are neither usable nor free, and
            // count in the total until they are given back.
            const SlotAllocator::Census c = a.alloc->census();
            s.slots_total += c.counted();
            s.slots_free += c.occupancy.free;
            s.slots_used += c.used;
        }
    }
    s.capacity_bytes = s.slots_total * s.slot_bytes;
    s.entries = nonneg(c_.index.entries());
    s.entries_pinned = nonneg(c_.index.pinned());
    s.slots_inflight = nonneg(c_.slots.inflight());
    s.slots_pending_free = nonneg(c_.slots.pending_free());
    s.leases_active = nonneg(c_.slots.leases());
    s.slots_leased = nonneg(c_.slots.leased_slots());
    s.counters = read_counters(c_.counters);
    s.batches = c_.metrics.batches.load(std::memory_order_relaxed);
    s.async_submitted = async_.submitted();
    s.async_completed = async_.completed();
    s.async_cancelled = async_.cancelled();
    s.put_latency = c_.metrics.put_latency.read();
    s.get_latency = c_.metrics.get_latency.read();
    s.batch_latency = c_.metrics.batch_latency.read();
    s.item_bytes = c_.metrics.item_bytes.read();
    s.recovered_entries = c_.recovered.recovered;
    s.recovery_dropped_torn = c_.recovered.torn;
    s.recovery_dropped_corrupt = c_.recovered.corrupt;
    s.recovery_dropped_stale = c_.recovered.stale;
    s.recovery_usec = c_.recovered.usec;
    return s;
}

std::string Reports::status_json() const {
    const StatsSnapshot s = stats();
    const engine::CopyEngine *engine = c_.copier.engine();
    // Built as json_text.hpp's JsonTree says, so that running out of memory
    // here is -ENOMEM, not the end of the process. An object from the
    // start: nlohmann's operator[] turns a null into an object in place,
    // and when that allocation fails it leaves a value its destructor
    // asserts on (or crashes on, without assertions).
    JsonTree j(nlohmann::json::value_t::object);
    j["version"] = DAXKV_VERSION_STRING;
    j["state"] = c_.gate.closed() ? "shutdown" : "open";
    j["slot_bytes"] = c_.cfg.slot_bytes;
    j["meta_bytes"] = c_.cfg.meta_bytes;
    j["eviction"] = config_word(c_.cfg.eviction);
    j["durability"] = config_word(c_.cfg.durability);
    j["verify"] = config_word(c_.cfg.verify);
    j["workers"] = engine ? engine->workers() : 0;
    {
        nlohmann::json &cpus = j["worker_cpus"];
        cpus = nlohmann::json::array();
        if (engine)
            for (int cpu : engine->cpus())
                cpus.push_back(cpu);
    }
    {
        JsonTree devs(nlohmann::json::value_t::array);
        std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock()); // a removal unmaps under it
        for (const auto &a : c_.pool.rows()) {
            if (!a.arena)
                continue; // removed or missing: see daxkv_pool_status_json
            const auto &info = a.arena->mapping().info();
            const auto &lay = a.arena->layout();
            const SlotAllocator::Occupancy o = a.alloc->occupancy();
            JsonTree dev(nlohmann::json::value_t::object);
            set_bytes(dev["path"], info.path);
            dev["kind"] = platform::kind_name(info.kind);
            dev["arena_bytes"] = lay.arena_bytes;
            dev["slots"] = o.slots;
            dev["layout_slots"] = lay.slot_count;
            dev["slots_free"] = o.free;
            dev["uuid"] = uuid_text(a.arena->superblock().uuid);
            dev["numa_node"] = info.numa_node;
            dev.append_to(devs.value());
        }
        devs.move_into(j["devices"]);
    }
    j["capacity_bytes"] = s.capacity_bytes;
    j["used_bytes"] = s.slots_used * s.slot_bytes;
    j["entries"] = s.entries;
    j["entries_pinned"] = s.entries_pinned;
    {
        nlohmann::json &slots = object_at(j.value(), "slots");
        slots["total"] = s.slots_total;
        slots["used"] = s.slots_used;
        slots["free"] = s.slots_free;
        slots["inflight"] = s.slots_inflight;
        slots["pending_free"] = s.slots_pending_free;
    }
    j["leases_active"] = s.leases_active;
    {
        nlohmann::json &counters = object_at(j.value(), "counters");
#define DAXKV_COUNTER_JSON(name, prometheus, help) counters[#name] = s.counters.name;
        DAXKV_STORE_COUNTERS(DAXKV_COUNTER_JSON)
#undef DAXKV_COUNTER_JSON
    }
    {
        nlohmann::json &recovery = object_at(j.value(), "recovery");
        recovery["recovered"] = s.recovered_entries;
        recovery["dropped_torn"] = s.recovery_dropped_torn;
        recovery["dropped_corrupt"] = s.recovery_dropped_corrupt;
        recovery["dropped_stale"] = s.recovery_dropped_stale;
        recovery["usec"] = s.recovery_usec;
    }
    return j.dump();
}

std::vector<DeviceGauges> Reports::device_gauges() const {
    std::vector<DeviceGauges> out;
    std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
    for (const auto &d : c_.pool.rows()) {
        if (!dev_counted(d.state.load(std::memory_order_acquire)))
            continue;
        DeviceGauges g;
        g.path = d.path;
        const SlotAllocator::Occupancy o = d.alloc->occupancy();
        g.slots = o.slots;
        g.slots_free = o.free;
        out.push_back(std::move(g));
    }
    return out;
}

std::string Reports::pool_status_json() const {
    const uint32_t n = c_.pool.size();
    struct Counts {
        uint64_t live = 0, locked = 0, borrowed = 0, reading = 0, writing = 0;
    };
    std::vector<Counts> per(n);
    // Pins, leases, reads and writes in progress live in the index and the
    // slot states: one pass over the shards. A read of an entry replaced
    // or removed since it began is no longer in the index, and not counted.
    c_.index.for_each_locked([&](const Entry &e) {
        if (e.inflight && e.inflight->ref.arena < n)
            per[e.inflight->ref.arena].writing++;
        if (!e.committed() || e.ref().arena >= n)
            return;
        Counts &c = per[e.ref().arena];
        const SlotState &slot = c_.slots.at(e.ref());
        c.live++;
        c.locked += e.pins() > 0;
        c.borrowed += slot.leases() > 0;
        c.reading += slot.borrows();
    });
    // Built as json_text.hpp's JsonTree says (see status_json).
    JsonTree j(nlohmann::json::value_t::object);
    uint64_t cap = 0, used = 0, live = 0, locked = 0, borrowed = 0;
    bool healthy = !c_.gate.closed();
    uint32_t counted = 0;
    JsonTree devs(nlohmann::json::value_t::array);
    std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
    for (uint32_t a = 0; a < n; ++a) {
        const DeviceRow &d = c_.pool[a];
        DevState st = d.state.load(std::memory_order_acquire);
        const SlotAllocator::Census c = d.alloc->census();
        const uint64_t slots = c.occupancy.slots, in_use = c.used;
        bool mapped = d.arena != nullptr;
        if (dev_counted(st)) {
            cap += c.counted() * c_.cfg.slot_bytes; // at least what is used
            used += in_use * c_.cfg.slot_bytes;
            live += in_use;
            locked += per[a].locked;
            borrowed += per[a].borrowed;
            counted++;
            healthy = healthy && mapped;
        }
        JsonTree dj(nlohmann::json::value_t::object);
        dj["index"] = a;
        dj["device_id"] = d.id;
        set_bytes(dj["device_path"], d.path);
        dj["state"] = dev_state_name(st);
        dj["is_healthy"] = mapped && dev_counted(st);
        dj["max_dax_size_bytes"] = slots * c_.cfg.slot_bytes;
        dj["slot_bytes"] = c_.cfg.slot_bytes;
        dj["max_slots"] = slots;
        dj["formatted_slots"] = d.alloc->formatted();
        dj["live_slot_count"] = in_use;
        dj["entry_count"] = per[a].live;
        dj["locked_key_count"] = per[a].locked;
        dj["borrowed_slot_count"] = per[a].borrowed;
        dj["active_read_count"] = per[a].reading;
        dj["active_write_count"] = per[a].writing;
        dj["lease_gate"] = d.lease_gate.load();
        dj["numa_node"] = d.numa_node;
        dj["supports_restart_recovery"] = mapped &&
                                          c_.cfg.durability != arena::Durability::none &&
                                          !d.arena->mapping().volatile_memory();
        if (st == DevState::draining) {
            dj["drained"] = d.drained.load();
            if (d.drained.load())
                dj["drained_unix_ns"] = d.drained_unix_ns.load();
        }
        if (st == DevState::missing)
            dj["error"] = "device not found at open";
        dj.append_to(devs.value());
    }
    j["hotplug_enabled"] = c_.cfg.hotplug;
    j["slot_bytes"] = c_.cfg.slot_bytes;
    j["placement"] = config_word(c_.cfg.placement);
    j["total_capacity_bytes"] = cap;
    j["total_used_bytes"] = used;
    j["live_slot_count"] = live;
    j["locked_key_count"] = locked;
    j["borrowed_slot_count"] = borrowed;
    j["num_devices"] = counted;
    j["is_healthy"] = healthy;
    devs.move_into(j["devices"]);
    return j.dump();
}

void Reports::start_publishing(StatsEncoder encode) {
    if (c_.cfg.stats_interval_ms == 0)
        return;
    try {
        publisher_ = std::make_unique<StatsPublisher>(
            store_id_, c_.cfg.stats_interval_ms, [this, encode](StatsPage &page) {
                const std::string bytes = encode(stats());
                page.publish(bytes.data(), bytes.size(), status_json());
            });
    } catch (const std::exception &e) {
        log(kLogWarning, "no statistics page (daxkv stats cannot look at this store): %s",
            e.what());
        return;
    }
    for (const auto &d : c_.pool.rows()) {
        if (!d.arena)
            continue;
        const std::string why = publisher_->name_device(d.path);
        if (!why.empty())
            log(kLogWarning, "no statistics page for %s: %s", d.path.c_str(), why.c_str());
    }
}

void Reports::device_added(const std::string &path) noexcept {
    std::lock_guard<std::mutex> g(publisher_m_);
    if (!publisher_)
        return;
    publisher_->name_device(path); // without a name, daxkv stats finds the store by another
    publisher_->publish_now();
}

void Reports::device_removed(const std::string &path) noexcept {
    std::lock_guard<std::mutex> g(publisher_m_);
    if (!publisher_)
        return;
    publisher_->unname_device(path);
    publisher_->publish_now();
}

} // namespace daxkv
