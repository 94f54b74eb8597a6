// The copy engine's batch plan: ops ordered by arena address, runs of ops
// contiguous on both sides merged into one copy, and what is never merged;
// then the engine executing such plans byte-exact, inline and on the
// workers, and a restore of consecutive slots into one buffer through the
// store.
//
// Bad or awkward inputs tried here: empty ops among the others (left out of
// the plan), ops contiguous on one side only, a hashed op, a guarded op, an
// overlap-safe op and ops differing in non-temporal stores next to mergeable
// ones (never merged), an empty batch; an engine whose construction runs
// out of memory after some of its threads have started, or that cannot
// start a thread; a fork while the process's engine is being built.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/copy_engine.hpp"
#include "engine/fault.hpp"
#include "internal/process_mutex.hpp"
#include "alloc_failure.hpp"
#include "helpers.hpp"

using namespace daxkv_test;
using daxkv::engine::CopyEngine;
using daxkv::engine::CopyOp;

namespace {

CopyOp op(void *dst, const void *src, size_t len) {
    CopyOp o;
    o.dst = dst;
    o.src = src;
    o.len = len;
    return o;
}

} // namespace

TEST(EnginePlan, ContiguousOpsMergeInArenaOrder) {
    std::vector<char> arena(64 * 1024), out(64 * 1024);
    // Items given in reverse order: slots 3, 2, 1, 0 into buffer parts 3..0.
    std::vector<CopyOp> ops;
    for (int i = 3; i >= 0; --i)
        ops.push_back(op(out.data() + i * 4096, arena.data() + i * 4096, 4096));
    CopyEngine::Plan p = CopyEngine::make_plan(ops.data(), ops.size());
    ASSERT_EQ(p.runs.size(), 1u);
    EXPECT_EQ(p.runs[0].len, 4 * 4096u);
    EXPECT_EQ(p.runs[0].count, 4u);
    EXPECT_EQ(p.runs[0].op, &ops[3]) << "the run starts at the lowest arena address";
    EXPECT_EQ(p.members, (std::vector<uint32_t>{3, 2, 1, 0}));
}

TEST(EnginePlan, OneSidedContiguityAndEmptyOpsDoNotMerge) {
    std::vector<char> arena(64 * 1024), out(64 * 1024);
    std::vector<CopyOp> ops = {
        op(out.data(), arena.data(), 4096),
        op(out.data() + 8192, arena.data() + 4096, 4096), // source follows, destination does not
        op(out.data() + 100, arena.data() + 30000, 0),    // empty: left out
        op(out.data() + 12288, arena.data() + 16384, 4096),
    };
    CopyEngine::Plan p = CopyEngine::make_plan(ops.data(), ops.size());
    ASSERT_EQ(p.runs.size(), 3u);
    EXPECT_EQ(p.members, (std::vector<uint32_t>{0, 1, 3}));
    for (const auto &r : p.runs)
        EXPECT_EQ(r.count, 1u);
    EXPECT_TRUE(CopyEngine::make_plan(nullptr, 0).runs.empty());
}

TEST(EnginePlan, HashedGuardedOverlapAndMixedNonTemporalNeverMerge) {
    std::vector<char> arena(64 * 1024), out(64 * 1024);
    uint64_t hashes[1];
    for (int variant = 0; variant < 4; ++variant) {
        SCOPED_TRACE(variant);
        std::vector<CopyOp> ops = {op(out.data(), arena.data(), 4096),
                                   op(out.data() + 4096, arena.data() + 4096, 4096)};
        switch (variant) {
        case 0: ops[1].block_hashes = hashes; break;
        case 1: ops[1].guard_source = true; break;
        case 2: ops[0].overlap_safe = true; break;
        case 3: ops[1].nontemporal = true; break;
        }
        EXPECT_EQ(CopyEngine::make_plan(ops.data(), ops.size()).runs.size(), 2u);
    }
}

