// Out-of-memory injection for the unit tests: the calling thread's n-th
// allocation with operator new from the time it is armed throws
// std::bad_alloc. Only that thread's allocations count, so the store's
// worker threads and other tests are untouched.
//
// A sweep arms n = 1, 2, ... around one call until a run completes without
// the failure firing: every allocation the call makes on the calling
// thread fails once, and the test checks after each run that the call
// either succeeded or failed whole (-ENOMEM) and left nothing behind.
#pragma once

namespace daxkv_test {

// Arm: the n-th allocation from now fails (n > 0); 0 disarms.
void fail_nth_allocation(long n) noexcept;
// Whether the armed failure fired since it was armed.
bool allocation_failed() noexcept;

// Arms on construction, disarms on destruction.
class FailNthAllocation {
public:
    explicit FailNthAllocation(long n) noexcept { fail_nth_allocation(n); }
    ~FailNthAllocation() { fail_nth_allocation(0); }
    FailNthAllocation(const FailNthAllocation &) = delete;
    FailNthAllocation &operator=(const FailNthAllocation &) = delete;
};

} // namespace daxkv_test

// While the count is n > 0 pauses, the calling thread's allocations are not
// counted: code in the process that stands for a C library allocating with
// malloc (the fake CUDA runtime) calls it with +1 and -1 around its work
// and finds it with dlsym, as the executable exports it.
extern "C" void daxkv_test_pause_allocation_failures(int delta) noexcept;
