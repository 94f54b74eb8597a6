// The calls in flight of a store, so that shutdown can wait for them. Every
// call that reaches the store's state holds a CallGate::Call while it runs
// (or, one that works after shutdown too, a CallGate::Observer); shutdown
// closes the gate (later calls get -ESHUTDOWN), wakes the calls that wait
// for something (pool.hpp), then waits until none is left.
#pragma once

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "internal/error.hpp"

namespace daxkv {

class CallGate {
public:
    // One call in flight. Throws Error(-ESHUTDOWN) once the gate is closed.
    class Call {
    public:
        explicit Call(CallGate &g) : g_(g) {
            // The count and the closed flag are one word: a call either
            // entered before close() (and is waited for) or sees the flag.
            if (g_.word_.fetch_add(1, std::memory_order_seq_cst) & kClosed) {
                g_.leave();
                fail(-ESHUTDOWN, "the store is shut down");
            }
        }
        ~Call() { g_.leave(); }
        Call(const Call &) = delete;
        Call &operator=(const Call &) = delete;

    private:
        CallGate &g_;
    };

    // A call that observes the store (statistics, status, completions) and
    // so stays possible after shutdown: it enters whether or not the gate is
    // closed. One that entered before close() is waited for like any call;
    // one that finds the gate closed runs uncounted: shutdown has begun, and
    // the caller orders that call before daxkv_close.
    class Observer {
    public:
        explicit Observer(CallGate &g) : g_(g) {
            counted_ = !(g_.word_.fetch_add(1, std::memory_order_seq_cst) & kClosed);
            if (!counted_)
                g_.leave();
            else if (g_.observer_hook_)
                g_.observer_hook_();
        }
        ~Observer() {
            if (counted_)
                g_.leave();
        }
        Observer(const Observer &) = delete;
        Observer &operator=(const Observer &) = delete;

    private:
        CallGate &g_;
        bool counted_;
    };

    // Tests only: run by each observer that entered an open gate, counted.
    void set_observer_hook(std::function<void()> fn) { observer_hook_ = std::move(fn); }

    // No call enters from now on; the ones inside go on.
    void close() noexcept {
        if ((word_.fetch_or(kClosed, std::memory_order_seq_cst) & ~kClosed) == 0)
            set_idle(); // no call inside: none will leave to say so
    }
    bool closed() const noexcept { return word_.load(std::memory_order_seq_cst) & kClosed; }
    // Wait until every call inside has left (after close()). Once this
    // returns, no call touches the gate any more: the last one to leave set
    // idle_ under m_ and notified before unlocking, so the owner may destroy
    // the gate (and the store around it) right away.
    void wait_idle() {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [this] { return idle_; });
    }
    int64_t in_flight() const noexcept {
        return static_cast<int64_t>(word_.load() & ~kClosed);
    }

private:
    static constexpr uint64_t kClosed = uint64_t{1} << 63;

    void leave() noexcept {
        // The last call out of a closed gate says so. Nothing after the
        // decrement may read the gate's other fields: a waiter that sees
        // the count at zero could destroy it; so whether this call was the
        // last one of a closed gate comes from the decrement itself.
        if (word_.fetch_sub(1, std::memory_order_seq_cst) == (kClosed | 1))
            set_idle();
    }
    void set_idle() noexcept {
        std::lock_guard<std::mutex> g(m_);
        idle_ = true;
        cv_.notify_all();
    }

    // kClosed | the number of calls inside.
    std::atomic<uint64_t> word_{0};
    std::mutex m_;
    std::condition_variable cv_;
    bool idle_ = false; // guarded by m_
    std::function<void()> observer_hook_;
};

} // namespace daxkv
