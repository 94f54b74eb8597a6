// Where entries live: slot locations, device layouts, and the key cursor.
#include "store/keys.hpp"

#include <cerrno>
#include <shared_mutex>

#include "internal/error.hpp"
#include "store/store.hpp"

namespace daxkv {
namespace {

// mapped: the arena the entry's bytes are in, as its holder keeps it mapped
// (a device row's own arena is gone once the device is removed).
SlotLocation location_of(const DeviceRow &d, const arena::Arena &mapped, const SlotRef &r,
                         uint64_t slot_bytes) {
    SlotLocation loc;
    loc.device_id = d.id;
    loc.slot = r.slot;
    loc.generation = r.gen;
    loc.offset = uint64_t(r.slot) * slot_bytes;
    loc.payload_base = mapped.slot_data(0);
    return loc;
}

// Append shard i's committed entries (on pool row device, or on every
// device with -1) to out, under the shard's lock.
void snapshot_shard(Core &c, size_t i, int device, std::vector<KeyRecord> &out) {
    CallGate::Call call(c.gate);
    size_t faulted = 0, mismatched = 0;
    const bool verify_read = c.copier.verifies_reads();
    c.index.for_each_in_shard(i, [&](const Entry &e) {
        if (!e.committed() || (device >= 0 && e.ref().arena != static_cast<uint32_t>(device)))
            return;
        // The entry is committed under this lock, so its device is mapped:
        // a removal takes entries out of the index before it unmaps.
        const DeviceRow &d = c.pool[e.ref().arena];
        KeyRecord r;
        r.key = e.key();
        r.meta.resize(e.version().meta_len);
        if (!d.arena->read_meta(e.ref().slot, &r.meta[0], e.version().meta_len)) {
            // Its header faulted (sigbus=handle): left out of the walk, since
            // its metadata cannot be reported; the entry stays until a read
            // of it finds the fault and drops it.
            ++faulted;
            return;
        }
        if (verify_read) {
            // Metadata that no longer matches its checksum is not reported
            // either; the entry stays until a read of it drops it.
            arena::Arena::HeaderCheck hc;
            if (!d.arena->check_header(e.ref().slot, r.meta.data(), e.version().meta_len,
                                       &hc)) {
                ++faulted;
                return;
            }
            if (!hc.matches(e.version().value_len, e.version().meta_len)) {
                ++mismatched;
                return;
            }
        }
        r.value_len = e.version().value_len;
        r.seq = e.version().seq;
        r.device_id = d.id;
        r.slot = e.ref().slot;
        r.generation = e.ref().gen;
        r.pins = e.pins();
        r.leases = c.slots.at(e.ref()).leases();
        out.push_back(std::move(r));
    });
    if (faulted) {
        c.counters.copy_faults += faulted;
        log(kLogErr, "listing keys: reading the headers of %zu entries faulted (SIGBUS): "
            "left out", faulted);
    }
    if (mismatched)
        log(kLogErr, "listing keys: the headers of %zu entries failed their checksum "
            "(verify=read): left out", mismatched);
}

} // namespace

SlotLocation locate(Store &s, const LeaseState &l) {
    // A lease keeps its device in the pool: its removal waits for it.
    const DeviceRow &d = s.core().pool[l.ref.arena];
    return location_of(d, *d.arena, l.ref, s.config().slot_bytes);
}

SlotLocation locate(Store &s, const ReservationState &r) {
    if (!r.inflight)
        fail(-EINVAL, "the reservation holds no slot");
    // A forced removal of its device detaches the reservation without
    // waiting for it: the row's arena may be gone, the reservation's own
    // mapping is not.
    return location_of(s.core().pool[r.inflight->ref.arena], *r.device, r.inflight->ref,
                       s.config().slot_bytes);
}

DeviceLayout describe_device(Store &s, const std::string &path) {
    Core &c = s.core();
    CallGate::Call call(c.gate);
    const uint32_t a = c.pool.find(path);
    // A removal unmaps under the mapping lock; hold it shared while reading
    // the arena.
    std::shared_lock<std::shared_mutex> pool(c.pool.mapping_lock());
    const DeviceRow &d = c.pool[a];
    DeviceLayout out;
    out.device_id = d.id;
    out.index = a;
    out.state = static_cast<int>(d.state.load(std::memory_order_acquire));
    out.slot_bytes = c.cfg.slot_bytes;
    if (!d.arena)
        return out; // missing at open: nothing mapped
    const arena::Layout &lay = d.arena->layout();
    out.layout_slots = lay.slot_count;
    out.usable_slots = d.alloc->slots();
    out.used_end = d.alloc->used_end();
    out.arena_bytes = lay.arena_bytes;
    out.data_offset = lay.data_offset;
    out.payload_base = d.arena->slot_data(0);
    return out;
}

KeyCursor::KeyCursor(std::shared_ptr<Store> store, const std::string *device_path)
    : store_(std::move(store)) {
    if (device_path)
        device_ = static_cast<int>(store_->core().pool.find(*device_path));
    CallGate::Call call(store_->core().gate); // -ESHUTDOWN once the store is shut down
}

const KeyRecord *KeyCursor::next() {
    // Every call, not only those that copy a shard: the records of a shard
    // copied before a shutdown were handed out after it, and a walk whose
    // last shard was copied before it ended as if nothing had happened.
    if (store_->core().gate.closed())
        fail(-ESHUTDOWN, "the store is shut down");
    while (pos_ == batch_.size()) {
        if (shard_ == Index::kShards)
            return nullptr;
        batch_.clear();
        pos_ = 0;
        // The shard counts as walked only once its copy is whole. A copy
        // that fails (-ENOMEM, -ESHUTDOWN) is dropped and the next call
        // takes the same shard again: counted as walked, its keys were
        // never reported (or only some of them), and after shutdown enough
        // calls ended the walk as if it had seen every key.
        try {
            snapshot_shard(store_->core(), shard_, device_, batch_);
        } catch (...) {
            batch_.clear();
            throw;
        }
        ++shard_;
    }
    return &batch_[pos_++];
}

} // namespace daxkv
