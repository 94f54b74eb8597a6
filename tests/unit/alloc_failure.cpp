// The replacement of the global operator new that fail_nth_allocation arms
// (alloc_failure.hpp). The other forms of operator new (array, nothrow) call
// this one; the aligned forms are not counted.
#include "alloc_failure.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local long countdown = 0; // > 0: allocations left until the failing one
thread_local bool fired = false;
thread_local int paused = 0;
} // namespace

namespace daxkv_test {

void fail_nth_allocation(long n) noexcept {
    countdown = n > 0 ? n : 0;
    if (n > 0)
        fired = false;
}

bool allocation_failed() noexcept { return fired; }

} // namespace daxkv_test

extern "C" void daxkv_test_pause_allocation_failures(int delta) noexcept { paused += delta; }

void *operator new(std::size_t n) {
    if (countdown > 0 && paused == 0 && --countdown == 0) {
        fired = true;
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
