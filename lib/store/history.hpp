// Pool history (docs/on-device-format.md, "Pool history"): sequence numbers
// ordered across every open of the pool, and the changes of each key
// (commits and removals) recorded on every device, so that a device that
// comes back after it was away brings back nothing that was replaced or
// removed meanwhile. history.cpp says how.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstddef>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "store/config.hpp"
#include "store/counters.hpp"
#include "store/pool.hpp"

namespace daxkv {

class History {
public:
    History(const Config &cfg, Pool &pool, Counters &counters);
    History(const History &) = delete;
    History &operator=(const History &) = delete;

    // Whether the store keeps a history (durability other than none).
    bool kept() const noexcept { return cfg_.durability != arena::Durability::none; }
    // A new sequence number; before it is handed out, every device records
    // a floor above it.
    uint64_t next_seq() noexcept { return next_seqs(1); }
    // n consecutive sequence numbers (a batch's commits): the first.
    uint64_t next_seqs(uint64_t n) noexcept;
    // Later sequence numbers are larger than v (and every device says so).
    void raise_floor(uint64_t v);
    // Record on every device, durably, that the key with this hash is
    // removed now: before its entry (if any) is withdrawn. Shard lock of the
    // key held.
    void record_removal(uint64_t hash) noexcept;
    // Record on every device that the key with this hash was committed at
    // seq, written back but not fenced: the commit's fence (arena.hpp)
    // makes it durable before the commit word is stored.
    void stage_commit(uint64_t hash, uint64_t seq) noexcept {
        stage_commits(seq, 1, [hash](size_t) { return hash; });
    }
    // stage_commit of the n commits of a batch, the devices looked up once
    // for all of them: commit k is of the key whose hash is hash_of(k), at
    // sequence number first + k.
    template <class HashOf>
    void stage_commits(uint64_t first, size_t n, HashOf &&hash_of) noexcept {
        if (!kept() || n == 0)
            return;
        const Devices devices(pool_);
        for (size_t k = 0; k < n; ++k)
            note(devices, hash_of(k), first + k, false);
    }
    // Whether an entry of seq found on a device whose floor was floor was
    // removed while that device was away (a removal or a newer version that
    // the device did not see).
    bool removed_while_away(uint64_t hash, uint64_t seq, uint64_t floor) const noexcept;
    // A device's own removal table (kRemovalBuckets words), as it holds it
    // before the pool's is shared with it. Throws Error(-EIO) where reading
    // it faulted (sigbus=handle).
    static std::vector<uint64_t> own_table(const arena::Arena &ar);
    // Whether the pool holds a change of hash's bucket newer than seq that
    // the device whose own table is `own` did not record: for a device
    // whose floor cannot be trusted (an image of it taken while the store
    // ran: see open_id()).
    bool missed(uint64_t hash, uint64_t seq, const std::vector<uint64_t> &own) const noexcept;
    // This open of the pool (its first sequence number; 0 before
    // begin_open), recorded on every device with the last-open fields of
    // its superblock, and marked on them at a clean close. A device whose
    // record names an open not closed on it, while another device closed
    // that open or a later one cleanly, or whose record names the running
    // open (given to daxkv_device_add), may be an image taken while that
    // open ran: its floor may overstate what it saw.
    uint64_t open_id() const noexcept { return open_id_.load(); }
    void begin_open();
    void mark_clean_close() noexcept;
    // A device's record as it was found, before this open marked its own
    // on it: at open (every device present, before begin_open) and when a
    // device is added (before join). Kept: the latest open found closed
    // cleanly on a device, since this open's marks hide it from then on.
    void note_found(const arena::Arena &ar) noexcept;
    // Whether a device found so far (at open, or added since) recorded a
    // clean close of open `last` or of a later one.
    bool closed_since(uint64_t last) const noexcept {
        return last != 0 && closed_through_.load() >= last;
    }

    // A device's record taken into the pool's: its removal table (as
    // own_table read it) merged; returns the largest sequence number the
    // device knows of (its floor, its removals). Recovery raises the floor
    // above it.
    uint64_t take_device(const arena::Arena &ar, const std::vector<uint64_t> &table) noexcept;
    // Give device a the pool's removal table (at open, and when a device
    // is added).
    void share(uint32_t a) noexcept;
    // Record the current floor and this open on device a, which joins the
    // pool in use (a device added): where that faults, as any record.
    void join(uint32_t a);
    // Start handing out numbers at v (an open without history: above every
    // entry found).
    void start_at(uint64_t v) noexcept { next_seq_.store(v); }

private:
    // The pool's rows held still (a removal unmaps a device under the
    // mapping lock) while changes are noted on them; none if the lock
    // could not be taken.
    struct Devices {
        explicit Devices(Pool &pool) noexcept : lock(pool.mapping_lock(), std::defer_lock) {
            try {
                lock.lock();
            } catch (...) {
                // A lock that failed: the devices miss these changes, and a
                // device away now could bring their keys back. Nothing
                // better to do.
            }
        }
        std::shared_lock<std::shared_mutex> lock;
    };
    // The change r of the key with this hash: raised in the pool's table,
    // and on every recording device, written back (staged) or also fenced
    // (durable).
    void note(const Devices &devices, uint64_t hash, uint64_t r, bool durable) noexcept;
    void write_floor(uint64_t limit); // seq_m_ held
    // Writing device a's record failed: it faulted (sigbus=handle; bad
    // media under its superblock blocks, or a file cut inside them), or,
    // with durability=power, the file system could not write it back.
    // Counted, and logged the first time for the device. The store goes on
    // without that device's record: after a fault a later open reads the
    // blocks first and refuses the device, so the changes it missed cannot
    // bring back stale entries; after a failed write-back only a power
    // loss before the pages reach the file loses them.
    void record_faulted(uint32_t a, const char *what) noexcept;

    const Config &cfg_;
    Pool &pool_;
    Counters &counters_;
    std::atomic<uint64_t> next_seq_{1};
    // Sequence numbers below seq_limit_ may be handed out: every device
    // records it (seq_floor) before. Raised by kSeqLease at a time.
    std::mutex seq_m_;
    std::atomic<uint64_t> seq_limit_{0};
    // The pool's removal table, as every device holds it (kRemovalBuckets).
    std::unique_ptr<std::atomic<uint64_t>[]> removals_;
    std::atomic<uint64_t> open_id_{0};
    std::atomic<uint64_t> failures_told_{0}; // a bit per device row (at most 64)
    std::atomic<uint64_t> closed_through_{0}; // note_found
};

} // namespace daxkv
