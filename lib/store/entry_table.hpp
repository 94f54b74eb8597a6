// One shard's entries by key: an open-addressing hash table of (hash,
// entry) pairs in one array, probed linearly, that owns its entries.
//
// Why not std::unordered_map: a lookup there walks a bucket array, the
// node before the bucket's first node, the node and the entry (four cache
// misses for a key not in the cache); here it reads one array slot, whose
// full 64-bit hash rules out every other key before the entry is touched,
// and then the entry: two. With a batch of a thousand small values that
// difference is most of the index's share of the call.
//
// Empty slots hold a null entry. Deletion shifts the following run back
// (no tombstones), so a probe stops at the first empty slot and the table
// never degrades with churn. The load stays at or below 1/2.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace daxkv {

template <typename E>
class EntryTable {
public:
    EntryTable() = default;
    EntryTable(const EntryTable &) = delete;
    EntryTable &operator=(const EntryTable &) = delete;
    ~EntryTable() {
        for (size_t i = 0; i < cap_; ++i)
            delete slots_[i].entry;
    }

    size_t size() const noexcept { return size_; }

    // The entry whose key is key (its hash: hash), or null. key_of(e)
    // gives an entry's key.
    template <typename KeyOf>
    E *find(std::string_view key, uint64_t hash, KeyOf &&key_of) const noexcept {
        return find_if(hash, [&](const E &e) { return key_of(e) == key; });
    }

    // The entry of hash that pred accepts, or null (find by key, or for a
    // caller that knows an entry by something other than its key bytes:
    // its slot).
    template <typename Pred>
    E *find_if(uint64_t hash, Pred &&pred) const noexcept {
        if (size_ == 0)
            return nullptr;
        for (size_t i = home(hash, mask_);; i = (i + 1) & mask_) {
            const Slot &s = slots_[i];
            if (!s.entry)
                return nullptr;
            if (s.hash == hash && pred(*s.entry))
                return s.entry;
        }
    }

    // Ask for the line of hash's first slot, without the shard's lock: a
    // batch asks for all of its keys' lines before it looks any of them up,
    // so that their cache misses overlap. Reads only the atomic view of the
    // array, which may be stale (the array replaced since): a prefetch of a
    // stale address costs a line and never faults.
    void prefetch(uint64_t hash) const noexcept {
        const Slot *slots = view_.load(std::memory_order_relaxed);
        if (slots)
            __builtin_prefetch(slots + home(hash, view_mask_.load(std::memory_order_relaxed)));
    }

    // Take e, whose key has no entry yet. Throws std::bad_alloc (nothing
    // changed) when the table cannot grow.
    void insert(std::unique_ptr<E> e, uint64_t hash) {
        if ((size_ + 1) * 2 > cap_)
            rehash(cap_ ? cap_ * 2 : kMinCapacity);
        place(slots_.get(), mask_, hash, e.release());
        ++size_;
    }

    // Remove and delete e (an entry of this table, with that hash).
    void erase(const E *e, uint64_t hash) noexcept { remove(e, hash); }

    // Remove e (an entry of this table, with that hash) and hand it back.
    std::unique_ptr<E> remove(const E *e, uint64_t hash) noexcept {
        size_t i = home(hash, mask_);
        while (slots_[i].entry != e)
            i = (i + 1) & mask_;
        std::unique_ptr<E> removed(slots_[i].entry);
        // Backward shift: move each later entry of the run into the hole
        // when its home slot does not lie (cyclically) after the hole.
        for (size_t hole = i, j = (i + 1) & mask_;; j = (j + 1) & mask_) {
            if (!slots_[j].entry) {
                slots_[hole] = Slot{};
                break;
            }
            const size_t h = home(slots_[j].hash, mask_);
            const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
            if (!stays) {
                slots_[hole] = slots_[j];
                hole = j;
            }
        }
        --size_;
        return removed;
    }

    // Room for n entries without growing.
    void reserve(size_t n) {
        size_t cap = cap_ ? cap_ : kMinCapacity;
        while (n * 2 > cap)
            cap *= 2;
        if (cap > cap_)
            rehash(cap);
    }

    // f(E &) for every entry, in no particular order; f must not change the
    // table.
    template <typename F>
    void for_each(F &&f) const {
        for (size_t i = 0; i < cap_; ++i)
            if (slots_[i].entry)
                f(*slots_[i].entry);
    }

private:
    struct Slot {
        uint64_t hash = 0;
        E *entry = nullptr;
    };
    static constexpr size_t kMinCapacity = 16;

    // A hash's first slot. The low bits of the hash chose the shard (all of
    // a shard's keys share them), so the slot comes from higher ones.
    static size_t home(uint64_t hash, size_t mask) noexcept {
        return static_cast<size_t>((hash >> 24) | (hash << 40)) & mask;
    }

    static void place(Slot *slots, size_t mask, uint64_t hash, E *e) noexcept {
        size_t i = home(hash, mask);
        while (slots[i].entry)
            i = (i + 1) & mask;
        slots[i] = Slot{hash, e};
    }

    void rehash(size_t cap) {
        std::unique_ptr<Slot[]> fresh(new Slot[cap]); // may throw: nothing changed yet
        for (size_t i = 0; i < cap_; ++i)
            if (slots_[i].entry)
                place(fresh.get(), cap - 1, slots_[i].hash, slots_[i].entry);
        slots_ = std::move(fresh);
        cap_ = cap;
        mask_ = cap - 1;
        // A prefetch may pair the new array with the old mask, or the other
        // way round, for a moment: at worst it asks for a line in vain.
        view_mask_.store(mask_, std::memory_order_relaxed);
        view_.store(slots_.get(), std::memory_order_relaxed);
    }

    std::unique_ptr<Slot[]> slots_;
    size_t cap_ = 0, mask_ = 0, size_ = 0;
    // slots_ and mask_ for prefetch(), which runs without the lock.
    std::atomic<const Slot *> view_{nullptr};
    std::atomic<size_t> view_mask_{0};
};

} // namespace daxkv
