// The store: one or more arenas (a pool), the sharded key index, LRU
// eviction, pins, leases, reservations, batches and statistics.
//
// Locking: each key belongs to one index shard (by hash), whose mutex guards
// the shard's entries and the per-slot state of the slots those entries use.
// Slot allocators have their own short mutex, always taken inside a shard
// lock or with none held; no code holds two shard locks at once. No lock is
// held while payload bytes are copied.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "arena/arena.hpp"
#include "daxkv.h"
#include "engine/copy_engine.hpp"
#include "store/config.hpp"
#include "store/keys.hpp"
#include "store/pool.hpp"
#include "store/metrics.hpp"
#include "store/slot_allocator.hpp"
#include "store/stats_page.hpp"

namespace daxkv {

class Store;
class AsyncQueue;

namespace cuda {
// The GPU side of a store (store_cuda.cpp): registration, staging buffers,
// transfers in flight. Released before the arenas are unmapped.
struct StoreState;
struct HostRange;
struct StoreStateDeleter {
    void operator()(StoreState *s) const noexcept;
};
} // namespace cuda

struct SlotRef {
    uint32_t arena = UINT32_MAX;
    uint32_t slot = UINT32_MAX;
    uint32_t gen = 0;
    bool valid() const noexcept { return slot != UINT32_MAX; }
};

// A write that holds a slot but is not visible yet.
struct Inflight {
    SlotRef ref;
    uint64_t len = 0;
    bool canceled = false; // a forced remove withdrew it
    // A reservation: held by its caller for as long as the caller likes.
    // A forced device removal or shrink cannot wait for it, so it detaches
    // it instead (phase held -> detached: its commit fails with -ECANCELED);
    // one whose commit has begun (held -> committing) is waited for.
    bool reservation = false;
    enum : uint8_t { kHeld, kCommitting, kDetached };
    std::atomic<uint8_t> phase{kHeld};
};

struct Entry {
    std::string key;
    uint64_t hash = 0;
    // The committed version (if committed).
    bool committed = false;
    SlotRef ref;
    uint64_t value_len = 0;
    uint32_t meta_len = 0;
    uint64_t seq = 0;
    uint32_t pins = 0;
    // Position in the shard's LRU list (committed entries only).
    Entry *prev = nullptr, *next = nullptr;
    uint64_t tick = 0;
    bool in_lru = false;
    // A write of this key in flight (owned by its reservation).
    Inflight *inflight = nullptr;
};

struct KeyRef {
    std::string_view bytes;
    uint64_t hash;
    bool operator==(const KeyRef &o) const noexcept {
        return hash == o.hash && bytes == o.bytes;
    }
};
struct KeyRefHash {
    size_t operator()(const KeyRef &k) const noexcept { return static_cast<size_t>(k.hash); }
};

struct alignas(64) Shard {
    std::mutex m;
    std::unordered_map<KeyRef, std::unique_ptr<Entry>, KeyRefHash> map;
    Entry *lru_head = nullptr, *lru_tail = nullptr; // head: least recently used
    std::atomic<uint64_t> head_tick{UINT64_MAX};   // read without the lock by eviction
};

// A lease: the bytes of an entry, borrowed in place.
struct LeaseState {
    std::shared_ptr<Store> store;
    uint16_t shard = 0;
    SlotRef ref;
    const char *data = nullptr;
    size_t size = 0;
    const char *meta = nullptr;
    size_t meta_len = 0;
};

// A reservation: a slot handed to the caller to fill.
struct ReservationState {
    std::shared_ptr<Store> store;
    std::string key;
    uint64_t hash = 0;
    uint16_t shard = 0;
    std::unique_ptr<Inflight> inflight;
    char *data = nullptr;
    size_t len = 0;
    std::string meta;
    // The device of the slot: mapped for as long as the caller may write.
    std::shared_ptr<arena::Arena> device;
};

// Non-temporal stores pay off above this size on the machines measured
// (docs: README "Speed").
constexpr size_t kNonTemporalMin = 256 * 1024;

class Store : public std::enable_shared_from_this<Store> {
public:
    static std::shared_ptr<Store> open(const Config &cfg);
    ~Store();
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;

