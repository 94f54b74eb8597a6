// Every copy the store makes into or out of its arenas is built here, so
// that the rules cannot drift apart between the paths:
// - non-temporal stores: by the size of what one call moves (nt_stores,
//   auto from kNonTemporalMin), for copies that write the arena or a
//   caller's buffer: a value, or every value of a batch (run_batch), since
//   many small values moved at once pass through the cache as one large
//   one would;
// - the SIGBUS guard (sigbus=handle): on every copy that reads or writes
//   the arena, on its arena side (a caller's buffer is the caller's);
// - hashing: per 1 MiB block as the bytes pass, when verify asks for it;
// - errors: run() reports every op's result; the caller looks at each.
// The paths: a read (get, get_batch), a write (put, put_batch, the staged
// GPU put), a move between slots (migration), and a read into a staging
// buffer (the staged GPU get).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/copy_engine.hpp"
#include "store/config.hpp"

namespace daxkv {

// Non-temporal stores pay off above this size on the machines measured
// (README, "Speed").
constexpr size_t kNonTemporalMin = 256 * 1024;

// A batch hands its copies to the workers a segment at a time
// (SegmentedCopies), so that the calling thread's per-item work overlaps
// them: put_batch claims the next items, get_batch borrows them, while the
// workers copy the ones before; each segment is then finished in turn.
// A segment ends at kSegmentBytes, or sooner at kSegmentItems items once
// it holds kSegmentMinBytes: a thousand values of 4 KiB would otherwise be
// one segment, the workers idle while the caller prepares all of them
// (for small values the caller's work per item takes about as long as the
// item's copy).
// kSegmentMinBytes is kNonTemporalMin: whether a read batch streams is
// decided when its first segment starts, from the bytes borrowed by then,
// and only a batch's last segment may start with fewer (its only one, for
// a batch that moves less in all).
constexpr uint64_t kSegmentBytes = 4 << 20;
constexpr size_t kSegmentItems = 128;
constexpr uint64_t kSegmentMinBytes = kNonTemporalMin;

inline bool segment_full(size_t items, uint64_t bytes) noexcept {
    return bytes >= kSegmentBytes || (items >= kSegmentItems && bytes >= kSegmentMinBytes);
}

// At most this many segments for n items of bytes in all: each but the
// last holds kSegmentBytes or kSegmentItems items.
inline size_t max_segments(size_t n, uint64_t bytes) noexcept {
    return static_cast<size_t>(
        std::min<uint64_t>(n, bytes / kSegmentBytes + n / kSegmentItems + 1));
}

class Copier {
public:
    explicit Copier(const Config &cfg) : cfg_(cfg) {}
    // The store's copy engine, started once its devices are open (its
    // workers go to the devices' NUMA node).
    void start(unsigned workers, std::vector<int> cpus);
    const engine::CopyEngine *engine() const noexcept { return engine_.get(); }

    // Whether writes record a value checksum, and reads check it.
    bool hashes_writes() const noexcept { return cfg_.verify != arena::Verify::off; }
    bool verifies_reads() const noexcept { return cfg_.verify == arena::Verify::read; }
    // The checksum of len bytes of a slot read in place, not copied (a
    // lease, a GPU read checked before its DMA): 0 and *out, or
    // engine::kMediaFault where reading them faulted (SIGBUS, with
    // sigbus=handle) instead of the process dying, as a copy out does.
    int checksum(const char *slot, uint64_t len, uint64_t *out) const noexcept;

    // A value of len bytes copied out of a slot into the caller's dst;
    // hashes: where its block hashes go (null: not hashed).
    engine::CopyOp read(void *dst, const char *slot, uint64_t len, uint64_t *hashes) const noexcept;
    // Bytes copied into a slot: len bytes of a value of value_len bytes
    // (a piece of it, for the staged GPU put).
    engine::CopyOp write(char *slot, const void *src, uint64_t len, uint64_t value_len,
                         uint64_t *hashes) const noexcept;
    // A value copied from one slot into another (migration). Its checksum
    // is the source header's: not hashed again.
    engine::CopyOp move(char *to, const char *from, uint64_t len) const noexcept;
    // A piece of a value copied out of a slot into a pinned staging buffer
    // that the DMA engine reads next: not streamed, so that its lines are
    // still in the cache when the DMA reads them.
    engine::CopyOp stage_out(char *staging, const char *slot, uint64_t len) const noexcept;

