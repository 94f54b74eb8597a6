// The copy engine: a persistent worker pool that executes batch plans.
// Large copies are split into chunks spread over the workers and the calling
// thread; a small batch stays on the calling thread, where handing it off
// would cost more than it saves. run() returns only when every chunk of the
// batch has finished, whatever happened to the others.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/fault.hpp"

namespace daxkv {
namespace engine {

struct CopyOp {
    void *dst = nullptr;
    const void *src = nullptr;
    size_t len = 0;
    bool nontemporal = false;  // stream the stores (large writes into the arena)
    bool overlap_safe = false; // memmove semantics: never split, never parallel
    // Optional: per-1 MiB-block XXH3 of the bytes copied (arena/checksum.hpp),
    // computed on the bytes as they pass through the copy.
    uint64_t *block_hashes = nullptr;
    // Recover from a SIGBUS on a load from src (engine/fault.hpp): the op
    // fails with kMediaFault instead of the process dying; guard_dest, the
    // same for a store into dst (kMediaFaultWriting).
    bool guard_source = false;
    bool guard_dest = false;
    // Which side is the arena (the plan orders ops by arena address):
    // dst for writes into the store, src otherwise.
    bool arena_is_dst = false;
};

class CopyEngine {
public:
    // workers: total parallelism including the calling thread (>= 1).
    // cpus: where the pool's threads run (platform/numa.hpp; empty: no
    // pinning). The calling thread is the caller's and is left alone.
    explicit CopyEngine(unsigned workers, std::vector<int> cpus = {});
    ~CopyEngine();
    CopyEngine(const CopyEngine &) = delete;
    CopyEngine &operator=(const CopyEngine &) = delete;

    // Execute every op. Ops are independent; their order is not kept: the
    // plan runs them in arena address order (sequential device access), and
    // merges ops that are contiguous on both sides (consecutive slots read
    // into one buffer, e.g. fixed-size KV chunks) into one copy, unless they
    // hash, guard against SIGBUS, need memmove, or a fault hook is set (so
    // that a failure is always that of exactly one op).
    // errors (n entries, zeroed by the caller) gets a negative code for each
    // op that failed: a SIGBUS in a guarded copy (kMediaFault,
    // kMediaFaultWriting) or an
    // injected fault. Whatever fails, run() returns only after every chunk
    // of the batch has finished or been skipped: nothing of the batch is
    // touched after it returns.
    void run(const CopyOp *ops, size_t n, int *errors = nullptr);

    // run() in two halves, so that the caller can do other work while the
    // workers copy: start() hands the batch to the workers (a batch that
    // run() would copy on the calling thread alone is copied before it
    // returns), finish() has the calling thread join in and returns when
    // every chunk has finished. Batches started one after another are taken
    // up in that order. The ops, and errors, stay the caller's until then;
    // a Ticket destroyed unfinished waits for its batch first.
    // hand_off: the batch goes to the workers however small it is (with
    // more than one worker): the caller has work of its own to do while
    // they copy, so copying inline would only delay it.
    class Ticket;
    Ticket start(const CopyOp *ops, size_t n, int *errors = nullptr, bool hand_off = false);
    void finish(Ticket &t) noexcept;

    unsigned workers() const noexcept { return workers_; }
    const std::vector<int> &cpus() const noexcept { return cpus_; }

    // The plan of a batch (public for its tests): runs of ops merged into
    // one copy; members[first .. first+count) are op indices, in arena
    // address order, and op is the first of them. Empty ops are left out.
    struct Run {
        const CopyOp *op;
        size_t len;
        uint32_t first, count;
    };
    struct Plan {
        std::vector<Run> runs;
        std::vector<uint32_t> members;
    };
    static Plan make_plan(const CopyOp *ops, size_t n);

    // Bytes below which a batch runs on the calling thread alone.
    static constexpr size_t kInlineBytes = 512 * 1024;
    // Chunk granularity for splitting large ops (a multiple of the hash block).
    static constexpr size_t kChunkBytes = 1 << 20;

private:
    struct Chunk {
        const CopyOp *op;
        size_t offset, len;
        const Run *run;
    };
    // Consecutive chunks (neighbours in the arena) that one thread copies
    // interleaved: up to platform::kCopyLanes small ones, or one alone.
    struct Group {
        uint32_t first, count;
    };
    struct Job {
        Plan plan;
        int *errors = nullptr;
        std::vector<Chunk> chunks;
        std::vector<Group> groups;
        std::atomic<size_t> next{0};
        std::atomic<size_t> done{0};
        std::mutex m;
        std::condition_variable cv;
        bool finished = false;
    };

    static void wait(Job &job) noexcept;
    // Copy a group's chunks, recording each failure in errors.
    static void execute(const Chunk *chunks, size_t n, const Plan &plan, int *errors) noexcept;
    // Groups of up to platform::kCopyLanes chunks and max_bytes.
    static std::vector<Group> group_chunks(const std::vector<Chunk> &chunks, size_t max_bytes);
    static void record(int *errors, const Plan &plan, const Run &run, int rc) noexcept;
    // Copy one group of job (false: none is left to take), or every group
    // left; a queued batch with a group left to take, or null.
    bool work_one(Job &job) noexcept;
    void work(Job &job) noexcept;
    std::shared_ptr<Job> queued_work() noexcept;
    void worker_main() noexcept;
    // Ends and joins the pool's threads (those started so far).
    void stop_workers() noexcept;

    unsigned workers_;
    std::vector<int> cpus_;
    std::vector<std::thread> threads_;
    std::mutex qm_;
    std::condition_variable qcv_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::atomic<size_t> queued_{0};      // queue_.size(), for a worker spinning without qm_
    std::atomic<bool> spinning_{false}; // a worker is spinning (worker_main)
    bool stop_ = false;
};

class CopyEngine::Ticket {
public:
    Ticket() = default;
    Ticket(Ticket &&) noexcept = default;
    Ticket &operator=(Ticket &&other) noexcept {
        if (this != &other) {
            settle();
            job_ = std::move(other.job_);
        }
        return *this;
    }
    ~Ticket() { settle(); }

private:
    friend class CopyEngine;
    explicit Ticket(std::shared_ptr<Job> job) noexcept : job_(std::move(job)) {}
    void settle() noexcept {
        if (job_)
            CopyEngine::wait(*job_);
        job_.reset();
    }
    std::shared_ptr<Job> job_;
};

// A process-wide engine for daxkv_memcpy_batch (created on first use).
CopyEngine &shared_engine();

namespace testing {
// Called by shared_engine() under its lock, just before it builds an
// engine (the unit tests fork there). Without one, a build costs one
// relaxed load more.
void set_engine_build_hook(void (*hook)()) noexcept;
} // namespace testing

} // namespace engine
} // namespace daxkv