    int shutdown();

    int put(const void *key, size_t key_len, const void *val, size_t len, const void *meta,
            size_t meta_len, unsigned flags);
    int get(const void *key, size_t key_len, void *dst, size_t cap, size_t *len_out);
    int contains(const void *key, size_t key_len);
    int remove(const void *key, size_t key_len, unsigned flags);
    int pin(const void *key, size_t key_len);
    int unpin(const void *key, size_t key_len);

    int put_batch(daxkv_item *items, size_t n, unsigned flags);
    int get_batch(daxkv_item *items, size_t n, unsigned flags);
    int contains_batch(daxkv_item *items, size_t n, unsigned flags);
    int remove_batch(daxkv_item *items, size_t n, unsigned flags);
    int unpin_batch(daxkv_item *items, size_t n, unsigned flags);

    // Returns 0 with *out set, or an error (DAXKV_EXISTED is not an error
    // for reserve: *out stays null).
    int lease(const void *key, size_t key_len, std::unique_ptr<LeaseState> *out);
    void release(LeaseState &l) noexcept;
    int reserve(const void *key, size_t key_len, size_t len,
                std::unique_ptr<ReservationState> *out);
    int commit(ReservationState &r);
    void abort(ReservationState &r) noexcept;

    void stats(struct daxkv_stats &out) const;
    std::string status_json() const;

    // GPU transfers (store_cuda.cpp; the CUDA runtime is loaded on first use).
    int cuda_register(unsigned flags);
    int cuda_unregister();
    int get_batch_cuda(daxkv_item *items, size_t n, void *stream, unsigned flags);
    int put_batch_cuda(daxkv_item *items, size_t n, void *stream, unsigned flags);
    // The asynchronous API's queue (store/async.hpp).
    AsyncQueue &async() noexcept { return *async_; }

    const Config &config() const noexcept { return cfg_; }
    size_t arena_count() const noexcept { return arenas_.size(); }
    const arena::Arena &arena_at(size_t i) const noexcept { return *arenas_[i].arena; }

    // The pool (lib/store/pool.cpp, lib/store/hotplug.cpp).
    int device_add(const std::string &path, uint64_t bytes);
    int device_remove(const std::string &path, int mode, unsigned flags,
                      daxkv_hotplug_result *out);
    int device_resize(const std::string &path, uint64_t bytes, int mode, unsigned flags,
                      daxkv_hotplug_result *out);
    int device_wait_drained(const std::string &path, int timeout_ms);
    std::string pool_status_json() const;
    // Hand a log event to the store's event thread (started on first use);
    // for code that may hold a lock and runs in no caller's call.
    void post_event(int level, std::string msg) noexcept;
    // Calls in flight (tests: a call has entered the store).
    int64_t calls_in_flight() const noexcept { return ops_.load(); }

    // Tests only: called between the copy and the switch phases of a
    // migration (phase 1) and after the switch (phase 2), with no lock held.
    void set_hotplug_hook(std::function<void(int phase)> fn) { hotplug_hook_ = std::move(fn); }

    // What a migration or eviction did (hotplug.cpp; public for its result helper).
    struct MoveStats;

    // Where entries live (keys.cpp).
    SlotLocation locate(const LeaseState &l) const;
    SlotLocation locate(const ReservationState &r) const;
    // The device of the pool at path (-ENOENT when there is none).
    DeviceLayout device_layout(const std::string &path);
    // The store's id (its first device's arena uuid) and its devices'
    // figures, for the Prometheus text.
    const std::string &store_id() const noexcept { return store_id_; }
    std::vector<DeviceGauges> device_gauges() const;

