// Emptying (part of) a device: migrating its entries to other devices (or
// to lower slots of the same one), evicting them, and waiting until every
// slot there is free.
//
// - Copies run with no pool-wide lock held. Each entry is claimed and
//   switched under its own shard lock, as a put would be.
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
#include <deque>
#include <functional>
#include <thread>

#include "store/hotplug.hpp"
#include "internal/undo.hpp"

namespace daxkv {

struct Hotplug::Move {
    std::string key;
    uint64_t hash = 0;
    SlotRef src, dst;
    uint64_t src_seq = 0, seq = 0, len = 0;
    uint32_t meta_len = 0;
    // Writing the copy faulted (SIGBUS, sigbus=handle): its slot is
    // quarantined when the move is dropped.
    bool dst_faulted = false;
};

namespace {

// Entries, and value bytes, claimed and copied per round of phase 1: bounds
// each copy batch handed to the shared engine, so that the puts and gets
// queued behind it wait for one round, not for the migration.
constexpr size_t kMoveChunk = 64;
constexpr uint64_t kMoveChunkBytes = 16ull << 20;

} // namespace

std::vector<std::string> Hotplug::keys_on(uint32_t a, uint32_t from_slot, bool *blocked) {
    std::vector<std::string> keys;
    bool any = false;
    c_.index.for_each_locked([&](const Entry &e) {
        if (!e.committed() || e.ref().arena != a || e.ref().slot < from_slot)
            return;
        any = any || e.pins() > 0 || c_.slots.at(e.ref()).leases() > 0;
        keys.push_back(e.key());
    });
    if (blocked) {
        // And the slots still leased whose entries were replaced or removed:
        // they are waited for like the others. Every lease marked before
        // the scan above passed its shard is counted here.
        *blocked = any || c_.slots.leased_from(a, from_slot) > 0;
    }
    return keys;
}

int Hotplug::migrate_or_report(uint32_t src, const std::vector<std::string> &keys,
                               bool same_device, MoveStats &ms) {
    // A round that fails may have moved entries before it failed (those
    // whose copies it committed), and so may earlier rounds of the same
    // call (writes in flight when it began, committed on the device
    // since), or evicted: then the error is returned for the caller to
    // report as partial, and says so.
    try {
        migrate_keys(src, keys, same_device, ms);
        return 0;
    } catch (...) {
        if (!ms.evicted_keys && !ms.moved_keys)
            throw;
        int rc = error_from_exception();
        if (!ms.moved_keys)
            return rc;
        return set_error(rc, "%s; the %llu entries this call moved before that stay moved",
                         std::string(last_error_message()).c_str(),
                         static_cast<unsigned long long>(ms.moved_keys));
    }
}

bool Hotplug::evict_for_copy(const std::function<bool(uint32_t)> &to) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        if (entries_.evict_one(to))
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
}

