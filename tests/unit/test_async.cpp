// The asynchronous API: daxkv_submit / daxkv_event_fd / daxkv_poll.
//
// Bad inputs tried here, each with its expected code:
//   submit: NULL store                                           -> -EINVAL
//   submit: op 0, 5, -1, INT_MAX                                 -> -EINVAL, op named
//   submit: NULL items with n > 0                                -> -EINVAL
//   submit: flags the op's batch call does not take (PREFIX for
//     put, REPLACE for get, FORCE for contains, PIN for remove,
//     an unknown bit)                                            -> -EINVAL
//   submit after shutdown                                        -> -ESHUTDOWN
//   poll: NULL store, NULL out, cap 0                            -> -EINVAL
//   event_fd: NULL store                                         -> -EINVAL
//   per item (inside a submitted batch): NULL key, missing key   -> status -EINVAL / -ENOENT
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <poll.h>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/fault.hpp"
#include "helpers.hpp"

using namespace daxkv_test;

namespace {

bool fd_readable(int fd, int timeout_ms = 0) {
    struct pollfd p = {fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

class Async : public StoreFixture {
protected:
    // Wait (on the event fd) for the completion of tag; completions of
    // other tags met on the way are kept in seen_.
    daxkv_completion wait_for(uint64_t tag) {
        int fd = daxkv_event_fd(s());
        EXPECT_GE(fd, 0) << daxkv_errmsg();
        for (int spins = 0; spins < 10000; ++spins) {
            auto it = seen_.find(tag);
            if (it != seen_.end()) {
                daxkv_completion c = it->second;
                seen_.erase(it);
                return c;
            }
            fd_readable(fd, 1000);
            daxkv_completion out[8];
            int n = daxkv_poll(s(), out, 8);
            EXPECT_GE(n, 0) << daxkv_errmsg();
            for (int i = 0; i < n; ++i) {
                EXPECT_EQ(seen_.count(out[i].tag), 0u) << "tag " << out[i].tag << " twice";
                seen_[out[i].tag] = out[i];
            }
        }
        ADD_FAILURE() << "no completion for tag " << tag;
        return daxkv_completion{tag, 0, INT_MIN};
    }

    struct Batch {
        std::vector<std::string> keys;
        std::vector<std::vector<uint8_t>> bufs;
        std::vector<daxkv_item> items;
    };
    // Items for keys prefix0..prefixN-1: values to put, or empty buffers to get into.
    Batch make(const std::string &prefix, size_t n, size_t len, bool put) {
        Batch b;
        for (size_t i = 0; i < n; ++i) {
            b.keys.push_back(prefix + std::to_string(i));
            b.bufs.push_back(put ? pattern(std::hash<std::string>()(b.keys.back()), len)
                                 : std::vector<uint8_t>(len, 0xEE));
        }
        for (size_t i = 0; i < n; ++i)
            b.items.push_back(daxkv_item{b.keys[i].data(), b.keys[i].size(), b.bufs[i].data(),
                                         len, nullptr, 0, 12345});
        return b;
    }
    void expect_values(const Batch &b) {
        for (size_t i = 0; i < b.keys.size(); ++i) {
            EXPECT_EQ(b.items[i].status, 0) << b.keys[i];
            EXPECT_EQ(b.bufs[i], pattern(std::hash<std::string>()(b.keys[i]), b.bufs[i].size()))
                << b.keys[i];
        }
    }

    std::map<uint64_t, daxkv_completion> seen_;
};

TEST_F(Async, PutGetContainsRemoveRoundTrip) {
    open(StoreSpec(64 * 1024, 16));
    Batch p = make("k", 8, 40000, true);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, p.items.data(), p.items.size(), 0, 1), 0)
        << daxkv_errmsg();
    daxkv_completion c = wait_for(1);
    EXPECT_EQ(c.op, DAXKV_OP_PUT);
    EXPECT_EQ(c.result, 8);
    for (auto &it : p.items)
        EXPECT_EQ(it.status, 0);

    Batch g = make("k", 8, 40000, false);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, g.items.data(), g.items.size(), 0, 2), 0);
    c = wait_for(2);
    EXPECT_EQ(c.op, DAXKV_OP_GET);
    EXPECT_EQ(c.result, 8);
    expect_values(g);
    for (auto &it : g.items)
        EXPECT_EQ(it.len, 40000u);

    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, g.items.data(), 8, DAXKV_PIN, 3), 0);
    c = wait_for(3);
    EXPECT_EQ(c.op, DAXKV_OP_CONTAINS);
    EXPECT_EQ(c.result, 8);
    EXPECT_EQ(stats().entries_pinned, 8u);
    // Pinned: a plain remove is refused item by item, a forced one goes.
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_REMOVE, g.items.data(), 8, 0, 4), 0);
    c = wait_for(4);
    EXPECT_EQ(c.result, 0);
    for (auto &it : g.items)
        EXPECT_EQ(it.status, -EBUSY);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_REMOVE, g.items.data(), 8, DAXKV_FORCE, 5), 0);
    EXPECT_EQ(wait_for(5).result, 8);
    EXPECT_EQ(stats().entries, 0u);
}

