// Where entries live: slot locations, device layouts, and the key cursor.
#include <cerrno>
#include <mutex>

#include "internal/error.hpp"
#include "store/store.hpp"

namespace daxkv {

namespace {

SlotLocation location_of(const DeviceSlot &d, const SlotRef &r, uint64_t slot_bytes) {
    SlotLocation loc;
    loc.device_id = d.id;
    loc.slot = r.slot;
    loc.generation = r.gen;
    loc.offset = uint64_t(r.slot) * slot_bytes;
    loc.payload_base = d.arena->slot_data(0);
    return loc;
}

} // namespace

// A lease keeps its slot, and so its device's mapping, in place; a
// reservation holds its slot until commit or abort.
SlotLocation Store::locate(const LeaseState &l) const {
    return location_of(arenas_[l.ref.arena], l.ref, cfg_.slot_bytes);
}

SlotLocation Store::locate(const ReservationState &r) const {
    if (!r.inflight)
        fail(-EINVAL, "the reservation holds no slot");
    return location_of(arenas_[r.inflight->ref.arena], r.inflight->ref, cfg_.slot_bytes);
}

DeviceLayout Store::device_layout(const std::string &path) {
    OpGuard op(*this);
    const uint32_t a = static_cast<uint32_t>(find_device(path));
    // A removal unmaps under pool_m_; hold it shared while reading the arena.
    std::shared_lock<std::shared_mutex> pool(pool_m_);
    const DeviceSlot &d = arenas_[a];
    DeviceLayout out;
    out.device_id = d.id;
    out.index = a;
    out.state = static_cast<int>(d.state.load(std::memory_order_acquire));
    out.slot_bytes = cfg_.slot_bytes;
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

void Store::snapshot_shard(size_t i, int device, std::vector<KeyRecord> &out) {
    OpGuard op(*this);
    Shard &sh = shards_[i];
    std::lock_guard<std::mutex> g(sh.m);
    for (const auto &kv : sh.map) {
        const Entry *e = kv.second.get();
        if (!e->committed || (device >= 0 && e->ref.arena != static_cast<uint32_t>(device)))
            continue;
        // The entry is committed under this lock, so its device is mapped:
        // a removal takes entries out of the index before it unmaps.
        const DeviceSlot &d = arenas_[e->ref.arena];
        KeyRecord r;
        r.key = e->key;
        r.meta.assign(d.arena->header_meta(e->ref.slot), e->meta_len);
        r.value_len = e->value_len;
        r.seq = e->seq;
        r.device_id = d.id;
        r.slot = e->ref.slot;
        r.generation = e->ref.gen;
        r.pins = e->pins;
        r.leases = d.slots[e->ref.slot].leases;
        out.push_back(std::move(r));
    }
}

std::unique_ptr<KeyCursor> Store::key_cursor(int device) {
    OpGuard op(*this); // -ESHUTDOWN once the store is shut down
    return std::make_unique<KeyCursor>(shared_from_this(), device);
}

KeyCursor::KeyCursor(std::shared_ptr<Store> store, int device)
    : store_(std::move(store)), device_(device) {}

const KeyRecord *KeyCursor::next() {
    while (pos_ == batch_.size()) {
        if (shard_ == Store::shard_count())
            return nullptr;
        batch_.clear();
        pos_ = 0;
        store_->snapshot_shard(shard_++, device_, batch_);
    }
    return &batch_[pos_++];
}

} // namespace daxkv
