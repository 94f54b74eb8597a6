#include "store/store.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <thread>
#include <uuid/uuid.h>

#include <nlohmann/json.hpp>

#include "arena/checksum.hpp"
#include "internal/error.hpp"
#include "internal/json_text.hpp"
#include "internal/util.hpp"
#include "store/async.hpp"

namespace daxkv {
namespace {

// Per-item argument checks shared by every key-taking call.
int check_key(const void *key, size_t key_len) {
    if (!key)
        return set_error(-EINVAL, "key is NULL");
    if (key_len == 0 || key_len > DAXKV_KEY_MAX)
        return set_error(-EINVAL, "key length %zu is not in 1..%d", key_len, DAXKV_KEY_MAX);
    return 0;
}

} // namespace

// ---------------------------------------------------------------------------
// Lifetime

Store::OpGuard::OpGuard(Store &s) : s_(s) {
    // Increment first, then look at the flag: shutdown sets the flag, then
    // waits for the count, so every call either sees the flag or is waited for.
    s_.ops_.fetch_add(1, std::memory_order_seq_cst);
    if (s_.shutting_.load(std::memory_order_seq_cst)) {
        leave();
        fail(-ESHUTDOWN, "the store is shut down");
    }
}

Store::OpGuard::~OpGuard() { leave(); }

void Store::OpGuard::leave() noexcept {
    if (s_.ops_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        s_.shutting_.load(std::memory_order_seq_cst)) {
        std::lock_guard<std::mutex> g(s_.shutdown_m_);
        s_.shutdown_cv_.notify_all();
    }
}

Store::Store(const Config &cfg)
    : cfg_(cfg), shards_(new Shard[kShards]),
      removals_(new std::atomic<uint64_t>[arena::kRemovalBuckets]()),
      events_(std::make_shared<EventLog>()) {}

Store::~Store() {
    publisher_.reset();
    stop_events();
    // Before the arenas are unmapped: wait for GPU copies still reading them,
    // then unregister them from CUDA.
    cuda_.reset();
}

std::shared_ptr<Store> Store::open(const Config &cfg) {
    cfg.validate();
    std::shared_ptr<Store> s(new Store(cfg));
    // With hotplug a configured device that is absent is reported, not
    // fatal (the pool runs on the others and can get it back by add).
    for (const auto &d : cfg.devices)
        s->open_device(d, cfg.hotplug);
    s->recover();
    s->engine_.reset(new engine::CopyEngine(cfg.effective_workers(), s->worker_cpus()));
    s->async_.reset(new AsyncQueue(*s));
    if (cfg.sigbus_handle)
        engine::install_sigbus_handler();
    // Opened: what the open created on the devices stays (until here a
    // failure removed it again).
    for (auto &d : s->arenas_)
        if (d.arena)
            d.arena->keep();
    s->store_id_ = s->first_arena_uuid();
    s->start_publisher();
    log(DAXKV_LOG_INFO, "opened store: %u device(s), %lld entries recovered",
        s->arenas_.size(), static_cast<long long>(s->c_.entries.load()));
    return s;
}

void Store::recover() {
    // Scan every arena (each scan runs on the workers), then rebuild the
    // index shard by shard on the same number of threads: with a million
    // entries the index inserts cost as much as the scan. Shards share
    // nothing; the allocators are updated afterwards, from the winners.
    // What the rebuild needs of an entry, copied out of the mapping in slot
    // order: reading keys from the headers again in shard order would be a
    // cache and TLB miss per entry.
    struct Found {
        uint64_t hash;
        uint64_t seq;
        uint64_t value_len;
        uint32_t arena, slot, generation, meta_len;
        std::string key;
    };
    std::vector<std::vector<Found>> per_shard(kShards);
    size_t total = 0;
    // Pool history (history.cpp): the devices' removal tables merged, and
    // each device's floor as its last open left it. Sequence numbers go on
    // above every floor, entry and removal the devices know of.
    std::vector<uint64_t> floor(arenas_.size(), 0);
    uint64_t top = 0, removed_away = 0;
    if (keeps_history()) {
        for (uint32_t a = 0; a < arenas_.size(); ++a) {
            const auto &ar = arenas_[a].arena;
            if (!ar || ar->mapping().volatile_memory())
                continue;
            floor[a] = ar->seq_floor();
            top = std::max(top, floor[a]);
            for (uint32_t b = 0; b < arena::kRemovalBuckets; ++b) {
                const uint64_t r = ar->removal(b);
                if (r > removals_[b].load(std::memory_order_relaxed))
                    removals_[b].store(r, std::memory_order_relaxed);
                top = std::max(top, r);
            }
        }
    }
    for (uint32_t a = 0; a < arenas_.size(); ++a) {
        ArenaSlots &as = arenas_[a];
        if (!as.arena)
            continue; // missing at open
        arena::RecoveryCounts counts;
        std::vector<arena::RecoveredEntry> found = arenas_[a].arena->scan(counts);
        recovery_.torn += counts.torn;
        recovery_.corrupt += counts.corrupt;
        recovery_.usec += counts.usec;
        total += found.size();
        for (auto &v : per_shard)
            v.reserve(v.size() + found.size() * 5 / (4 * kShards) + 1);
        for (const auto &r : found) {
            uint64_t h = hash_bytes(r.key, r.key_len);
            top = std::max(top, r.seq);
            if (keeps_history() && removed_while_away(h, r.seq, floor[a])) {
                // Removed (or replaced, then removed) while this device was
                // away: the pool's history says it is gone.
                as.arena->withdraw(r.slot);
                ++removed_away;
                continue;
            }
            per_shard[shard_index(h)].push_back(Found{h, r.seq, r.value_len, a, r.slot,
                                                      r.generation, r.meta_len,
                                                      std::string(r.key, r.key_len)});
        }
    }
    std::atomic<size_t> next_shard{0};
    std::atomic<uint64_t> stale{0}, max_seq{0};
    auto rebuild = [&] {
        for (size_t i; (i = next_shard.fetch_add(1)) < kShards;) {
            Shard &sh = shards_[i];
            sh.map.reserve(per_shard[i].size());
            std::vector<Entry *> order;
            order.reserve(per_shard[i].size());
            uint64_t shard_max = 0;
            for (Found &f : per_shard[i]) {
                Entry *e = find(sh, f.key, f.hash);
                if (e) {
                    // Two commits of one key (a crash between a replace's
                    // commit and the withdrawal of the old version): the
                    // newest wins.
                    const SlotRef loser =
                        e->seq > f.seq ? SlotRef{f.arena, f.slot, f.generation} : e->ref;
                    arenas_[loser.arena].arena->withdraw(loser.slot);
                    stale.fetch_add(1, std::memory_order_relaxed);
                    if (e->seq > f.seq)
                        continue;
                } else {
                    auto owned = std::make_unique<Entry>();
                    owned->key = std::move(f.key);
                    owned->hash = f.hash;
                    e = owned.get();
                    sh.map.emplace(KeyRef{e->key, f.hash}, std::move(owned));
                    order.push_back(e);
                }
                e->committed = true;
                e->ref = SlotRef{f.arena, f.slot, f.generation};
                e->value_len = f.value_len;
                e->meta_len = f.meta_len;
                e->seq = f.seq;
                shard_max = std::max(shard_max, f.seq);
            }
            // LRU order by commit sequence: the oldest commit is the first victim.
            std::sort(order.begin(), order.end(),
                      [](const Entry *x, const Entry *y) { return x->seq < y->seq; });
            for (Entry *e : order)
                lru_link_tail(sh, e, e->seq);
            sh.head_tick.store(sh.lru_head ? sh.lru_head->tick : UINT64_MAX);
            uint64_t m = max_seq.load(std::memory_order_relaxed);
            while (shard_max > m && !max_seq.compare_exchange_weak(m, shard_max)) {
            }
        }
    };
    const unsigned threads = std::max(1u, std::min(cfg_.effective_workers(), 16u));
    if (threads == 1 || total < 4096) {
        rebuild();
    } else {
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < threads; ++t)
            pool.emplace_back(rebuild);
        rebuild();
        for (auto &th : pool)
            th.join();
    }
    // The winners own their slots.
    int64_t entries = 0;
    for (size_t i = 0; i < kShards; ++i)
        for (Entry *e = shards_[i].lru_head; e; e = e->next) {
            ArenaSlots &as = arenas_[e->ref.arena];
            as.alloc->take(e->ref.slot);
            SlotState &st = as.slots[e->ref.slot];
            st.generation = e->ref.gen;
            st.status = SlotStatus::committed;
            ++entries;
        }
    c_.entries.store(entries);
    recovery_.stale += stale.load() + removed_away;
    recovery_.recovered = static_cast<uint64_t>(entries);
    tick_.store(max_seq.load() + 1);
    next_seq_.store(1);
    if (!keeps_history()) {
        next_seq_.store(max_seq.load() + 1);
        return;
    }
    // Above the wall clock too: two opens that each lacked a device are
    // ordered by when they happened (history.cpp).
    const auto wall = std::chrono::system_clock::now().time_since_epoch();
    top = std::max(top, static_cast<uint64_t>(
                            std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count()));
    raise_seq_floor(top);
    for (uint32_t a = 0; a < arenas_.size(); ++a)
        share_history(a);
}