// Move the entries of keys that still lie on src (at or above the device's
// limit when same_device) to writable devices, all or nothing: on a
// failure (-ENOSPC, -EIO) every copy is dropped and the source untouched.
void Hotplug::migrate_keys(uint32_t src, const std::vector<std::string> &keys, bool same_device,
                           MoveStats &ms) {
    if (keys.empty())
        return;
    std::vector<uint32_t> targets;
    uint64_t room = 0;
    for (uint32_t a = 0; a < c_.pool.size(); ++a) {
        bool self = same_device && a == src;
        if (!self && (a == src || !dev_writable(c_.pool[a].state.load())))
            continue;
        targets.push_back(a);
        room += c_.pool[a].alloc->free_count();
    }
    if (targets.empty())
        fail(-ENOSPC, "no writable destination device to migrate %zu entries to", keys.size());
    // Room is made on the destinations only, below their limits: an entry
    // evicted elsewhere (the source's own, above a shrink's new end) frees
    // no slot a copy could take.
    std::vector<bool> is_target(c_.pool.size(), false);
    for (uint32_t t : targets)
        is_target[t] = true;
    const std::function<bool(uint32_t)> to_target = [&](uint32_t a) {
        return a < is_target.size() && is_target[a];
    };
    // All or nothing, evictions included: a migration that cannot find room
    // for every entry fails before it evicts any (unless writes racing with
    // it take the room counted here). While the room is counted and made,
    // new pins and leases of the destinations' entries wait (for the
    // evictions, not the copies): one taken between the count and the
    // evictions would take an entry counted out of reach. A shrink's own
    // device has only its pins held back: its lease gate is its caller's
    // (a lease there can still take the room). A read holds an entry for a
    // moment only: evict_for_copy tries again past it.
    std::deque<DeviceGates> held_back;
    if (room < keys.size() && c_.cfg.eviction != Eviction::none) {
        for (uint32_t t : targets) {
            held_back.emplace_back(c_.pool, t);
            held_back.back().pins(); // a migration's caller raises no pin gate
            if (t != src)
                held_back.back().leases();
        }
        if (hook_)
            hook_(5);
        c_.index.for_each_locked([&](const Entry &e) {
            if (e.committed() && entries_.may_evict(e, to_target))
                ++room;
        });
    }
    if (room < keys.size())
        fail(-ENOSPC,
             "insufficient destination capacity: %zu entries to move, %llu free slots on the "
             "destinations%s; nothing was moved",
             keys.size(), static_cast<unsigned long long>(room),
             c_.cfg.eviction == Eviction::none ? "" : " counting the entries they could evict");
    // The room is made at once, right after it was counted. When it cannot
    // be all the same (an entry of a shrink's device below its end leased
    // meanwhile), the call fails, and its result says what it evicted.
    if (hook_)
        hook_(6);
    uint64_t free_now = 0;
    for (uint32_t t : targets)
        free_now += c_.pool[t].alloc->free_count();
    if (free_now < keys.size() && c_.cfg.eviction == Eviction::none)
        fail(-ENOSPC,
             "insufficient destination capacity: %zu entries to move, %llu free slots on the "
             "destinations (writes took the others since they were counted; eviction=none); "
             "nothing was moved",
             keys.size(), static_cast<unsigned long long>(free_now));
    for (uint64_t need = keys.size() > free_now ? keys.size() - free_now : 0; need; --need) {
        if (!evict_for_copy(to_target))
            fail(-ENOSPC,
                 "insufficient destination capacity: %llu entries evicted to make room, then "
                 "the others counted were pinned, leased or in use; nothing was moved",
                 static_cast<unsigned long long>(ms.evicted_keys));
        ms.evicted_keys++;
    }
    held_back.clear();

    std::vector<Move> moves;
    moves.reserve(keys.size());
    std::vector<char> meta(c_.cfg.meta_bytes); // a header's metadata, on its way
    // Undo phase 1 for a claimed entry: free the copy's slot, drop the
    // borrow of the source. Nothing was committed, so nothing else to undo.
    auto drop = [&](Move &mv) noexcept {
        auto g = c_.index.lock_shard(Index::shard_of(mv.hash));
        c_.slots.write_ended();
        if (mv.dst_faulted)
            c_.slots.quarantine_faulted(mv.dst);
        else
            c_.slots.release(mv.dst);
        c_.slots.end_borrow(mv.src);
    };
    Undo rollback([&] {
        for (auto &mv : moves)
            drop(mv);
        moves.clear();
    });

    size_t next = 0;
    while (next < keys.size()) {
        size_t first = moves.size();
        uint64_t chunk_bytes = 0;
        for (size_t n = 0; next < keys.size() && n < kMoveChunk && chunk_bytes < kMoveChunkBytes;
             ++next, ++n) {
            const std::string &k = keys[next];
            Move mv;
            mv.hash = Index::hash(k);
            // A destination slot first, with no lock held: making room
            // evicts (eviction=lru), which takes shard locks.
            uint32_t slot = UINT32_MAX, dev = UINT32_MAX;
            for (int attempt = 0; slot == UINT32_MAX; ++attempt) {
                std::vector<std::pair<double, uint32_t>> order; // least used first
                for (uint32_t t : targets) {
                    const SlotAllocator::Occupancy o = c_.pool[t].alloc->occupancy();
                    if (o.slots)
                        order.emplace_back(1.0 - double(o.free) / o.slots, t);
                }
                std::sort(order.begin(), order.end());
                for (const auto &o : order) {
                    slot = c_.pool[o.second].alloc->allocate();
                    if (slot != UINT32_MAX) {
                        dev = o.second;
                        break;
                    }
                }
                if (slot != UINT32_MAX)
                    break;
                if (c_.cfg.eviction == Eviction::none || attempt >= 1024 ||
                    !evict_for_copy(to_target))
                    fail(-ENOSPC, "insufficient destination capacity: writes took the room "
                                  "made; %llu entries were evicted, nothing was moved",
                         static_cast<unsigned long long>(ms.evicted_keys));
                ms.evicted_keys++;
            }
            Index::Locked l = c_.index.lookup(k, mv.hash);
            if (!l || !l->committed() || l->ref().arena != src ||
                (same_device && l->ref().slot < c_.pool[src].alloc->slots())) {
                // Removed, replaced or evicted since the snapshot.
                c_.slots.give_back(dev, slot);
                continue;
            }
            mv.dst = c_.slots.start_write(dev, slot);
            c_.slots.write_started();
            c_.slots.borrow(l->ref()); // the source stays put while it is copied
            mv.key = k;
            mv.src = l->ref();
            mv.src_seq = l->version().seq;
            mv.len = l->version().value_len;
            mv.meta_len = l->version().meta_len;
            mv.seq = c_.history.next_seq();
            chunk_bytes += mv.len;
            moves.push_back(std::move(mv));
        }
        // Copy this chunk with no lock held: value, then header body
        // (commit word 0), then write-back for durability=power. The source
        // is read as a get reads it (copies.hpp), every copy's result
        // looked at.
        std::vector<engine::CopyOp> ops;
        for (size_t i = first; i < moves.size(); ++i) {
            const Move &mv = moves[i];
            ops.push_back(c_.copier.move(c_.pool.arena(mv.dst.arena).slot_data(mv.dst.slot),
                                         c_.pool.arena(mv.src.arena).slot_data(mv.src.slot),
                                         mv.len));
        }
        std::vector<int> copy_rc;
        c_.copier.run(ops, copy_rc);
        // A destination that faulted cannot hold the copy: the migration
        // fails as any other failed copy fails it, and that slot is never
        // handed out again. Every such slot is marked before the first
        // failure unwinds.
        int failed = 0;
        for (size_t k = 0; k < ops.size(); ++k) {
            if (copy_rc[k] == engine::kMediaFaultWriting) {
                Move &mv = moves[first + k];
                mv.dst_faulted = true;
                c_.counters.copy_faults++;
                log(kLogErr, "writing slot %u of device %u faulted (SIGBUS) while migrating: "
                    "slot quarantined", mv.dst.slot, mv.dst.arena);
            }
            if (copy_rc[k] != 0 && copy_rc[k] != engine::kMediaFault && !failed)
                failed = copy_rc[k];
        }
        if (failed == engine::kMediaFaultWriting)
            fail(-EIO, "writing an entry into its new device faulted (media error or truncated "
                       "arena file): that slot is quarantined; nothing was moved");
        if (failed)
            fail(-EIO, "copying an entry to its new device failed (%d); nothing was moved", failed);
        // Move i's source could not be read or trusted (rc, as
        // Reads::end_copy takes it): its entry is dropped and its slot
        // quarantined, as a get would; the copy goes.
        auto drop_source = [&](size_t i, int rc) {
            Move &mv = moves[i];
            Borrow b;
            b.shard = Index::shard_of(mv.hash);
            b.ref = mv.src;
            b.hash = mv.hash;
            reads_.end_copy(b, rc); // ends the move's borrow of the source
            {
                auto g = c_.index.lock_shard(b.shard);
                c_.slots.write_ended();
                c_.slots.release(mv.dst);
            }
            moves.erase(moves.begin() + static_cast<std::ptrdiff_t>(i));
        };
        for (size_t k = ops.size(); k-- > 0;) {
            if (copy_rc[k] != 0)
                drop_source(first + k, copy_rc[k]);
        }
        // The headers: the source's checksum and metadata (stable,
        // committed and borrowed) into the destination's. A source header
        // that no longer matches its own checksum was written over: its
        // entry is dropped, as recovery and a read with verify=read drop it,
        // rather than given a new header that would vouch for it. A header
        // that faults (sigbus=handle) fails the migration as a faulting copy
        // does: nothing is moved, and a destination that faulted is
        // quarantined.
        for (size_t i = first; i < moves.size();) {
            Move &mv = moves[i];
            const arena::Arena &from = c_.pool.arena(mv.src.arena);
            arena::Arena &to = c_.pool.arena(mv.dst.arena);
            arena::Arena::HeaderCheck hc;
            if (!from.read_meta(mv.src.slot, meta.data(), mv.meta_len) ||
                !from.check_header(mv.src.slot, meta.data(), mv.meta_len, &hc)) {
                c_.counters.copy_faults++;
                fail(-EIO, "reading the header of slot %u of device %u faulted (media error "
                           "or truncated arena file); nothing was moved",
                     mv.src.slot, mv.src.arena);
            }
            if (!hc.matches(mv.len, mv.meta_len)) {
                drop_source(i, Reads::kMismatch);
                continue;
            }
            if (!to.write_body(mv.dst.slot, mv.seq, mv.dst.gen, mv.key.data(),
                               static_cast<uint16_t>(mv.key.size()), meta.data(), mv.meta_len,
                               mv.len, hc.value_hash, hc.hashed) ||
                !to.stage_entry(mv.dst.slot, mv.len)) {
                mv.dst_faulted = true;
                c_.counters.copy_faults++;
                fail(-EIO, "writing the header of slot %u of device %u failed (a media error, a "
                           "truncated arena file, or a write-back the file system refused): slot "
                           "quarantined; nothing was moved",
                     mv.dst.slot, mv.dst.arena);
            }
            ++i;
        }
        c_.pool.fence_all(); // the chunk's copies durable before any is committed
    }
    rollback.dismiss();
    if (hook_)
        hook_(1);

    // Phase 2: switch each entry that is still the one copied.
    size_t not_committed = 0;
    for (auto &mv : moves) {
        Index::Locked l = c_.index.lookup(mv.key, mv.hash);
        if (!l || !l->committed() || l->version().seq != mv.src_seq ||
            l->ref().arena != mv.src.arena || l->ref().slot != mv.src.slot ||
            l->ref().gen != mv.src.gen) {
            l.unlock();
            drop(mv); // replaced or removed meanwhile: the copy never becomes visible
            continue;
        }
        if (!c_.pool.arena(mv.dst.arena).commit(mv.dst.slot, mv.seq)) {
            // Its header faulted since it was written (sigbus=handle), or
            // its commit word could not be written back: the copy never
            // becomes visible, and its slot is quarantined. The entry stays
            // where it is, intact, and the call fails below.
            c_.counters.copy_faults++;
            l.unlock();
            mv.dst_faulted = true;
            drop(mv);
            ++not_committed;
            continue;
        }
        c_.slots.commit(mv.dst);
        const bool withdrawn = c_.pool.arena(mv.src.arena).withdraw(mv.src.slot);
        // The source: freed, or by its last lease if it is leased; one
        // whose commit word could not be cleared is never reused.
        c_.slots.end_borrow(mv.src);
        if (withdrawn) {
            c_.slots.retire(mv.src);
        } else {
            c_.counters.copy_faults++;
            c_.slots.quarantine_faulted(mv.src);
        }
        c_.index.move(l, mv.dst, mv.seq);
        c_.slots.write_ended();
        ms.moved_keys++;
        ms.moved_bytes += mv.len;
        ms.freed++;
    }
    if (hook_)
        hook_(2);
    if (not_committed)
        fail(-EIO, "committing %zu copied entries on their destinations failed (a fault, or a "
                   "write-back the file system refused): they stay on device %u, the slots "
                   "they were copied to are quarantined",
             not_committed, src);
}