    // Run n ops; errors[k] gets op k's result (0, or engine/fault.hpp's
    // codes). Returns only when every op has finished, failed or not.
    void run(const engine::CopyOp *ops, size_t n, int *errors) const;
    void run(const std::vector<engine::CopyOp> &ops, std::vector<int> &errors) const {
        errors.assign(ops.size(), 0);
        run(ops.data(), ops.size(), errors.data());
    }
    // The ops of one batch call (put_batch, get_batch): streaming is decided
    // for the bytes of the whole batch, then they run as run() runs them.
    void run_batch(std::vector<engine::CopyOp> &ops, std::vector<int> &errors) const {
        uint64_t total = 0;
        for (const engine::CopyOp &op : ops)
            total += op.len;
        const bool nt = streams(total);
        for (engine::CopyOp &op : ops)
            op.nontemporal = nt;
        run(ops, errors);
    }
    // run() in two halves (engine::CopyEngine::start, hand_off as there):
    // start() zeroes errors[0..n) and hands the ops to the workers;
    // finish() joins them and returns when every op has finished.
    engine::CopyEngine::Ticket start(const engine::CopyOp *ops, size_t n, int *errors,
                                     bool hand_off = false) const;
    void finish(engine::CopyEngine::Ticket &t) const noexcept { engine_->finish(t); }
    // Whether the copies of a call that moves len bytes in all stream their
    // stores (run_batch decides it for a batch this way).
    bool streams(uint64_t len) const noexcept {
        return cfg_.nt_stores == NtStores::on ||
               (cfg_.nt_stores == NtStores::auto_ && len >= kNonTemporalMin);
    }
    // One op; its result. When the engine itself fails (out of memory),
    // undo() runs before the exception goes on.
    template <typename Undo>
    int run_one(const engine::CopyOp &op, Undo &&undo) const {
        int rc = 0;
        try {
            run(&op, 1, &rc);
        } catch (...) {
            undo();
            throw;
        }
        return rc;
    }

private:
    const Config &cfg_;
    std::unique_ptr<engine::CopyEngine> engine_;
};

// The segments of one batch whose copies are under way. The caller
// appends ops to its array one at a time and tells add() their lengths;
// when add() says the open segment is full, start() hands it to the
// workers, and once every op is in, start() hands over the rest. Then the
// caller finishes each segment in turn and looks at its ops' results.
// Destroyed (or clear()ed), it waits for every copy it started: the ops
// and errors stay the caller's until then, and the caller reserves them
// for the whole batch (a copy in flight points into them).
class SegmentedCopies {
public:
    // For a batch of at most n ops of at most bytes in all.
    SegmentedCopies(const Copier &copier, size_t n, uint64_t bytes);

    // An op of len bytes joined the open segment; true when it is full.
    bool add(uint64_t len) noexcept { return segment_full(++items_, bytes_ += len); }
    // Where the open segment starts in the ops, and whether it has any.
    size_t first() const noexcept { return first_; }
    bool open(size_t end) const noexcept { return end > first_; }
    // Hand ops[first() .. end) to the workers, errors[] for their results.
    // more: whether more ops of the batch follow (such a segment goes to
    // the workers even below CopyEngine::kInlineBytes: the caller has the
    // next items to prepare meanwhile).
    void start(const engine::CopyOp *ops, size_t end, int *errors, bool more);

    size_t count() const noexcept { return tickets_.size(); }
    // The most segments the batch can have (max_segments()): what the
    // caller reserves for anything it keeps per segment.
    size_t max_count() const noexcept { return max_count_; }
    // Where segment i ends in the ops.
    size_t end(size_t i) const noexcept { return ends_[i]; }
    // Returns when every copy of segment i has finished.
    void finish(size_t i) noexcept { copier_.finish(tickets_[i]); }
    // Wait for every copy started (the failure path, before the ops go).
    void clear() noexcept { tickets_.clear(); }

private:
    const Copier &copier_;
    size_t max_count_;
    std::vector<engine::CopyEngine::Ticket> tickets_;
    std::vector<size_t> ends_;
    size_t first_ = 0, items_ = 0;
    uint64_t bytes_ = 0;
};

// The block hashes of the values of one call, each value's in a run of
// hash_block_count(len) words. Pointers from at() are valid until the next
// add().
class BlockHashes {
public:
    // Room for a value of len bytes; returns its offset.
    size_t add(uint64_t len);
    uint64_t *at(size_t off) noexcept { return data() + off; }
    // The value checksum (arena/checksum.hpp) of the value at off, of len
    // bytes, from its block hashes.
    uint64_t combined(size_t off, uint64_t len) const noexcept;

private:
    uint64_t *data() noexcept { return n_ <= kLocal ? local_ : heap_.data(); }
    const uint64_t *data() const noexcept { return n_ <= kLocal ? local_ : heap_.data(); }
    // One value of up to 2 MiB needs no allocation (a single put).
    static constexpr size_t kLocal = 2;
    uint64_t local_[kLocal] = {};
    std::vector<uint64_t> heap_;
    size_t n_ = 0;
};

} // namespace daxkv
