// Pool history: what keeps a device that comes back to the pool after it
// was away (missing at an open, left out of the configuration, removed and
// added again) from bringing back values that were replaced or removed
// while it was away (docs/on-device-format.md, "Pool history").
//
// - Sequence numbers are ordered across every open of the pool. Each device
//   records a floor (seq_floor) above every sequence number the pool handed
//   out while it was there: numbers are handed out below a limit that every
//   device has recorded first, raised kSeqLease at a time. An open starts
//   above the floors, entries and removals of the devices present and the
//   wall clock, so a replacement made while a device was away is newer than
//   what the device holds, and two opens that each lacked a device are
//   ordered by when they happened.
// - Changes are recorded: a commit (before its commit word is stored) and a
//   removal (remove, eviction, a dropped entry: with a sequence number of
//   its own, before the entry is withdrawn) raise their key's bucket of the
//   removal table, on every device. An entry of seq s found on a device
//   whose floor was f is dropped when its bucket holds r > s with r >= f: a
//   newer version or a removal that the device did not see (while it was
//   there, r < f, and the change withdrew the entry itself). A commit is
//   recorded too because the device that holds the newer version may be the
//   one missing when the old one comes back. Buckets are shared by many
//   keys: a collision drops an entry that was not changed (a cache entry
//   lost), never the other way round.
// - A floor is only what a device saw if it stayed in the pool to the end
//   of the open that wrote it. An image copied while the store ran and put
//   back after a clean close (or added during the open it was copied in)
//   did not: each open records itself on every device (last_open) and a
//   clean close marks it there, so such an image is told by its record
//   (not closed, beside a device closed then or later), and its entries are
//   judged by its own removal table as well (a change of the bucket that it
//   did not record was missed).
// - What a device that comes back cannot know is a change that only absent
//   devices saw: the guarantee holds while one device that was in the pool
//   at the change is present.
#include "store/history.hpp"

#include <algorithm>
#include <cerrno>
#include <shared_mutex>
#include <vector>

#include "internal/error.hpp"