    // A walk over the committed keys of pool row `device` (-1: all devices).
    std::unique_ptr<KeyCursor> key_cursor(int device);
    // The pool row of path, for a cursor that walks one device.
    int device_row(const std::string &path) const { return find_device(path); }
    static constexpr size_t shard_count() noexcept { return kShards; }
    // Append shard i's committed entries (on pool row `device`, or on every
    // device with -1) to out, under the shard's lock.
    void snapshot_shard(size_t i, int device, std::vector<KeyRecord> &out);

private:
    using ArenaSlots = DeviceSlot;
    struct Counters {
        std::atomic<uint64_t> hits{0}, misses{0}, puts{0}, puts_existed{0}, puts_failed{0},
            removes{0}, evictions{0}, bytes_written{0}, bytes_read{0}, verify_failures{0},
            copy_faults{0};
        std::atomic<int64_t> entries{0}, pinned{0}, inflight{0}, pending_free{0}, leases{0},
            leased_slots{0};
    };
    // A write between begin_write and finish_write.
    struct Pending {
        const char *key = nullptr;
        uint16_t key_len = 0;
        uint64_t hash = 0;
        uint16_t shard = 0;
        std::unique_ptr<Inflight> inflight;
        char *dst = nullptr;
    };
    // A read between begin_read and end_read.
    struct Borrow {
        uint16_t shard = 0;
        SlotRef ref;
        const char *src = nullptr;
        uint64_t len = 0;
        uint32_t meta_len = 0;
    };
    // Counts the calls in flight so that shutdown can wait for them.
    class OpGuard {
    public:
        explicit OpGuard(Store &s);
        ~OpGuard();

    private:
        void leave() noexcept;
        Store &s_;
    };

    explicit Store(const Config &cfg);
    void recover();
    std::string first_arena_uuid() const;
    void start_publisher();
    // Where the copy workers run (store/placement.cpp).
    std::vector<int> worker_cpus() const;

    Shard &shard_of(uint64_t hash) noexcept { return shards_[hash % kShards]; }
    static uint16_t shard_index(uint64_t hash) noexcept {
        return static_cast<uint16_t>(hash % kShards);
    }
    SlotState &slot_state(const SlotRef &r) noexcept { return arenas_[r.arena].slots[r.slot]; }
    Entry *find(Shard &sh, std::string_view key, uint64_t hash);

    // Link e at the most recent end with the given tick (head_tick is the caller's).
    void lru_link_tail(Shard &sh, Entry *e, uint64_t tick) noexcept;
    void lru_push_back(Shard &sh, Entry *e) noexcept;
    void lru_unlink(Shard &sh, Entry *e) noexcept;
    void lru_touch(Shard &sh, Entry *e) noexcept;

    // Slot lifetime (shard lock of the slot's owner held).
    void free_slot(const SlotRef &r) noexcept;
    void retire_committed(Shard &sh, Entry *e) noexcept;
    void erase_if_empty(Shard &sh, Entry *e);
    SlotRef acquire_slot();
    bool evict_one();

    int begin_write(const void *key, size_t key_len, uint64_t len, unsigned flags,
                    Pending &out);
    int finish_write(Pending &p, const void *meta, size_t meta_len, uint64_t value_hash,
                     bool hashed);
    void abort_write(Pending &p) noexcept;

    int begin_read(const void *key, size_t key_len, size_t cap, size_t *len_out,
                   size_t meta_cap, Borrow &out, size_t *meta_len_out = nullptr);
    void end_read(const Borrow &b) noexcept;
    bool verify_borrow(const Borrow &b, const uint64_t *block_hashes);
    // media: the copy out of the slot faulted (SIGBUS), rather than the
    // bytes failing their checksum.
    void quarantine(const Borrow &b, bool media = false) noexcept;
    // The copy out of b failed with rc (engine/fault.hpp): ends the borrow
    // (quarantining the slot for a media fault) and returns -EIO.
    int copy_failed(const Borrow &b, int rc) noexcept;

