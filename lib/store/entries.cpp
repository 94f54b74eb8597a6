#include "store/entries.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace daxkv {

void Entries::retire(Index::Locked &l) noexcept {
    if (!l->committed())
        return;
    const SlotRef ref = l->ref();
    if (c_.pool.arena(ref.arena).withdraw(ref.slot)) {
        c_.slots.retire(ref);
    } else {
        // Its header faulted (sigbus=handle), or its cleared commit word
        // could not be written back (durability=power): the commit word may
        // still be there, so the slot is never reused; a reopen finds it
        // unreadable, or removed by the history recorded before this.
        c_.counters.copy_faults++;
        log(kLogErr, "withdrawing the entry in slot %u of device %u failed (it faulted: SIGBUS; "
            "or the file system could not write it back): slot quarantined", ref.slot, ref.arena);
        c_.slots.quarantine_faulted(ref);
    }
    c_.index.uncommit(l);
}

void Entries::drop(Index::Locked &l) noexcept {
    c_.history.record_removal(l.hash());
    retire(l);
    c_.index.erase_if_empty(l);
}

void Entries::discard(Index::Locked &l) noexcept {
    c_.history.record_removal(l.hash());
    // A fault clearing its commit word changes nothing: the caller
    // quarantines the slot whatever happens here.
    static_cast<void>(c_.pool.arena(l->ref().arena).withdraw(l->ref().slot));
    c_.index.uncommit(l);
    c_.index.erase_if_empty(l);
}

bool Entries::may_evict(const Entry &e, const std::function<bool(uint32_t)> &to) const noexcept {
    if (e.pins() || e.inflight || c_.slots.at(e.ref()).borrows())
        return false;
    const uint32_t a = e.ref().arena;
    const DeviceRow &row = c_.pool[a];
    if (to) {
        if (!to(a))
            return false;
    } else {
        const DevState st = row.state.load(std::memory_order_relaxed);
        // A draining device empties as its entries are removed, replaced
        // or evicted: a put evicts them in their turn, though they give it
        // no slot (it then evicts again).
        if (st == DevState::draining)
            return true;
        if (!dev_writable(st))
            return false;
    }
    return row.alloc && e.ref().slot < row.alloc->slots();
}

bool Entries::evict_one(const std::function<bool(uint32_t)> &to, bool *freed_room) {
    // With eviction=none only the caller removes entries: a path that
    // would make room by evicting finds nothing to take instead.
    if (c_.cfg.eviction == Eviction::none)
        return false;
    return c_.index.evict_one([&](const Entry &e) { return !may_evict(e, to); },
                              [&](Index::Locked &l) {
                                  if (freed_room)
                                      *freed_room = c_.pool[l->ref().arena].state.load(
                                                        std::memory_order_relaxed) !=
                                                    DevState::draining;
                                  drop(l);
                                  c_.counters.evictions++;
                              });
}

int Entries::remove(std::string_view key, unsigned flags) {
    CallGate::Call call(c_.gate);
    return remove_key(key, flags);
}

int Entries::remove_key(std::string_view key, unsigned flags) {
    const bool force = flags & kForce;
    SlotRef withdrawn; // the committed version this call withdrew (a write in flight may
                       // then commit a newer one, which it withdraws in turn)
    for (unsigned waits = 0;; ++waits) {
        Index::Locked l = c_.index.lookup(key);
        if (!l) {
            // A device away now may hold the key: after this call it is
            // gone all the same (pool history).
            c_.history.record_removal(l.hash());
            return set_error(-ENOENT, "key not found");
        }
        if (!force) {
            if (l->committed() && l->pins())
                return set_error(-EBUSY, "the key is pinned %u time(s); use DAXKV_FORCE",
                                 l->pins());
            if (!l->committed())
                return set_error(-EBUSY, "the key is being written; use DAXKV_FORCE to cancel it");
        }
        // The removal asked for is made durable before anything else
        // changes (a write in flight cancelled, the entry out of the
        // index): one whose cleared commit word cannot be written back
        // (durability=power) keeps the entry, and the write in flight, and
        // fails, where an eviction, which cannot fail, quarantines the slot
        // instead (retire). Recorded first, as drop records it.
        const SlotRef &cur = l->ref();
        if (l->committed() && !(cur.arena == withdrawn.arena && cur.slot == withdrawn.slot &&
                                cur.gen == withdrawn.gen)) {
            c_.history.record_removal(l.hash());
            const SlotRef ref = l->ref();
            if (c_.pool.arena(ref.arena).withdraw_or_keep(ref.slot) ==
                arena::Arena::Withdrawal::not_written_back) {
                const int err = errno;
                fail(-EIO, "the removal could not be written back (%s): the entry is kept",
                     std::strerror(err));
            }
            withdrawn = ref;
        }
        if (l->inflight && force) {
            if (!l->inflight->cancel()) {
                // Its writer has begun to store the commit word: a crash
                // from here on finds the write committed, so it cannot be
                // cancelled. Wait for its commit (a few stores and a fence,
                // holding no lock this waits for) and remove what it put.
                l.unlock();
                if (waits < 64)
                    std::this_thread::yield();
                else
                    std::this_thread::sleep_for(std::chrono::microseconds(50));
                continue;
            }
            l->inflight->canceled = true; // its slot returns at commit or abort
            l->inflight = nullptr;
        }
        // A write cancelled where no entry was is a failed put (its commit
        // counts it), not a removed entry.
        const bool had_entry = l->committed();
        drop(l);
        if (had_entry)
            c_.counters.removes++;
        return 0;
    }
}

int Entries::pin(std::string_view key) {
    CallGate::Call call(c_.gate);
    for (;;) {
        Index::Locked l = c_.index.lookup(key);
        if (!l || !l->committed())
            return set_error(-ENOENT, "key not found");
        // An eviction of the entry's device is under way (pool.hpp): wait
        // for it, then look again. The gate is looked at under the shard
        // lock its check of the pins takes too.
        if (c_.pool.pin_gated(l->ref().arena)) {
            const uint32_t a = l->ref().arena;
            l.unlock();
            c_.pool.wait_pin_gate(a);
            continue;
        }
        if (!c_.index.pin(l))
            fail(-EOVERFLOW, "pin count overflow");
        return 0;
    }
}

int Entries::unpin(std::string_view key) {
    CallGate::Call call(c_.gate);
    return unpin_key(key);
}

int Entries::unpin_key(std::string_view key) {
    Index::Locked l = c_.index.lookup(key);
    if (!l || !l->committed())
        return set_error(-ENOENT, "key not found");
    // daxkv.h: "never goes below zero (-ENOENT if not pinned)": there is no
    // pin to drop, as there is no entry for a missing key.
    if (!c_.index.unpin(l))
        return set_error(-ENOENT, "the key is not pinned");
    return 0;
}

int Entries::remove_batch(daxkv_item *items, size_t n, unsigned flags) {
    CallGate::Call call(c_.gate);
    return each_item(items, n, [&](std::string_view key) { return remove_key(key, flags); });
}

int Entries::unpin_batch(daxkv_item *items, size_t n) {
    CallGate::Call call(c_.gate);
    return each_item(items, n, [&](std::string_view key) { return unpin_key(key); });
}

template <typename F>
int Entries::each_item(daxkv_item *items, size_t n, F &&call) {
    int done = 0;
    for (size_t i = 0; i < n; ++i) {
        daxkv_item &it = items[i];
        it.status = item_status([&] {
            check_item_key(items, n, i);
            return call(key_of(it));
        });
        done += it.status == 0;
    }
    return done;
}

} // namespace daxkv