TEST_F(Async, PerItemStatusesAndPrefixMode) {
    open(StoreSpec(4096, 8));
    ASSERT_EQ(put("a0", pattern(1, 100)), 0);
    ASSERT_EQ(put("a1", pattern(2, 100)), 0);
    ASSERT_EQ(put("a3", pattern(3, 100)), 0);
    Batch g = make("a", 4, 4096, false);
    g.items[2].key = nullptr; // a bad item fails alone
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, g.items.data(), 4, 0, 7), 0);
    EXPECT_EQ(wait_for(7).result, 3);
    EXPECT_EQ(g.items[0].status, 0);
    EXPECT_EQ(g.items[2].status, -EINVAL);
    EXPECT_EQ(g.items[3].status, 0);
    g.items[2].key = g.keys[2].data(); // a2 is missing: the prefix is 2
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, g.items.data(), 4, DAXKV_PREFIX, 8), 0);
    EXPECT_EQ(wait_for(8).result, 2);
    EXPECT_EQ(g.items[2].status, -ENOENT);
    EXPECT_EQ(g.items[3].status, -ENOENT);
}

TEST_F(Async, BatchesRunInSubmissionOrder) {
    open(StoreSpec(4096, 8));
    // A get submitted right after a put of the same key, without waiting,
    // sees the put; a remove submitted after both does not disturb the get.
    Batch p = make("o", 4, 3000, true);
    Batch g = make("o", 4, 4096, false);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, p.items.data(), 4, 0, 1), 0);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, g.items.data(), 4, 0, 2), 0);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_REMOVE, p.items.data(), 4, 0, 3), 0);
    EXPECT_EQ(wait_for(3).result, 4);
    EXPECT_EQ(wait_for(2).result, 4);
    EXPECT_EQ(wait_for(1).result, 4);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(g.items[i].len, 3000u);
        EXPECT_EQ(std::memcmp(g.bufs[i].data(), p.bufs[i].data(), 3000), 0);
    }
}

TEST_F(Async, EventFdIsReadableExactlyWhileCompletionsWait) {
    open(StoreSpec(4096, 8));
    int fd = daxkv_event_fd(s());
    ASSERT_GE(fd, 0) << daxkv_errmsg();
    EXPECT_EQ(daxkv_event_fd(s()), fd); // one fd per store
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_FALSE(fd_readable(fd));
    daxkv_completion out[4];
    EXPECT_EQ(daxkv_poll(s(), out, 4), 0); // nothing waits: 0, not an error

    Batch c = make("e", 2, 0, false);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, c.items.data(), 2, 0, 10), 0);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, c.items.data(), 2, 0, 11), 0);
    ASSERT_TRUE(fd_readable(fd, 5000));
    std::vector<daxkv_completion> got;
    for (int tries = 0; got.size() < 2 && tries < 5000; ++tries) {
        int n = daxkv_poll(s(), out, 1); // cap 1: one at a time
        ASSERT_GE(n, 0);
        if (n == 1)
            got.push_back(out[0]);
        else
            fd_readable(fd, 1);
    }
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].tag, 10u);
    EXPECT_EQ(got[1].tag, 11u);
    EXPECT_EQ(got[0].result, 0); // neither key exists
    // Completions are one-shot: all taken, the fd is quiet, poll says 0.
    EXPECT_FALSE(fd_readable(fd));
    EXPECT_EQ(daxkv_poll(s(), out, 4), 0);
}