TEST(EnginePlan, WritesAreOrderedByTheirDestination) {
    std::vector<char> arena(64 * 1024), in(64 * 1024);
    // Sources in one order, arena destinations in the other.
    std::vector<CopyOp> ops = {op(arena.data() + 8192, in.data(), 100),
                               op(arena.data(), in.data() + 4096, 100)};
    for (auto &o : ops)
        o.arena_is_dst = true;
    CopyEngine::Plan p = CopyEngine::make_plan(ops.data(), ops.size());
    EXPECT_EQ(p.members, (std::vector<uint32_t>{1, 0}));
}

TEST(EngineRun, MergedAndSplitRunsAreByteExactInlineAndOnWorkers) {
    for (size_t piece : {size_t(4096), size_t(1) << 20}) {
        SCOPED_TRACE(piece);
        const size_t n = 24;
        std::vector<uint8_t> arena = pattern(piece, n * piece), out(n * piece, 0);
        std::vector<CopyOp> ops;
        // Shuffled order; every third op goes elsewhere so runs break.
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::reverse(order.begin(), order.end());
        std::vector<uint8_t> side(n * piece, 0);
        for (size_t i : order) {
            uint8_t *dst = (i % 3 == 2 ? side.data() : out.data()) + i * piece;
            ops.push_back(op(dst, arena.data() + i * piece, piece));
        }
        CopyEngine engine(2);
        std::vector<int> errors(n, 0);
        engine.run(ops.data(), ops.size(), errors.data());
        for (size_t i = 0; i < n; ++i) {
            const uint8_t *got = (i % 3 == 2 ? side.data() : out.data()) + i * piece;
            ASSERT_EQ(0, std::memcmp(got, arena.data() + i * piece, piece)) << "op " << i;
            EXPECT_EQ(errors[i], 0);
        }
    }
}

// A batch of a few chunks (one 8 MiB op cut into 1 MiB chunks, which the
// engine may also group to copy them interleaved) still runs on more than
// one thread: groups are never larger than a worker's share of the batch.
// Each chunk is slowed by a fault hook so that an idle worker surely wakes
// in time to take one.
TEST(EngineRun, AFewChunksAreSpreadOverTheWorkersNotGroupedOntoOne) {
    class ThreadProbe : public daxkv::engine::FaultHook {
    public:
        int before_chunk(const CopyOp &, size_t, size_t) noexcept override {
            {
                std::lock_guard<std::mutex> g(m_);
                threads_.insert(std::this_thread::get_id());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            return 0;
        }
        size_t threads() {
            std::lock_guard<std::mutex> g(m_);
            return threads_.size();
        }

    private:
        std::mutex m_;
        std::set<std::thread::id> threads_;
    };
    for (bool hashed : {false, true}) {
        SCOPED_TRACE(hashed);
        const size_t len = 8 << 20;
        std::vector<uint8_t> src = pattern(3, len), dst(len, 0);
        std::vector<uint64_t> hashes(8, 0);
        CopyOp o = op(dst.data(), src.data(), len);
        o.block_hashes = hashed ? hashes.data() : nullptr;
        CopyEngine engine(2);
        ThreadProbe probe;
        daxkv::engine::testing::set_fault_hook(&probe);
        int error = 0;
        engine.run(&o, 1, &error);
        daxkv::engine::testing::set_fault_hook(nullptr);
        EXPECT_EQ(error, 0);
        EXPECT_EQ(dst, src);
        EXPECT_EQ(probe.threads(), 2u);
    }
}

// start() and finish(): batches started one after another while the caller
// goes on are copied byte-exact, each with its own errors, and finish()
// returns only when its batch is done; a batch that run() would copy inline
// (small, or one worker) is done when start() returns; a Ticket destroyed
// unfinished waits for its batch before the buffers can go.
TEST(EngineStart, BatchesStartedAheadAreCopiedAndJoinedInTurn) {
    class Slow : public daxkv::engine::FaultHook {
    public:
        const void *slow_at = nullptr;
        std::atomic<int> finished{0};
        int before_chunk(const CopyOp &o, size_t, size_t) noexcept override {
            if (o.dst == slow_at) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                finished++;
            }
            return 0;
        }
    };
    const size_t piece = 1 << 20, per_batch = 4, batches = 5;
    std::vector<uint8_t> src = pattern(11, piece * per_batch * batches);
    std::vector<uint8_t> dst(src.size(), 0);
    std::vector<CopyOp> ops;
    for (size_t i = 0; i < per_batch * batches; ++i)
        ops.push_back(op(dst.data() + i * piece, src.data() + i * piece, piece));
    std::vector<int> errors(ops.size(), 0);
    CopyEngine engine(2);
    std::vector<CopyEngine::Ticket> tickets;
    for (size_t b = 0; b < batches; ++b)
        tickets.push_back(engine.start(&ops[b * per_batch], per_batch, &errors[b * per_batch]));
    for (size_t b = 0; b < batches; ++b) {
        engine.finish(tickets[b]);
        ASSERT_EQ(0, std::memcmp(dst.data() + b * per_batch * piece,
                                 src.data() + b * per_batch * piece, per_batch * piece))
            << "batch " << b;
    }
    EXPECT_EQ(dst, src);
    EXPECT_EQ(errors, std::vector<int>(ops.size(), 0));
    CopyEngine::Ticket none;
    engine.finish(none); // nothing started: nothing to join

    // Inline: done on return.
    std::vector<uint8_t> small_src = pattern(12, 4096), small_dst(4096, 0);
    CopyOp small = op(small_dst.data(), small_src.data(), 4096);
    CopyEngine::Ticket inline_t = engine.start(&small, 1, nullptr);
    EXPECT_EQ(small_dst, small_src);
    engine.finish(inline_t);

    // Destroyed unfinished: waits for the slow chunk.
    Slow slow;
    std::fill(dst.begin(), dst.end(), 0);
    slow.slow_at = dst.data();
    daxkv::engine::testing::set_fault_hook(&slow);
    {
        CopyEngine::Ticket t = engine.start(ops.data(), per_batch, errors.data());
    }
    daxkv::engine::testing::set_fault_hook(nullptr);
    EXPECT_EQ(slow.finished.load(), 1);
    EXPECT_EQ(0, std::memcmp(dst.data(), src.data(), per_batch * piece));
}

