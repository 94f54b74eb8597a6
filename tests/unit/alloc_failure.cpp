// The replacement of the global operator new that fail_nth_allocation arms
// (alloc_failure.hpp). The other forms of operator new (array, nothrow) call
// this one; the aligned forms are not counted.
#include "alloc_failure.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
thread_local long countdown = 0; // > 0: allocations left until the failing one
thread_local bool fired = false;
thread_local int paused = 0;

// The mode for the other threads: a countdown all of them share, which
// the thread that armed it does not take part in.
std::atomic<long> countdown_elsewhere{0};
std::atomic<long> counted_elsewhere{0};
std::atomic<bool> fired_elsewhere{false};
thread_local bool armed_here = false;

bool fails_elsewhere() noexcept {
    if (countdown_elsewhere.load(std::memory_order_relaxed) <= 0 || armed_here || paused)
        return false;
    // Exactly one allocation takes the count from 1 to 0; those that race
    // past it find it at 0 or below and go on.
    long left = countdown_elsewhere.load(std::memory_order_relaxed);
    while (left > 0 && !countdown_elsewhere.compare_exchange_weak(left, left - 1)) {
    }
    if (left <= 0)
        return false;
    counted_elsewhere.fetch_add(1, std::memory_order_relaxed);
    return left == 1;
}
} // namespace

namespace daxkv_test {

void fail_nth_allocation(long n) noexcept {
    countdown = n > 0 ? n : 0;
    if (n > 0)
        fired = false;
}

bool allocation_failed() noexcept { return fired; }

void fail_nth_allocation_elsewhere(long n) noexcept {
    armed_here = n > 0;
    if (n > 0) {
        fired_elsewhere.store(false);
        counted_elsewhere.store(0);
    }
    countdown_elsewhere.store(n > 0 ? n : 0);
}

bool allocation_failed_elsewhere() noexcept { return fired_elsewhere.load(); }

long allocations_elsewhere() noexcept { return counted_elsewhere.load(); }

} // namespace daxkv_test

extern "C" void daxkv_test_pause_allocation_failures(int delta) noexcept { paused += delta; }

void *operator new(std::size_t n) {
    if (countdown > 0 && paused == 0 && --countdown == 0) {
        fired = true;
        throw std::bad_alloc();
    }
    if (fails_elsewhere()) {
        fired_elsewhere.store(true);
        throw std::bad_alloc();
    }
    for (;;) {
        if (void *p = std::malloc(n ? n : 1))
            return p;
        std::new_handler h = std::get_new_handler();
        if (!h)
            throw std::bad_alloc();
        h();
    }
}

void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }
