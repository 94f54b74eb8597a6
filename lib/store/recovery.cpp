#include "store/recovery.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "internal/error.hpp"
#include "internal/take_turns.hpp"

namespace daxkv {
namespace {

// What the rebuild needs of an entry, copied out of the mapping in slot
// order: reading keys from the headers again in shard order would be a
// cache and TLB miss per entry.
struct Found {
    uint64_t hash;
    Version v;
    std::string key;
};

// Withdraw a commit that lost at recovery (stale, replaced, or removed while
// its device was away). The scan has just read its header whole; should
// clearing it fault now (sigbus=handle), the slot stays as it is: a write
// into it faults on the same header and quarantines it, and a later scan
// finds it unreadable, or older than what won, as this one did.
void withdraw_lost(Core &c, uint32_t a, uint32_t slot) noexcept {
    if (!c.pool.arena(a).withdraw(slot))
        c.counters.copy_faults++;
}

// Offer a recovered version for its key (l locked), and withdraw whichever
// commit lost: the offered one (stale), or the one the index had
// (replaced), whose slot is freed as after a replace when it was in use.
Index::Offer offer(Core &c, Index::Locked &l, const Version &v, uint64_t tick, bool in_use) {
    Version loser;
    const Index::Offer o = c.index.insert_recovered(l, v, tick, &loser);
    if (o == Index::Offer::stale) {
        withdraw_lost(c, v.ref.arena, v.ref.slot);
    } else if (o == Index::Offer::replaced) {
        withdraw_lost(c, loser.ref.arena, loser.ref.slot);
        if (in_use)
            c.slots.retire(loser.ref);
    }
    return o;
}

// Whether a device of the pool other than row a, mapped now, carries the
// uuid of row a's arena: one of the two is a byte copy of the other. A copy
// taken while the store ran, of an open that then crashed, holds the same
// record of that open as its device (neither was closed), so only this
// tells that its floor counts changes it never saw.
bool copy_in_pool(const Core &c, uint32_t a) {
    const auto &ar = c.pool[a].arena;
    for (uint32_t x = 0; x < c.pool.size(); ++x) {
        const auto &other = c.pool[x].arena;
        if (x != a && other &&
            std::memcmp(other->superblock().uuid, ar->superblock().uuid,
                        sizeof ar->superblock().uuid) == 0)
            return true;
    }
    return false;
}

// Whether the devices present were last opened by different opens: one of
// them ran without another since. A floor says which changes its device
// saw only along one line of opens; an open of a device without another,
// after an open of the other without it, raises the first one's floor past
// changes only the second saw. Their entries are judged by their own
// tables then too (which cost nothing where a device saw every change: its
// table holds each of them).
bool histories_diverged(const Core &c) {
    uint64_t seen = 0;
    for (uint32_t a = 0; a < c.pool.size(); ++a) {
        const auto &ar = c.pool[a].arena;
        if (!ar || ar->mapping().volatile_memory())
            continue;
        if (seen && ar->last_open() != seen)
            return true;
        seen = ar->last_open() ? ar->last_open() : seen;
    }
    return false;
}

} // namespace

bool judged_by_own_table(const Core &c, uint32_t a) {
    const auto &ar = c.pool[a].arena;
    if (!ar || ar->mapping().volatile_memory() || ar->last_open() == 0 || ar->closed_cleanly())
        return false;
    return c.history.closed_since(ar->last_open()) || copy_in_pool(c, a);
}

void recover_pool(Core &c) {
    // Scan every arena (each scan runs on threads of its own), then rebuild
    // the index shard by shard on as many threads: with a million entries
    // the index inserts cost as much as the scan. Shards share nothing; the
    // slots are taken afterwards, from the winners.
    std::vector<std::vector<Found>> per_shard(Index::kShards);
    size_t total = 0;
    // Pool history (history.cpp): the devices' removal tables merged, and
    // each device's floor as its last open left it. Sequence numbers go on
    // above every floor, entry and removal the devices know of.
    std::vector<uint64_t> floor(c.pool.size(), 0);
    // A device whose last open was not closed on it, while another device
    // present was closed cleanly at the end of that open or of a later one,
    // is an image of it taken while the store ran (a copy of its file), or
    // one that crashed with its open and then stayed away: its floor may
    // count changes made after the image as seen. So is one that carries the
    // uuid of another device present (a copy beside its device, or the
    // device beside its copy), when the open it names was not closed: after
    // a crash no device is marked closed. Its entries are judged by its own
    // removal table instead: a change of the bucket that the table does not
    // hold was missed.
    std::vector<std::vector<uint64_t>> own(c.pool.size());
    uint64_t top = 0, removed_away = 0;
    if (c.history.kept()) {
        const bool diverged = histories_diverged(c);
        for (uint32_t a = 0; a < c.pool.size(); ++a)
            if (c.pool[a].arena)
                c.history.note_found(*c.pool[a].arena);
        for (uint32_t a = 0; a < c.pool.size(); ++a) {
            const auto &ar = c.pool[a].arena;
            if (!ar || ar->mapping().volatile_memory())
                continue;
            floor[a] = ar->seq_floor();
            std::vector<uint64_t> table = History::own_table(*ar);
            top = std::max(top, c.history.take_device(*ar, table));
            if (diverged || judged_by_own_table(c, a))
                own[a] = std::move(table);
        }
    }
    for (uint32_t a = 0; a < c.pool.size(); ++a) {
        arena::Arena *ar = c.pool[a].arena.get();
        if (!ar)
            continue; // missing at open
        arena::RecoveryCounts counts;
        std::vector<uint32_t> unreadable;
        std::vector<arena::RecoveredEntry> found =
            scan_device(*ar, c.pool[a].path, counts, unreadable);
        quarantine_unreadable(c, a, unreadable);
        c.recovered.torn += counts.torn;
        c.recovered.corrupt += counts.corrupt;
        c.recovered.usec += counts.usec;
        c.recovered.threads = std::max(c.recovered.threads, counts.threads);
        total += found.size();
        for (auto &v : per_shard)
            v.reserve(v.size() + found.size() * 5 / (4 * Index::kShards) + 1);
        for (const auto &r : found) {
            const std::string_view key(r.key, r.key_len);
            const uint64_t h = Index::hash(key);
            top = std::max(top, r.seq);
            if (c.history.kept() && (c.history.removed_while_away(h, r.seq, floor[a]) ||
                                     (!own[a].empty() && c.history.missed(h, r.seq, own[a])))) {
                // Removed (or replaced, then removed) while this device was
                // away: the pool's history says it is gone.
                withdraw_lost(c, a, r.slot);
                ++removed_away;
                continue;
            }
            per_shard[Index::shard_of(h)].push_back(
                Found{h, Version{SlotRef{a, r.slot, r.generation}, r.value_len, r.meta_len, r.seq},
                      std::string(key)});
        }
    }
    std::atomic<uint64_t> stale{0}, max_seq{0};
    // The shards on as many threads as the store's workers (at most 16).
    // The first failure of a shard (no memory for its entries) leaves the
    // shards not yet started; the open fails and drops the index.
    const unsigned threads = std::max(1u, std::min(c.cfg.effective_workers(), 16u));
    take_turns(Index::kShards, total < 4096 ? 1 : threads, [&](uint64_t i) {
        // In commit order, each linked at the LRU tail with its sequence
        // number as its tick: the oldest commit is the first victim. Two
        // commits of one key with one seq (a damaged or copied image)
        // go by device, then slot: the first offered stays, as daxkv
        // check judges them.
        std::vector<Found> &list = per_shard[i];
        std::sort(list.begin(), list.end(), [](const Found &x, const Found &y) {
            if (x.v.seq != y.v.seq)
                return x.v.seq < y.v.seq;
            if (x.v.ref.arena != y.v.ref.arena)
                return x.v.ref.arena < y.v.ref.arena;
            return x.v.ref.slot < y.v.ref.slot;
        });
        c.index.reserve_shard(static_cast<uint16_t>(i), list.size());
        uint64_t shard_max = 0, shard_stale = 0;
        for (const Found &f : list) {
            Index::Locked l = c.index.lookup(f.key, f.hash);
            if (offer(c, l, f.v, f.v.seq, false) != Index::Offer::added)
                ++shard_stale; // two commits of one key: one withdrawn
            shard_max = std::max(shard_max, f.v.seq);
        }
        stale.fetch_add(shard_stale, std::memory_order_relaxed);
        uint64_t m = max_seq.load(std::memory_order_relaxed);
        while (shard_max > m && !max_seq.compare_exchange_weak(m, shard_max)) {
        }
    });
    // The winners own their slots.
    c.index.for_each_locked([&](const Entry &e) {
        if (e.committed())
            c.slots.take_recovered(e.ref().arena, e.ref().slot, e.ref().gen);
    });
    const int64_t entries = c.index.entries();
    c.recovered.stale += stale.load() + removed_away;
    c.recovered.recovered = static_cast<uint64_t>(entries);
    c.index.set_next_tick(max_seq.load() + 1);
    if (!c.history.kept()) {
        c.history.start_at(max_seq.load() + 1);
        return;
    }
    // Above the wall clock too: two opens that each lacked a device are
    // ordered by when they happened (history.cpp).
    const auto wall = std::chrono::system_clock::now().time_since_epoch();
    top = std::max(top, static_cast<uint64_t>(
                            std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count()));
    c.history.raise_floor(top);
    for (uint32_t a = 0; a < c.pool.size(); ++a)
        c.history.share(a);
    c.history.begin_open();
}

namespace testing {
std::function<void(const std::string &path)> before_recovery_scan;
} // namespace testing

std::vector<arena::RecoveredEntry> scan_device(arena::Arena &arena, const std::string &path,
                                               arena::RecoveryCounts &counts,
                                               std::vector<uint32_t> &unreadable) {
    if (testing::before_recovery_scan)
        testing::before_recovery_scan(path);
    return arena.scan(counts, &unreadable);
}

void quarantine_unreadable(Core &c, uint32_t a, const std::vector<uint32_t> &slots) {
    if (slots.empty())
        return;
    for (uint32_t slot : slots)
        c.slots.quarantine_recovered(a, slot);
    c.counters.copy_faults += slots.size();
    log(kLogErr,
        "device %u: %zu slots could not be read to check them (SIGBUS: bad media or a "
        "truncated file): their entries left out, the slots quarantined (the first is slot %u)",
        c.pool[a].id, slots.size(), slots.front());
}

void adopt_device(Core &c, uint32_t a, uint64_t floor, const std::vector<uint64_t> &own,
                  const std::vector<arena::RecoveredEntry> &found,
                  const arena::RecoveryCounts &counts) {
    DeviceRow &d = c.pool[a];
    uint64_t adopted = 0, stale = 0, removed = 0, unindexed = 0, top = 0;
    for (const auto &r : found)
        top = std::max(top, r.seq);
    // Later commits must be newer than anything on the device.
    c.history.raise_floor(top);
    for (const auto &r : found) {
        const std::string_view key(r.key, r.key_len);
        const uint64_t h = Index::hash(key);
        Index::Locked l = c.index.lookup(key, h);
        if (c.history.kept() && (c.history.removed_while_away(h, r.seq, floor) ||
                                 (!own.empty() && c.history.missed(h, r.seq, own)))) {
            withdraw_lost(c, a, r.slot);
            ++removed;
            continue;
        }
        // A newer commit than the pool's wins; the pool's goes, as after a
        // replace (pins belong to the key and stay).
        Index::Offer o;
        try {
            o = offer(c, l,
                      Version{SlotRef{a, r.slot, r.generation}, r.value_len, r.meta_len, r.seq},
                      0, true);
        } catch (const std::bad_alloc &) {
            // No memory for a new key's entry (nothing changed): the device
            // is in the pool already, so the add goes on without it. The
            // entry stays on the device, its slot free to be written over;
            // a later open finds it if it is not.
            ++unindexed;
            continue;
        }
        if (o != Index::Offer::added)
            ++stale;
        if (o == Index::Offer::stale)
            continue;
        c.slots.take_recovered(a, r.slot, r.generation);
        ++adopted;
    }
    if (unindexed)
        log(kLogWarning, "device %u: %llu entries left out of the index for want of memory",
            d.id, static_cast<unsigned long long>(unindexed));
    if (adopted || stale || removed || counts.torn || counts.corrupt)
        log(kLogInfo,
            "device %u: %llu entries recovered, %llu stale (a newer commit of the key won), "
            "%llu removed while the device was away, %llu torn, %llu corrupt",
            d.id, static_cast<unsigned long long>(adopted),
            static_cast<unsigned long long>(stale), static_cast<unsigned long long>(removed),
            static_cast<unsigned long long>(counts.torn),
            static_cast<unsigned long long>(counts.corrupt));
}

} // namespace daxkv
