// The key index: 64 shards keyed by the XXH3 of the key, each a hash table of
// entries and an LRU list of the committed ones (head: least recently used).
//
// Invariants, kept here and nowhere else: an entry is in its shard's LRU
// list exactly while it is committed and not pinned, the list is in tick
// order, head_tick is its head's tick; entries() counts the committed
// entries, pinned() the committed ones with a pin. A pinned entry keeps
// its tick (its accesses still set it) and goes back into the list in
// tick order when its last pin goes: a pin is no use, and no eviction has
// to walk past pinned entries (they sat at the heads of their lists, and
// each eviction looked through every shard for an older evictable entry).
// Only Index touches an entry's LRU links and its committed version (the
// fields are private).
//
// An access (touch) is not moved in the list at once: it waits in its
// shard's touch queue, in tick order, and the queue is applied before
// anything else reads or changes the list (commit, uncommit, eviction), or
// when it is full. Moving an entry writes its neighbours, entries nobody
// else has read for a long time: one cache miss each, which a batch of
// reads would otherwise pay one after another, each under its shard lock;
// applied together, the misses overlap. Until then head_tick may be older
// than the head's tick once the queue is applied, never newer: eviction
// applies the queue of the shard it picks and picks again if that shard
// no longer holds the oldest entry, so it still takes the least recently
// used one.
//
// Locking: each key belongs to one shard, whose mutex guards the shard's
// entries and the state of the slots they own (slot_states.hpp). lookup()
// returns the key's entry with that mutex held. No code holds two shard
// locks at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/config.hpp"
#include "store/entry_table.hpp"
#include "store/item.hpp"
#include "store/slot_states.hpp"

namespace daxkv {

// A write of a key that holds a slot but is not visible yet (writes.hpp).
struct Inflight {
    SlotRef ref;
    uint64_t len = 0;
    bool canceled = false; // a forced remove withdrew it
    // Whether the commit word may still be withheld. A forced remove of the
    // key cancels the write only before its writer begins to store the
    // commit word (cancel() true), and the writer then stores none, so no
    // crash can bring the write back; once the writer has begun
    // (begin_commit() true), the remove waits for the commit and removes
    // what it committed. Decided once, by whichever comes first.
    enum : uint8_t { kUndecided, kWillCommit, kWithheld };
    std::atomic<uint8_t> fate{kUndecided};
    bool begin_commit() noexcept { return decide(kWillCommit); }
    bool cancel() noexcept { return decide(kWithheld); }
    // A reservation: held by its caller for as long as the caller likes.
    // A forced device removal or shrink cannot wait for it, so it detaches
    // it instead (phase held -> detached: its commit fails with -ECANCELED);
    // one whose commit has begun (held -> committing) is waited for.
    bool reservation = false;
    enum : uint8_t { kHeld, kCommitting, kDetached };
    std::atomic<uint8_t> phase{kHeld};

private:
    bool decide(uint8_t to) noexcept {
        uint8_t was = kUndecided;
        return fate.compare_exchange_strong(was, to) || was == to;
    }
};

// A key's committed version: where its bytes are, their size, its commit.
struct Version {
    SlotRef ref;
    uint64_t value_len = 0;
    uint32_t meta_len = 0;
    uint64_t seq = 0;
};

class Entry {
public:
    const std::string &key() const noexcept { return key_; }
    uint64_t hash() const noexcept { return hash_; }
    bool committed() const noexcept { return committed_; }
    // The committed version (meaningful while committed()).
    const Version &version() const noexcept { return v_; }
    const SlotRef &ref() const noexcept { return v_.ref; }
    uint32_t pins() const noexcept { return pins_; }

    // A write of this key in flight (owned by its claim or reservation),
    // set and cleared by the write path with the shard lock held.
    Inflight *inflight = nullptr;

private:
    friend class Index;
    std::string key_;
    uint64_t hash_ = 0;
    bool committed_ = false;
    Version v_;
    uint32_t pins_ = 0; // they belong to the key: a replace keeps them
    Entry *prev_ = nullptr, *next_ = nullptr;
    uint64_t tick_ = 0;
    // next_'s tick (UINT64_MAX at the tail): unlinking the head sets the
    // shard's head_tick from this, without reading the next entry, a cache
    // miss on every touch of a head (touches in access order touch heads).
    uint64_t next_tick_ = UINT64_MAX;
    bool in_lru_ = false;
    bool touch_queued_ = false; // in its shard's touch queue

