#include "store/async.hpp"

#include <cerrno>
#include <chrono>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal/error.hpp"
#include "internal/threads.hpp"
#include "internal/util.hpp"
#include "platform/cpu.hpp"

namespace daxkv {

AsyncQueue::~AsyncQueue() {
    shutdown();
    if (efd_ >= 0)
        ::close(efd_);
}

int AsyncQueue::submit(AsyncOp op, daxkv_item *items, size_t n, unsigned flags, uint64_t tag) {
    // The batch's node, which later holds its completion: made here, where
    // running out of memory is still -ENOMEM with nothing queued.
    Batches mine;
    mine.push_back(Batch{op, items, n, flags, tag, 0});
    const Batch &batch = mine.front();
    const bool small = is_small(batch);
    {
        std::lock_guard<std::mutex> g(m_);
        if (closed_)
            fail(-ESHUTDOWN, "the store is shut down");
        if (small && !busy_ && queue_.empty()) {
            busy_ = true; // runs here, below; later submissions queue behind it
        } else {
            if (!started_) {
                // May throw: nothing is queued yet.
                thread_ = start_thread("the asynchronous dispatcher thread",
                                       [this] { dispatcher(); });
                started_ = true;
            }
            queue_.splice(queue_.end(), mine);
            queued_.store(queue_.size(), std::memory_order_release);
            submitted_.fetch_add(1, std::memory_order_relaxed);
            cv_.notify_one();
            return 0;
        }
        submitted_.fetch_add(1, std::memory_order_relaxed);
    }
    // A small batch with nothing ahead of it: handing it to the dispatcher
    // would cost a thread wake-up, more than the batch itself.
    int rc = execute(batch);
    completed_.fetch_add(1, std::memory_order_relaxed);
    complete(mine, mine.begin(), rc);
    {
        // Notified under the lock: shutdown waits for !busy_ and may then
        // free this queue, so nothing of it is touched once m_ is released.
        std::lock_guard<std::mutex> g(m_);
        busy_ = false;
        cv_.notify_all(); // the dispatcher (queued batches) and shutdown wait for !busy_
    }
    return 0;
}

bool AsyncQueue::is_small(const Batch &b) noexcept {
    if (b.n > kAsyncInlineItems)
        return false;
    if (b.op != AsyncOp::put && b.op != AsyncOp::get)
        return true;
    size_t bytes = 0;
    for (size_t i = 0; i < b.n; ++i)
        bytes += b.items[i].len;
    return bytes <= kAsyncInlineBytes;
}

int AsyncQueue::open_fd_locked() {
    if (efd_ >= 0)
        return efd_;
    int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        fail_errno(errno, "eventfd");
    efd_ = fd_above_standard_streams(fd);
    if (!done_.empty()) { // completions posted before anyone asked for the fd
        uint64_t one = 1;
        ssize_t w = ::write(efd_, &one, sizeof one);
        (void)w; // cannot fail: the counter is 0 and the fd is ours
    }
    return efd_;
}

int AsyncQueue::event_fd() {
    std::lock_guard<std::mutex> g(cm_);
    return open_fd_locked();
}

size_t AsyncQueue::poll(size_t cap, const std::function<void(size_t, const Completion &)> &out) {
    // Nothing waiting: answer without the lock, so that a caller polling in
    // a loop does not keep the dispatcher from posting.
    if (waiting_.load(std::memory_order_acquire) == 0)
        return 0;
    std::lock_guard<std::mutex> g(cm_);
    size_t k = 0;
    while (k < cap && !done_.empty()) {
        const Batch &b = done_.front();
        out(k++, Completion{b.tag, b.op, b.result});
        done_.pop_front();
    }
    waiting_.store(done_.size(), std::memory_order_release);
    // The fd is readable exactly while completions wait: both sides change
    // the queue and the counter under cm_.
    if (k && efd_ >= 0) {
        if (done_.empty()) {
            uint64_t v;
            ssize_t r = ::read(efd_, &v, sizeof v);
            (void)r; // EAGAIN: already zero
        } else {
            // Some still wait. A caller may have read the fd when it woke
            // (as eventfd users do) and then taken fewer than were waiting:
            // the counter is zero then, and its event loop would sleep with
            // completions left. Adding one keeps the fd readable; the read
            // above, once the queue is empty, clears the whole count.
            uint64_t one = 1;
            ssize_t w = ::write(efd_, &one, sizeof one);
            (void)w;
        }
    }
    return k;
}

void AsyncQueue::complete(Batches &from, Batches::iterator it, int result) noexcept {
    it->result = result;
    std::lock_guard<std::mutex> g(cm_);
    bool was_empty = done_.empty();
    done_.splice(done_.end(), from, it); // the node submit made: nothing to allocate
    waiting_.store(done_.size(), std::memory_order_release);
    if (was_empty && efd_ >= 0) {
        uint64_t one = 1;
        ssize_t w = ::write(efd_, &one, sizeof one);
        (void)w;
    }
}

int AsyncQueue::execute(const Batch &b) noexcept {
    int rc;
    try {
        switch (b.op) {
        case AsyncOp::put: rc = writes_.put_batch(b.items, b.n, b.flags); break;
        case AsyncOp::get: rc = reads_.get_batch(b.items, b.n, b.flags); break;
        case AsyncOp::contains: rc = reads_.contains_batch(b.items, b.n, b.flags); break;
        default: rc = entries_.remove_batch(b.items, b.n, b.flags); break;
        }
    } catch (...) {
        // The executor is the other place (beside lib/capi) where errors are
        // caught. The whole call failed (its own cleanup already ran): say so
        // for every item, whatever a partial pass wrote there.
        rc = error_from_exception();
        for (size_t i = 0; i < b.n; ++i)
            b.items[i].status = rc;
    }
    return rc;
}

namespace {

// The dispatcher's log events go to the store's event thread: a callback
// run on the dispatcher that shut the store down would wait for itself.
void to_event_thread(int level, std::string msg, void *events) noexcept {
    static_cast<EventThread *>(events)->post(level, std::move(msg));
}

} // namespace

void AsyncQueue::dispatcher() noexcept {
    for (;;) {
        // Look for the next batch for a short while before sleeping.
        platform::spin_while([this] { return queued_.load(std::memory_order_acquire) == 0; },
                             std::chrono::microseconds(kAsyncSpinMicros));
        Batches running;
        {
            std::unique_lock<std::mutex> g(m_);
            // One batch runs at a time (here or inline in submit), in order.
            cv_.wait(g, [this] { return closed_ || (!queue_.empty() && !busy_); });
            if (queue_.empty())
                return; // closed, and shutdown took what was left
            running.splice(running.end(), queue_, queue_.begin());
            queued_.store(queue_.size(), std::memory_order_release);
            busy_ = true;
        }
        int rc;
        {
            LogDefer defer(&to_event_thread, &events_);
            rc = execute(running.front());
        }
        completed_.fetch_add(1, std::memory_order_relaxed);
        {
            // Posted and idle in one step: whoever reacts to the completion
            // and submits again finds the queue free, and can run inline.
            std::lock_guard<std::mutex> g(m_);
            complete(running, running.begin(), rc);
            busy_ = false;
        }
        cv_.notify_all();
    }
}

void AsyncQueue::shutdown() noexcept {
    std::lock_guard<std::mutex> sg(shutdown_m_);
    Batches cancelled; // an empty list allocates nothing
    {
        std::lock_guard<std::mutex> g(m_);
        closed_ = true;
        cancelled.swap(queue_);
        queued_.store(0, std::memory_order_release);
    }
    cv_.notify_all();
    // The batch running finishes first: only then are the cancelled ones'
    // items written (two batches may share items), and the completions
    // stay in submission order.
    if (thread_.joinable())
        thread_.join();
    {
        // A small batch may still be running inline in a submitter.
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [this] { return !busy_; });
    }
    while (!cancelled.empty()) {
        const Batch &b = cancelled.front();
        for (size_t i = 0; i < b.n; ++i)
            b.items[i].status = -ECANCELED;
        cancelled_.fetch_add(1, std::memory_order_relaxed);
        complete(cancelled, cancelled.begin(), -ECANCELED);
    }
}

} // namespace daxkv