    std::string describe_full() const;
    // Whether copies of len bytes, into the arena or out of it, stream
    // (non-temporal stores: nt_stores, auto from kNonTemporalMin). len is
    // what one call moves: a value, or every value of a batch.
    bool streams(uint64_t len) const noexcept {
        return cfg_.nt_stores == NtStores::on ||
               (cfg_.nt_stores == NtStores::auto_ && len >= kNonTemporalMin);
    }
    static uint64_t batch_bytes(const std::vector<engine::CopyOp> &ops) noexcept {
        uint64_t total = 0;
        for (const engine::CopyOp &c : ops)
            total += c.len;
        return total;
    }
    // The borrowing pass of a read batch (host or GPU): check each item,
    // begin_read it and report the sizes needed; with prefix, stop at the
    // first failure and mark the rest -ENOENT. Returns where a prefix
    // stopped, n if it did not.
    // The checks and the begin_write of one item of a write batch (host or
    // GPU); its status.
    int admit_write(const daxkv_item &it, size_t i, unsigned flags, Pending &p);
    // What a read batch returns: the items found, or with prefix the length
    // of the leading run of found items (before stop).
    static int read_batch_result(const daxkv_item *items, size_t stop, bool prefix, int hits);
    size_t borrow_batch(daxkv_item *items, size_t n, bool prefix, std::vector<Borrow> &borrows,
                        std::vector<size_t> &item_of);
    cuda::StoreState &cuda_state();
    std::vector<cuda::HostRange> cuda_ranges() const;
    // Run a change of the pool's mappings (a device unmapped or added) with
    // the CUDA registration, if any, dropped around it and made again for
    // the devices mapped afterwards (store_cuda.cpp).
    void change_pool_registered(const std::function<void()> &change);

    // Pool (lib/store/pool.cpp).
    void open_device(const DeviceSpec &d, bool tolerate_missing);
    void make_arena(DeviceSlot &row, const DeviceSpec &d);
    void size_for_payloads(uint64_t bytes, platform::MapRequest &req,
                           arena::Arena::Options &ao) const;
    uint64_t auto_grow_limit(const std::string &path) const;
    uint32_t pick_device() const noexcept;
    bool any_writable() const noexcept;
    // The entry's device is being emptied by a migration or removal:
    // evicting it would not make room where new entries go.
    bool moving_away(const SlotRef &r) const noexcept {
        DevState st = arenas_[r.arena].state.load(std::memory_order_relaxed);
        return st == DevState::migrating || st == DevState::removing;
    }
    void note_slot_freed(uint32_t arena) noexcept;
    bool lease_gated(uint32_t arena) const noexcept {
        return arenas_[arena].lease_gate.load(std::memory_order_acquire);
    }
    void wait_lease_gate(uint32_t arena);
    void stop_events() noexcept;
    // Hotplug (lib/store/hotplug.cpp).
    struct Move;
    int find_device(const std::string &path) const;
    void check_hotplug(const char *what) const;
    std::vector<std::string> keys_on(uint32_t a, uint32_t from_slot, bool *blocked);
    int migrate_keys(uint32_t src, const std::vector<std::string> &keys, bool same_device,
                     MoveStats &ms);
    int evict_keys(uint32_t src, const std::vector<std::string> &keys, bool force,
                   MoveStats &ms);
    bool wait_until_empty(uint32_t a, uint32_t from_slot, bool migrate, bool force,
                          bool same_device, MoveStats &ms, int *rc);
    // floor: the device's seq_floor before it joined (pool history).
    void adopt(uint32_t a, uint64_t floor);
    uint64_t usable_bytes(uint32_t a) const;
    // Pool history (store/history.cpp; docs/on-device-format.md, "Pool
    // history"): sequence numbers ordered across every open of the pool,
    // and removals recorded on every device.
    bool keeps_history() const noexcept { return cfg_.durability != arena::Durability::none; }
    // A new sequence number; before it is handed out, every device records
    // a floor above it.
    uint64_t next_seq() noexcept;
    // Later sequence numbers are larger than v (and every device says so).
    void raise_seq_floor(uint64_t v);
    // Record, on every device, that the key with this hash was removed now:
    // before its entry (if any) is withdrawn. Shard lock of the key held.
    void record_removal(uint64_t hash) noexcept;
    // Record a change of the key (a commit of seq r, or a removal) on every
    // device: newer than any version a device away now may hold.
    void record_change(uint64_t hash, uint64_t r) noexcept;
    // Whether an entry of seq found on a device whose floor was floor was
    // removed while that device was away (a removal newer than the entry
    // that the device did not see).
    bool removed_while_away(uint64_t hash, uint64_t seq, uint64_t floor) const noexcept;
    // Give device a the pool's removal table and floor (and take its table
    // into the pool's): at open, and when a device is added.
    void share_history(uint32_t a);
    // Record the floor on every device (seq_m_ held).
    void write_seq_floor(uint64_t limit);

