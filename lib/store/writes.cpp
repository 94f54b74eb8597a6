#include "store/writes.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace daxkv {

int Writes::claim(std::string_view key, uint64_t hash, uint64_t len, unsigned flags,
                  Pending &out) {
    if (len > c_.cfg.slot_bytes) {
        c_.counters.puts_failed++;
        fail(-E2BIG, "value of %llu bytes is larger than slot_bytes (%llu)",
             static_cast<unsigned long long>(len),
             static_cast<unsigned long long>(c_.cfg.slot_bytes));
    }
    out.key = key;
    out.hash = hash;
    InflightPtr inf = out.room ? InflightPtr(out.room, InflightRelease{false})
                               : InflightPtr(new Inflight);
    inf->len = len;
    {
        Index::Locked l = c_.index.lookup(key, out.hash);
        if (l && (l->inflight || (l->committed() && !(flags & kReplace)))) {
            c_.counters.puts_existed++;
            return kExisted;
        }
        if (!l)
            c_.index.add(l);
        l->inflight = inf.get();
        out.entry = l.entry();
        c_.slots.write_started();
        // A free slot is taken here, under the key's lock (an allocator's
        // lock comes inside a shard lock), which spares the second round
        // below; making room by eviction takes other shards' locks, so it
        // waits until this one is released.
        SlotRef ref;
        if (take_free_slot(ref)) {
            inf->ref = c_.slots.start_write(ref.arena, ref.slot);
            out.dst = c_.pool.arena(ref.arena).slot_data(ref.slot);
            out.inflight = std::move(inf);
            return 0;
        }
    }
    SlotRef ref;
    try {
        ref = acquire_slot();
    } catch (...) {
        Index::Locked l = c_.index.lookup_inflight(out.entry, *inf, key, out.hash);
        c_.slots.write_ended();
        c_.counters.puts_failed++;
        if (!inf->canceled) {
            l->inflight = nullptr;
            c_.index.erase_if_empty(l);
        }
        throw;
    }
    {
        auto g = c_.index.lock_shard(Index::shard_of(out.hash));
        if (inf->canceled) {
            c_.slots.write_ended();
            c_.counters.puts_failed++; // counted as a commit counts a cancelled write
            c_.slots.give_back(ref.arena, ref.slot);
            fail(-ECANCELED, "a forced remove cancelled the write");
        }
        ref = c_.slots.start_write(ref.arena, ref.slot);
        inf->ref = ref;
    }
    out.dst = c_.pool.arena(ref.arena).slot_data(ref.slot);
    out.inflight = std::move(inf);
    return 0;
}

int Writes::claim_item(const daxkv_item *items, size_t n, size_t i, uint64_t hash,
                       unsigned flags, Pending &p) {
    const daxkv_item &it = items[i];
    return item_status([&] {
        check_put_arguments(c_.counters, [&] {
            check_item_key(items, n, i);
            if (!it.data && it.len)
                fail(-EINVAL, "item %zu: data is NULL", i);
            if (it.meta_len > c_.cfg.meta_bytes)
                fail(-E2BIG, "item %zu: metadata larger than meta_bytes", i);
            if (!it.meta && it.meta_len)
                fail(-EINVAL, "item %zu: meta is NULL", i);
            return 0;
        });
        return claim(key_of(it), hash, it.len, flags, p);
    });
}

bool Writes::take_free_slot(SlotRef &out) noexcept {
    // The least-used writable device (pool.cpp: placement).
    const uint32_t best = c_.pool.pick_device();
    if (best == UINT32_MAX)
        return false;
    if (pick_hook_)
        pick_hook_(best);
    DeviceRow &d = c_.pool[best];
    const uint32_t slot = d.alloc->allocate();
    if (slot == UINT32_MAX)
        return false;
    // A drain stops new entries by the state alone (it keeps the device's
    // slots usable), and finds the device drained when none of its slots
    // is taken: a write that picked the device before the drain began, and
    // took its slot after the drain looked, put an entry on a device
    // already reported drained. Looked at again after the slot is taken
    // (the allocator's lock orders the two): one of the two sees the
    // other, and the slot goes back here, which tells the drain.
    if (!dev_writable(d.state.load())) {
        c_.slots.give_back(best, slot);
        return false;
    }
    out = SlotRef{best, slot, 0};
    return true;
}