// The uuid of the first device's arena: stable across restarts, so the
// store's Prometheus series continue; a random one for a store that opens
// without a mapped device.
std::string Store::first_arena_uuid() const {
    for (const auto &d : arenas_)
        if (d.arena)
            return uuid_text(d.arena->superblock().uuid);
    uuid_t u;
    uuid_generate(u);
    return uuid_text(u);
}

void Store::start_publisher() {
    if (cfg_.stats_interval_ms == 0)
        return;
    try {
        publisher_ = std::make_unique<StatsPublisher>(
            store_id_, cfg_.stats_interval_ms, [this](StatsPage &page) {
                struct daxkv_stats st;
                std::memset(&st, 0, sizeof st);
                st.struct_size = sizeof st;
                stats(st);
                page.publish(&st, sizeof st, status_json());
            });
    } catch (const std::exception &e) {
        log(DAXKV_LOG_WARNING, "no statistics page (daxkv stats cannot look at this store): %s",
            e.what());
        return;
    }
    for (const auto &d : arenas_) {
        if (!d.arena)
            continue;
        const std::string why = publisher_->name_device(d.path);
        if (!why.empty())
            log(DAXKV_LOG_WARNING, "no statistics page for %s: %s", d.path.c_str(), why.c_str());
    }
}

int Store::shutdown() {
    publisher_.reset(); // the statistics page goes: the store no longer serves
    if (async_)
        async_->shutdown(); // every submitted batch completes or is cancelled first
    shutting_.store(true, std::memory_order_seq_cst);
    {
        // Calls that block (waiting for a drain, for leases, behind a lease
        // gate) wait on ev_cv_ and look at the flag under ev_m_: wake them,
        // they return -ESHUTDOWN and are waited for below.
        std::lock_guard<std::mutex> g(ev_m_);
        ev_cv_.notify_all();
    }
    std::unique_lock<std::mutex> g(shutdown_m_);
    shutdown_cv_.wait(g, [this] { return ops_.load(std::memory_order_seq_cst) == 0; });
    shut_down_ = true;
    return 0;
}

// ---------------------------------------------------------------------------
// Index and LRU (shard lock held)

Entry *Store::find(Shard &sh, std::string_view key, uint64_t hash) {
    auto it = sh.map.find(KeyRef{key, hash});
    return it == sh.map.end() ? nullptr : it->second.get();
}

void Store::lru_link_tail(Shard &sh, Entry *e, uint64_t tick) noexcept {
    e->tick = tick;
    e->prev = sh.lru_tail;
    e->next = nullptr;
    if (sh.lru_tail)
        sh.lru_tail->next = e;
    else
        sh.lru_head = e;
    sh.lru_tail = e;
    e->in_lru = true;
}

void Store::lru_push_back(Shard &sh, Entry *e) noexcept {
    lru_link_tail(sh, e, tick_.fetch_add(1, std::memory_order_relaxed));
    sh.head_tick.store(sh.lru_head->tick, std::memory_order_relaxed);
}

void Store::lru_unlink(Shard &sh, Entry *e) noexcept {
    if (!e->in_lru)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        sh.lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        sh.lru_tail = e->prev;
    e->prev = e->next = nullptr;
    e->in_lru = false;
    sh.head_tick.store(sh.lru_head ? sh.lru_head->tick : UINT64_MAX, std::memory_order_relaxed);
}

void Store::lru_touch(Shard &sh, Entry *e) noexcept {
    if (cfg_.eviction != Eviction::lru || !e->in_lru)
        return;
    // Re-stamp even the tail of this shard's list: evict_one() compares the
    // head ticks of all shards, so an entry that is alone in (or last of) its
    // shard must still get a fresh tick, or it is evicted as if never used.
    lru_unlink(sh, e);
    lru_push_back(sh, e);
}

// ---------------------------------------------------------------------------
// Slots

void Store::free_slot(const SlotRef &r) noexcept {
    SlotState &st = slot_state(r);
    st.status = SlotStatus::free;
    arenas_[r.arena].alloc->release(r.slot);
    if (arenas_[r.arena].state.load(std::memory_order_relaxed) != DevState::active)
        note_slot_freed(r.arena); // a drain, remove or resize may be waiting for it
}

// Take the committed version out of the index view of e: withdraw it on the
// device, and free its slot now or when its last borrower leaves.
void Store::retire_committed(Shard &sh, Entry *e) noexcept {
    if (!e->committed)
        return;
    arenas_[e->ref.arena].arena->withdraw(e->ref.slot);
    SlotState &st = slot_state(e->ref);
    if (st.borrows > 0) {
        st.status = SlotStatus::pending_free;
        c_.pending_free++;
    } else {
        free_slot(e->ref);
    }
    lru_unlink(sh, e);
    if (e->pins)
        c_.pinned--;
    e->committed = false;
    e->pins = 0;
    e->ref = SlotRef{};
    c_.entries--;
}

void Store::erase_if_empty(Shard &sh, Entry *e) {
    if (!e->committed && !e->inflight)
        sh.map.erase(KeyRef{e->key, e->hash});
}

SlotRef Store::acquire_slot() {
    for (int attempt = 0; attempt < 1024; ++attempt) {
        // The least-used writable device (pool.cpp: placement).
        uint32_t best = pick_device();
        if (best != UINT32_MAX) {
            uint32_t slot = arenas_[best].alloc->allocate();
            if (slot != UINT32_MAX)
                return SlotRef{best, slot, 0};
            continue; // raced with another writer: look again
        }
        if (!any_writable())
            fail(-ENOSPC, "no writable device (every device is draining, being changed or "
                          "removed): evicting would not make room");
        if (cfg_.eviction == Eviction::none)
            fail(-ENOSPC, "no free slot (eviction=none): %s", describe_full().c_str());
        if (!evict_one())
            fail(-ENOSPC, "no free slot and nothing evictable: %s", describe_full().c_str());
    }
    fail(-ENOSPC, "no free slot after repeated eviction under contention: %s",
         describe_full().c_str());
}

std::string Store::describe_full() const {
    return format("%lld entries, %lld pinned, %lld in flight, %lld waiting for leases",
                  static_cast<long long>(c_.entries.load()),
                  static_cast<long long>(c_.pinned.load()),
                  static_cast<long long>(c_.inflight.load()),
                  static_cast<long long>(c_.pending_free.load()));
}

// Evict the least recently used entry that is neither pinned, leased nor
// being replaced. Shards are visited oldest head first; each shard's list is
// in access order, so the first evictable entry of the oldest shard is the
// global LRU victim unless non-evictable entries hide older ones elsewhere.
bool Store::evict_one() {
    std::vector<bool> exhausted(kShards, false);
    for (size_t round = 0; round < kShards; ++round) {
        size_t pick = kShards;
        uint64_t oldest = UINT64_MAX;
        for (size_t i = 0; i < kShards; ++i) {
            if (exhausted[i])
                continue;
            uint64_t t = shards_[i].head_tick.load(std::memory_order_relaxed);
            if (t < oldest) {
                oldest = t;
                pick = i;
            }
        }
        if (pick == kShards)
            return false;
        Shard &sh = shards_[pick];
        std::lock_guard<std::mutex> g(sh.m);
        for (Entry *e = sh.lru_head; e; e = e->next) {
            if (e->pins || e->inflight || slot_state(e->ref).borrows || moving_away(e->ref))
                continue;
            record_removal(e->hash);
            retire_committed(sh, e);
            erase_if_empty(sh, e);
            c_.evictions++;
            return true;
        }
        exhausted[pick] = true;
    }
    return false;
}

// ---------------------------------------------------------------------------
// Writes: begin (claim key and slot) -> copy (no lock) -> finish (commit)

int Store::begin_write(const void *key, size_t key_len, uint64_t len, unsigned flags,
                       Pending &out) {
    if (len > cfg_.slot_bytes)
        return set_error(-E2BIG, "value of %llu bytes is larger than slot_bytes (%llu)",
                         static_cast<unsigned long long>(len),
                         static_cast<unsigned long long>(cfg_.slot_bytes));
    std::string_view k(static_cast<const char *>(key), key_len);
    out.key = static_cast<const char *>(key);
    out.key_len = static_cast<uint16_t>(key_len);
    out.hash = hash_bytes(key, key_len);
    out.shard = shard_index(out.hash);
    Shard &sh = shards_[out.shard];
    auto inf = std::make_unique<Inflight>();
    inf->len = len;
    {
        std::lock_guard<std::mutex> g(sh.m);
        Entry *e = find(sh, k, out.hash);
        if (e && (e->inflight || (e->committed && !(flags & DAXKV_REPLACE)))) {
            c_.puts_existed++;
            return DAXKV_EXISTED;
        }
        if (!e) {
            auto owned = std::make_unique<Entry>();
            owned->key.assign(k);
            owned->hash = out.hash;
            e = owned.get();
            sh.map.emplace(KeyRef{e->key, out.hash}, std::move(owned));
        }
        e->inflight = inf.get();
        c_.inflight++;
    }
    SlotRef ref;
    try {
        ref = acquire_slot();
    } catch (...) {
        std::lock_guard<std::mutex> g(sh.m);
        c_.inflight--;
        c_.puts_failed++;
        if (!inf->canceled) {
            Entry *e = find(sh, k, out.hash);
            e->inflight = nullptr;
            erase_if_empty(sh, e);
        }
        throw;
    }
    {
        std::lock_guard<std::mutex> g(sh.m);
        if (inf->canceled) {
            c_.inflight--;
            c_.puts_failed++; // counted as finish_write counts a cancelled write
            arenas_[ref.arena].alloc->release(ref.slot);
            return set_error(-ECANCELED, "a forced remove cancelled the write");
        }
        SlotState &st = arenas_[ref.arena].slots[ref.slot];
        st.generation++;
        st.status = SlotStatus::inflight;
        st.borrows = 0;
        ref.gen = st.generation;
        inf->ref = ref;
    }
    out.dst = arenas_[ref.arena].arena->slot_data(ref.slot);
    out.inflight = std::move(inf);
    return 0;
}

int Store::finish_write(Pending &p, const void *meta, size_t meta_len, uint64_t value_hash,
                        bool hashed) {
    Inflight &inf = *p.inflight;
    arena::Arena &ar = *arenas_[inf.ref.arena].arena;
    uint64_t seq = next_seq();
    ar.write_body(inf.ref.slot, seq, inf.ref.gen, p.key, p.key_len, meta,
                  static_cast<uint32_t>(meta_len), inf.len, value_hash, hashed);
    // Pool history: older versions of the key on devices away now must not
    // come back, even when this device is the one missing then.
    record_change(p.hash, seq);
    ar.publish(inf.ref.slot, seq, inf.len);

    Shard &sh = shards_[p.shard];
    std::lock_guard<std::mutex> g(sh.m);
    c_.inflight--;
    if (inf.canceled) {
        ar.withdraw(inf.ref.slot);
        free_slot(inf.ref);
        c_.puts_failed++;
        p.inflight.reset();
        return set_error(-ECANCELED, "a forced remove cancelled the write");
    }
    Entry *e = find(sh, std::string_view(p.key, p.key_len), p.hash);
    e->inflight = nullptr;
    uint32_t pins = e->pins;
    if (e->committed)
        retire_committed(sh, e); // a replace: the old version goes after the new commit
    e->committed = true;
    e->ref = inf.ref;
    e->value_len = inf.len;
    e->meta_len = static_cast<uint32_t>(meta_len);
    e->seq = seq;
    e->pins = pins; // pins belong to the key and survive a replace
    if (pins)
        c_.pinned++;
    slot_state(inf.ref).status = SlotStatus::committed;
    lru_push_back(sh, e);
    c_.entries++;
    c_.puts++;
    c_.bytes_written += inf.len;
    m_.item_bytes.record(inf.len);
    p.inflight.reset();
    return 0;
}

void Store::abort_write(Pending &p) noexcept {
    if (!p.inflight)
        return;
    Inflight &inf = *p.inflight;
    Shard &sh = shards_[p.shard];
    std::lock_guard<std::mutex> g(sh.m);
    c_.inflight--;
    if (!inf.canceled) {
        Entry *e = find(sh, std::string_view(p.key, p.key_len), p.hash);
        e->inflight = nullptr;
        erase_if_empty(sh, e);
    }
    if (inf.phase.load() == Inflight::kDetached)
        arenas_[inf.ref.arena].detached--;
    free_slot(inf.ref);
    p.inflight.reset();
}

int Store::put(const void *key, size_t key_len, const void *val, size_t len, const void *meta,
               size_t meta_len, unsigned flags) {
    if (int rc = check_key(key, key_len))
        return rc;
    if (!val && len)
        return set_error(-EINVAL, "value is NULL but its length is %zu", len);
    if (meta_len > cfg_.meta_bytes)
        return set_error(-E2BIG, "metadata of %zu bytes is larger than meta_bytes (%u)",
                         meta_len, cfg_.meta_bytes);
    if (flags & ~unsigned(DAXKV_REPLACE))
        return set_error(-EINVAL, "put: unknown flags 0x%x", flags);
    OpGuard op(*this);
    LatencyTimer timer(m_.put_latency);
    Pending p;
    int rc = begin_write(key, key_len, len, flags, p);
    if (rc != 0)
        return rc;
    bool hashed = cfg_.verify != arena::Verify::off;
    uint64_t blocks[1];
    std::vector<uint64_t> many;
    uint64_t *bh = blocks;
    if (hashed && arena::hash_block_count(len) > 1) {
        many.resize(arena::hash_block_count(len));
        bh = many.data();
    }
    engine::CopyOp opx;
    opx.dst = p.dst;
    opx.arena_is_dst = true;
    opx.src = val;
    opx.len = len;
    opx.nontemporal = streams(len);
    opx.block_hashes = hashed ? bh : nullptr;
    int copy_rc = 0;
    try {
        engine_->run(&opx, 1, &copy_rc);
    } catch (...) {
        abort_write(p);
        throw;
    }
    if (copy_rc) {
        abort_write(p);
        c_.puts_failed++;
        return set_error(-EIO, "copying the value into the arena failed (%d)", copy_rc);
    }
    uint64_t vh = 0;
    if (hashed)
        vh = len ? arena::combine_block_hashes(bh, arena::hash_block_count(len))
                 : arena::value_checksum(val, 0);
    return finish_write(p, meta, meta_len, vh, hashed);
}

// ---------------------------------------------------------------------------
// Reads: begin (borrow) -> copy (no lock) -> end (release, touch)

int Store::begin_read(const void *key, size_t key_len, size_t cap, size_t *len_out,
                      size_t meta_cap, Borrow &out, size_t *meta_len_out) {
    // A read that gets this far succeeds unless the bytes fail verification,
    // which drops the entry anyway: the access is recorded here, under the
    // lock already held, rather than by a second lookup after the copy.
    uint64_t h = hash_bytes(key, key_len);
    out.shard = shard_index(h);
    Shard &sh = shards_[out.shard];
    std::lock_guard<std::mutex> g(sh.m);
    Entry *e = find(sh, std::string_view(static_cast<const char *>(key), key_len), h);
    if (!e || !e->committed) {
        c_.misses++;
        return set_error(-ENOENT, "key not found");
    }
    if (len_out)
        *len_out = e->value_len;
    if (meta_len_out)
        *meta_len_out = e->meta_len;
    if (cap < e->value_len)
        return set_error(-ENOBUFS, "destination holds %zu bytes, the value has %llu", cap,
                         static_cast<unsigned long long>(e->value_len));
    if (meta_cap != SIZE_MAX && meta_cap < e->meta_len)
        return set_error(-ENOBUFS, "metadata buffer holds %zu bytes, the entry has %u",
                         meta_cap, e->meta_len);
    slot_state(e->ref).borrows++;
    lru_touch(sh, e);
    out.ref = e->ref;
    out.src = arenas_[e->ref.arena].arena->slot_data(e->ref.slot);
    out.len = e->value_len;
    out.meta_len = e->meta_len;
    return 0;
}

void Store::end_read(const Borrow &b) noexcept {
    Shard &sh = shards_[b.shard];
    std::lock_guard<std::mutex> g(sh.m);
    SlotState &st = slot_state(b.ref);
    st.borrows--;
    if (st.borrows == 0 && st.status == SlotStatus::pending_free) {
        c_.pending_free--;
        free_slot(b.ref);
    }
}

bool Store::verify_borrow(const Borrow &b, const uint64_t *block_hashes) {
    const arena::SlotHeader *h = arenas_[b.ref.arena].arena->header(b.ref.slot);
    if (!(h->flags & arena::kHdrValueHashed))
        return true; // written with verify=off: nothing to check against
    uint64_t got = block_hashes ? arena::combine_block_hashes(block_hashes,
                                                              arena::hash_block_count(b.len))
                                : arena::value_checksum(b.src, b.len);
    return got == h->value_hash;
}

// Drop an entry whose bytes failed verification; its slot is never reused.
void Store::quarantine(const Borrow &b, bool media) noexcept {
    if (media) {
        c_.copy_faults++;
        log(DAXKV_LOG_ERR, "reading slot %u of device %u faulted (SIGBUS): entry dropped, "
            "slot quarantined", b.ref.slot, b.ref.arena);
    } else {
        c_.verify_failures++;
        log(DAXKV_LOG_ERR, "entry in slot %u of device %u failed its checksum: dropped",
            b.ref.slot, b.ref.arena);
    }
    Shard &sh = shards_[b.shard];
    std::lock_guard<std::mutex> g(sh.m);
    const arena::Arena &ar = *arenas_[b.ref.arena].arena;
    std::string_view key(ar.header_key(b.ref.slot),
                         std::min<size_t>(ar.header(b.ref.slot)->key_len, DAXKV_KEY_MAX));
    Entry *e = find(sh, key, hash_bytes(key.data(), key.size()));
    if (e && e->committed && e->ref.slot == b.ref.slot && e->ref.arena == b.ref.arena &&
        e->ref.gen == b.ref.gen) {
        record_removal(e->hash);
        arenas_[b.ref.arena].arena->withdraw(b.ref.slot);
        lru_unlink(sh, e);
        if (e->pins)
            c_.pinned--;
        e->committed = false;
        e->pins = 0;
        c_.entries--;
        erase_if_empty(sh, e);
    }
    SlotState &st = slot_state(b.ref);
    st.borrows--;
    if (st.status == SlotStatus::pending_free)
        c_.pending_free--;
    if (st.status != SlotStatus::quarantined)
        arenas_[b.ref.arena].quarantined++; // never freed: a removal must not wait for it
    st.status = SlotStatus::quarantined;
}

// A media fault (SIGBUS) means the bytes cannot be read: the entry goes and
// its slot is never reused. Any other copy failure says nothing about the
// entry, which stays as it was.
int Store::copy_failed(const Borrow &b, int rc) noexcept {
    if (rc == engine::kMediaFault) {
        quarantine(b, true);
        return set_error(-EIO, "reading the entry faulted (media error or truncated arena "
                               "file): entry dropped, slot quarantined");
    }
    end_read(b);
    return set_error(-EIO, "copying the entry out failed (%d); the entry is kept", rc);
}

int Store::get(const void *key, size_t key_len, void *dst, size_t cap, size_t *len_out) {
    if (int rc = check_key(key, key_len))
        return rc;
    if (!dst && cap)
        return set_error(-EINVAL, "destination is NULL but its capacity is %zu", cap);
    OpGuard op(*this);
    LatencyTimer timer(m_.get_latency);
    Borrow b;
    int rc = begin_read(key, key_len, cap, len_out, SIZE_MAX, b);
    if (rc != 0)
        return rc;
    bool verify = cfg_.verify == arena::Verify::read;
    std::vector<uint64_t> hashes(verify ? arena::hash_block_count(b.len) : 0);
    engine::CopyOp opx;
    opx.dst = dst;
    opx.src = b.src;
    opx.len = b.len;
    opx.nontemporal = streams(b.len);
    opx.block_hashes = verify ? hashes.data() : nullptr;
    opx.guard_source = cfg_.sigbus_handle;
    int copy_rc = 0;
    engine_->run(&opx, 1, &copy_rc);
    if (copy_rc)
        return copy_failed(b, copy_rc);
    if (verify && !verify_borrow(b, b.len ? hashes.data() : nullptr)) {
        quarantine(b);
        return set_error(-EIO, "the entry failed its checksum and was dropped");
    }
    end_read(b);
    c_.hits++;
    c_.bytes_read += b.len;
    m_.item_bytes.record(b.len);
    return 0;
}

int Store::contains(const void *key, size_t key_len) {
    if (int rc = check_key(key, key_len))
        return rc;
    OpGuard op(*this);
    uint64_t h = hash_bytes(key, key_len);
    Shard &sh = shard_of(h);
    std::lock_guard<std::mutex> g(sh.m);
    Entry *e = find(sh, std::string_view(static_cast<const char *>(key), key_len), h);
    return e && e->committed ? 1 : 0;
}

int Store::remove(const void *key, size_t key_len, unsigned flags) {
    if (int rc = check_key(key, key_len))
        return rc;
    if (flags & ~unsigned(DAXKV_FORCE))
        return set_error(-EINVAL, "remove: unknown flags 0x%x", flags);
    OpGuard op(*this);
    bool force = flags & DAXKV_FORCE;
    uint64_t h = hash_bytes(key, key_len);
    Shard &sh = shard_of(h);
    std::lock_guard<std::mutex> g(sh.m);
    Entry *e = find(sh, std::string_view(static_cast<const char *>(key), key_len), h);
    if (!e) {
        // A device away now may hold the key: after this call it is gone
        // all the same (pool history).
        record_removal(h);
        return set_error(-ENOENT, "key not found");
    }
    if (!force) {
        if (e->committed && e->pins)
            return set_error(-EBUSY, "the key is pinned %u time(s); use DAXKV_FORCE", e->pins);
        if (!e->committed)
            return set_error(-EBUSY, "the key is being written; use DAXKV_FORCE to cancel it");
    }
    if (e->inflight && force) {
        e->inflight->canceled = true; // its slot returns at commit or abort
        e->inflight = nullptr;
    }
    record_removal(h);
    retire_committed(sh, e);
    erase_if_empty(sh, e);
    c_.removes++;
    return 0;
}

int Store::pin(const void *key, size_t key_len) {
    if (int rc = check_key(key, key_len))
        return rc;
    OpGuard op(*this);
    uint64_t h = hash_bytes(key, key_len);
    Shard &sh = shard_of(h);
    std::lock_guard<std::mutex> g(sh.m);
    Entry *e = find(sh, std::string_view(static_cast<const char *>(key), key_len), h);
    if (!e || !e->committed)
        return set_error(-ENOENT, "key not found");
    if (e->pins == UINT32_MAX)
        return set_error(-EOVERFLOW, "pin count overflow");
    if (e->pins++ == 0)
        c_.pinned++;
    return 0;
}

int Store::unpin(const void *key, size_t key_len) {
    if (int rc = check_key(key, key_len))
        return rc;
    OpGuard op(*this);
    uint64_t h = hash_bytes(key, key_len);
    Shard &sh = shard_of(h);
    std::lock_guard<std::mutex> g(sh.m);
    Entry *e = find(sh, std::string_view(static_cast<const char *>(key), key_len), h);
    if (!e || !e->committed)
        return set_error(-ENOENT, "key not found");
    // daxkv.h: "never goes below zero (-ENOENT if not pinned)": there is no
    // pin to drop, as there is no entry for a missing key.
    if (e->pins == 0)
        return set_error(-ENOENT, "the key is not pinned");
    if (--e->pins == 0)
        c_.pinned--;
    return 0;
}