TEST_F(Async, TwoWaitingCompletionsKeepTheFdReadableAfterTakingOne) {
    open(StoreSpec(4096, 8));
    int fd = daxkv_event_fd(s());
    Batch c = make("w", 1, 0, false);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, c.items.data(), 1, 0, 1), 0);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, c.items.data(), 1, 0, 2), 0);
    // Shutdown completes (or cancels) both before it returns: then both wait.
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_TRUE(fd_readable(fd));
    daxkv_completion out[2];
    ASSERT_EQ(daxkv_poll(s(), out, 1), 1);
    EXPECT_TRUE(fd_readable(fd)); // one still waits
    ASSERT_EQ(daxkv_poll(s(), out + 1, 1), 1);
    EXPECT_FALSE(fd_readable(fd));
    EXPECT_EQ(out[0].tag, 1u);
    EXPECT_EQ(out[1].tag, 2u);
}

TEST_F(Async, CompletionsPostedBeforeTheFdWasAskedForStillMakeItReadable) {
    open(StoreSpec(4096, 8));
    Batch c = make("l", 1, 0, false);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, c.items.data(), 1, 0, 9), 0);
    ASSERT_EQ(daxkv_shutdown(s()), 0); // the batch has its completion now
    int fd = daxkv_event_fd(s());
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(fd_readable(fd));
    daxkv_completion out;
    ASSERT_EQ(daxkv_poll(s(), &out, 1), 1);
    EXPECT_EQ(out.tag, 9u);
    EXPECT_FALSE(fd_readable(fd));
}

TEST_F(Async, ASmallBatchWithNothingAheadCompletesBeforeSubmitReturns) {
    open(StoreSpec(4096, 8));
    ASSERT_EQ(put("k", pattern(1, 100)), 0);
    Batch g = make("k", 1, 4096, false);
    g.keys[0] = "k";
    g.items[0].key = g.keys[0].data();
    g.items[0].key_len = 1;
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, g.items.data(), 1, 0, 3), 0);
    // Run on this thread: the completion is already there.
    daxkv_completion c;
    ASSERT_EQ(daxkv_poll(s(), &c, 1), 1);
    EXPECT_EQ(c.tag, 3u);
    EXPECT_EQ(c.result, 1);
    EXPECT_EQ(g.items[0].len, 100u);
    EXPECT_EQ(stats().async_completed, 1u);
}

TEST_F(Async, EmptyBatchCompletesWithZero) {
    open(StoreSpec(4096, 8));
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, nullptr, 0, 0, 77), 0);
    daxkv_completion c = wait_for(77);
    EXPECT_EQ(c.op, DAXKV_OP_GET);
    EXPECT_EQ(c.result, 0);
}

TEST_F(Async, BadInputIsRefusedAtSubmit) {
    open(StoreSpec(4096, 8));
    Batch b = make("b", 1, 16, true);
    daxkv_item *it = b.items.data();
    EXPECT_EQ(daxkv_submit(nullptr, DAXKV_OP_PUT, it, 1, 0, 1), -EINVAL);
    for (int op : {0, 5, -1, INT_MAX}) {
        EXPECT_EQ(daxkv_submit(s(), op, it, 1, 0, 1), -EINVAL) << op;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "op " + std::to_string(op)))
            << daxkv_errmsg();
    }
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, nullptr, 3, 0, 1), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "items is NULL")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, it, 1, DAXKV_PREFIX, 1), -EINVAL);
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_GET, it, 1, DAXKV_REPLACE, 1), -EINVAL);
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, it, 1, DAXKV_FORCE, 1), -EINVAL);
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_REMOVE, it, 1, DAXKV_PIN, 1), -EINVAL);
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_GET, it, 1, 1u << 20, 1), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "flags")) << daxkv_errmsg();

    daxkv_completion out[2];
    EXPECT_EQ(daxkv_poll(nullptr, out, 2), -EINVAL);
    EXPECT_EQ(daxkv_poll(s(), nullptr, 2), -EINVAL);
    EXPECT_EQ(daxkv_poll(s(), out, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cap is 0")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_event_fd(nullptr), -EINVAL);

    // Nothing refused was queued: no completion appears, nothing was stored.
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_EQ(daxkv_poll(s(), out, 2), 0);
    EXPECT_EQ(stats().entries, 0u);
    // After shutdown: refused; poll and the fd still work.
    EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, it, 1, 0, 1), -ESHUTDOWN);
    EXPECT_GE(daxkv_event_fd(s()), 0);
    EXPECT_EQ(daxkv_poll(s(), out, 2), 0);
}

TEST_F(Async, ManyThreadsSubmittingEachCompletionOnce) {
    open(StoreSpec(8192, 2048));
    const int kThreads = 4, kPerThread = 100, kItems = 4;
    std::atomic<int> submitted{0};
    std::mutex m;
    std::map<uint64_t, daxkv_completion> done;
    std::atomic<bool> stop{false};
    // One thread collects, as an event loop would.
    std::thread poller([&] {
        int fd = daxkv_event_fd(s());
        daxkv_completion out[32];
        while (!stop.load()) {
            fd_readable(fd, 10);
            int n = daxkv_poll(s(), out, 32);
            std::lock_guard<std::mutex> g(m);
            for (int i = 0; i < n; ++i) {
                EXPECT_EQ(done.count(out[i].tag), 0u) << "tag " << out[i].tag << " twice";
                done[out[i].tag] = out[i];
            }
        }
    });
    std::vector<std::vector<Batch>> batches(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        batches[t].reserve(kPerThread);
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int b = 0; b < kPerThread; ++b) {
                batches[t].push_back(make("t" + std::to_string(t) + "/b" + std::to_string(b) +
                                              "/",
                                          kItems, 1000 + 7 * b, true));
                Batch &x = batches[t].back();
                uint64_t tag = uint64_t(t) << 32 | uint64_t(b);
                ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, x.items.data(), kItems, 0, tag), 0);
                submitted++;
            }
        });
    }
    for (auto &th : threads)
        th.join();
    for (int i = 0; i < 5000; ++i) {
        {
            std::lock_guard<std::mutex> g(m);
            if (done.size() == size_t(submitted.load()))
                break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stop = true;
    poller.join();
    ASSERT_EQ(done.size(), size_t(kThreads * kPerThread));
    for (int t = 0; t < kThreads; ++t)
        for (int b = 0; b < kPerThread; ++b) {
            auto it = done.find(uint64_t(t) << 32 | uint64_t(b));
            ASSERT_NE(it, done.end());
            EXPECT_EQ(it->second.op, DAXKV_OP_PUT);
            EXPECT_EQ(it->second.result, kItems);
        }
    EXPECT_EQ(stats().entries, uint64_t(kThreads * kPerThread * kItems));
    // Spot-check the stored bytes.
    for (int t = 0; t < kThreads; ++t) {
        const Batch &x = batches[t][kPerThread - 1];
        for (size_t i = 0; i < x.keys.size(); ++i)
            EXPECT_TRUE(value(x.keys[i]) == x.bufs[i]) << x.keys[i];
    }
}

TEST_F(Async, ShutdownWithBatchesInFlightGivesEachAResult) {
    open(StoreSpec(256 << 10, 8).set("workers", "2"));
    Batch p = make("s", 8, 256 << 10, true);
    ASSERT_EQ(daxkv_put_batch(s(), p.items.data(), 8, 0), 8);
    const int kBatches = 40;
    std::vector<Batch> gets;
    gets.reserve(kBatches);
    for (int b = 0; b < kBatches; ++b)
        gets.push_back(make("s", 8, 256 << 10, false));
    // The first batch's first copy dawdles, so that shutdown surely finds
    // batches still queued (and one running).
    struct Dawdle : daxkv::engine::FaultHook {
        std::atomic<bool> once{false};
        int before_chunk(const daxkv::engine::CopyOp &, size_t, size_t) noexcept override {
            if (!once.exchange(true))
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            return 0;
        }
    } dawdle;
    daxkv::engine::testing::set_fault_hook(&dawdle);
    for (int b = 0; b < kBatches; ++b)
        ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, gets[b].items.data(), 8, 0, b), 0);
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    daxkv::engine::testing::set_fault_hook(nullptr);
    // Every batch has its completion now, without any waiting.
    std::vector<daxkv_completion> out(kBatches + 1);
    ASSERT_EQ(daxkv_poll(s(), out.data(), out.size()), kBatches);
    int completed = 0, cancelled = 0;
    for (int k = 0; k < kBatches; ++k) {
        const daxkv_completion &c = out[k];
        ASSERT_LT(c.tag, uint64_t(kBatches));
        EXPECT_EQ(c.tag, uint64_t(k)); // posted in submission order
        const Batch &g = gets[c.tag];
        if (c.result == -ECANCELED) {
            ++cancelled;
            for (auto &it : g.items)
                EXPECT_EQ(it.status, -ECANCELED);
        } else {
            ++completed;
            EXPECT_EQ(c.result, 8);
            expect_values(g);
        }
    }
    EXPECT_EQ(completed + cancelled, kBatches);
    EXPECT_GT(cancelled, 0) << "the first batch holds the others back for 50 ms";
    // Nothing borrowed is left behind.
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.entries, 8u);
    EXPECT_EQ(daxkv_poll(s(), out.data(), out.size()), 0);
}

TEST_F(Async, CloseRightAfterAnInlineCompletionWaitsForItsSubmitter) {
    // A small batch runs inside daxkv_submit and posts its completion
    // before the call returns; a caller that sees it and closes the store
    // at once must not free the queue under the submitter's feet (the
    // thread sanitizer build sees the queue touched after close otherwise).
    for (int round = 0; round < 200; ++round) {
        open(StoreSpec(4096, 8));
        Batch p = make("i" + std::to_string(round) + "-", 1, 64, true);
        std::thread submitter([&] {
            EXPECT_EQ(daxkv_submit(s(), DAXKV_OP_PUT, p.items.data(), 1, 0, 7), 0) << daxkv_errmsg();
        });
        daxkv_completion c{};
        int n = 0;
        for (long spins = 0; n == 0 && spins < 100000000; ++spins)
            n = daxkv_poll(s(), &c, 1);
        ASSERT_EQ(n, 1) << "no completion";
        EXPECT_EQ(c.result, 1);
        store_.reset(); // daxkv_shutdown + daxkv_close while the submitter may still be returning
        submitter.join();
    }
}

TEST_F(Async, CloseWithUncollectedCompletionsAndQueuedBatches) {
    // Nothing leaks (the sanitizer build checks) and close returns.
    int fds = count_fds();
    open(StoreSpec(4096, 8));
    Batch p = make("c", 4, 100, true);
    ASSERT_GE(daxkv_event_fd(s()), 0);
    char target[64] = {0};
    std::string link = "/proc/self/fd/" + std::to_string(daxkv_event_fd(s()));
    ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0);
    EXPECT_TRUE(contains_text(target, "eventfd")) << target;
    for (int b = 0; b < 20; ++b)
        ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, p.items.data(), 4, 0, b), 0);
    store_.reset(); // daxkv_close
    EXPECT_EQ(count_fds(), fds);
}

} // namespace