SlotRef Writes::acquire_slot() {
    // Entries of a draining device go in their turn (it drains that way),
    // but free no slot a write can take: they do not count as tries. After
    // kDrainingPerPut of them a put evicts from the writable devices only,
    // so that one put never empties a whole draining device.
    constexpr int kTries = 1024, kDrainingPerPut = 1024;
    const auto writable = [this](uint32_t device) {
        return dev_writable(c_.pool[device].state.load(std::memory_order_relaxed));
    };
    int draining = 0;
    for (int tries = 0; tries < kTries;) {
        SlotRef ref;
        if (take_free_slot(ref))
            return ref;
        if (c_.pool.pick_device() != UINT32_MAX) {
            ++tries; // raced with another writer for the last free slot: look again
            continue;
        }
        if (!c_.pool.any_writable())
            fail(-ENOSPC, "no writable device (every device is draining, being changed or "
                          "removed): evicting would not make room");
        if (c_.cfg.eviction == Eviction::none)
            fail(-ENOSPC, "no free slot (eviction=none): %s", describe_full().c_str());
        bool freed_room = true;
        const bool evicted = draining < kDrainingPerPut
                                 ? entries_.evict_one(nullptr, &freed_room)
                                 : entries_.evict_one(writable, &freed_room);
        if (!evicted)
            fail(-ENOSPC, "no free slot and nothing evictable: %s", describe_full().c_str());
        if (freed_room)
            ++tries; // another writer may take the slot it freed first
        else
            ++draining;
    }
    fail(-ENOSPC, "no free slot after repeated eviction under contention: %s",
         describe_full().c_str());
}

std::string Writes::describe_full() const {
    return format("%lld entries, %lld pinned, %lld in flight, %lld waiting for leases",
                  static_cast<long long>(c_.index.entries()),
                  static_cast<long long>(c_.index.pinned()),
                  static_cast<long long>(c_.slots.inflight()),
                  static_cast<long long>(c_.slots.pending_free()));
}

Error Writes::copy_error(Pending &p, int rc, const std::string &what) {
    if (rc != engine::kMediaFault && rc != engine::kMediaFaultWriting)
        return Error(-EIO, format("%s (%d)", what.c_str(), rc));
    const SlotRef &ref = p.inflight->ref;
    p.slot_faulted = true;
    c_.counters.copy_faults++;
    log(kLogErr, "%s slot %u of device %u faulted (SIGBUS): write abandoned, slot quarantined",
        rc == engine::kMediaFault ? "reading" : "writing", ref.slot, ref.arena);
    return Error(-EIO, format("%s: %s the slot faulted (media error or truncated arena file): "
                              "slot quarantined",
                              what.c_str(), rc == engine::kMediaFault ? "reading" : "writing"));
}

void Writes::copy_failed(Pending &p, int rc, const std::string &what) {
    Error e = copy_error(p, rc, what);
    abandon(p);
    c_.counters.puts_failed++;
    throw e;
}

void Writes::commit_on_devices(Finished *w, size_t n, bool hashed) noexcept {
    // The header bodies, each commit recorded in the pool history (older
    // versions of the key on devices away now must not come back, even when
    // this device is the one missing then), and every value and header
    // written back; then one fence before any commit word.
    // The headers are cold (a batch's slots were last written long ago):
    // ask for the lines of the ones a few items ahead, so that their misses
    // overlap instead of coming one after another.
    // A header that faults (sigbus=handle) leaves its write uncommitted and
    // marked: commit_in_index abandons it and quarantines the slot.
    constexpr size_t kAhead = 4;
    auto prefetch_header = [&](size_t k) {
        const SlotRef &ref = w[k].p->inflight->ref;
        const arena::SlotHeader *h = c_.pool.arena(ref.arena).header(ref.slot);
        __builtin_prefetch(h, 1);
        __builtin_prefetch(h + 1, 1); // the key's first line
    };
    if (n == 0)
        return;
    for (size_t k = 0; k < std::min(n, kAhead); ++k)
        prefetch_header(k);
    const uint64_t first_seq = c_.history.next_seqs(n);
    for (size_t k = 0; k < n; ++k) {
        if (k + kAhead < n)
            prefetch_header(k + kAhead);
        Pending &p = *w[k].p;
        const Inflight &inf = *p.inflight;
        arena::Arena &ar = c_.pool.arena(inf.ref.arena);
        w[k].seq = first_seq + k;
        if (!ar.write_body(inf.ref.slot, w[k].seq, inf.ref.gen, p.key.data(),
                           static_cast<uint16_t>(p.key.size()), w[k].meta, w[k].meta_len,
                           inf.len, w[k].value_hash, hashed) ||
            !ar.stage_entry(inf.ref.slot, inf.len))
            header_faulted(p);
    }
    c_.history.stage_commits(first_seq, n, [w](size_t k) { return w[k].p->hash; });
    c_.pool.fence_all();
    // The commit words, then one fence: a crash leaves each entry whole or
    // absent. A write a forced remove cancelled before its word gets none
    // (commit_in_index then fails it with -ECANCELED); from its word on, a
    // remove waits for it (Inflight::fate).
    for (size_t k = 0; k < n; ++k) {
        Pending &p = *w[k].p;
        if (p.slot_faulted)
            continue;
        Inflight &inf = *p.inflight;
        if (!inf.begin_commit())
            continue;
        if (!c_.pool.arena(inf.ref.arena).stage_commit(inf.ref.slot, w[k].seq))
            header_faulted(p);
    }
    c_.pool.fence_all();
    if (commit_hook_)
        commit_hook_();
}