    // Made the entry of key, as new, keeping the key's buffer (a spare).
    void reset(std::string_view key, uint64_t hash) {
        key_.assign(key);
        hash_ = hash;
        committed_ = false;
        v_ = Version();
        pins_ = 0;
        prev_ = next_ = nullptr;
        tick_ = 0;
        next_tick_ = UINT64_MAX;
        in_lru_ = false;
        touch_queued_ = false;
        inflight = nullptr;
    }
};

class Index {
    struct Shard;

public:
    static constexpr size_t kShards = 64;

    explicit Index(const Config &cfg);
    Index(const Index &) = delete;
    Index &operator=(const Index &) = delete;

    static uint64_t hash(std::string_view key) noexcept;
    static uint16_t shard_of(uint64_t hash) noexcept { return static_cast<uint16_t>(hash % kShards); }

    // A key's place in the index, its shard locked for as long as this
    // lives (or until unlock()): its entry, or null when it has none.
    class Locked {
    public:
        Entry *entry() const noexcept { return e_; }
        Entry *operator->() const noexcept { return e_; }
        explicit operator bool() const noexcept { return e_ != nullptr; }
        std::string_view key() const noexcept { return key_; }
        uint64_t hash() const noexcept { return hash_; }
        // The shard locked.
        uint16_t shard() const noexcept { return shard_; }
        void unlock() noexcept { lock_.unlock(); }

    private:
        friend class Index;
        Locked(Shard &sh, uint16_t shard, std::unique_lock<std::mutex> lock, std::string_view key,
               uint64_t hash, Entry *e) noexcept
            : sh_(&sh), shard_(shard), lock_(std::move(lock)), key_(key), hash_(hash), e_(e) {}
        Shard *sh_;
        uint16_t shard_;
        std::unique_lock<std::mutex> lock_;
        std::string_view key_; // the caller's bytes, or the entry's
        uint64_t hash_;
        Entry *e_;
    };

    // Ask for the cache line where lookup() of a key with this hash starts
    // (no lock taken; see EntryTable::prefetch).
    void prefetch(uint64_t hash) const noexcept {
        shards_[shard_of(hash)].entries.prefetch(hash);
    }

    // The hashes of a batch's keys (0 for a key that check_key refuses).
    // Reading item i's asks for the first index line of item i + kAhead,
    // the first kAhead lines being asked for up front: the misses of many
    // keys overlap, and each line arrives shortly before its lookup. (Lines
    // asked for all at once were gone by the time a large batch reached its
    // later items: its copies stream through the cache in between.)
    class KeyHashes {
    public:
        static constexpr size_t kAhead = 16;
        KeyHashes(const Index &index, const daxkv_item *items, size_t n);
        uint64_t operator[](size_t i) const noexcept {
            if (i + kAhead < hashes_.size())
                index_.prefetch(hashes_[i + kAhead]);
            return hashes_[i];
        }

    private:
        const Index &index_;
        std::vector<uint64_t> hashes_;
    };
    KeyHashes hash_items(const daxkv_item *items, size_t n) const {
        return KeyHashes(*this, items, n);
    }

