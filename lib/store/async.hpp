// The asynchronous API (LMCache MP's submit -> event fd -> query
// contract): batches submitted to a store run one after another in
// submission order, each through the store's batch calls (and so on the
// copy engine's workers): on a dispatcher thread, or, for a small batch with
// nothing queued or running ahead of it, on the submitting thread before
// daxkv_submit returns. Their results wait in a completion queue until
// polled. An eventfd is readable exactly while completions wait.
//
// Ownership: the items of a batch are the caller's; the library writes their
// statuses while the batch runs and never touches them after it posted the
// batch's completion. Completions are one-shot: each is returned by exactly
// one poll.
//
// Shutdown (Store::shutdown calls shutdown() first): later submissions get
// -ESHUTDOWN; batches still queued are cancelled (result and every item's
// status -ECANCELED); the batch running finishes. Every submitted batch thus
// has its completion posted before shutdown returns, and the completions
// can still be polled afterwards.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <thread>

#include <functional>

#include "store/entries.hpp"
#include "store/events.hpp"
#include "store/item.hpp"
#include "store/reads.hpp"
#include "store/writes.hpp"

namespace daxkv {

// The batch call a submission runs: the values of DAXKV_OP_* (lib/capi
// checks them, and that the flags are the call's).
enum class AsyncOp : int { put = 1, get = 2, contains = 3, remove = 4 };

// One finished batch (daxkv_completion, made by lib/capi).
struct Completion {
    uint64_t tag;
    AsyncOp op;
    int result; // what the batch call returned, or -ECANCELED (shutdown)
};

class AsyncQueue {
public:
    AsyncQueue(Writes &writes, Reads &reads, Entries &entries, EventThread &events)
        : writes_(writes), reads_(reads), entries_(entries), events_(events) {}
    ~AsyncQueue();
    AsyncQueue(const AsyncQueue &) = delete;
    AsyncQueue &operator=(const AsyncQueue &) = delete;

    // 0 when queued (or run already: a small batch with nothing ahead);
    // throws Error(-ESHUTDOWN) after shutdown, and std::bad_alloc or
    // std::system_error (the dispatcher thread) with nothing queued.
    int submit(AsyncOp op, daxkv_item *items, size_t n, unsigned flags, uint64_t tag);
    // The eventfd (created on first use; owned by the store).
    int event_fd();
    // Up to cap completions, each handed to out with its position; returns
    // the count.
    size_t poll(size_t cap, const std::function<void(size_t, const Completion &)> &out);
    // Complete or cancel every submitted batch, then stop the dispatcher.
    void shutdown() noexcept;
    // Batches queued, run to completion, and cancelled by shutdown.
    uint64_t submitted() const noexcept { return submitted_.load(std::memory_order_relaxed); }
    uint64_t completed() const noexcept { return completed_.load(std::memory_order_relaxed); }
    uint64_t cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }

private:
    // A submitted batch, and later its completion: one list node, made by
    // submit (the last allocation a batch needs), spliced from the queue to
    // the completions and freed by the poll that returns it. Posting a
    // completion needs no memory: a batch that runs out of memory (caught
    // by execute) is completed with -ENOMEM like any other failure.
    struct Batch {
        AsyncOp op;
        daxkv_item *items;
        size_t n;
        unsigned flags;
        uint64_t tag;
        int result;
    };
    using Batches = std::list<Batch>;
    void dispatcher() noexcept;
    static bool is_small(const Batch &b) noexcept;
    int execute(const Batch &b) noexcept;
    // Moves the batch at it (of from) to the completions, with its result.
    void complete(Batches &from, Batches::iterator it, int result) noexcept;
    int open_fd_locked(); // cm_ held

    Writes &writes_;
    Reads &reads_;
    Entries &entries_;
    EventThread &events_;
    // Submission side.
    std::mutex m_;
    std::condition_variable cv_;
    Batches queue_;
    std::atomic<size_t> queued_{0}; // queue_.size(), read without m_ while spinning
    bool closed_ = false;
    bool busy_ = false; // a batch is running (on the dispatcher or inline)
    bool started_ = false;
    std::thread thread_;
    std::mutex shutdown_m_; // one shutdown joins the dispatcher at a time
    // Completion side.
    std::mutex cm_;
    Batches done_;
    std::atomic<size_t> waiting_{0}; // done_.size(), read without cm_ by poll
    int efd_ = -1;
    std::atomic<uint64_t> submitted_{0}, completed_{0}, cancelled_{0};
};

// How long the dispatcher keeps looking for the next batch before it sleeps:
// a batch submitted within this window starts without a wake-up (which costs
// tens of microseconds on a virtual machine).
constexpr unsigned kAsyncSpinMicros = 50;

// A batch of at most this many items and value bytes, submitted while no
// batch is queued or running, runs on the submitting thread: its completion
// is posted before daxkv_submit returns (io_uring's inline completion). A
// thread hand-off costs tens of microseconds on a busy machine, far more
// than such a batch.
constexpr size_t kAsyncInlineItems = 64;
constexpr size_t kAsyncInlineBytes = 64 * 1024;

} // namespace daxkv
