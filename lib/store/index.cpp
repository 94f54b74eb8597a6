#include "store/index.hpp"

#include "internal/util.hpp"

namespace daxkv {

Index::Index(const Config &cfg) : cfg_(cfg), shards_(new Shard[kShards]) {}

uint64_t Index::hash(std::string_view key) noexcept { return hash_bytes(key.data(), key.size()); }

Index::KeyHashes::KeyHashes(const Index &index, const daxkv_item *items, size_t n)
    : index_(index), hashes_(n, 0) {
    for (size_t i = 0; i < n; ++i) {
        const daxkv_item &it = items[i];
        if (!it.key || it.key_len == 0 || it.key_len > arena::kKeyMax)
            continue;
        hashes_[i] = hash(key_of(it));
        if (i < kAhead)
            index.prefetch(hashes_[i]);
    }
}

Index::Locked Index::lookup(std::string_view key, uint64_t hash, uint16_t i) {
    Shard &sh = shards_[i];
    std::unique_lock<std::mutex> g(sh.m);
    Entry *e = nullptr;
    if (shard_of(hash) == i) {
        e = sh.entries.find(key, hash, [](const Entry &x) -> std::string_view { return x.key_; });
    }
    return Locked(sh, i, std::move(g), key, hash, e);
}

Index::Locked Index::lookup_committed_at(uint64_t hash, uint16_t i, const SlotRef &ref) {
    Shard &sh = shards_[i];
    std::unique_lock<std::mutex> g(sh.m);
    Entry *e = sh.entries.find_if(hash, [&](const Entry &x) {
        return x.committed() && x.ref().slot == ref.slot && x.ref().arena == ref.arena &&
               x.ref().gen == ref.gen;
    });
    return Locked(sh, i, std::move(g), e ? std::string_view(e->key_) : std::string_view(), hash, e);
}

Index::Locked Index::lookup_inflight(Entry *e, const Inflight &inf, std::string_view key,
                                    uint64_t hash) {
    const uint16_t i = shard_of(hash);
    Shard &sh = shards_[i];
    std::unique_lock<std::mutex> g(sh.m);
    return Locked(sh, i, std::move(g), key, hash, inf.canceled ? nullptr : e);
}

Entry &Index::add(Locked &l) {
    std::vector<std::unique_ptr<Entry>> &spare = l.sh_->spare;
    std::unique_ptr<Entry> owned;
    if (spare.empty()) {
        owned = std::make_unique<Entry>();
    } else {
        owned = std::move(spare.back());
        spare.pop_back();
    }
    Entry *e = owned.get();
    try {
        e->reset(l.key_, l.hash_);
        l.sh_->entries.insert(std::move(owned), l.hash_);
    } catch (...) {
        if (owned && spare.size() < kSpareEntries)
            spare.push_back(std::move(owned)); // within its capacity: no allocation
        throw;
    }
    l.e_ = e;
    return *e;
}

void Index::erase_if_empty(Locked &l) noexcept {
    Entry *e = l.e_;
    if (!e || e->committed_ || e->inflight)
        return;
    std::unique_ptr<Entry> gone = l.sh_->entries.remove(e, e->hash_);
    if (l.sh_->spare.size() < kSpareEntries)
        l.sh_->spare.push_back(std::move(gone)); // within its capacity: no allocation
    l.e_ = nullptr;
}

void Index::lru_link_tail(Shard &sh, Entry *e, uint64_t tick) noexcept {
    e->tick_ = tick;
    lru_link_after(sh, sh.lru_tail, e);
}

void Index::lru_link_after(Shard &sh, Entry *prev, Entry *e) noexcept {
    Entry *next = prev ? prev->next_ : sh.lru_head;
    e->prev_ = prev;
    e->next_ = next;
    e->next_tick_ = next ? next->tick_ : UINT64_MAX;
    if (prev) {
        prev->next_ = e;
        prev->next_tick_ = e->tick_;
    } else {
        sh.lru_head = e;
        sh.head_tick.store(e->tick_, std::memory_order_relaxed);
    }
    if (next)
        next->prev_ = e;
    else
        sh.lru_tail = e;
    e->in_lru_ = true;
}

void Index::lru_link_in_order(Shard &sh, Entry *e) noexcept {
    // Usually at an end: an entry pinned for a lookup is read and unpinned
    // soon (near the tail), one pinned for long was not used since (near
    // the head). The walk starts at the end whose tick is nearer.
    Entry *head = sh.lru_head, *tail = sh.lru_tail;
    if (!tail || tail->tick_ <= e->tick_) {
        lru_link_after(sh, tail, e);
        return;
    }
    if (e->tick_ < head->tick_) {
        lru_link_after(sh, nullptr, e);
        return;
    }
    if (e->tick_ - head->tick_ < tail->tick_ - e->tick_) {
        Entry *prev = nullptr;
        for (Entry *p = head; p && p->tick_ <= e->tick_; p = p->next_)
            prev = p;
        lru_link_after(sh, prev, e);
    } else {
        Entry *prev = tail;
        while (prev && prev->tick_ > e->tick_)
            prev = prev->prev_;
        lru_link_after(sh, prev, e);
    }
}

void Index::lru_unlink(Shard &sh, Entry *e) noexcept {
    if (!e->in_lru_)
        return;
    // head_tick changes only with the head, and comes from e's next_tick_:
    // the new head is an entry nobody has read for a long time.
    if (e->prev_) {
        e->prev_->next_ = e->next_;
        e->prev_->next_tick_ = e->next_tick_;
    } else {
        sh.lru_head = e->next_;
        sh.head_tick.store(e->next_tick_, std::memory_order_relaxed);
    }
    if (e->next_)
        e->next_->prev_ = e->prev_;
    else
        sh.lru_tail = e->prev_;
    e->prev_ = e->next_ = nullptr;
    e->in_lru_ = false;
}

void Index::apply_touches(Shard &sh) noexcept {
    for (uint32_t k = 0; k < sh.queued; ++k) {
        Entry *e = sh.touches[k].e;
        lru_unlink(sh, e);
        lru_link_tail(sh, e, sh.touches[k].tick);
        e->touch_queued_ = false;
    }
    sh.queued = 0;
}

void Index::commit(Locked &l, const Version &v, uint32_t pins, uint64_t tick) noexcept {
    Entry *e = l.e_;
    apply_touches(*l.sh_); // the new tail comes after every access before it
    e->committed_ = true;
    e->v_ = v;
    e->pins_ = pins;
    const uint64_t t = tick ? tick : tick_.fetch_add(1, std::memory_order_relaxed);
    if (pins) {
        pinned_++;
        e->tick_ = t; // out of the list while pinned (a replace keeps the key's pins)
    } else {
        lru_link_tail(*l.sh_, e, t);
    }
    entries_++;
}

Version Index::uncommit(Locked &l) noexcept {
    Entry *e = l.e_;
    const Version old = e->v_;
    apply_touches(*l.sh_); // e may be queued: it leaves the list for good
    lru_unlink(*l.sh_, e);
    if (e->pins_)
        pinned_--;
    e->committed_ = false;
    e->pins_ = 0;
    e->v_ = Version{};
    entries_--;
    return old;
}

void Index::move(Locked &l, const SlotRef &to, uint64_t seq) noexcept {
    l.e_->v_.ref = to;
    l.e_->v_.seq = seq;
}

void Index::touch(Locked &l) noexcept {
    Entry *e = l.e_;
    if (cfg_.eviction != Eviction::lru)
        return;
    if (!e->in_lru_) {
        // Pinned: out of the list, its tick says where it goes back.
        if (e->committed_ && e->pins_)
            e->tick_ = tick_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // Re-stamp even the tail of this shard's list: evict_one() compares the
    // head ticks of all shards, so an entry that is alone in (or last of) its
    // shard must still get a fresh tick, or it is evicted as if never used.
    Shard &sh = *l.sh_;
    if (e->touch_queued_ || sh.queued == kTouchQueue)
        apply_touches(sh); // the queue stays in tick order, each entry in it once
    sh.touches[sh.queued++] = Shard::QueuedTouch{e, tick_.fetch_add(1, std::memory_order_relaxed)};
    e->touch_queued_ = true;
    // The lines the move will write: its neighbours' (null is harmless).
    __builtin_prefetch(e->prev_, 1);
    __builtin_prefetch(e->next_, 1);
}

bool Index::pin(Locked &l) noexcept {
    Entry *e = l.e_;
    if (e->pins_ == UINT32_MAX)
        return false;
    if (e->pins_++ == 0) {
        pinned_++;
        if (e->in_lru_) { // out of the victim search, with its tick as it is
            if (e->touch_queued_)
                apply_touches(*l.sh_);
            lru_unlink(*l.sh_, e);
        }
    }
    return true;
}

bool Index::unpin(Locked &l) noexcept {
    Entry *e = l.e_;
    if (e->pins_ == 0)
        return false;
    if (--e->pins_ == 0) {
        pinned_--;
        if (e->committed_ && !e->in_lru_) {
            apply_touches(*l.sh_); // the list in tick order before e goes in
            lru_link_in_order(*l.sh_, e);
        }
    }
    return true;
}

Index::Offer Index::insert_recovered(Locked &l, const Version &v, uint64_t tick, Version *loser) {
    uint32_t pins = 0;
    Offer result = Offer::added;
    if (!l.e_) {
        add(l);
    } else if (l.e_->committed_) {
        // Two commits of one key (a crash between a replace's commit and the
        // withdrawal of the old version, or the pool's and a returning
        // device's): the newest wins.
        if (l.e_->v_.seq >= v.seq)
            return Offer::stale;
        pins = l.e_->pins_; // they belong to the key, as across a replace
        *loser = uncommit(l);
        result = Offer::replaced;
    }
    commit(l, v, pins, tick);
    return result;
}

} // namespace daxkv