// Delete the entries of keys that still lie on src. Without force a pinned
// or leased one stops it with -EBUSY; the callers see that none can be (the
// device's lease and pin gates are up from before their check), so that
// an eviction without force deletes everything or nothing.
int Hotplug::evict_keys(uint32_t src, const std::vector<std::string> &keys, bool force,
                        MoveStats &ms) {
    for (const auto &k : keys) {
        Index::Locked l = c_.index.lookup(k);
        if (!l || !l->committed() || l->ref().arena != src)
            continue;
        if (c_.pool[src].state.load() == DevState::resizing &&
            l->ref().slot < c_.pool[src].alloc->slots())
            continue; // below the new end: stays
        if (!force && (l->pins() || c_.slots.at(l->ref()).leases()))
            return set_error(-EBUSY, "an entry of the device was pinned or leased during the "
                                     "eviction; use DAXKV_FORCE");
        entries_.drop(l);
        c_.counters.removes++; // asked for by the caller, as a remove is
        ms.deleted_keys++;
        ms.freed++;
        if (hook_ && ms.deleted_keys == 1) {
            l.unlock();
            hook_(3);
        }
    }
    return 0;
}

// Move (or evict) what is left on device a at from_slot and above, and wait
// until every slot there is free: writes that were in flight when the device
// stopped taking new ones, and slots still leased. 0, or -EBUSY (a
// reservation opened meanwhile, an entry pinned); throws what moving throws.
int Hotplug::wait_until_empty(uint32_t a, uint32_t from_slot, bool migrate, bool force,
                              bool same_device, MoveStats &ms) {
    DeviceRow &d = c_.pool[a];
    // With force this waits for the leases of the slots at from_slot and
    // above: the calls that would wait for it from a thread holding one of
    // them (behind the pool's turn or the lease gate) fail instead.
    struct AwaitedLeases {
        Pool &pool;
        uint32_t a;
        bool on;
        ~AwaitedLeases() {
            if (on)
                pool.set_leases_awaited(a, false);
        }
    } awaited{c_.pool, a, force};
    if (force)
        c_.pool.set_leases_awaited(a, true, from_slot);
    for (;;) {
        // Leases and writes of callers may never end: shutdown does not
        // wait for them, so neither does this call. What it did before it
        // waited stays done: the entries it moved stay where they went, and
        // those it deleted (DAXKV_EVICT) are gone. The caller puts the
        // device's place and size back and reports them.
        if (c_.gate.closed()) {
            if (ms.moved_keys == 0 && ms.deleted_keys == 0)
                return set_error(-ESHUTDOWN, "the store was shut down while the device waited to "
                                             "empty; it is left as it was");
            return set_error(-ESHUTDOWN, "the store was shut down while the device waited to "
                                         "empty; it keeps its place and size, and the %llu "
                                         "entries already moved to other slots stay there, the "
                                         "%llu already deleted are gone",
                             static_cast<unsigned long long>(ms.moved_keys),
                             static_cast<unsigned long long>(ms.deleted_keys));
        }
        // Quarantined slots (a failed checksum) stay taken and hold nothing
        // (once no lease of a dropped entry holds one: a forced removal
        // unmapped the bytes under such a lease), and so do the slots of
        // detached reservations until their callers end them: only those
        // at or above from_slot are set against the slots taken there.
        // Counted wherever they lie, one below a shrink's end ended the
        // wait while a write above it was still in flight, which then
        // committed beyond the recorded end. Taken first: a reservation
        // that ends between the two counts is waited for, never one too
        // few.
        const uint32_t used = d.alloc->used_from(from_slot);
        const size_t idle =
            c_.slots.idle_quarantined_from(a, from_slot) +
            reservations_.detached_on(a, from_slot);
        if (used <= idle)
            return 0;
        // A reservation is held by its caller for as long as it likes (from
        // this very thread, maybe): never waited for. Without force one is
        // -EBUSY; with force it is detached (its commit fails -ECANCELED).
        // Counted after the slots taken, as no new one can take a slot
        // here: each one counted holds one of them.
        const size_t open = reservations_.on_device(a, from_slot, false);
        if (open && !force)
            return set_error(-EBUSY, "%zu reservation(s) of the device were opened "
                                     "meanwhile; commit or abort them, or use DAXKV_FORCE",
                             open);
        // Open reservations are detached only once they are all that is
        // left: detached first, they stayed cancelled when the call then
        // failed (no room for an entry committed meanwhile), with the
        // device left in the pool. One whose commit begins before it is
        // detached is waited for like any write (the next round sees it).
        if (open && used <= idle + open) {
            reservations_.on_device(a, from_slot, true);
            continue;
        }
        std::vector<std::string> keys = keys_on(a, from_slot, nullptr);
        if (!keys.empty()) {
            // Writes that were in flight when the call began, committed
            // since. A shrink without force drops no key: it fails instead,
            // having dropped none (it only starts with none to drop).
            if (!migrate && !force && same_device)
                return set_error(-EBUSY, "%zu entries were written above the new end during "
                                         "the shrink; use DAXKV_MIGRATE, or DAXKV_EVICT with "
                                         "DAXKV_FORCE", keys.size());
            if (int rc = migrate ? migrate_or_report(a, keys, same_device, ms)
                                 : evict_keys(a, keys, force, ms))
                return rc;
            continue;
        }
        auto g = c_.pool.signals();
        c_.pool.wait_signal(g, std::chrono::steady_clock::now() + std::chrono::milliseconds(20));
    }
}

} // namespace daxkv