// ---------------------------------------------------------------------------
// Batches

int Store::admit_write(const daxkv_item &it, size_t i, unsigned flags, Pending &p) {
    if (int rc = check_key(it.key, it.key_len))
        return rc;
    if (!it.data && it.len)
        return set_error(-EINVAL, "item %zu: data is NULL", i);
    if (it.meta_len > cfg_.meta_bytes)
        return set_error(-E2BIG, "item %zu: metadata larger than meta_bytes", i);
    if (!it.meta && it.meta_len)
        return set_error(-EINVAL, "item %zu: meta is NULL", i);
    try {
        return begin_write(it.key, it.key_len, it.len, flags, p);
    } catch (const Error &) {
        return error_from_exception();
    }
}

int Store::put_batch(daxkv_item *items, size_t n, unsigned flags) {
    if (flags & ~unsigned(DAXKV_REPLACE))
        return set_error(-EINVAL, "put_batch: unknown flags 0x%x", flags);
    OpGuard op(*this);
    LatencyTimer timer(m_.batch_latency);
    m_.batches.fetch_add(1, std::memory_order_relaxed);
    const bool hashed = cfg_.verify != arena::Verify::off;
    std::vector<Pending> pend(n);
    std::vector<engine::CopyOp> ops;
    std::vector<size_t> op_item;
    std::vector<size_t> hash_off(n, 0);
    std::vector<uint64_t> hashes;
    std::vector<int> copy_rc;
    ops.reserve(n);
    op_item.reserve(n);
    try {
        for (size_t i = 0; i < n; ++i) {
            daxkv_item &it = items[i];
            it.status = admit_write(it, i, flags, pend[i]);
            if (it.status != 0)
                continue;
            if (hashed) {
                hash_off[i] = hashes.size();
                hashes.resize(hashes.size() + arena::hash_block_count(it.len));
            }
            engine::CopyOp c;
            c.dst = pend[i].dst;
            c.arena_is_dst = true;
            c.src = it.data;
            c.len = it.len;
            ops.push_back(c);
            op_item.push_back(i);
        }
        // Streaming or not is decided for the batch: many small values
        // moved at once pass through the cache as one large one would.
        const bool nt = streams(batch_bytes(ops));
        for (engine::CopyOp &c : ops)
            c.nontemporal = nt;
        if (hashed)
            for (size_t k = 0; k < ops.size(); ++k) {
                ops[k].block_hashes = hashes.data() + hash_off[op_item[k]];
            }
        copy_rc.assign(ops.size(), 0);
        engine_->run(ops.data(), ops.size(), copy_rc.data());
    } catch (...) {
        for (auto &p : pend)
            abort_write(p);
        throw;
    }
    int stored = 0;
    for (size_t k = 0; k < ops.size(); ++k) {
        size_t i = op_item[k];
        daxkv_item &it = items[i];
        if (copy_rc[k]) {
            // Every copy of the batch has finished (run() waits for all):
            // only now is this item's slot given back.
            abort_write(pend[i]);
            c_.puts_failed++;
            it.status = set_error(-EIO, "item %zu: copying the value failed (%d)", i, copy_rc[k]);
            continue;
        }
        uint64_t vh = 0;
        if (hashed)
            vh = arena::combine_block_hashes(hashes.data() + hash_off[i],
                                             arena::hash_block_count(it.len));
        it.status = finish_write(pend[i], it.meta, it.meta_len, vh, hashed);
        if (it.status == 0)
            ++stored;
    }
    return stored;
}

int Store::read_batch_result(const daxkv_item *items, size_t stop, bool prefix, int hits) {
    if (!prefix)
        return hits;
    size_t run = 0;
    while (run < stop && items[run].status == 0)
        ++run;
    return static_cast<int>(run);
}

size_t Store::borrow_batch(daxkv_item *items, size_t n, bool prefix, std::vector<Borrow> &borrows,
                           std::vector<size_t> &item_of) {
    borrows.reserve(n);
    item_of.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        daxkv_item &it = items[i];
        it.status = check_key(it.key, it.key_len);
        if (!it.status && !it.data && it.len)
            it.status = set_error(-EINVAL, "item %zu: data is NULL", i);
        if (!it.status) {
            Borrow b;
            size_t len_out = 0, meta_len_out = 0;
            size_t meta_cap = it.meta ? it.meta_len : SIZE_MAX;
            it.status =
                begin_read(it.key, it.key_len, it.len, &len_out, meta_cap, b, &meta_len_out);
            if (it.status == -ENOBUFS) {
                // Report the sizes needed: the value's, and the metadata's
                // when a metadata buffer was given (it may be the one too small).
                it.len = len_out;
                if (it.meta)
                    it.meta_len = meta_len_out;
            }
            if (!it.status) {
                borrows.push_back(b);
                item_of.push_back(i);
            }
        }
        if (it.status && prefix) {
            for (size_t j = i + 1; j < n; ++j)
                items[j].status = -ENOENT;
            return i;
        }
    }
    return n;
}

int Store::get_batch(daxkv_item *items, size_t n, unsigned flags) {
    if (flags & ~unsigned(DAXKV_PREFIX))
        return set_error(-EINVAL, "get_batch: unknown flags 0x%x", flags);
    OpGuard op(*this);
    LatencyTimer timer(m_.batch_latency);
    m_.batches.fetch_add(1, std::memory_order_relaxed);
    const bool prefix = flags & DAXKV_PREFIX;
    const bool verify = cfg_.verify == arena::Verify::read;
    std::vector<Borrow> borrows;
    std::vector<size_t> item_of;
    const size_t stop = borrow_batch(items, n, prefix, borrows, item_of);
    std::vector<engine::CopyOp> ops(borrows.size());
    std::vector<size_t> hash_off(borrows.size(), 0);
    std::vector<uint64_t> hashes;
    for (size_t k = 0; k < borrows.size(); ++k) {
        if (verify) {
            hash_off[k] = hashes.size();
            hashes.resize(hashes.size() + arena::hash_block_count(borrows[k].len));
        }
        ops[k].dst = items[item_of[k]].data;
        ops[k].src = borrows[k].src;
        ops[k].len = borrows[k].len;
        ops[k].guard_source = cfg_.sigbus_handle;
    }
    const bool nt = streams(batch_bytes(ops)); // for the batch, as put_batch
    for (engine::CopyOp &c : ops)
        c.nontemporal = nt;
    std::vector<int> copy_rc(ops.size(), 0);
    for (size_t k = 0; verify && k < ops.size(); ++k) {
        ops[k].block_hashes = hashes.data() + hash_off[k];
    }
    try {
        engine_->run(ops.data(), ops.size(), copy_rc.data());
    } catch (...) {
        for (auto &b : borrows)
            end_read(b);
        throw;
    }
    int hits = 0;
    for (size_t k = 0; k < borrows.size(); ++k) {
        const Borrow &b = borrows[k];
        daxkv_item &it = items[item_of[k]];
        if (copy_rc[k]) {
            // Released only now that every copy of the batch has finished.
            it.status = copy_failed(b, copy_rc[k]);
            continue;
        }
        if (verify && !verify_borrow(b, b.len ? hashes.data() + hash_off[k] : nullptr)) {
            quarantine(b);
            it.status = -EIO;
            continue;
        }
        if (it.meta) {
            const arena::Arena &ar = *arenas_[b.ref.arena].arena;
            std::memcpy(it.meta, ar.header_meta(b.ref.slot), b.meta_len);
            it.meta_len = b.meta_len;
        }
        it.len = b.len;
        end_read(b);
        c_.hits++;
        c_.bytes_read += b.len;
        m_.item_bytes.record(b.len);
        ++hits;
    }
    return read_batch_result(items, stop, prefix, hits);
}