// start(hand_off): a batch far below kInlineBytes goes to a worker instead
// of being copied by the caller before start() returns; finish() waits
// for it. The chunk is held until the caller, back from start(), has seen
// a worker take it up: a chunk run inline would never get its release (it
// gives up after 10 s and says so).
TEST(EngineStart, AHandedOffSmallBatchIsCopiedByAWorkerWhileTheCallerGoesOn) {
    class Held : public daxkv::engine::FaultHook {
    public:
        std::mutex m;
        std::condition_variable cv;
        bool entered = false, released = false, timed_out = false;
        std::thread::id ran_on;
        int before_chunk(const CopyOp &, size_t, size_t) noexcept override {
            std::unique_lock<std::mutex> g(m);
            ran_on = std::this_thread::get_id();
            entered = true;
            cv.notify_all();
            timed_out = !cv.wait_for(g, std::chrono::seconds(10), [&] { return released; });
            return 0;
        }
    };
    std::vector<uint8_t> src = pattern(13, 4096), dst(4096, 0);
    CopyOp small = op(dst.data(), src.data(), src.size());
    int error = 0;
    CopyEngine engine(2);
    Held held;
    daxkv::engine::testing::set_fault_hook(&held);
    CopyEngine::Ticket t = engine.start(&small, 1, &error, /*hand_off=*/true);
    {
        // A worker takes the chunk up (the caller has not joined yet).
        std::unique_lock<std::mutex> g(held.m);
        EXPECT_TRUE(held.cv.wait_for(g, std::chrono::seconds(10), [&] { return held.entered; }))
            << "no worker took the batch up";
        held.released = true;
    }
    held.cv.notify_all();
    engine.finish(t);
    daxkv::engine::testing::set_fault_hook(nullptr);
    EXPECT_FALSE(held.timed_out) << "start() copied the batch itself";
    EXPECT_NE(held.ran_on, std::this_thread::get_id());
    EXPECT_EQ(dst, src);
    EXPECT_EQ(error, 0);

    // With one worker (the caller alone) there is no one to hand it to.
    CopyEngine alone(1);
    std::fill(dst.begin(), dst.end(), 0);
    CopyEngine::Ticket t1 = alone.start(&small, 1, nullptr, /*hand_off=*/true);
    EXPECT_EQ(dst, src) << "copied before start() returned";
    alone.finish(t1);
}

