// Runtime changes of the pool: add, remove (migrate, evict, drain) and
// resize, after LMCache's MP DAX adapter (reference §5), with what it lacks:
//
// - Copies run with no pool-wide lock held. hotplug_m_ only keeps two
//   runtime changes apart; the data path never takes it. Each entry is
//   claimed and switched under its own shard lock, as a put would be.
// - A migration is all or nothing. Phase 1 copies every entry into a slot
//   of another device with the commit word left at 0 (invisible to recovery
//   and to readers, who keep reading the source). When the destinations run
//   out of room, those slots are simply freed: the source was never touched
//   and a retry starts over. Phase 2 switches each entry under its shard
//   lock: commit the copy, point the index at it, withdraw the source. The
//   copy carries a newer sequence number than the source, so a crash between
//   the two leaves two commits of the key and recovery keeps the copy (the
//   newest), withdrawing the other. An entry that was replaced or removed
//   while it was copied is not switched: its copy is dropped, never
//   committed, so a crash cannot bring a removed key back.
// - Pins move with the entry (they belong to the key); a slot still leased
//   is freed when its last lease goes, and removal waits for that before it
//   unmaps the device.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>

#include "internal/error.hpp"
#include "internal/util.hpp"
#include "store/store.hpp"

namespace daxkv {

struct Store::MoveStats {
    uint64_t moved_keys = 0, moved_bytes = 0, deleted_keys = 0, freed = 0;
    uint64_t evicted_keys = 0; // destinations' entries evicted to make room
};

struct Store::Move {
    std::string key;
    uint64_t hash = 0;
    SlotRef src, dst;
    uint64_t src_seq = 0, seq = 0, len = 0;
};

namespace {

// Entries, and value bytes, claimed and copied per round of phase 1: bounds
// each copy batch handed to the shared engine, so that the puts and gets
// queued behind it wait for one round, not for the migration.
constexpr size_t kMoveChunk = 64;

// Runs an undo step when a change fails, however it fails (an error
// returned or an exception): a device is never left migrating, resizing or
// gating leases by a failure. Dismissed once the change holds.
class Undo {
public:
    explicit Undo(std::function<void()> f) : f_(std::move(f)) {}
    ~Undo() {
        if (f_)
            f_();
    }
    void dismiss() noexcept { f_ = nullptr; }
    Undo(const Undo &) = delete;
    Undo &operator=(const Undo &) = delete;

private:
    std::function<void()> f_;
};
constexpr uint64_t kMoveChunkBytes = 16ull << 20;

void fill_result(daxkv_hotplug_result *out, DevState st, uint32_t index, uint64_t old_bytes,
                 uint64_t new_bytes, const Store::MoveStats &ms = Store::MoveStats()) {
    if (!out)
        return;
    uint32_t size = out->struct_size;
    daxkv_hotplug_result r{};
    r.struct_size = size;
    r.state = static_cast<uint32_t>(st);
    r.device_index = static_cast<int32_t>(index);
    r.moved_keys = ms.moved_keys;
    r.moved_bytes = ms.moved_bytes;
    r.deleted_keys = ms.deleted_keys;
    r.source_slots_freed = ms.freed;
    r.old_size_bytes = old_bytes;
    r.new_size_bytes = new_bytes;
    r.evicted_keys = ms.evicted_keys;
    std::memcpy(out, &r, std::min<size_t>(size, sizeof r));
    out->struct_size = size;
}

} // namespace

void Store::check_hotplug(const char *what) const {
    if (!cfg_.hotplug)
        fail(-EPERM, "%s: DAX hotplug is disabled (open the store with hotplug=1)", what);
}

// The pool row of path among devices not yet removed, -ENOENT if none. The
// messages never name the path (it may come from an untrusted request).
int Store::find_device(const std::string &path) const {
    int found = -ENOENT, matches = 0;
    for (uint32_t a = 0; a < arenas_.size(); ++a) {
        if (arenas_[a].state.load() == DevState::removed || arenas_[a].path != path)
            continue;
        found = static_cast<int>(a);
        ++matches;
    }
    if (matches > 1)
        fail(-EBUSY, "%d devices of the pool have this path (\"mem:\" devices cannot be "
                     "told apart)", matches);
    if (found < 0)
        fail(-ENOENT, "no such device in the pool");
    return found;
}

// Keys of the committed entries on device a at slot from_slot or above.
// *blocked: one of them is pinned or leased (a get copying out of a slot is
// not: it ends on its own).
std::vector<std::string> Store::keys_on(uint32_t a, uint32_t from_slot, bool *blocked) {
    std::vector<std::string> keys;
    bool any = false;
    for (size_t i = 0; i < kShards; ++i) {
        Shard &sh = shards_[i];
        std::lock_guard<std::mutex> g(sh.m);
        for (const auto &kv : sh.map) {
            const Entry *e = kv.second.get();
            if (!e->committed || e->ref.arena != a || e->ref.slot < from_slot)
                continue;
            any = any || e->pins > 0 || slot_state(e->ref).leases > 0;
            keys.push_back(e->key);
        }
    }
    if (blocked)
        *blocked = any;
    return keys;
}

// Move the entries of keys that still lie on src (at or above the device's
// limit when same_device) to writable devices, all or nothing: 0, or
// -ENOSPC with every copy dropped and the source untouched.
int Store::migrate_keys(uint32_t src, const std::vector<std::string> &keys, bool same_device,
                        MoveStats &ms) {
    if (keys.empty())
        return 0;
    std::vector<uint32_t> targets;
    uint64_t room = 0;
    for (uint32_t a = 0; a < arenas_.size(); ++a) {
        bool self = same_device && a == src;
        if (!self && (a == src || !dev_writable(arenas_[a].state.load())))
            continue;
        targets.push_back(a);
        room += arenas_[a].alloc->free_count();
    }
    if (targets.empty())
        return set_error(-ENOSPC, "no writable destination device to migrate %zu entries to",
                         keys.size());
    if (cfg_.eviction == Eviction::none && room < keys.size())
        return set_error(-ENOSPC,
                         "insufficient destination capacity: %zu entries to move, %llu free "
                         "slots on the destinations; nothing was moved",
                         keys.size(), static_cast<unsigned long long>(room));

    std::vector<Move> moves;
    moves.reserve(keys.size());
    // Undo phase 1 for every claimed entry: free the copy's slot, drop the
    // borrow of the source. Nothing was committed, so nothing else to undo.
    auto drop = [&](Move &mv) noexcept {
        Shard &sh = shard_of(mv.hash);
        std::lock_guard<std::mutex> g(sh.m);
        c_.inflight--;
        free_slot(mv.dst);
        SlotState &st = slot_state(mv.src);
        if (--st.borrows == 0 && st.status == SlotStatus::pending_free) {
            c_.pending_free--;
            free_slot(mv.src);
        }
    };
    auto rollback = [&] {
        for (auto &mv : moves)
            drop(mv);
        moves.clear();
    };

    size_t next = 0;
    try {
        while (next < keys.size()) {
            size_t first = moves.size();
            uint64_t chunk_bytes = 0;
            for (size_t n = 0; next < keys.size() && n < kMoveChunk && chunk_bytes < kMoveChunkBytes;
                 ++next, ++n) {
                const std::string &k = keys[next];
                Move mv;
                mv.hash = hash_bytes(k.data(), k.size());
                // A destination slot first, with no lock held: making room
                // evicts (eviction=lru), which takes shard locks.
                uint32_t slot = UINT32_MAX, dev = UINT32_MAX;
                for (int attempt = 0; slot == UINT32_MAX; ++attempt) {
                    std::vector<std::pair<double, uint32_t>> order; // least used first
                    for (uint32_t t : targets) {
                        uint32_t total = arenas_[t].alloc->slots();
                        if (total)
                            order.emplace_back(
                                1.0 - double(arenas_[t].alloc->free_count()) / total, t);
                    }
                    std::sort(order.begin(), order.end());
                    for (const auto &o : order) {
                        slot = arenas_[o.second].alloc->allocate();
                        if (slot != UINT32_MAX) {
                            dev = o.second;
                            break;
                        }
                    }
                    if (slot != UINT32_MAX)
                        break;
                    if (cfg_.eviction == Eviction::none || attempt >= 1024 || !evict_one())
                        throw Error(-ENOSPC, "insufficient destination capacity: the "
                                             "destinations are full and nothing is evictable; "
                                             "nothing was moved");
                    ms.evicted_keys++;
                }
                Shard &sh = shard_of(mv.hash);
                std::lock_guard<std::mutex> g(sh.m);
                Entry *e = find(sh, k, mv.hash);
                if (!e || !e->committed || e->ref.arena != src ||
                    (same_device && e->ref.slot < arenas_[src].alloc->slots())) {
                    // Removed, replaced or evicted since the snapshot.
                    arenas_[dev].alloc->release(slot);
                    continue;
                }
                SlotState &dst = arenas_[dev].slots[slot];
                dst.generation++;
                dst.status = SlotStatus::inflight;
                dst.borrows = 0;
                c_.inflight++;
                slot_state(e->ref).borrows++; // the source stays put while it is copied
                mv.key = k;
                mv.src = e->ref;
                mv.src_seq = e->seq;
                mv.dst = SlotRef{dev, slot, dst.generation};
                mv.len = e->value_len;
                mv.seq = next_seq();
                chunk_bytes += mv.len;
                moves.push_back(std::move(mv));
            }
            // Copy this chunk with no lock held: value, then header body
            // (commit word 0), then write-back for durability=power. The
            // source is read as a get reads it: under the SIGBUS guard
            // (sigbus=handle), every copy's result looked at.
            std::vector<engine::CopyOp> ops;
            for (size_t i = first; i < moves.size(); ++i) {
                const Move &mv = moves[i];
                engine::CopyOp op;
                op.dst = arenas_[mv.dst.arena].arena->slot_data(mv.dst.slot);
                op.src = arenas_[mv.src.arena].arena->slot_data(mv.src.slot);
                op.len = mv.len;
                op.nontemporal = streams(mv.len);
                op.guard_source = cfg_.sigbus_handle;
                ops.push_back(op);
            }
            std::vector<int> copy_rc(ops.size(), 0);
            engine_->run(ops.data(), ops.size(), copy_rc.data());
            for (size_t k = 0; k < ops.size(); ++k) {
                if (copy_rc[k] != 0 && copy_rc[k] != engine::kMediaFault)
                    throw Error(-EIO, format("copying an entry to its new device failed (%d); "
                                             "nothing was moved", copy_rc[k]));
            }
            // A source that faulted cannot be read by anyone: its entry is
            // dropped and its slot quarantined, as a get would; the copy goes.
            for (size_t k = ops.size(); k-- > 0;) {
                if (copy_rc[k] == 0)
                    continue;
                Move &mv = moves[first + k];
                Borrow b;
                b.shard = shard_index(mv.hash);
                b.ref = mv.src;
                quarantine(b, true); // ends the move's borrow of the source
                {
                    std::lock_guard<std::mutex> g(shard_of(mv.hash).m);
                    c_.inflight--;
                    free_slot(mv.dst);
                }
                moves.erase(moves.begin() + static_cast<std::ptrdiff_t>(first + k));
            }
            for (size_t i = first; i < moves.size(); ++i) {
                const Move &mv = moves[i];
                const arena::Arena &from = *arenas_[mv.src.arena].arena;
                arena::Arena &to = *arenas_[mv.dst.arena].arena;
                const arena::SlotHeader *h = from.header(mv.src.slot);
                // The source header is stable: committed and borrowed.
                to.write_body(mv.dst.slot, mv.seq, mv.dst.gen, from.header_key(mv.src.slot),
                              h->key_len, from.header_meta(mv.src.slot), h->meta_len, mv.len,
                              h->value_hash, (h->flags & arena::kHdrValueHashed) != 0);
                to.persist_entry(mv.dst.slot, mv.len);
            }
        }
    } catch (const Error &e) {
        rollback();
        return set_error(e.code(), "%s", e.what());
    } catch (...) {
        rollback();
        throw;
    }
    if (hotplug_hook_)
        hotplug_hook_(1);

    // Phase 2: switch each entry that is still the one copied.
    for (auto &mv : moves) {
        Shard &sh = shard_of(mv.hash);
        std::unique_lock<std::mutex> g(sh.m);
        Entry *e = find(sh, mv.key, mv.hash);
        if (!e || !e->committed || e->seq != mv.src_seq || e->ref.arena != mv.src.arena ||
            e->ref.slot != mv.src.slot || e->ref.gen != mv.src.gen) {
            g.unlock();
            drop(mv); // replaced or removed meanwhile: the copy never becomes visible
            continue;
        }
        arenas_[mv.dst.arena].arena->commit(mv.dst.slot, mv.seq);
        slot_state(mv.dst).status = SlotStatus::committed;
        arenas_[mv.src.arena].arena->withdraw(mv.src.slot);
        SlotState &st = slot_state(mv.src);
        if (--st.borrows > 0) {
            st.status = SlotStatus::pending_free; // leased: freed by the last release
            c_.pending_free++;
        } else {
            free_slot(mv.src);
        }
        e->ref = mv.dst;
        e->seq = mv.seq;
        c_.inflight--;
        ms.moved_keys++;
        ms.moved_bytes += mv.len;
        ms.freed++;
    }
    if (hotplug_hook_)
        hotplug_hook_(2);
    return 0;
}

// Delete the entries of keys that still lie on src. Without force a pinned
// or leased one stops it with -EBUSY (the ones before it are gone: they
// were plain cache entries the caller asked to drop).
int Store::evict_keys(uint32_t src, const std::vector<std::string> &keys, bool force,
                      MoveStats &ms) {
    for (const auto &k : keys) {
        uint64_t h = hash_bytes(k.data(), k.size());
        Shard &sh = shard_of(h);
        std::lock_guard<std::mutex> g(sh.m);
        Entry *e = find(sh, k, h);
        if (!e || !e->committed || e->ref.arena != src)
            continue;
        if (arenas_[src].state.load() == DevState::resizing &&
            e->ref.slot < arenas_[src].alloc->slots())
            continue; // below the new end: stays
        if (!force && (e->pins || slot_state(e->ref).leases))
            return set_error(-EBUSY, "an entry of the device was pinned or leased during the "
                                     "eviction; use DAXKV_FORCE");
        record_removal(h);
        retire_committed(sh, e);
        erase_if_empty(sh, e);
        c_.evictions++;
        ms.deleted_keys++;
        ms.freed++;
    }
    return 0;
}

// Move (or evict) what is left on device a at from_slot and above, and wait
// until every slot there is free: writes that were in flight when the device
// stopped taking new ones, and slots still leased. Returns false with *rc
// set when moving fails.
bool Store::wait_until_empty(uint32_t a, uint32_t from_slot, bool migrate, bool force,
                             bool same_device, MoveStats &ms, int *rc) {
    DeviceSlot &d = arenas_[a];
    for (;;) {
        if (shutting_.load()) {
            // Leases and writes of callers may never end: shutdown does not
            // wait for them, so neither does this call.
            *rc = set_error(-ESHUTDOWN, "the store was shut down while the device waited to "
                                        "empty; it is left as it was");
            return false;
        }
        // A reservation is held by its caller for as long as it likes (from
        // this very thread, maybe): never waited for. Without force one is
        // -EBUSY; with force it is detached (its commit fails -ECANCELED).
        if (size_t open = reservations_on(a, from_slot, force)) {
            if (!force) {
                *rc = set_error(-EBUSY, "%zu reservation(s) of the device were opened meanwhile; "
                                        "commit or abort them, or use DAXKV_FORCE", open);
                return false;
            }
        }
        // Quarantined slots (a failed checksum) stay taken and hold nothing,
        // and so do the slots of detached reservations until their callers
        // end them. Above a shrink's end they are counted wherever they lie,
        // which can only end the wait early for a lease: harmless, as a
        // shrink does not unmap; a removal (from_slot 0) counts exactly.
        if (d.alloc->used_from(from_slot) <= d.quarantined.load() + d.detached.load())
            return true;
        std::vector<std::string> keys = keys_on(a, from_slot, nullptr);
        if (!keys.empty()) {
            *rc = migrate ? migrate_keys(a, keys, same_device, ms)
                          : evict_keys(a, keys, force, ms);
            if (*rc)
                return false;
            continue;
        }
        std::unique_lock<std::mutex> g(ev_m_);
        ev_cv_.wait_for(g, std::chrono::milliseconds(20));
    }
}

size_t Store::reservations_on(uint32_t a, uint32_t from_slot, bool cancel) {
    std::lock_guard<std::mutex> g(resv_m_);
    size_t n = 0;
    for (ReservationState *r : reservations_) {
        Inflight &inf = *r->inflight;
        if (inf.ref.arena != a || inf.ref.slot < from_slot)
            continue;
        uint8_t held = Inflight::kHeld;
        if (!cancel) {
            n += inf.phase.load() == held;
            continue;
        }
        if (!inf.phase.compare_exchange_strong(held, Inflight::kDetached))
            continue; // its commit has begun: waited for like any write
        ++n;
        Shard &sh = shards_[r->shard];
        std::lock_guard<std::mutex> sg(sh.m);
        if (!inf.canceled) {
            // The key is no longer in flight: contains, put and remove see
            // what is committed, as after an abort.
            Entry *e = find(sh, r->key, r->hash);
            if (e && e->inflight == &inf) {
                e->inflight = nullptr;
                erase_if_empty(sh, e);
            }
            inf.canceled = true;
        }
        arenas_[a].detached++;
    }
    return n;
}

// Bring the entries of an arena that already holds some (a device added at
// run time) into the index, by the rule recovery at open follows: for a key
// held twice (by the pool and the device, or twice by the device: a crash
// mid-replace), the newest commit wins and the other is withdrawn; an entry
// removed while the device was away (pool history) is withdrawn.
void Store::adopt(uint32_t a, uint64_t floor) {
    DeviceSlot &d = arenas_[a];
    arena::RecoveryCounts counts;
    std::vector<arena::RecoveredEntry> found = d.arena->scan(counts);
    uint64_t adopted = 0, stale = 0, removed = 0, top = 0;
    for (const auto &r : found)
        top = std::max(top, r.seq);
    // Later commits must be newer than anything on the device.
    raise_seq_floor(top);
    for (const auto &r : found) {
        std::string_view key(r.key, r.key_len);
        uint64_t h = hash_bytes(key.data(), key.size());
        Shard &sh = shard_of(h);
        std::lock_guard<std::mutex> g(sh.m);
        if (keeps_history() && removed_while_away(h, r.seq, floor)) {
            d.arena->withdraw(r.slot);
            ++removed;
            continue;
        }
        Entry *e = find(sh, key, h);
        uint32_t pins = 0;
        if (e && e->committed) {
            if (e->seq >= r.seq) {
                d.arena->withdraw(r.slot);
                ++stale;
                continue;
            }
            // The pool's entry is the older one: it goes, as after a
            // replace; pins belong to the key and stay.
            pins = e->pins;
            retire_committed(sh, e);
            ++stale;
        } else if (!e) {
            auto owned = std::make_unique<Entry>();
            owned->key.assign(key);
            owned->hash = h;
            e = owned.get();
            sh.map.emplace(KeyRef{e->key, h}, std::move(owned));
        }
        d.alloc->take(r.slot);
        SlotState &st = d.slots[r.slot];
        st.generation = r.generation;
        st.status = SlotStatus::committed;
        e->committed = true;
        e->ref = SlotRef{a, r.slot, r.generation};
        e->value_len = r.value_len;
        e->meta_len = r.meta_len;
        e->seq = r.seq;
        e->pins = pins;
        if (pins)
            c_.pinned++;
        lru_push_back(sh, e);
        c_.entries++;
        ++adopted;
    }
    if (adopted || stale || removed || counts.torn || counts.corrupt)
        log(DAXKV_LOG_INFO,
            "device %u: %llu entries recovered, %llu stale (a newer commit of the key won), "
            "%llu removed while the device was away, %llu torn, %llu corrupt",
            d.id, static_cast<unsigned long long>(adopted),
            static_cast<unsigned long long>(stale), static_cast<unsigned long long>(removed),
            static_cast<unsigned long long>(counts.torn),
            static_cast<unsigned long long>(counts.corrupt));
}

// ---------------------------------------------------------------------------

int Store::device_add(const std::string &path, uint64_t bytes) {
    if (path.empty())
        return set_error(-EINVAL, "device path is empty");
    if (path.size() > 4096)
        return set_error(-EINVAL, "device path is longer than 4096 bytes");
    if (bytes != 0 && bytes / cfg_.slot_bytes == 0)
        return set_error(-EINVAL, "size of %llu bytes does not fit one slot of %llu bytes",
                         static_cast<unsigned long long>(bytes),
                         static_cast<unsigned long long>(cfg_.slot_bytes));
    check_hotplug("add");
    OpGuard op(*this);
    std::lock_guard<std::mutex> hp(hotplug_m_);
    // A path that left the pool (removed, or missing at open) comes back in
    // its old row: a path added and removed again and again does not use up
    // the table. Not a row that detached reservations still free slots of.
    int old_row = -1;
    for (uint32_t a = 0; a < arenas_.size(); ++a) {
        const DeviceSlot &d = arenas_[a];
        DevState st = d.state.load();
        if (d.path != path || path == "mem:")
            continue;
        if (st == DevState::removed || st == DevState::missing) {
            // The row a missing device was configured in comes first.
            if (d.detached.load() == 0 &&
                (old_row < 0 || arenas_[old_row].state.load() != DevState::missing))
                old_row = static_cast<int>(a);
            continue;
        }
        if (d.bytes == bytes)
            return 0; // already there, same size: nothing to do (LMCache: 200 ok)
        return set_error(-EBUSY, "the device is already in the pool with a different size");
    }
    DeviceSlot *row = old_row >= 0 ? &arenas_[old_row] : arenas_.next_row();
    if (!row)
        return set_error(-ENOSPC, "the pool already holds its maximum of %u devices "
                                  "(removed ones included)", kMaxDevices);
    const uint32_t a = old_row >= 0 ? static_cast<uint32_t>(old_row) : arenas_.size();
    // Mapped into a row of its own first: a failure leaves the table (and an
    // old row, still a tombstone) as it was.
    DeviceSlot fresh;
    try {
        make_arena(fresh, DeviceSpec{path, bytes});
    } catch (const Error &e) {
        // The cause names the path: log it, return a message without it.
        log(DAXKV_LOG_ERR, "device add of %s failed: %s", path.c_str(), e.what());
        return set_error(e.code(), "failed to map the device (%s; the cause is logged)",
                         daxkv_strerror(e.code()));
    }
    {
        // Readers of every row (status, stats) are kept out while it changes.
        std::unique_lock<std::shared_mutex> g(pool_m_);
        row->arena = std::move(fresh.arena);
        row->alloc = std::move(fresh.alloc);
        row->slots = std::move(fresh.slots);
        row->numa_node = fresh.numa_node;
        row->missing_reason.clear();
        if (old_row < 0)
            row->path = path; // an old row has it already (read without a lock)
        row->bytes = bytes;
        row->id = next_device_id_++;
    }
    row->drained.store(false);
    row->lease_gate.store(false);
    row->quarantined.store(0);
    // Pool history: the device's floor as it was (what it saw of the pool),
    // and its removal table taken into the pool's.
    uint64_t floor = 0;
    const bool history = keeps_history() && !row->arena->mapping().volatile_memory();
    if (history) {
        floor = row->arena->seq_floor();
        uint64_t top = floor;
        for (uint32_t b = 0; b < arena::kRemovalBuckets; ++b) {
            const uint64_t r = row->arena->removal(b);
            uint64_t cur = removals_[b].load();
            while (cur < r && !removals_[b].compare_exchange_weak(cur, r)) {
            }
            top = std::max(top, r);
        }
        raise_seq_floor(top);
    }
    adopt(a, floor);
    row->arena->keep();
    // Only now does it take new entries (an old row is visible already).
    row->state.store(DevState::active);
    if (old_row < 0)
        arenas_.publish();
    if (publisher_) {
        publisher_->name_device(path); // without a name, daxkv stats finds the store by another
        publisher_->publish_now();
    }
    if (history) {
        // From here every floor raise reaches the device too; this one
        // covers those made before it was in the table.
        {
            std::lock_guard<std::mutex> g(seq_m_);
            row->arena->set_seq_floor(seq_limit_.load());
        }
        std::shared_lock<std::shared_mutex> pool(pool_m_);
        for (uint32_t i = 0; i < arenas_.size(); ++i)
            share_history(i);
    }
    // If the arenas are registered with CUDA, register the new one too, so
    // that GPU transfers of its entries copy directly as well.
    change_pool_registered([] {});
    log(DAXKV_LOG_INFO, "device %u (%s) added: %u slots", row->id, path.c_str(),
        row->alloc->slots());
    return 0;
}

int Store::device_remove(const std::string &path, int mode, unsigned flags,
                         daxkv_hotplug_result *out) {
    if (mode != DAXKV_MIGRATE && mode != DAXKV_EVICT && mode != DAXKV_DRAIN)
        return set_error(-EINVAL, "remove: mode %d is not DAXKV_MIGRATE, DAXKV_EVICT or "
                                  "DAXKV_DRAIN", mode);
    if (flags & ~unsigned(DAXKV_FORCE))
        return set_error(-EINVAL, "remove: unknown flags 0x%x", flags);
    if (out && out->struct_size < sizeof(uint32_t) * 2)
        return set_error(-EINVAL, "result struct_size %u is too small", out->struct_size);
    check_hotplug("remove");
    OpGuard op(*this);
    std::lock_guard<std::mutex> hp(hotplug_m_);
    const uint32_t a = static_cast<uint32_t>(find_device(path));
    DeviceSlot &d = arenas_[a];
    const bool force = flags & DAXKV_FORCE;
    const DevState old_state = d.state.load();
    const uint64_t old_bytes = usable_bytes(a);
    MoveStats ms;

    if (old_state == DevState::missing) {
        d.state.store(DevState::removed); // nothing mapped: only the tombstone stays
        fill_result(out, DevState::removed, a, 0, 0);
        return 0;
    }
    if (mode == DAXKV_DRAIN) {
        d.state.store(DevState::draining);
        note_slot_freed(a); // already empty: drained at once
        fill_result(out, DevState::draining, a, old_bytes, old_bytes);
        return 0;
    }

    bool blocked = false;
    std::vector<std::string> keys = keys_on(a, 0, &blocked);
    if (blocked && !force)
        return set_error(-EBUSY, "the device has pinned or leased entries; use DAXKV_FORCE "
                                 "(it then waits for the leases)");
    if (size_t open = force ? 0 : reservations_on(a, 0, false))
        return set_error(-EBUSY, "%zu reservation(s) of the device are open: commit or abort "
                                 "them, or use DAXKV_FORCE (their commits then fail with "
                                 "-ECANCELED)", open);
    if (mode == DAXKV_MIGRATE) {
        bool dest = false;
        for (uint32_t t = 0; t < arenas_.size(); ++t)
            dest = dest || (t != a && dev_writable(arenas_[t].state.load()));
        if (!dest && !keys.empty())
            return set_error(-ENOSPC, "no other writable device to migrate %zu entries to",
                             keys.size());
    }
    d.state.store(mode == DAXKV_MIGRATE ? DevState::migrating : DevState::removing);
    Undo restore([&] { d.state.store(old_state); });
    int rc = mode == DAXKV_MIGRATE ? migrate_keys(a, keys, false, ms)
                                   : evict_keys(a, keys, force, ms);
    if (rc == 0)
        wait_until_empty(a, 0, mode == DAXKV_MIGRATE, force, false, ms, &rc);
    if (rc != 0)
        return rc;
    restore.dismiss();
    d.state.store(DevState::removing);
    change_pool_registered([&] {
        // Nothing refers to the device any more (no entries, no borrows):
        // readers of every device's arena (status) are kept out while it goes.
        std::unique_lock<std::shared_mutex> g(pool_m_);
        d.alloc->set_limit(0);
        d.state.store(DevState::removed);
        d.arena.reset();
    });
    if (publisher_) {
        publisher_->unname_device(d.path);
        publisher_->publish_now();
    }
    log(DAXKV_LOG_INFO, "device %u (%s) removed: %llu entries moved, %llu deleted", d.id,
        d.path.c_str(), static_cast<unsigned long long>(ms.moved_keys),
        static_cast<unsigned long long>(ms.deleted_keys));
    fill_result(out, DevState::removed, a, old_bytes, 0, ms);
    return 0;
}

int Store::device_resize(const std::string &path, uint64_t bytes, int mode, unsigned flags,
                         daxkv_hotplug_result *out) {
    if (mode != DAXKV_MIGRATE && mode != DAXKV_EVICT)
        return set_error(-EINVAL, "resize: mode %d is not DAXKV_MIGRATE or DAXKV_EVICT (a "
                                  "resize completes before it returns: no drain)", mode);
    if (flags & ~unsigned(DAXKV_FORCE))
        return set_error(-EINVAL, "resize: unknown flags 0x%x", flags);
    if (out && out->struct_size < sizeof(uint32_t) * 2)
        return set_error(-EINVAL, "result struct_size %u is too small", out->struct_size);
    const uint64_t want = bytes / cfg_.slot_bytes;
    if (want == 0)
        return set_error(-EINVAL, "size of %llu bytes does not fit one slot of %llu bytes",
                         static_cast<unsigned long long>(bytes),
                         static_cast<unsigned long long>(cfg_.slot_bytes));
    check_hotplug("resize");
    OpGuard op(*this);
    std::lock_guard<std::mutex> hp(hotplug_m_);
    const uint32_t a = static_cast<uint32_t>(find_device(path));
    DeviceSlot &d = arenas_[a];
    const DevState old_state = d.state.load();
    if (old_state != DevState::active && old_state != DevState::draining)
        return set_error(-EBUSY, "the device is %s; only an active or draining device can be "
                                 "resized", dev_state_name(old_state));
    const bool force = flags & DAXKV_FORCE;
    const uint32_t formatted = d.alloc->formatted();
    const uint64_t arena_bytes = d.arena->layout().arena_bytes;
    // The size counts slots as LMCache does (bytes / slot_bytes). With
    // capacity=arena the slot headers make the arena hold a little less, so
    // up to the arena's own size means "all of it"; with capacity=payload
    // the headers are on top and every slot asked for must be laid out.
    if (cfg_.capacity == Capacity::payload ? want > formatted : bytes > arena_bytes)
        return set_error(-ENOSPC,
                         "the arena is laid out for %llu bytes (%u slots) and cannot grow past "
                         "them; a larger grow_limit when it is formatted leaves more room",
                         static_cast<unsigned long long>(arena_bytes), formatted);
    const uint32_t new_limit = static_cast<uint32_t>(std::min<uint64_t>(want, formatted));
    const uint32_t old_limit = d.alloc->slots();
    const uint64_t old_bytes = usable_bytes(a);
    MoveStats ms;
    if (new_limit == old_limit) {
        fill_result(out, old_state, a, old_bytes, old_bytes);
        return 0;
    }
    if (new_limit > old_limit) {
        // Grow: every entry stays where it is. The arena records the new
        // size (a file arena gets the blocks first) before the allocator
        // hands out the new slots, so a crash never leaves entries beyond
        // the recorded end.
        const uint64_t backed = d.arena->mapping().backed();
        try {
            d.arena->set_usable_slots(new_limit);
        } catch (const Error &e) {
            log(DAXKV_LOG_ERR, "device %u (%s): growing to %u slots failed: %s", d.id,
                d.path.c_str(), new_limit, e.what());
            return set_error(e.code(), "the device could not grow to %u slots (%s; the cause "
                                       "is logged); it keeps its %u slots",
                             new_limit, daxkv_strerror(e.code()), old_limit);
        }
        // A file arena that got new blocks: a CUDA registration (of what
        // existed) is redone to cover them. Nothing was unmapped, so the old
        // registration stayed valid meanwhile.
        if (d.arena->mapping().backed() != backed)
            change_pool_registered([] {});
        d.alloc->set_limit(new_limit);
        fill_result(out, old_state, a, old_bytes, usable_bytes(a));
        return 0;
    }
    bool blocked = false;
    std::vector<std::string> keys = keys_on(a, new_limit, &blocked);
    if (blocked && !force)
        return set_error(-EBUSY, "entries above the new end are pinned or leased; use "
                                 "DAXKV_FORCE (it then waits for the leases)");
    if (size_t open = force ? 0 : reservations_on(a, new_limit, false))
        return set_error(-EBUSY, "%zu reservation(s) above the new end are open: commit or "
                                 "abort them, or use DAXKV_FORCE (their commits then fail with "
                                 "-ECANCELED)", open);
    if (mode == DAXKV_EVICT && !force && !keys.empty())
        return set_error(-EBUSY, "the shrink would drop %zu live entries; use DAXKV_MIGRATE, "
                                 "or DAXKV_EVICT with DAXKV_FORCE", keys.size());
    d.state.store(DevState::resizing);
    d.alloc->set_limit(new_limit); // no new slot above the end from here on
    Undo restore([&] {
        d.alloc->set_limit(old_limit);
        d.state.store(old_state);
    });
    int rc = mode == DAXKV_MIGRATE ? migrate_keys(a, keys, true, ms)
                                   : evict_keys(a, keys, force, ms);
    if (rc == 0) {
        // New leases of the device wait while the old ones above the end
        // are waited for, so a stream of new leases cannot starve the resize.
        d.lease_gate.store(true, std::memory_order_release);
        Undo ungate([&] {
            std::lock_guard<std::mutex> g(ev_m_);
            d.lease_gate.store(false, std::memory_order_release);
            ev_cv_.notify_all();
        });
        wait_until_empty(a, new_limit, mode == DAXKV_MIGRATE, force, true, ms, &rc);
    }
    if (rc == 0) {
        // Nothing lives above the new end any more: record the size, so
        // that a reopen keeps it.
        try {
            d.arena->set_usable_slots(new_limit);
        } catch (const Error &e) {
            rc = set_error(e.code(), "recording the new size failed: %s", e.what());
        }
    }
    if (rc != 0)
        return rc;
    restore.dismiss();
    d.state.store(old_state);
    if (old_state == DevState::draining)
        note_slot_freed(a);
    fill_result(out, old_state, a, old_bytes, usable_bytes(a), ms);
    return 0;
}

int Store::device_wait_drained(const std::string &path, int timeout_ms) {
    // A call in flight like any other: shutdown wakes it (-ESHUTDOWN) and
    // waits for it, so that the store is never freed under it.
    OpGuard op(*this);
    // No hotplug_m_: a removal can hold it for long, and a published row's
    // path never changes.
    const uint32_t a = static_cast<uint32_t>(find_device(path));
    DeviceSlot &d = arenas_[a];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::unique_lock<std::mutex> g(ev_m_);
    for (;;) {
        if (d.state.load() != DevState::draining)
            return set_error(-EINVAL, "the device is %s, not draining",
                             dev_state_name(d.state.load()));
        if (d.drained.load())
            return 0;
        if (shutting_.load())
            return set_error(-ESHUTDOWN, "the store is shut down");
        auto slice = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
        if (timeout_ms >= 0) {
            if (std::chrono::steady_clock::now() >= deadline)
                return set_error(-ETIMEDOUT, "the device still holds %u slots",
                                 d.alloc->used());
            slice = std::min(slice, deadline);
        }
        ev_cv_.wait_until(g, slice);
    }
}

} // namespace daxkv
