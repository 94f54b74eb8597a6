#include "capi/convert.hpp"

#include <cstring>

namespace daxkv {
namespace capi {
namespace {

daxkv_histogram public_histogram(const HistogramValues &h) {
    daxkv_histogram out;
    out.count = h.count;
    out.sum = h.sum;
    for (int i = 0; i < kHistBuckets; ++i)
        out.bucket[i] = h.bucket[i];
    return out;
}

} // namespace

struct daxkv_stats public_stats(const StatsSnapshot &s) {
    struct daxkv_stats o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.devices = s.devices;
    o.slot_bytes = s.slot_bytes;
    o.meta_bytes = s.meta_bytes;
    o.capacity_bytes = s.capacity_bytes;
    o.slots_total = s.slots_total;
    o.slots_used = s.slots_used;
    o.slots_free = s.slots_free;
    o.entries = s.entries;
    o.entries_pinned = s.entries_pinned;
    o.slots_inflight = s.slots_inflight;
    o.slots_pending_free = s.slots_pending_free;
    o.leases_active = s.leases_active;
    o.slots_leased = s.slots_leased;
    // The counters' table (store/counters.hpp): each has a daxkv_stats field
    // of its name.
#define DAXKV_COUNTER_PUBLIC(name, prometheus, help) o.name = s.counters.name;
    DAXKV_STORE_COUNTERS(DAXKV_COUNTER_PUBLIC)
#undef DAXKV_COUNTER_PUBLIC
    o.batches = s.batches;
    o.async_submitted = s.async_submitted;
    o.async_completed = s.async_completed;
    o.async_cancelled = s.async_cancelled;
    o.put_latency = public_histogram(s.put_latency);
    o.get_latency = public_histogram(s.get_latency);
    o.batch_latency = public_histogram(s.batch_latency);
    o.item_bytes = public_histogram(s.item_bytes);
    o.recovered_entries = s.recovered_entries;
    o.recovery_dropped_torn = s.recovery_dropped_torn;
    o.recovery_dropped_corrupt = s.recovery_dropped_corrupt;
    o.recovery_dropped_stale = s.recovery_dropped_stale;
    o.recovery_usec = s.recovery_usec;
    return o;
}

std::string stats_page_bytes(const StatsSnapshot &s) {
    const struct daxkv_stats o = public_stats(s);
    return std::string(reinterpret_cast<const char *>(&o), sizeof o);
}

// The structs below have no padding: aggregate initialisation leaves no
// byte of them unset.
daxkv_hotplug_result public_result(const HotplugResult &r) {
    return daxkv_hotplug_result{sizeof(daxkv_hotplug_result),
                                static_cast<uint32_t>(r.state),
                                static_cast<int32_t>(r.index),
                                0,
                                r.moved.moved_keys,
                                r.moved.moved_bytes,
                                r.moved.deleted_keys,
                                r.moved.freed,
                                r.old_bytes,
                                r.new_bytes,
                                r.moved.evicted_keys};
}

daxkv_completion public_completion(const Completion &c) {
    return daxkv_completion{c.tag, static_cast<int>(c.op), c.result};
}

daxkv_slot_info public_slot(const SlotLocation &l) {
    return daxkv_slot_info{sizeof(daxkv_slot_info), l.device_id, l.slot, l.generation, l.offset,
                           l.payload_base};
}

daxkv_device_layout public_layout(const DeviceLayout &d) {
    return daxkv_device_layout{sizeof(daxkv_device_layout), d.device_id,
                               static_cast<uint32_t>(d.state), static_cast<int32_t>(d.index),
                               d.slot_bytes, d.layout_slots, d.usable_slots, d.used_end,
                               d.arena_bytes, d.data_offset, d.payload_base};
}

daxkv_key_info public_key(const KeyRecord &r) {
    return daxkv_key_info{sizeof(daxkv_key_info),
                          r.device_id,
                          r.key.data(),
                          r.key.size(),
                          r.meta.empty() ? nullptr : r.meta.data(),
                          r.meta.size(),
                          r.value_len,
                          r.slot,
                          r.seq,
                          r.pins,
                          r.leases};
}

} // namespace capi
} // namespace daxkv
