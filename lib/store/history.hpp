// Pool history (docs/on-device-format.md, "Pool history"): sequence numbers
// ordered across every open of the pool, and the changes of each key
// (commits and removals) recorded on every device, so that a device that
// comes back after it was away brings back nothing that was replaced or
// removed meanwhile. history.cpp says how.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "store/config.hpp"
#include "store/pool.hpp"

namespace daxkv {

class History {
public:
    History(const Config &cfg, Pool &pool);
    History(const History &) = delete;
    History &operator=(const History &) = delete;

    // Whether the store keeps a history (durability other than none).
    bool kept() const noexcept { return cfg_.durability != arena::Durability::none; }
    // A new sequence number; before it is handed out, every device records
    // a floor above it.
    uint64_t next_seq() noexcept;
    // Later sequence numbers are larger than v (and every device says so).
    void raise_floor(uint64_t v);
    // Record on every device, durably, that the key with this hash is
    // removed now: before its entry (if any) is withdrawn. Shard lock of the
    // key held.
    void record_removal(uint64_t hash) noexcept;
    // Record on every device that the key with this hash was committed at
    // seq, written back but not fenced: the commit's fence (arena.hpp)
    // makes it durable before the commit word is stored.
    void stage_commit(uint64_t hash, uint64_t seq) noexcept;
    // Whether an entry of seq found on a device whose floor was floor was
    // removed while that device was away (a removal or a newer version that
    // the device did not see).
    bool removed_while_away(uint64_t hash, uint64_t seq, uint64_t floor) const noexcept;

    // A device's record taken into the pool's: its removal table merged;
    // returns the largest sequence number the device knows of (its floor,
    // its removals). Recovery raises the floor above it.
    uint64_t take_device(const arena::Arena &ar) noexcept;
    // Give device a the pool's removal table (at open, and when a device
    // is added).
    void share(uint32_t a);
    // Record the current floor on a device that joins the pool.
    void write_floor_to(arena::Arena &ar);
    // Start handing out numbers at v (an open without history: above every
    // entry found).
    void start_at(uint64_t v) noexcept { next_seq_.store(v); }

private:
    void note(uint64_t hash, uint64_t r, bool durable) noexcept;
    void write_floor(uint64_t limit); // seq_m_ held

    const Config &cfg_;
    Pool &pool_;
    std::atomic<uint64_t> next_seq_{1};
    // Sequence numbers below seq_limit_ may be handed out: every device
    // records it (seq_floor) before. Raised by kSeqLease at a time.
    std::mutex seq_m_;
    std::atomic<uint64_t> seq_limit_{0};
    // The pool's removal table, as every device holds it (kRemovalBuckets).
    std::unique_ptr<std::atomic<uint64_t>[]> removals_;
};

} // namespace daxkv