    Locked lookup(std::string_view key) { return lookup(key, hash(key)); }
    Locked lookup(std::string_view key, uint64_t hash) { return lookup(key, hash, shard_of(hash)); }
    // With shard i locked whatever the key: the entry only if the key
    // belongs to that shard (a borrow's key, while the borrowed slot's
    // state is the shard's).
    Locked lookup(std::string_view key, uint64_t hash, uint16_t i);
    // With shard i locked: the entry of hash whose committed version is in
    // slot ref (its key is the entry's own), or none. For a borrow ending
    // in a fault, whose caller's key bytes may have been overwritten by
    // the copy itself (a destination that holds the key).
    Locked lookup_committed_at(uint64_t hash, uint16_t i, const SlotRef &ref);
    // The key's shard locked and the entry of a write in flight, found
    // without a lookup: e is the entry the write's claim found or added,
    // which stays while the write is in flight (erase_if_empty keeps it);
    // null once a forced remove has cancelled the write, after which the
    // entry may be gone. Both happen under this shard's lock.
    Locked lookup_inflight(Entry *e, const Inflight &inf, std::string_view key, uint64_t hash);
    // Shard i locked: to change the state of a slot one of its entries owns
    // (a borrow ending) when the key is not at hand.
    std::unique_lock<std::mutex> lock_shard(uint16_t i) {
        return std::unique_lock<std::mutex>(shards_[i].m);
    }

    // Changes; each with l's shard locked.
    // An entry for l's key, which has none: neither committed nor written.
    Entry &add(Locked &l);
    // Drop l's entry if it holds nothing any more (neither a committed
    // version nor a write in flight).
    void erase_if_empty(Locked &l) noexcept;
    // l's entry gets the committed version v, with pins, most recently used
    // (or at tick, for recovery, which links entries in commit order).
    void commit(Locked &l, const Version &v, uint32_t pins, uint64_t tick = 0) noexcept;
    // l's entry loses its committed version (out of the LRU list, its pins
    // dropped with it); returns what it was.
    Version uncommit(Locked &l) noexcept;
    // l's committed entry now lives in another slot, committed at seq (a
    // migration): the same key, value and pins.
    void move(Locked &l, const SlotRef &to, uint64_t seq) noexcept;
    // An access: l's committed entry becomes the most recently used
    // (eviction=lru).
    void touch(Locked &l) noexcept;
    // One pin more (false at UINT32_MAX) or less (false when there is none).
    bool pin(Locked &l) noexcept;
    bool unpin(Locked &l) noexcept;

    // Recovery: a committed version found on a device, offered for l's key.
    // added: the key had none; replaced: it had an older one (*loser gets
    // it; its pins stay with the key); stale: it has one at least as new,
    // and the offered one lost. tick as for commit().
    enum class Offer { added, replaced, stale };
    Offer insert_recovered(Locked &l, const Version &v, uint64_t tick, Version *loser);
    // Room for n entries in shard i (recovery, before it inserts them).
    void reserve_shard(uint16_t i, size_t n) {
        std::lock_guard<std::mutex> g(shards_[i].m);
        shards_[i].entries.reserve(n);
    }
    // Ticks of later accesses start above t (after recovery).
    void set_next_tick(uint64_t t) noexcept { tick_.store(t); }

    // f(const Entry &) for every entry, one shard at a time, under its lock.
    template <typename F>
    void for_each_locked(F &&f) {
        for (size_t i = 0; i < kShards; ++i)
            for_each_in_shard(i, f);
    }
    template <typename F>
    void for_each_in_shard(size_t i, F &&f) {
        std::lock_guard<std::mutex> g(shards_[i].m);
        shards_[i].entries.for_each([&](const Entry &e) { f(e); });
    }

    // The victim search: the least recently used committed entry for which
    // skip() is false, handed to take() with its shard locked; false when
    // there is none. Each shard's list is in access order: its first entry
    // skip() lets go is its oldest evictable one, and the oldest of those
    // over all shards is the victim.
    template <typename Skip, typename Take>
    bool evict_one(Skip &&skip, Take &&take);

    int64_t entries() const noexcept { return entries_.load(); }
    int64_t pinned() const noexcept { return pinned_.load(); }

private:
    // Entries a shard keeps when their keys go, for the keys that come
    // next: a store that replaces its values (remove, put) would otherwise
    // free an entry and its key's buffer and allocate both again for every
    // value, a tenth of a small value's put.
    // Under AddressSanitizer none are kept, so that a use of an entry after
    // its key went stays a use after free that it reports.
#if defined(__SANITIZE_ADDRESS__)
    static constexpr size_t kSpareEntries = 0;
#else
    static constexpr size_t kSpareEntries = 32;
#endif
    // Accesses a shard queues before it moves them in its list: enough for
    // their cache misses to overlap, few enough that the lines asked for
    // when they were queued are still in the cache when they are applied.
    static constexpr size_t kTouchQueue = 8;