// Through the store: slots filled to slot_bytes sit back to back, and a
// restore into one buffer in key order is one merged copy; the bytes and
// every item's status and length are what they would be item by item.
TEST(EngineRun, RestoreOfConsecutiveFullSlotsIntoOneBuffer) {
    TempDir dir;
    StorePtr s;
    ASSERT_EQ(open_store(&s, dir.file("arena"), StoreSpec{4096, 64}.set("workers", "2")), 0)
        << daxkv_errmsg();
    std::vector<std::string> keys;
    for (int i = 0; i < 64; ++i)
        keys.push_back(key_of(i));
    std::vector<std::vector<uint8_t>> vals;
    for (int i = 0; i < 64; ++i) {
        vals.push_back(pattern(500 + i, 4096));
        ASSERT_EQ(daxkv_put(s.get(), keys[i].data(), keys[i].size(), vals[i].data(), 4096, 0), 0);
    }
    std::vector<uint8_t> out(64 * 4096, 0);
    std::vector<daxkv_item> items(64);
    for (int i = 0; i < 64; ++i)
        items[i] = daxkv_item{keys[i].data(), keys[i].size(), out.data() + i * 4096, 4096,
                              nullptr, 0, -1};
    ASSERT_EQ(daxkv_get_batch(s.get(), items.data(), items.size(), 0), 64);
    for (int i = 0; i < 64; ++i) {
        EXPECT_EQ(items[i].status, 0);
        EXPECT_EQ(items[i].len, 4096u);
        ASSERT_EQ(0, std::memcmp(out.data() + i * 4096, vals[i].data(), 4096)) << "key " << i;
    }
}

// Each allocation of the constructor fails in turn, the later ones after
// worker threads are already running: the constructor throws having ended
// those threads (a running std::thread destroyed by the unwinding would end
// the process), and an engine built afterwards still copies.
TEST(EngineLifetime, AConstructionThatRunsOutOfMemoryEndsTheThreadsItStarted) {
    long failed = 0;
    for (long n = 1;; ++n) {
        bool threw = false;
        {
            FailNthAllocation oom(n);
            try {
                CopyEngine engine(4);
            } catch (const std::bad_alloc &) {
                threw = true;
            }
            ASSERT_EQ(threw, allocation_failed()) << "allocation " << n;
        }
        if (!threw)
            break;
        ++failed;
    }
    // The vector of threads and each of the three threads' state.
    EXPECT_GE(failed, 3);
    std::vector<uint8_t> src = pattern(5, 1 << 20), dst(src.size(), 0);
    CopyEngine engine(4);
    CopyOp o = op(dst.data(), src.data(), src.size());
    engine.run(&o, 1);
    EXPECT_EQ(dst, src);
}