int Store::contains_batch(daxkv_item *items, size_t n, unsigned flags) {
    if (flags & ~unsigned(DAXKV_PREFIX | DAXKV_PIN))
        return set_error(-EINVAL, "contains_batch: unknown flags 0x%x", flags);
    OpGuard op(*this);
    const bool prefix = flags & DAXKV_PREFIX, pin_hits = flags & DAXKV_PIN;
    int hits = 0;
    for (size_t i = 0; i < n; ++i) {
        daxkv_item &it = items[i];
        it.status = check_key(it.key, it.key_len);
        if (!it.status) {
            uint64_t h = hash_bytes(it.key, it.key_len);
            Shard &sh = shard_of(h);
            std::lock_guard<std::mutex> g(sh.m);
            Entry *e =
                find(sh, std::string_view(static_cast<const char *>(it.key), it.key_len), h);
            it.status = e && e->committed ? 1 : 0;
            if (it.status && pin_hits && e->pins < UINT32_MAX && e->pins++ == 0)
                c_.pinned++;
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

int Store::remove_batch(daxkv_item *items, size_t n, unsigned flags) {
    if (flags & ~unsigned(DAXKV_FORCE))
        return set_error(-EINVAL, "remove_batch: unknown flags 0x%x", flags);
    int removed = 0;
    for (size_t i = 0; i < n; ++i) {
        items[i].status = remove(items[i].key, items[i].key_len, flags);
        if (items[i].status == -ESHUTDOWN)
            return -ESHUTDOWN;
        removed += items[i].status == 0;
    }
    return removed;
}

int Store::unpin_batch(daxkv_item *items, size_t n, unsigned flags) {
    if (flags)
        return set_error(-EINVAL, "unpin_batch: unknown flags 0x%x", flags);
    int done = 0;
    for (size_t i = 0; i < n; ++i) {
        items[i].status = unpin(items[i].key, items[i].key_len);
        if (items[i].status == -ESHUTDOWN)
            return -ESHUTDOWN;
        done += items[i].status == 0;
    }
    return done;
}

// ---------------------------------------------------------------------------
// Zero copy

int Store::lease(const void *key, size_t key_len, std::unique_ptr<LeaseState> *out) {
    if (int rc = check_key(key, key_len))
        return rc;
    OpGuard op(*this);
    Borrow b;
    for (;;) {
        int rc = begin_read(key, key_len, SIZE_MAX, nullptr, SIZE_MAX, b);
        if (rc != 0)
            return rc;
        if (!lease_gated(b.ref.arena))
            break;
        // A resize of that device is waiting for its leases: new ones wait
        // (pool.cpp), so that it cannot starve.
        end_read(b);
        wait_lease_gate(b.ref.arena);
    }
    if (cfg_.verify == arena::Verify::read && !verify_borrow(b, nullptr)) {
        quarantine(b);
        return set_error(-EIO, "the entry failed its checksum and was dropped");
    }
    {
        std::lock_guard<std::mutex> g(shards_[b.shard].m);
        // hotplug tells leases from reads in progress
        if (slot_state(b.ref).leases++ == 0)
            c_.leased_slots++;
    }
    auto l = std::make_unique<LeaseState>();
    l->store = shared_from_this();
    l->shard = b.shard;
    l->ref = b.ref;
    l->data = b.src;
    l->size = b.len;
    l->meta = arenas_[b.ref.arena].arena->header_meta(b.ref.slot);
    l->meta_len = b.meta_len;
    c_.hits++;
    c_.leases++;
    *out = std::move(l);
    return 0;
}

void Store::release(LeaseState &l) noexcept {
    {
        std::lock_guard<std::mutex> g(shards_[l.shard].m);
        if (--slot_state(l.ref).leases == 0)
            c_.leased_slots--;
    }
    Borrow b;
    b.shard = l.shard;
    b.ref = l.ref;
    end_read(b);
    c_.leases--;
}

int Store::reserve(const void *key, size_t key_len, size_t len,
                   std::unique_ptr<ReservationState> *out) {
    if (int rc = check_key(key, key_len))
        return rc;
    OpGuard op(*this);
    Pending p;
    int rc = begin_write(key, key_len, len, 0, p);
    if (rc != 0)
        return rc;
    std::unique_ptr<ReservationState> r;
    try {
        r = std::make_unique<ReservationState>();
        r->store = shared_from_this();
        r->key.assign(static_cast<const char *>(key), key_len);
        r->hash = p.hash;
        r->shard = p.shard;
        r->data = p.dst;
        r->len = len;
        {
            std::shared_lock<std::shared_mutex> pool(pool_m_);
            r->device = arenas_[p.inflight->ref.arena].arena;
        }
        p.inflight->reservation = true;
        std::lock_guard<std::mutex> g(resv_m_);
        reservations_.insert(r.get());
    } catch (...) {
        abort_write(p);
        throw;
    }
    r->inflight = std::move(p.inflight);
    *out = std::move(r);
    return 0;
}

uint8_t Store::end_reservation(ReservationState &r, bool committing) noexcept {
    std::lock_guard<std::mutex> g(resv_m_);
    reservations_.erase(&r);
    Inflight &inf = *r.inflight;
    uint8_t was = Inflight::kHeld;
    if (committing && inf.phase.compare_exchange_strong(was, Inflight::kCommitting))
        return Inflight::kHeld;
    return inf.phase.load();
}

int Store::commit(ReservationState &r) {
    const uint8_t was = end_reservation(r, true);
    Pending p;
    p.key = r.key.data();
    p.key_len = static_cast<uint16_t>(r.key.size());
    p.hash = r.hash;
    p.shard = r.shard;
    p.inflight = std::move(r.inflight);
    p.dst = r.data;
    if (was == Inflight::kDetached) {
        // Its device was removed (or shrunk) with DAXKV_FORCE: nothing of it
        // may be written there any more.
        abort_write(p);
        c_.puts_failed++;
        return set_error(-ECANCELED, "a forced removal or shrink of its device cancelled the "
                                     "reservation");
    }
    try {
        OpGuard op(*this);
        bool hashed = cfg_.verify != arena::Verify::off;
        uint64_t vh = hashed ? arena::value_checksum(r.data, r.len) : 0;
        return finish_write(p, r.meta.data(), r.meta.size(), vh, hashed);
    } catch (...) {
        abort_write(p); // after shutdown, or out of memory: the slot goes back
        throw;
    }
}

void Store::abort(ReservationState &r) noexcept {
    end_reservation(r, false);
    Pending p;
    p.key = r.key.data();
    p.key_len = static_cast<uint16_t>(r.key.size());
    p.hash = r.hash;
    p.shard = r.shard;
    p.inflight = std::move(r.inflight);
    abort_write(p);
}

// ---------------------------------------------------------------------------
// Statistics

void Store::stats(struct daxkv_stats &o) const {
    uint32_t size = o.struct_size;
    struct daxkv_stats s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = size;
    s.slot_bytes = cfg_.slot_bytes;
    s.meta_bytes = cfg_.meta_bytes;
    {
        // A device added back into its old row swaps the row's allocator.
        std::shared_lock<std::shared_mutex> pool(pool_m_);
        for (const auto &a : arenas_) {
            s.devices += dev_counted(a.state.load(std::memory_order_relaxed));
            s.slots_total += a.alloc->slots();
            s.slots_free += a.alloc->free_count();
        }
    }
    s.capacity_bytes = s.slots_total * s.slot_bytes;
    s.slots_used = s.slots_total - s.slots_free;
    auto nonneg = [](int64_t v) { return v < 0 ? uint64_t(0) : static_cast<uint64_t>(v); };
    s.entries = nonneg(c_.entries.load());
    s.entries_pinned = nonneg(c_.pinned.load());
    s.slots_inflight = nonneg(c_.inflight.load());
    s.slots_pending_free = nonneg(c_.pending_free.load());
    s.leases_active = nonneg(c_.leases.load());
    s.slots_leased = nonneg(c_.leased_slots.load());
    s.hits = c_.hits.load();
    s.misses = c_.misses.load();
    s.puts = c_.puts.load();
    s.puts_existed = c_.puts_existed.load();
    s.puts_failed = c_.puts_failed.load();
    s.removes = c_.removes.load();
    s.evictions = c_.evictions.load();
    s.bytes_written = c_.bytes_written.load();
    s.bytes_read = c_.bytes_read.load();
    s.verify_failures = c_.verify_failures.load();
    s.copy_faults = c_.copy_faults.load();
    s.batches = m_.batches.load(std::memory_order_relaxed);
    if (async_) {
        s.async_submitted = async_->submitted();
        s.async_completed = async_->completed();
        s.async_cancelled = async_->cancelled();
    }
    m_.put_latency.read(s.put_latency);
    m_.get_latency.read(s.get_latency);
    m_.batch_latency.read(s.batch_latency);
    m_.item_bytes.read(s.item_bytes);
    s.recovered_entries = recovery_.recovered;
    s.recovery_dropped_torn = recovery_.torn;
    s.recovery_dropped_corrupt = recovery_.corrupt;
    s.recovery_dropped_stale = recovery_.stale;
    s.recovery_usec = recovery_.usec;
    std::memcpy(&o, &s, std::min<size_t>(size, sizeof s));
    o.struct_size = size;
}

std::string Store::status_json() const {
    struct daxkv_stats s;
    s.struct_size = sizeof s;
    stats(s);
    nlohmann::json j;
    j["version"] = DAXKV_VERSION_STRING;
    j["state"] = shutting_.load() ? "shutdown" : "open";
    j["slot_bytes"] = cfg_.slot_bytes;
    j["meta_bytes"] = cfg_.meta_bytes;
    j["eviction"] = config_word(cfg_.eviction);
    j["durability"] = config_word(cfg_.durability);
    j["verify"] = config_word(cfg_.verify);
    j["workers"] = engine_ ? engine_->workers() : 0;
    j["worker_cpus"] = engine_ ? engine_->cpus() : std::vector<int>();
    nlohmann::json devs = nlohmann::json::array();
    std::shared_lock<std::shared_mutex> pool(pool_m_); // a removal unmaps under it
    for (const auto &a : arenas_) {
        if (!a.arena)
            continue; // removed or missing: see daxkv_pool_status_json
        const auto &info = a.arena->mapping().info();
        const auto &lay = a.arena->layout();
        const std::string uuid = uuid_text(a.arena->superblock().uuid);
        devs.push_back({{"path", json_bytes(info.path)},
                        {"kind", platform::kind_name(info.kind)},
                        {"arena_bytes", lay.arena_bytes},
                        {"slots", a.alloc->slots()},
                        {"layout_slots", lay.slot_count},
                        {"slots_free", a.alloc->free_count()},
                        {"uuid", uuid},
                        {"numa_node", info.numa_node}});
    }
    j["devices"] = devs;
    j["capacity_bytes"] = s.capacity_bytes;
    j["used_bytes"] = s.slots_used * s.slot_bytes;
    j["entries"] = s.entries;
    j["entries_pinned"] = s.entries_pinned;
    j["slots"] = {{"total", s.slots_total}, {"used", s.slots_used}, {"free", s.slots_free},
                  {"inflight", s.slots_inflight}, {"pending_free", s.slots_pending_free}};
    j["leases_active"] = s.leases_active;
    j["counters"] = {{"hits", s.hits},
                     {"misses", s.misses},
                     {"puts", s.puts},
                     {"puts_existed", s.puts_existed},
                     {"puts_failed", s.puts_failed},
                     {"removes", s.removes},
                     {"evictions", s.evictions},
                     {"bytes_written", s.bytes_written},
                     {"bytes_read", s.bytes_read},
                     {"verify_failures", s.verify_failures},
                     {"copy_faults", s.copy_faults}};
    j["recovery"] = {{"recovered", s.recovered_entries},
                     {"dropped_torn", s.recovery_dropped_torn},
                     {"dropped_corrupt", s.recovery_dropped_corrupt},
                     {"dropped_stale", s.recovery_dropped_stale},
                     {"usec", s.recovery_usec}};
    return j.dump();
}

} // namespace daxkv