    struct alignas(64) Shard {
        Shard() { spare.reserve(kSpareEntries); } // kept without allocating (noexcept)
        std::mutex m;
        EntryTable<Entry> entries;
        std::vector<std::unique_ptr<Entry>> spare;
        Entry *lru_head = nullptr, *lru_tail = nullptr;
        std::atomic<uint64_t> head_tick{UINT64_MAX}; // read without the lock by eviction
        // Accesses not yet moved in the list (see the top of this file).
        struct QueuedTouch {
            Entry *e;
            uint64_t tick;
        };
        QueuedTouch touches[kTouchQueue];
        uint32_t queued = 0;
    };

    void lru_link_tail(Shard &sh, Entry *e, uint64_t tick) noexcept;
    // Links e after prev (nullptr: at the head), e's tick as it is.
    void lru_link_after(Shard &sh, Entry *prev, Entry *e) noexcept;
    // Links e where its tick belongs, walking from the nearer end.
    void lru_link_in_order(Shard &sh, Entry *e) noexcept;
    void lru_unlink(Shard &sh, Entry *e) noexcept;
    // Move every queued access to the tail of the list, in order.
    void apply_touches(Shard &sh) noexcept;

    const Config &cfg_;
    std::unique_ptr<Shard[]> shards_;
    std::atomic<uint64_t> tick_{1};
    std::atomic<int64_t> entries_{0}, pinned_{0};
};

template <typename Skip, typename Take>
bool Index::evict_one(Skip &&skip, Take &&take) {
    // older_than_none[i]: no evictable entry of shard i is older than this.
    // At first its head's tick; once the shard has been looked at, the
    // tick of its first evictable entry, which lies behind entries that
    // cannot go (leased, read or written now, or on a device the caller
    // leaves out; pinned ones are not in the lists). A shard is taken from
    // only when its first evictable entry is no newer than every other
    // shard's bound: a shard whose head is held for long would otherwise
    // look oldest at every eviction, and give up its newest entries first.
    uint64_t older_than_none[kShards];
    bool exhausted[kShards] = {};
    for (size_t i = 0; i < kShards; ++i)
        older_than_none[i] = shards_[i].head_tick.load(std::memory_order_relaxed);
    // Each look raises a bound to a tick that was true then, so a shard is
    // looked at again only when accesses or unpins have changed it since;
    // after this many looks the entry in hand is taken, so that such races
    // cannot hold the search off for ever (it may then take a victim that is
    // not quite the oldest, as any eviction racing with accesses may).
    size_t looks_left = 2 * kShards;
    for (;;) {
        size_t pick = kShards;
        uint64_t oldest = UINT64_MAX, next_oldest = UINT64_MAX;
        for (size_t i = 0; i < kShards; ++i) {
            if (exhausted[i])
                continue;
            const uint64_t t = older_than_none[i];
            if (pick == kShards || t < oldest) {
                next_oldest = oldest;
                oldest = t;
                pick = i;
            } else if (t < next_oldest) {
                next_oldest = t;
            }
        }
        if (pick == kShards)
            return false;
        Shard &sh = shards_[pick];
        std::unique_lock<std::mutex> g(sh.m);
        if (sh.queued)
            apply_touches(sh);
        Entry *victim = nullptr;
        for (Entry *e = sh.lru_head; e; e = e->next_)
            if (!skip(static_cast<const Entry &>(*e))) {
                victim = e;
                break;
            }
        if (!victim) {
            exhausted[pick] = true;
            continue;
        }
        if (victim->tick_ > next_oldest && looks_left > 0) {
            --looks_left;
            older_than_none[pick] = victim->tick_;
            continue; // another shard may hold an older one
        }
        Locked l(sh, static_cast<uint16_t>(pick), std::move(g), victim->key_, victim->hash_, victim);
        take(l);
        return true;
    }
}

} // namespace daxkv
