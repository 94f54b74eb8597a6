#include "engine/copy_engine.hpp"

#include <algorithm>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "arena/format.hpp"
#include "internal/process_mutex.hpp"
#include "internal/threads.hpp"
#include "platform/copy.hpp"
#include "platform/cpu.hpp"
#include "platform/fork.hpp"
#include "platform/numa.hpp"

namespace daxkv {
namespace engine {
namespace {

static_assert(CopyEngine::kChunkBytes % arena::kHashBlock == 0,
              "chunks must hold whole hash blocks");

// Chunks up to this size may run together, interleaved (platform::
// copy_streams); a larger one has lanes enough of its own.
constexpr size_t kGroupChunkMax = 1 << 20;

// The copy streams of a group, handed to copy_streams a few dozen at a time
// (the lanes refill from them; no allocation on the copy path). Each stream
// carries the sides its guard covers and a tag, the caller's name for it,
// given back with its failure.
class StreamBatch {
public:
    bool full() const noexcept { return count_ == kCap; }
    void add(const platform::CopyStream &s, uint8_t guard, uint32_t tag) noexcept {
        s_[count_] = s;
        guard_[count_] = guard;
        tag_[count_] = tag;
        guarded_ = guarded_ || guard;
        ++count_;
    }
    // Copies the streams added since the last flush; fail(tag, code) for
    // each one that faulted (a SIGBUS on a guarded side).
    template <typename Fail>
    void flush(Fail &&fail) noexcept {
        if (!count_)
            return;
        if (!guarded_)
            platform::copy_streams(s_, count_);
        else if (guarded_copy_streams(s_, guard_, count_, codes_))
            for (size_t i = 0; i < count_; ++i)
                if (codes_[i])
                    fail(tag_[i], codes_[i]);
        count_ = 0;
        guarded_ = false;
    }

private:
    static constexpr size_t kCap = 32;
    platform::CopyStream s_[kCap];
    uint8_t guard_[kCap];
    uint32_t tag_[kCap];
    int codes_[kCap];
    size_t count_ = 0;
    bool guarded_ = false;
};

// How long a thread about to sleep for the engine looks for what it waits
// for first: a worker with nothing queued, for the next batch of a caller
// that sends them one after another (its claims and commits between two
// batches take tens of microseconds); a caller at the end of its batch, for
// the other threads' last groups. Sleeping at once cost a futex wake-up per
// batch on each side: on a 2-vCPU virtual machine, put_batch calls of 2 MiB
// one after another ran at about half the speed of one large call (README,
// "Speed").
constexpr std::chrono::microseconds kSpin{200};

} // namespace

CopyEngine::CopyEngine(unsigned workers, std::vector<int> cpus)
    : workers_(std::max(1u, workers)), cpus_(std::move(cpus)) {
    try {
        threads_.reserve(workers_ - 1);
        for (unsigned i = 1; i < workers_; ++i) {
            const std::string name = format("copy worker %u of %u", i, workers_ - 1);
            threads_.push_back(start_thread(name, [this] {
                // A failure to pin (CPUs offline, a cpuset of the container)
                // costs locality, not correctness: the worker runs unpinned.
                platform::pin_current_thread(cpus_);
                worker_main();
            }));
        }
    } catch (...) {
        // A thread that cannot be started (-EAGAIN) or its state that cannot
        // be allocated (-ENOMEM) fails the construction; the workers already
        // running must end first, as a joinable std::thread destroyed by the
        // unwinding would terminate the process.
        stop_workers();
        throw;
    }
}

CopyEngine::~CopyEngine() { stop_workers(); }

void CopyEngine::stop_workers() noexcept {
    {
        std::lock_guard<std::mutex> g(qm_);
        stop_ = true;
    }
    qcv_.notify_all();
    for (auto &t : threads_)
        t.join();
    threads_.clear();
}

void CopyEngine::record(int *errors, const Plan &plan, const Run &run, int rc) noexcept {
    // Chunks of one op may fail on several threads: any of their codes will
    // do. A merged run fails as a whole (its ops never guard or hash).
    if (!errors)
        return;
    for (uint32_t k = 0; k < run.count; ++k)
        __atomic_store_n(&errors[plan.members[run.first + k]], rc, __ATOMIC_RELAXED);
}

CopyEngine::Plan CopyEngine::make_plan(const CopyOp *ops, size_t n) {
    Plan p;
    p.members.reserve(n);
    for (size_t i = 0; i < n; ++i)
        if (ops[i].len)
            p.members.push_back(static_cast<uint32_t>(i));
    auto arena_addr = [&](uint32_t i) {
        const CopyOp &o = ops[i];
        return reinterpret_cast<uintptr_t>(o.arena_is_dst ? o.dst : o.src);
    };
    // In arena order, ties in the order given. A batch's slots often come
    // in order already (the allocator hands out the lowest free slot): then
    // nothing is sorted, and when they do not, std::sort with the index as
    // tie-break orders them as a stable sort would, without its buffer.
    auto before = [&](uint32_t a, uint32_t b) {
        const uintptr_t x = arena_addr(a), y = arena_addr(b);
        return x < y || (x == y && a < b);
    };
    if (!std::is_sorted(p.members.begin(), p.members.end(), before))
        std::sort(p.members.begin(), p.members.end(), before);
    const bool may_merge = fault_hook() == nullptr;
    auto mergeable = [](const CopyOp &o) {
        return !o.block_hashes && !o.overlap_safe && !o.guard_source && !o.guard_dest;
    };
    p.runs.reserve(p.members.size());
    for (uint32_t k = 0; k < p.members.size(); ++k) {
        const CopyOp &o = ops[p.members[k]];
        if (may_merge && !p.runs.empty()) {
            Run &r = p.runs.back();
            const CopyOp &first = *r.op;
            if (mergeable(o) && mergeable(first) && o.nontemporal == first.nontemporal &&
                static_cast<const char *>(first.src) + r.len == o.src &&
                static_cast<char *>(first.dst) + r.len == o.dst) {
                r.len += o.len;
                r.count++;
                continue;
            }
        }
        p.runs.push_back(Run{&o, o.len, k, 1});
    }
    return p;
}

void CopyEngine::execute(const Chunk *chunks, size_t n, const Plan &plan, int *errors) noexcept {
    FaultHook *hook = fault_hook();
    bool fence = false;
    // A fault fails the chunk of the stream it hit, alone: the guard tells
    // the streams of a group apart (guarded_copy_streams).
    StreamBatch batch;
    auto fail = [&](uint32_t i, int rc) { record(errors, plan, *chunks[i].run, rc); };
    for (size_t i = 0; i < n; ++i) {
        const Chunk &c = chunks[i];
        const CopyOp &op = *c.op;
        if (hook) {
            if (int rc = hook->before_chunk(op, c.offset, c.len)) {
                record(errors, plan, *c.run, rc);
                continue;
            }
        }
        auto *d = static_cast<char *>(op.dst) + c.offset;
        auto *s = static_cast<const char *>(op.src) + c.offset;
        if (op.overlap_safe) {
            std::memmove(d, s, c.len);
            continue;
        }
        fence = fence || op.nontemporal;
        const uint8_t guard =
            (op.guard_source ? kGuardSource : 0) | (op.guard_dest ? kGuardDest : 0);
        const auto tag = static_cast<uint32_t>(i);
        if (!op.block_hashes) {
            if (batch.full())
                batch.flush(fail);
            batch.add(platform::CopyStream{d, s, c.len, nullptr, op.nontemporal}, guard, tag);
            continue;
        }
        // Chunks start on hash-block boundaries; each block is a stream of
        // its own, hashed as it is copied.
        for (size_t done = 0; done < c.len; done += arena::kHashBlock) {
            if (batch.full())
                batch.flush(fail);
            batch.add(platform::CopyStream{
                          d + done, s + done,
                          std::min(c.len - done, static_cast<size_t>(arena::kHashBlock)),
                          &op.block_hashes[(c.offset + done) / arena::kHashBlock],
                          op.nontemporal},
                      guard, tag);
        }
    }
    batch.flush(fail);
    // Streaming stores are weakly ordered: fence them before the chunks are
    // counted as done and another thread may read the destination.
    if (fence)
        platform::store_fence();
}

std::vector<CopyEngine::Group> CopyEngine::group_chunks(const std::vector<Chunk> &chunks,
                                                        size_t max_bytes) {
    std::vector<Group> groups;
    groups.reserve(chunks.size());
    auto joins = [](const Chunk &c) { return !c.op->overlap_safe && c.len <= kGroupChunkMax; };
    size_t bytes = 0; // of the last group
    for (uint32_t i = 0; i < chunks.size(); ++i) {
        if (!groups.empty() && joins(chunks[i])) {
            Group &g = groups.back();
            if (g.count < platform::kCopyLanes && joins(chunks[g.first]) &&
                bytes + chunks[i].len <= max_bytes) {
                g.count++;
                bytes += chunks[i].len;
                continue;
            }
        }
        groups.push_back(Group{i, 1});
        bytes = chunks[i].len;
    }
    return groups;
}

bool CopyEngine::work_one(Job &job) noexcept {
    const size_t n = job.groups.size();
    const size_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= n)
        return false;
    const Group &group = job.groups[i];
    execute(&job.chunks[group.first], group.count, job.plan, job.errors);
    if (job.done.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> g(job.m);
        job.finished = true;
        job.cv.notify_all();
    }
    return true;
}

void CopyEngine::work(Job &job) noexcept {
    while (work_one(job)) {
    }
}

std::shared_ptr<CopyEngine::Job> CopyEngine::queued_work() noexcept {
    std::lock_guard<std::mutex> g(qm_);
    for (const std::shared_ptr<Job> &job : queue_)
        if (job->next.load(std::memory_order_relaxed) < job->groups.size())
            return job;
    return nullptr;
}

void CopyEngine::worker_main() noexcept {
    for (;;) {
        // One worker at a time spins: the next batch wakes the others, and
        // an idle pool of eight does not keep eight CPUs busy.
        if (!spinning_.exchange(true, std::memory_order_acq_rel)) {
            platform::spin_while(
                [this] { return queued_.load(std::memory_order_acquire) == 0; }, kSpin);
            spinning_.store(false, std::memory_order_release);
        }
        std::shared_ptr<Job> job;
        {
            std::unique_lock<std::mutex> g(qm_);
            qcv_.wait(g, [this] { return stop_ || !queue_.empty(); });
            if (stop_ && queue_.empty())
                return;
            job = queue_.front();
            if (job->next.load(std::memory_order_relaxed) >= job->groups.size()) {
                queue_.pop_front(); // fully handed out: nothing left to take
                queued_.store(queue_.size(), std::memory_order_release);
                continue;
            }
        }
        work(*job);
    }
}

void CopyEngine::run(const CopyOp *ops, size_t n, int *errors) {
    Ticket t = start(ops, n, errors);
    finish(t);
}

CopyEngine::Ticket CopyEngine::start(const CopyOp *ops, size_t n, int *errors, bool hand_off) {
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        total += ops[i].len;
        // An empty value still has one (empty) hash block (see
        // arena::hash_block_count); no chunk covers it, so hash it here.
        if (!ops[i].len && ops[i].block_hashes)
            ops[i].block_hashes[0] = XXH3_64bits(ops[i].src, 0);
    }
    const bool alone = workers_ == 1 || (!hand_off && total < kInlineBytes);
    if (n == 1 && ops[0].len && alone) {
        // The common single small op: no plan to build.
        Plan plan;
        plan.members.push_back(0);
        plan.runs.push_back(Run{&ops[0], ops[0].len, 0, 1});
        const Chunk c{&ops[0], 0, ops[0].len, &plan.runs[0]};
        execute(&c, 1, plan, errors);
        return Ticket();
    }
    Plan plan = make_plan(ops, n);
    if (alone) {
        std::vector<Chunk> chunks;
        chunks.reserve(plan.runs.size());
        for (const Run &r : plan.runs)
            chunks.push_back(Chunk{r.op, 0, r.len, &r});
        for (const Group &g : group_chunks(chunks, SIZE_MAX))
            execute(&chunks[g.first], g.count, plan, errors);
        return Ticket();
    }
    auto job = std::make_shared<Job>();
    job->plan = std::move(plan); // the runs stay where they are: chunks may point at them
    job->errors = errors;
    // Split so that every worker gets several chunks (load balance), but no
    // chunk is smaller than kChunkBytes (per-chunk cost).
    size_t target = std::max(kChunkBytes, total / (size_t(workers_) * 4) / kChunkBytes *
                                              kChunkBytes);
    for (const Run &r : job->plan.runs) {
        if (r.op->overlap_safe || r.len <= target) {
            job->chunks.push_back(Chunk{r.op, 0, r.len, &r});
            continue;
        }
        for (size_t off = 0; off < r.len; off += target)
            job->chunks.push_back(Chunk{r.op, off, std::min(target, r.len - off), &r});
    }
    if (job->chunks.empty())
        return Ticket();
    // Groups no larger than a worker's share, so that a batch of a few
    // small chunks still runs on every worker.
    job->groups = group_chunks(job->chunks, std::max(kChunkBytes, total / workers_));
    {
        std::lock_guard<std::mutex> g(qm_);
        queue_.push_back(job);
        queued_.store(queue_.size(), std::memory_order_release);
    }
    qcv_.notify_all();
    return Ticket(std::move(job));
}