namespace daxkv {
namespace {

// Sequence numbers handed out per floor raise: one superblock rewrite per
// device for every million commits and removals. It is also how far (in
// nanoseconds) a floor can be ahead of the clock that started the open, so
// the resolution to which two opens that each lacked a device are ordered
// by time: about a millisecond.
constexpr uint64_t kSeqLease = uint64_t(1) << 20;

// The devices that keep a record: mapped, and not anonymous memory.
bool records(const std::shared_ptr<arena::Arena> &ar) noexcept {
    return ar && !ar->mapping().volatile_memory();
}

} // namespace

History::History(const Config &cfg, Pool &pool, Counters &counters)
    : cfg_(cfg), pool_(pool), counters_(counters),
      removals_(new std::atomic<uint64_t>[arena::kRemovalBuckets]()) {}

void History::write_floor(uint64_t limit) {
    {
        // The devices' rows: a removal unmaps a device under the mapping lock.
        std::shared_lock<std::shared_mutex> pool(pool_.mapping_lock());
        for (uint32_t a = 0; a < pool_.size(); ++a) {
            if (!records(pool_[a].arena))
                continue;
            try {
                pool_[a].arena->set_seq_floor(limit);
            } catch (const Error &) { // a fault (-EIO), or a write-back's error
                record_faulted(a, "writing its floor");
            }
        }
    }
    seq_limit_.store(limit, std::memory_order_release);
}

void History::record_faulted(uint32_t a, const char *what) noexcept {
    counters_.copy_faults++;
    const uint64_t bit = uint64_t(1) << (a % 64);
    if (!(failures_told_.fetch_or(bit) & bit))
        log(kLogErr,
            "device %u: %s failed (a fault: SIGBUS, bad media under its superblock blocks or a "
            "file cut short; or a write-back the file system refused): the pool history it "
            "keeps may miss changes from now on; an open that finds its blocks faulting "
            "refuses the device",
            pool_[a].id, what);
}

uint64_t History::next_seqs(uint64_t n) noexcept {
    const uint64_t v = next_seq_.fetch_add(n, std::memory_order_relaxed);
    const uint64_t last = v + n - 1;
    if (kept() && last >= seq_limit_.load(std::memory_order_acquire)) {
        try {
            std::lock_guard<std::mutex> g(seq_m_);
            if (last >= seq_limit_.load(std::memory_order_relaxed))
                write_floor(last + kSeqLease);
        } catch (...) {
            // Not recorded (a lock that failed): a device's floor then lags
            // behind what it holds, which can only drop entries at an open.
        }
    }
    return v;
}

void History::raise_floor(uint64_t v) {
    uint64_t cur = next_seq_.load();
    while (cur <= v && !next_seq_.compare_exchange_weak(cur, v + 1)) {
    }
    if (!kept())
        return;
    std::lock_guard<std::mutex> g(seq_m_);
    const uint64_t next = next_seq_.load();
    if (seq_limit_.load(std::memory_order_relaxed) <= next)
        write_floor(next + kSeqLease);
}

void History::record_removal(uint64_t hash) noexcept {
    if (!kept())
        return;
    const uint64_t r = next_seq(); // before the lock: it may write the floors under it
    note(Devices(pool_), hash, r, true);
}

void History::note(const Devices &devices, uint64_t hash, uint64_t r, bool durable) noexcept {
    const uint32_t b = arena::removal_bucket(hash);
    std::atomic<uint64_t> &mem = removals_[b];
    uint64_t cur = mem.load(std::memory_order_relaxed);
    while (cur < r && !mem.compare_exchange_weak(cur, r)) {
    }
    if (!devices.lock.owns_lock())
        return;
    for (uint32_t a = 0; a < pool_.size(); ++a) {
        const auto &ar = pool_[a].arena;
        if (!records(ar))
            continue;
        if (!(durable ? ar->note_removal(b, r) : ar->stage_removal(b, r)))
            record_faulted(a, "recording a change in its removal table");
    }
}

bool History::removed_while_away(uint64_t hash, uint64_t seq, uint64_t floor) const noexcept {
    return arena::removed_after(
        removals_[arena::removal_bucket(hash)].load(std::memory_order_relaxed), seq, floor);
}

std::vector<uint64_t> History::own_table(const arena::Arena &ar) {
    std::vector<uint64_t> t(arena::kRemovalBuckets);
    if (!ar.read_removals(t.data()))
        fail(-EIO, "%s: reading its removal table faulted (SIGBUS: bad media, or a file cut short)",
             ar.mapping().info().path.c_str());
    return t;
}

bool History::missed(uint64_t hash, uint64_t seq,
                     const std::vector<uint64_t> &own) const noexcept {
    const uint32_t b = arena::removal_bucket(hash);
    const uint64_t r = removals_[b].load(std::memory_order_relaxed);
    return r > seq && r > own[b];
}

void History::begin_open() {
    if (!kept())
        return;
    open_id_.store(next_seq_.load());
    std::shared_lock<std::shared_mutex> pool(pool_.mapping_lock());
    for (uint32_t a = 0; a < pool_.size(); ++a) {
        if (!records(pool_[a].arena))
            continue;
        // Kept where its write-back fails (Arena::set_last_open), as the
        // other records of the history are: the open goes on. Blocks that
        // fault fail it (libdaxkv(3): sigbus).
        try {
            pool_[a].arena->set_last_open(open_id_.load());
        } catch (const arena::BlocksFaulted &) {
            throw;
        } catch (const Error &) { // a write-back's error
            record_faulted(a, "recording this open");
        }
    }
}

void History::note_found(const arena::Arena &ar) noexcept {
    if (!kept() || ar.mapping().volatile_memory() || !ar.closed_cleanly())
        return;
    const uint64_t last = ar.last_open();
    uint64_t cur = closed_through_.load();
    while (cur < last && !closed_through_.compare_exchange_weak(cur, last)) {
    }
}

void History::mark_clean_close() noexcept {
    if (!kept() || open_id_.load() == 0)
        return;
    // A device not marked (a lock that failed, a superblock that faulted):
    // the next open trusts its floor as after a crash.
    try {
        std::shared_lock<std::shared_mutex> pool(pool_.mapping_lock());
        for (uint32_t a = 0; a < pool_.size(); ++a) {
            if (!records(pool_[a].arena))
                continue;
            try {
                pool_[a].arena->mark_closed();
            } catch (const Error &) {
                record_faulted(a, "marking its clean close");
            }
        }
    } catch (...) {
    }
}

uint64_t History::take_device(const arena::Arena &ar,
                              const std::vector<uint64_t> &table) noexcept {
    uint64_t top = ar.seq_floor();
    for (uint32_t b = 0; b < arena::kRemovalBuckets; ++b) {
        const uint64_t r = table[b];
        uint64_t cur = removals_[b].load();
        while (cur < r && !removals_[b].compare_exchange_weak(cur, r)) {
        }
        top = std::max(top, r);
    }
    return top;
}

void History::share(uint32_t a) noexcept {
    const auto &ar = pool_[a].arena;
    if (!kept() || !records(ar))
        return;
    // On the stack (a few KiB): a device added to the pool is in use before
    // its table is shared, so this must not fail.
    uint64_t table[arena::kRemovalBuckets];
    for (uint32_t b = 0; b < arena::kRemovalBuckets; ++b)
        table[b] = removals_[b].load(std::memory_order_relaxed);
    if (!ar->merge_removals(table))
        record_faulted(a, "sharing the pool's removal table with it");
}

void History::join(uint32_t a) {
    arena::Arena &ar = *pool_[a].arena;
    try {
        {
            std::lock_guard<std::mutex> g(seq_m_);
            ar.set_seq_floor(seq_limit_.load());
        }
        if (open_id_.load() != 0)
            ar.set_last_open(open_id_.load());
    } catch (const Error &) { // a fault (-EIO), or a write-back's error
        record_faulted(a, "recording the pool's floor and open");
    }
}

} // namespace daxkv
