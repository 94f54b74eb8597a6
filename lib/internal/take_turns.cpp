#include "internal/take_turns.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace daxkv {

unsigned take_turns(uint64_t count, unsigned threads, const std::function<void(uint64_t)> &fn) {
    threads = static_cast<unsigned>(
        std::min<uint64_t>(std::max(1u, threads), std::max<uint64_t>(count, 1)));
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex failure_m;
    std::exception_ptr failure;
    auto work = [&]() noexcept {
        try {
            for (uint64_t i; !failed.load(std::memory_order_relaxed) &&
                             (i = next.fetch_add(1, std::memory_order_relaxed)) < count;)
                fn(i);
        } catch (...) {
            std::lock_guard<std::mutex> g(failure_m);
            if (!failure)
                failure = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
    };
    std::vector<std::thread> pool;
    try {
        pool.reserve(threads - 1);
        for (unsigned t = 1; t < threads; ++t)
            pool.emplace_back(work);
    } catch (...) {
        // Fewer threads: the ones running, this one among them, take
        // every item all the same.
    }
    work();
    for (auto &th : pool)
        th.join();
    if (failure)
        std::rethrow_exception(failure);
    return static_cast<unsigned>(pool.size()) + 1;
}

} // namespace daxkv