// A copy worker the system cannot start (here: no address space left for
// its stack) failed the open with std::thread's bare "Resource temporarily
// unavailable". The error names the thread. In a child, whose address space
// is limited; not under the sanitizers, which reserve far more than that.
TEST(EngineLifetime, AWorkerThatCannotStartIsNamedInTheError) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "RLIMIT_AS and the sanitizers' reservations do not mix";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    GTEST_SKIP() << "RLIMIT_AS and the sanitizers' reservations do not mix";
#endif
#endif
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        uint64_t vm_kib = 0;
        if (FILE *f = std::fopen("/proc/self/status", "r")) {
            char line[256];
            while (std::fgets(line, sizeof line, f))
                if (std::sscanf(line, "VmSize: %" SCNu64, &vm_kib) == 1)
                    break;
            std::fclose(f);
        }
        struct rlimit lim;
        if (vm_kib == 0 || ::getrlimit(RLIMIT_AS, &lim) != 0)
            ::_exit(2);
        lim.rlim_cur = vm_kib * 1024 + (64u << 20); // room for a few stacks of 8 MiB
        if (::setrlimit(RLIMIT_AS, &lim) != 0)
            ::_exit(2);
        try {
            CopyEngine engine(256);
            ::_exit(3); // every worker started
        } catch (const daxkv::Error &e) {
            const bool named = std::strstr(e.what(), "cannot start copy worker") != nullptr;
            ::_exit(e.code() == -EAGAIN && named ? 0 : 4);
        } catch (...) {
            ::_exit(5); // std::system_error: the bare message
        }
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "2: setup failed, 3: every worker started, 4: another "
                                         "code or message, 5: not a daxkv::Error";
}

// --- fork ---------------------------------------------------------------------

TEST(ProcessMutex, AChildFindsItUnlockedThoughAThreadOfItsParentHeldItAtTheFork) {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "processes forked from a threaded process are not testable under TSan";
#endif
    static daxkv::ProcessMutex m;
    std::atomic<int> step{0};
    std::thread holder([&] {
        std::lock_guard<daxkv::ProcessMutex> g(m);
        step.store(1);
        while (step.load() != 2)
            std::this_thread::yield();
    });
    while (step.load() != 1)
        std::this_thread::yield();
    const std::string child = in_forked_child(
        [] {
            if (!m.try_lock())
                return std::string("the child found the lock its parent's thread held");
            m.unlock();
            return std::string();
        },
        5);
    EXPECT_FALSE(m.try_lock()); // the parent's thread still holds it here
    step.store(2);
    holder.join();
    EXPECT_EQ(child, "");
    EXPECT_TRUE(m.try_lock());
    m.unlock();
}

namespace fork_during_build {
// The process that sets the hook (a trial's child) and how far it is: 1
// while its first thread is in the build, 2 once the fork is done.
std::atomic<pid_t> builder{0};
std::atomic<int> step{0};

void hold_the_build() {
    if (::getpid() != builder.load())
        return; // the grandchild builds its own engine straight away
    step.store(1);
    while (step.load() != 2)
        std::this_thread::yield();
}
} // namespace fork_during_build

TEST(SharedEngine, AChildForkedWhileItsParentBuildsTheEngineBuildsItsOwn) {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "processes forked from a threaded process are not testable under TSan";
#endif
    // A process's first daxkv_memcpy_batch builds the process's copy
    // engine under a lock. A child forked by another thread meanwhile got
    // that lock held by a thread it does not have, and its own first call
    // waited for it for good. Here a child of the test (which has no engine
    // yet) forks while its first call's build is held at the hook.
    using namespace fork_during_build;
    auto copy_checked = [](uint8_t seed) {
        std::vector<uint8_t> src = pattern(seed, 256 << 10), dst(src.size(), 0);
        void *d[] = {dst.data()};
        const void *s[] = {src.data()};
        size_t n[] = {src.size()};
        const int rc = daxkv_memcpy_batch(d, s, n, 1, 0);
        if (rc != 0)
            return "daxkv_memcpy_batch: " + std::to_string(rc) + " " + daxkv_errmsg();
        return dst == src ? std::string() : std::string("the copy differs");
    };
    const std::string failure = in_forked_child(
        [&] {
            builder.store(::getpid());
            daxkv::engine::testing::set_engine_build_hook(hold_the_build);
            std::string first_failure;
            std::thread first([&] { first_failure = copy_checked(1); });
            while (step.load() != 1)
                std::this_thread::yield();
            const std::string grandchild = in_forked_child([&] { return copy_checked(2); }, 5);
            step.store(2);
            first.join();
            if (!grandchild.empty())
                return "the child forked during the build: " + grandchild;
            return first_failure;
        },
        15);
    EXPECT_EQ(failure, "");
}
