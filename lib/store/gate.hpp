// The calls in flight of a store, so that shutdown can wait for them. Every
// call that reaches the store's state holds a CallGate::Call while it runs;
// shutdown closes the gate (later calls get -ESHUTDOWN), wakes the calls
// that wait for something (pool.hpp), then waits until none is left.
#pragma once

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "internal/error.hpp"

namespace daxkv {

class CallGate {
public:
    // One call in flight. Throws Error(-ESHUTDOWN) once the gate is closed.
    class Call {
    public:
        explicit Call(CallGate &g) : g_(g) {
            // Count first, then look at the flag: close() sets the flag, then
            // waits for the count, so every call either sees the flag or is
            // waited for.
            g_.calls_.fetch_add(1, std::memory_order_seq_cst);
            if (g_.closed_.load(std::memory_order_seq_cst)) {
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

    // No call enters from now on; the ones inside go on.
    void close() noexcept { closed_.store(true, std::memory_order_seq_cst); }
    bool closed() const noexcept { return closed_.load(std::memory_order_seq_cst); }
    // Wait until every call inside has left (after close()).
    void wait_idle() {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [this] { return calls_.load(std::memory_order_seq_cst) == 0; });
    }
    int64_t in_flight() const noexcept { return calls_.load(); }

private:
    void leave() noexcept {
        if (calls_.fetch_sub(1, std::memory_order_seq_cst) == 1 && closed()) {
            std::lock_guard<std::mutex> g(m_);
            cv_.notify_all();
        }
    }

    std::atomic<bool> closed_{false};
    std::atomic<int64_t> calls_{0};
    std::mutex m_;
    std::condition_variable cv_;
};

} // namespace daxkv