void CopyEngine::finish(Ticket &t) noexcept {
    if (!t.job_)
        return;
    Job &job = *t.job_;
    work(job);
    // The batch's last groups are on other threads. Rather than wait idle,
    // copy a group of a batch queued after it (a pipelined caller's next
    // one) at a time until they are done.
    while (job.done.load(std::memory_order_acquire) < job.groups.size()) {
        std::shared_ptr<Job> other = queued_work();
        if (!other || !work_one(*other))
            break;
    }
    wait(job);
    t.job_.reset();
}

void CopyEngine::wait(Job &job) noexcept {
    platform::spin_while(
        [&] { return job.done.load(std::memory_order_acquire) < job.groups.size(); }, kSpin);
    std::unique_lock<std::mutex> g(job.m);
    job.cv.wait(g, [&] { return job.finished; });
}

namespace {
std::atomic<void (*)()> engine_build_hook{nullptr};
// shared_engine()'s lock. A ProcessMutex: a child forked while a thread of
// its parent built an engine under it would otherwise wait for that thread
// for good. Made at load, not at first use: a child forked while another
// thread was making it would wait for that one's static guard just so.
ProcessMutex shared_engine_m;
} // namespace

void testing::set_engine_build_hook(void (*hook)()) noexcept {
    engine_build_hook.store(hook, std::memory_order_relaxed);
}

CopyEngine &shared_engine() {
    // One per process. A child forked from a process that had made one
    // inherits it without its threads: it makes its own, and leaves the
    // inherited one untouched. None is ever destroyed, so that no call in
    // flight at exit finds its engine gone.
    struct Shared {
        CopyEngine engine;
        uint64_t generation;
    };
    static std::atomic<Shared *> current{nullptr};
    const uint64_t generation = platform::fork_generation();
    Shared *cur = current.load(std::memory_order_acquire);
    if (cur && cur->generation == generation)
        return cur->engine;
    std::lock_guard<ProcessMutex> g(shared_engine_m);
    cur = current.load(std::memory_order_acquire);
    if (!cur || cur->generation != generation) {
        if (auto hook = engine_build_hook.load(std::memory_order_relaxed))
            hook();
        unsigned n = std::thread::hardware_concurrency();
        cur = new Shared{CopyEngine(std::max(1u, std::min(n ? n : 1u, 8u))), generation};
        current.store(cur, std::memory_order_release);
    }
    return cur->engine;
}

} // namespace engine
} // namespace daxkv