    // Open reservations with a slot of device a at from_slot or above; with
    // cancel, detach each of them (their commits fail with -ECANCELED).
    size_t reservations_on(uint32_t a, uint32_t from_slot, bool cancel);
    // A reservation ends (commit or abort): out of the registry. Returns
    // the phase it had, having claimed it for its commit when it was held.
    uint8_t end_reservation(ReservationState &r, bool committing) noexcept;

    static constexpr size_t kShards = 64;

    Config cfg_;
    DeviceTable arenas_;
    std::unique_ptr<Shard[]> shards_;
    std::unique_ptr<engine::CopyEngine> engine_;
    std::unique_ptr<AsyncQueue> async_;
    std::atomic<uint64_t> next_seq_{1};
    // Sequence numbers below seq_limit_ may be handed out: every device
    // records it (seq_floor) before. Raised by kSeqLease at a time.
    std::mutex seq_m_;
    std::atomic<uint64_t> seq_limit_{0};
    // The pool's removal table, as every device holds it (kRemovalBuckets).
    std::unique_ptr<std::atomic<uint64_t>[]> removals_;
    std::atomic<uint64_t> tick_{1};
    mutable Counters c_;
    Metrics m_;
    arena::RecoveryCounts recovery_;
    // Shutdown.
    std::atomic<bool> shutting_{false};
    std::atomic<int64_t> ops_{0};
    std::mutex shutdown_m_;
    std::condition_variable shutdown_cv_;
    bool shut_down_ = false;
    // GPU state, created by the first CUDA call; ~Store releases it first
    // (it waits for DMAs still reading the arenas, then unregisters them).
    std::mutex cuda_m_;
    std::unique_ptr<cuda::StoreState, cuda::StoreStateDeleter> cuda_;
    // Pool. hotplug_m_ serialises runtime changes (never held by the data
    // path); pool_m_ guards unmapping a removed device against readers of
    // every device's arena (status); ev_m_/ev_cv_ carry drain, gate and
    // "slot freed" signals.
    std::mutex hotplug_m_;
    mutable std::shared_mutex pool_m_;
    mutable std::mutex ev_m_;
    std::condition_variable ev_cv_;
    // Log events of no caller's call (a drain completed under a shard lock,
    // a batch run by the async dispatcher) go out from one event thread,
    // which shares nothing with the store but this queue: a log callback
    // that closes the store from that thread destroys the store, not what
    // the thread still reads.
    struct EventLog {
        std::mutex m;
        std::condition_variable cv;
        std::vector<std::pair<int, std::string>> events;
        bool stop = false;
    };
    std::shared_ptr<EventLog> events_;
    std::thread ev_thread_; // started by the first event, under events_->m
    std::atomic<uint32_t> next_device_id_{0};
    // Reservations not yet committed or aborted (hotplug looks for those on
    // a device it empties). resv_m_ may be followed by a shard lock.
    std::mutex resv_m_;
    std::unordered_set<ReservationState *> reservations_;
    std::function<void(int)> hotplug_hook_;
    std::string store_id_;
    // The statistics page for other processes; stopped first at shutdown.
    std::unique_ptr<StatsPublisher> publisher_;
};


} // namespace daxkv