void Writes::header_faulted(Pending &p) noexcept {
    const SlotRef &ref = p.inflight->ref;
    p.slot_faulted = true;
    c_.counters.copy_faults++;
    log(kLogErr, "writing the entry in slot %u of device %u failed (it faulted: SIGBUS; or, "
        "with durability=power, the file system could not write it back: msync): write "
        "abandoned, slot quarantined", ref.slot, ref.arena);
}

Index::Locked Writes::locate(const Pending &p) {
    if (p.entry)
        return c_.index.lookup_inflight(p.entry, *p.inflight, p.key, p.hash);
    return c_.index.lookup(p.key, p.hash);
}

int Writes::commit_in_index(Finished &w, ItemTally &commits) {
    Pending &p = *w.p;
    if (p.slot_faulted) {
        abandon(p);
        c_.counters.puts_failed++;
        fail(-EIO, "writing the entry failed (a media error, a truncated arena file, or a "
                   "write-back to the file that failed): slot quarantined");
    }
    Inflight &inf = *p.inflight;
    Index::Locked l = locate(p);
    c_.slots.write_ended();
    if (inf.canceled) {
        if (c_.pool.arena(inf.ref.arena).withdraw(inf.ref.slot)) {
            c_.slots.release(inf.ref);
        } else {
            header_faulted(p);
            c_.slots.quarantine_faulted(inf.ref);
        }
        c_.counters.puts_failed++;
        p.inflight.reset();
        fail(-ECANCELED, "a forced remove cancelled the write");
    }
    l->inflight = nullptr;
    const uint32_t pins = l->pins(); // they belong to the key and survive a replace
    entries_.retire(l); // a replace: the old version goes after the new commit
    c_.index.commit(l, Version{inf.ref, inf.len, w.meta_len, w.seq}, pins);
    c_.slots.commit(inf.ref);
    commits.count(inf.len);
    p.inflight.reset();
    return 0;
}

void Writes::commit_batch(Finished *w, size_t n, bool hashed) {
    commit_on_devices(w, n, hashed);
    ItemTally commits(c_.metrics.item_bytes);
    for (size_t k = 0; k < n; ++k)
        *w[k].status = item_status([&] { return commit_in_index(w[k], commits); });
    count_commits(commits);
}

void Writes::abandon(Pending &p) noexcept {
    if (!p.inflight)
        return;
    Inflight &inf = *p.inflight;
    Index::Locked l = locate(p);
    c_.slots.write_ended();
    if (!inf.canceled) {
        l->inflight = nullptr;
        c_.index.erase_if_empty(l);
    }
    if (inf.phase.load() == Inflight::kDetached)
        c_.pool[inf.ref.arena].detached--;
    if (p.slot_faulted)
        c_.slots.quarantine_faulted(inf.ref);
    else
        c_.slots.release(inf.ref);
    p.inflight.reset();
}

