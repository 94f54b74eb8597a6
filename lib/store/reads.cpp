#include "store/reads.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "arena/checksum.hpp"

namespace daxkv {

int Reads::borrow(std::string_view key, uint64_t hash, size_t cap, size_t *len_out,
                  size_t meta_cap, Borrow &out, size_t *meta_len_out) {
    // A read that gets this far succeeds unless the bytes fail verification,
    // which drops the entry anyway: the access is recorded here, under the
    // lock already held, rather than by a second lookup after the copy.
    Index::Locked l = c_.index.lookup(key, hash);
    if (!l || !l->committed()) {
        c_.counters.misses++;
        return set_error(-ENOENT, "key not found");
    }
    const Version &v = l->version();
    if (len_out)
        *len_out = v.value_len;
    if (meta_len_out)
        *meta_len_out = v.meta_len;
    if (cap < v.value_len)
        return set_error(-ENOBUFS, "destination holds %zu bytes, the value has %llu", cap,
                         static_cast<unsigned long long>(v.value_len));
    if (meta_cap != SIZE_MAX && meta_cap < v.meta_len)
        return set_error(-ENOBUFS, "metadata buffer holds %zu bytes, the entry has %u",
                         meta_cap, v.meta_len);
    start_borrow(l, out);
    return 0;
}

void Reads::start_borrow(Index::Locked &l, Borrow &out) {
    const Version &v = l->version();
    out.hash = l.hash();
    c_.slots.borrow(v.ref);
    c_.index.touch(l);
    out.shard = l.shard();
    out.ref = v.ref;
    out.src = c_.pool.arena(v.ref.arena).slot_data(v.ref.slot);
    out.len = v.value_len;
    out.meta_len = v.meta_len;
}

void Reads::end(const Borrow &b) noexcept {
    auto g = c_.index.lock_shard(b.shard);
    c_.slots.end_borrow(b.ref);
}

int Reads::check_header(const Borrow &b, const void *meta_copy,
                        arena::Arena::HeaderCheck &hc) const noexcept {
    if (!c_.pool.arena(b.ref.arena).check_header(b.ref.slot, meta_copy, b.meta_len, &hc))
        return engine::kMediaFault;
    if (!hc.matches(b.len, b.meta_len))
        return kMismatch;
    return 0;
}

int Reads::verify(const Borrow &b, const uint64_t *block_hashes, const void *meta_copy) const
    noexcept {
    arena::Arena::HeaderCheck hc;
    if (int rc = check_header(b, meta_copy, hc))
        return rc;
    if (!hc.hashed)
        return 0; // written with verify=off: no value checksum to check against
    // An empty value is copied without hashing (block_hashes is null): its
    // checksum is that of no bytes.
    const uint64_t got = b.len ? arena::combine_block_hashes(block_hashes,
                                                             arena::hash_block_count(b.len))
                               : arena::value_checksum(b.src, 0);
    return got == hc.value_hash ? 0 : kMismatch;
}

int Reads::verify_in_place(const Borrow &b, const void *meta_copy) const noexcept {
    arena::Arena::HeaderCheck hc;
    if (int rc = check_header(b, meta_copy, hc))
        return rc;
    if (!hc.hashed)
        return 0;
    uint64_t got = 0;
    if (int rc = c_.copier.checksum(b.src, b.len, &got))
        return rc;
    return got == hc.value_hash ? 0 : kMismatch;
}

void Reads::failed_verify(const Borrow &b, int rc, const char *what) {
    if (rc == engine::kMediaFault)
        faulted(b, what);
    failed_checksum(b, what);
}

// Drop the entry whose bytes cannot be read or trusted; its slot is never
// reused. media: the copy out of the slot faulted (SIGBUS), rather than the
// bytes failing their checksum.
void Reads::quarantine(const Borrow &b, bool media) noexcept {
    // A slot already quarantined (another read of it, or of a lease of it,
    // failed first) is counted once: its entry was dropped once.
    if (c_.slots.at(b.ref).quarantined()) {
        auto g = c_.index.lock_shard(b.shard);
        c_.slots.quarantine(b.ref); // ends this borrow
        return;
    }
    if (media) {
        c_.counters.copy_faults++;
        log(kLogErr, "reading slot %u of device %u faulted (SIGBUS): entry dropped, "
            "slot quarantined", b.ref.slot, b.ref.arena);
    } else {
        c_.counters.verify_failures++;
        log(kLogErr, "entry in slot %u of device %u failed its checksum: dropped", b.ref.slot,
            b.ref.arena);
    }
    // The entry still committed in the borrowed slot, found in its shard
    // (whose lock orders the slot's state) by hash and slot, is dropped.
    Index::Locked l = c_.index.lookup_committed_at(b.hash, b.shard, b.ref);
    if (l)
        entries_.discard(l);
    c_.slots.quarantine(b.ref);
}

void Reads::failed_checksum(const Borrow &b, const char *what) {
    quarantine(b, false);
    fail(-EIO, "%sthe entry failed its checksum and was dropped", what);
}

void Reads::faulted(const Borrow &b, const char *what) {
    quarantine(b, true);
    fail(-EIO, "%sreading the entry faulted (media error or truncated arena file): entry "
               "dropped, slot quarantined", what);
}

// A media fault (SIGBUS) means the bytes cannot be read: the entry goes and
// its slot is never reused. Any other copy failure says nothing about the
// entry, which stays as it was.
void Reads::copy_failed(const Borrow &b, int rc, const char *what) {
    if (rc == engine::kMediaFault)
        faulted(b, what);
    end(b);
    fail(-EIO, "%scopying the entry out failed (%d); the entry is kept", what, rc);
}

void Reads::end_copy(const Borrow &b, int rc) noexcept {
    if (rc == engine::kMediaFault || rc == kMismatch)
        quarantine(b, rc == engine::kMediaFault);
    else
        end(b);
}

int Reads::get(std::string_view key, void *dst, size_t cap, size_t *len_out) {
    CallGate::Call call(c_.gate);
    LatencyTimer timer(c_.metrics.get_latency);
    Borrow b;
    if (int rc = borrow(key, cap, len_out, SIZE_MAX, b))
        return rc;
    const bool verify_read = c_.copier.verifies_reads();
    BlockHashes hashes;
    size_t off = 0;
    try {
        off = verify_read ? hashes.add(b.len) : 0; // a value over 2 MiB allocates
    } catch (...) {
        end(b);
        throw;
    }
    const int copy_rc = c_.copier.run_one(
        c_.copier.read(dst, b.src, b.len, verify_read ? hashes.at(off) : nullptr),
        [&] { end(b); });
    if (copy_rc)
        copy_failed(b, copy_rc, "");
    if (verify_read) {
        if (const int rc = verify(b, b.len ? hashes.at(off) : nullptr))
            failed_verify(b, rc, "");
    }
    end(b);
    count_hit(b.len);
    return 0;
}

size_t Reads::borrow_batch(daxkv_item *items, size_t n, bool prefix, std::vector<Borrow> &borrows,
                           std::vector<size_t> &item_of, const std::function<void()> &borrowed) {
    borrows.reserve(n);
    item_of.reserve(n);
    const Index::KeyHashes hashes = c_.index.hash_items(items, n);
    for (size_t i = 0; i < n; ++i) {
        daxkv_item &it = items[i];
        it.status = item_status([&] {
            check_item_key(items, n, i);
            if (!it.data && it.len)
                fail(-EINVAL, "item %zu: data is NULL", i);
            Borrow b;
            size_t len_out = 0, meta_len_out = 0;
            const size_t meta_cap = it.meta ? it.meta_len : SIZE_MAX;
            int rc = borrow(key_of(it), hashes[i], it.len, &len_out, meta_cap, b, &meta_len_out);
            if (rc == -ENOBUFS) {
                // Report the sizes needed: the value's, and the metadata's
                // when a metadata buffer was given (it may be the one too small).
                it.len = len_out;
                if (it.meta)
                    it.meta_len = meta_len_out;
            }
            if (rc == 0) {
                borrows.push_back(b);
                item_of.push_back(i);
            }
            return rc;
        });
        // Outside item_status: what borrowed throws is the batch's failure,
        // not this item's (the caller ends every borrow made).
        if (it.status == 0 && borrowed)
            borrowed();
        if (it.status && prefix) {
            for (size_t j = i + 1; j < n; ++j)
                items[j].status = -ENOENT;
            return i;
        }
    }
    return n;
}

int Reads::batch_result(const daxkv_item *items, size_t stop, bool prefix, int hits) noexcept {
    if (!prefix)
        return hits;
    size_t run = 0;
    while (run < stop && items[run].status == 0)
        ++run;
    return static_cast<int>(run);
}

int Reads::get_batch(daxkv_item *items, size_t n, unsigned flags) {
    CallGate::Call call(c_.gate);
    LatencyTimer timer(c_.metrics.batch_latency);
    c_.metrics.batches.fetch_add(1, std::memory_order_relaxed);
    const bool prefix = flags & kPrefix;
    const bool verify_read = c_.copier.verifies_reads();
    // The copies go to the workers a segment at a time (SegmentedCopies):
    // the next items are borrowed while they copy the ones before, and each
    // segment's borrows end as soon as its copies have all finished. A
    // segment's block hashes (verify=read) get their places, sized by the
    // values borrowed, before its copies start: a copy in flight writes
    // into them. Whether the copies stream is decided, as for any batch, by
    // the bytes the batch moves: the bytes borrowed when a segment starts
    // are at least kSegmentMinBytes (kNonTemporalMin) for all but a batch's
    // only segment.
    uint64_t room = 0; // what the buffers can take: bounds the segments
    for (size_t i = 0; i < n; ++i)
        room += std::min<uint64_t>(items[i].len, c_.cfg.slot_bytes);
    // Nothing below grows past these sizes: a copy in flight points into
    // ops, copy_rc and the segments' hashes.
    std::vector<Borrow> borrows;
    std::vector<size_t> item_of;
    std::vector<engine::CopyOp> ops;
    std::vector<int> copy_rc(n, 0);
    std::vector<BlockHashes> segment_hashes;
    std::vector<size_t> hash_off;
    SegmentedCopies copying(c_.copier, n, room);
    borrows.reserve(n);
    item_of.reserve(n);
    ops.reserve(n);
    if (verify_read) {
        segment_hashes.reserve(copying.max_count());
        hash_off.resize(n);
    }
    size_t stop = n;
    try {
        uint64_t borrowed_bytes = 0;
        auto start_segment = [&](bool more) {
            const size_t first = copying.first();
            const bool nt = c_.copier.streams(borrowed_bytes);
            if (verify_read) {
                BlockHashes &h = segment_hashes.emplace_back();
                for (size_t k = first; k < ops.size(); ++k)
                    hash_off[k] = h.add(ops[k].len);
                for (size_t k = first; k < ops.size(); ++k) // h holds them all now
                    ops[k].block_hashes = h.at(hash_off[k]);
            }
            for (size_t k = first; k < ops.size(); ++k)
                ops[k].nontemporal = nt;
            copying.start(ops.data(), ops.size(), copy_rc.data(), more);
        };
        stop = borrow_batch(items, n, prefix, borrows, item_of, [&] {
            const Borrow &b = borrows.back();
            ops.push_back(c_.copier.read(items[item_of.back()].data, b.src, b.len, nullptr));
            borrowed_bytes += b.len;
            if (copying.add(b.len))
                start_segment(item_of.back() + 1 < n);
        });
        if (copying.open(ops.size()))
            start_segment(false);
    } catch (...) {
        copying.clear(); // waits for the copies started
        for (auto &b : borrows)
            end(b);
        throw;
    }
    int hits = 0;
    ItemTally copied(c_.metrics.item_bytes);
    // With prefix, an item whose copy fails (a media fault, a checksum that
    // does not match) ends the prefix as a miss at borrowing does: every
    // later item is -ENOENT, though its copy, made alongside, may have
    // written its buffer (borrowed items are the first ones, in order).
    // Later items are not checked, as the GPU batch does not check them;
    // a slot whose copy faulted is quarantined all the same.
    bool prefix_ended = false;
    size_t k = 0;
    for (size_t seg = 0; seg < copying.count(); ++seg) {
        copying.finish(seg);
        for (; k < copying.end(seg); ++k) {
            const Borrow &b = borrows[k];
            daxkv_item &it = items[item_of[k]];
            if (prefix_ended) {
                end_copy(b, copy_rc[k]);
                it.status = -ENOENT;
                continue;
            }
            int status = item_status([&] {
                // Every copy of the segment has finished: only now is a
                // borrow ended.
                if (copy_rc[k])
                    copy_failed(b, copy_rc[k], "");
                // The metadata first: verify=read checks the copy handed on.
                if (it.meta && !copy_meta(b, it.meta))
                    failed_verify(b, engine::kMediaFault, "");
                if (verify_read) {
                    if (const int rc = verify(b, b.len ? ops[k].block_hashes : nullptr,
                                              it.meta))
                        failed_verify(b, rc, "");
                }
                end(b);
                return 0;
            });
            if (status == 0) {
                if (it.meta)
                    it.meta_len = b.meta_len;
                it.len = b.len;
                copied.count(b.len);
                ++hits;
            }
            if (prefix && status != 0)
                prefix_ended = true;
            it.status = status;
        }
    }
    count_hits(copied);
    return batch_result(items, stop, prefix, hits);
}

int Reads::contains(std::string_view key) {
    CallGate::Call call(c_.gate);
    Index::Locked l = c_.index.lookup(key);
    return l && l->committed() ? 1 : 0;
}

int Reads::contains_batch(daxkv_item *items, size_t n, unsigned flags) {
    CallGate::Call call(c_.gate);
    const bool prefix = flags & kPrefix, pin_hits = flags & kPin;
    int hits = 0;
    const Index::KeyHashes hashes = c_.index.hash_items(items, n);
    // The items this call pinned. A call that fails as a whole after
    // pinning some (shutdown while it waits at a pin gate) drops those
    // pins: the caller, told the call failed, has nothing to unpin (and
    // every item's status is given the failure's code where it is caught).
    std::vector<bool> pinned(pin_hits ? n : 0);
    auto drop_pins = [&]() noexcept {
        for (size_t j = 0; j < pinned.size(); ++j) {
            if (pinned[j]) {
                Index::Locked l = c_.index.lookup(key_of(items[j]), hashes[j]);
                if (l && l->committed())
                    c_.index.unpin(l);
            }
        }
    };
    for (size_t i = 0; i < n; ++i) {
        daxkv_item &it = items[i];
        uint32_t gated = UINT32_MAX;
        it.status = item_status([&] {
            check_item_key(items, n, i);
            Index::Locked l = c_.index.lookup(key_of(it), hashes[i]);
            const int hit = l && l->committed() ? 1 : 0;
            if (hit && pin_hits && c_.pool.pin_gated(l->ref().arena)) {
                gated = l->ref().arena; // waited for below, as daxkv_pin waits
                return 0;
            }
            if (hit && pin_hits) {
                // As daxkv_pin: a hit counted but not pinned would have the
                // caller's unpin drop a pin someone else holds.
                if (!c_.index.pin(l))
                    fail(-EOVERFLOW, "pin count overflow");
                pinned[i] = true;
            }
            return hit;
        });
        if (gated != UINT32_MAX) {
            // The pins this call took are not waited for by the eviction
            // behind the gate (it never waits for pins): it ends on its own.
            try {
                c_.pool.wait_pin_gate(gated);
            } catch (...) {
                drop_pins();
                throw;
            }
            --i; // the same item again
            continue;
        }
        if (it.status == 1) {
            ++hits;
        } else if (prefix) {
            for (size_t j = i + 1; j < n; ++j)
                items[j].status = 0;
            break;
        }
    }
    return hits;
}

int Reads::lease(std::string_view key, std::unique_ptr<LeaseState> *out, uint32_t *gated) {
    CallGate::Call call(c_.gate);
    // Allocated first: nothing is borrowed or leased yet if it fails.
    auto l = std::make_unique<LeaseState>();
    std::shared_ptr<HeldSlots> taker = HeldSlots::mine();
    Borrow b;
    for (;;) {
        Index::Locked e = c_.index.lookup(key);
        if (!e || !e->committed()) {
            c_.counters.misses++;
            return set_error(-ENOENT, "key not found");
        }
        const Version &v = e->version();
        // The gate is looked at, and the lease marked, under the shard lock
        // that hotplug's check of the device's leases takes too: a lease is
        // either seen by that check or sees the gate, never taken between
        // the two (it would then be waited for by a call that must not).
        if (c_.pool.lease_gated(v.ref.arena, v.ref.slot)) {
            const uint32_t a = v.ref.arena;
            e.unlock();
            if (gated) {
                *gated = a;
                return set_error(-EAGAIN, "the entry's device is resizing or being removed");
            }
            // A removal or shrink of that device is under way: new leases
            // wait (pool.hpp), so that it cannot starve, then look again.
            c_.pool.wait_lease_gate(a);
            continue;
        }
        start_borrow(e, b);
        c_.slots.lease(v.ref); // hotplug tells leases from reads in progress
        break;
    }
    if (c_.copier.verifies_reads()) {
        if (const int rc = verify_in_place(b)) {
            {
                auto g = c_.index.lock_shard(b.shard);
                c_.slots.end_lease(b.ref);
            }
            failed_verify(b, rc, ""); // ends the borrow
        }
    }
    l->shard = b.shard;
    l->ref = b.ref;
    l->data = b.src;
    l->size = b.len;
    l->meta = c_.pool.arena(b.ref.arena).header_meta(b.ref.slot);
    l->meta_len = b.meta_len;
    l->hash = b.hash;
    l->held.pool = &c_.pool;
    l->held.arena = b.ref.arena;
    l->held.slot = b.ref.slot;
    taker->add(l->held, std::move(taker));
    c_.counters.hits++;
    *out = std::move(l);
    return 0;
}

int Reads::read_leases(LeaseState *const *leases, daxkv_item *items, size_t n) {
    CallGate::Call call(c_.gate);
    const bool verify_read = c_.copier.verifies_reads();
    // Each copy runs under a borrow of its own, taken next to the lease's:
    // a copy that faults or fails its checksum ends it as get_batch ends
    // its borrows (the slot quarantined, the entry dropped), and the
    // lease's borrow ends at its release as it always does.
    std::vector<Borrow> borrows;
    std::vector<size_t> item_of;
    std::vector<engine::CopyOp> ops;
    std::vector<int> copy_rc;
    BlockHashes hashes;
    std::vector<size_t> hash_off;
    borrows.reserve(n);
    item_of.reserve(n);
    ops.reserve(n);
    hash_off.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        daxkv_item &it = items[i];
        const LeaseState &l = *leases[i];
        it.status = item_status([&] {
            const bool too_small = (it.data && it.len < l.size) ||
                                   (it.meta && it.meta_len < l.meta_len);
            if (too_small) {
                const size_t cap = it.data ? it.len : SIZE_MAX, meta_cap = it.meta_len;
                it.len = l.size;
                if (it.meta)
                    it.meta_len = l.meta_len;
                if (cap < l.size)
                    return set_error(-ENOBUFS, "item %zu: destination holds %zu bytes, the "
                                               "value has %zu", i, cap, l.size);
                return set_error(-ENOBUFS, "item %zu: metadata buffer holds %zu bytes, the "
                                           "entry has %zu", i, meta_cap, l.meta_len);
            }
            return 0;
        });
        if (it.status)
            continue;
        const Borrow b = l.as_borrow();
        if (it.data) {
            ops.push_back(c_.copier.read(it.data, b.src, b.len, nullptr));
            hash_off.push_back(verify_read ? hashes.add(b.len) : 0);
        }
        borrows.push_back(b);
        item_of.push_back(i);
    }
    // Every allocation is made: nothing below throws until the copies are
    // done, but the engine itself (out of memory), which ends the borrows.
    size_t op = 0;
    for (size_t k = 0; k < borrows.size(); ++k) {
        auto g = c_.index.lock_shard(borrows[k].shard);
        c_.slots.borrow(borrows[k].ref);
        if (verify_read && items[item_of[k]].data) {
            ops[op].block_hashes = hashes.at(hash_off[op]);
            ++op;
        }
    }
    try {
        c_.copier.run_batch(ops, copy_rc);
    } catch (...) {
        for (const Borrow &b : borrows)
            end(b);
        throw;
    }
    int copied = 0;
    uint64_t bytes = 0; // the hits were counted as the leases were taken
    op = 0;
    for (size_t k = 0; k < borrows.size(); ++k) {
        const Borrow &b = borrows[k];
        daxkv_item &it = items[item_of[k]];
        const engine::CopyOp *copy = it.data ? &ops[op++] : nullptr;
        it.status = item_status([&] {
            if (copy && copy_rc[copy - ops.data()])
                copy_failed(b, copy_rc[copy - ops.data()], "");
            if (it.meta && !copy_meta(b, it.meta))
                failed_verify(b, engine::kMediaFault, "");
            if (verify_read) {
                arena::Arena::HeaderCheck hc;
                // The value checked where it was copied, the metadata
                // alone by the header's checksum where it was not.
                const int rc = copy ? verify(b, b.len ? copy->block_hashes : nullptr, it.meta)
                                    : check_header(b, it.meta, hc);
                if (rc)
                    failed_verify(b, rc, "");
            }
            end(b);
            return 0;
        });
        if (it.status)
            continue;
        it.len = b.len;
        if (it.meta)
            it.meta_len = b.meta_len;
        bytes += copy ? b.len : 0;
        ++copied;
    }
    c_.counters.bytes_read.fetch_add(bytes, std::memory_order_relaxed);
    return copied;
}

void Reads::wait_lease_gate(uint32_t a) {
    CallGate::Call call(c_.gate);
    c_.pool.wait_lease_gate(a);
}

void Reads::release(LeaseState &l) noexcept {
    // Out of its taker's list first: a taker that looks meanwhile waits for
    // a lease that is going rather than failing for one already gone.
    HeldSlots::remove(l.held);
    auto g = c_.index.lock_shard(l.shard);
    c_.slots.end_lease(l.ref);
    c_.slots.end_borrow(l.ref);
}

} // namespace daxkv