int Writes::put(std::string_view key, const void *val, size_t len, unsigned flags) {
    CallGate::Call call(c_.gate);
    LatencyTimer timer(c_.metrics.put_latency);
    // The block hashes' room is allocated before the claim: a claimed write
    // that fails must be abandoned, and a value over 2 MiB needs memory for
    // them (one too large for a slot is refused by the claim).
    const bool hashed = c_.copier.hashes_writes();
    BlockHashes hashes;
    const size_t off = hashed && len <= c_.cfg.slot_bytes ? hashes.add(len) : 0;
    Pending p;
    if (int rc = claim(key, len, flags, p))
        return rc;
    const int copy_rc =
        c_.copier.run_one(c_.copier.write(p.dst, val, len, len, hashed ? hashes.at(off) : nullptr),
                          [&] { abandon(p); });
    if (copy_rc)
        copy_failed(p, copy_rc, "copying the value into the arena failed");
    int status = 0;
    Finished w{&p, nullptr, 0, hashed ? hashes.combined(off, len) : 0, &status};
    commit_on_devices(&w, 1, hashed);
    return commit_in_index(w);
}

int Writes::put_batch(daxkv_item *items, size_t n, unsigned flags) {
    CallGate::Call call(c_.gate);
    LatencyTimer timer(c_.metrics.batch_latency);
    c_.metrics.batches.fetch_add(1, std::memory_order_relaxed);
    // The copies go to the workers a segment at a time (SegmentedCopies):
    // the next items are claimed while they copy the ones before, and once
    // every item is claimed each segment is committed as soon as its copies
    // end, while the workers go on with the next. Every claim comes before
    // the first commit: the items of one batch are in flight together, so
    // they cannot evict each other, and a key given twice is stored once.
    const bool hashed = c_.copier.hashes_writes();
    const Index::KeyHashes key_hashes = c_.index.hash_items(items, n);
    // Every value's block hashes get their place before the first copy
    // starts (a copy in flight writes into it); the bytes of the whole batch
    // decide whether its copies stream.
    BlockHashes hashes;
    std::vector<size_t> hash_off(n, 0);
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        if (items[i].len > c_.cfg.slot_bytes)
            continue; // refused by its claim
        total += items[i].len;
        if (hashed)
            hash_off[i] = hashes.add(items[i].len);
    }
    const bool nt = c_.copier.streams(total);
    // Nothing below grows past these sizes: a copy in flight points into
    // pend, ops and copy_rc.
    PendingBatch pend(n);
    std::vector<size_t> op_item;
    std::vector<engine::CopyOp> ops;
    std::vector<int> copy_rc(n, 0);
    std::vector<Finished> done;
    op_item.reserve(n);
    ops.reserve(n);
    done.reserve(n);
    try {
        // Destroyed before the handler below runs, the segments wait for
        // their copies first.
        SegmentedCopies copying(c_.copier, n, total);
        for (size_t i = 0; i < n; ++i) {
            daxkv_item &it = items[i];
            it.status = claim_item(items, n, i, key_hashes[i], flags, pend[i]);
            if (it.status != 0)
                continue;
            op_item.push_back(i);
            ops.push_back(c_.copier.write(pend[i].dst, it.data, it.len, it.len,
                                          hashed ? hashes.at(hash_off[i]) : nullptr));
            ops.back().nontemporal = nt;
            if (copying.add(it.len))
                copying.start(ops.data(), ops.size(), copy_rc.data(), i + 1 < n);
        }
        if (copying.open(ops.size()))
            copying.start(ops.data(), ops.size(), copy_rc.data(), false);
        // A failed copy gives its item's slot back only once the copies of
        // its segment have all finished.
        size_t k = 0;
        for (size_t seg = 0; seg < copying.count(); ++seg) {
            copying.finish(seg);
            const size_t first = done.size();
            for (; k < copying.end(seg); ++k) {
                const size_t i = op_item[k];
                daxkv_item &it = items[i];
                it.status = item_status([&] {
                    if (copy_rc[k])
                        copy_failed(pend[i], copy_rc[k],
                                    format("item %zu: copying the value failed", i));
                    done.push_back(Finished{&pend[i], it.meta, static_cast<uint32_t>(it.meta_len),
                                            hashed ? hashes.combined(hash_off[i], it.len) : 0,
                                            &it.status});
                    return 0;
                });
            }
            commit_batch(done.data() + first, done.size() - first, hashed);
        }
    } catch (...) {
        for (auto &p : pend)
            abandon(p);
        throw;
    }
    int stored = 0;
    for (const Finished &w : done)
        stored += *w.status == 0;
    return stored;
}

} // namespace daxkv
