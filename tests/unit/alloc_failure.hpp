// Out-of-memory injection for the unit tests: the calling thread's n-th
// allocation with operator new from the time it is armed throws
// std::bad_alloc. Only that thread's allocations count, so the store's
// worker threads and other tests are untouched.
//
// For the store's own threads (the asynchronous dispatcher, the copy
// engine's workers, recovery's threads) the other mode counts every thread
// of the process but the one that armed it: its n-th allocation on any of
// them fails. The two modes are independent.
//
// A sweep arms n = 1, 2, ... around one call until a run completes without
// the failure firing: every allocation the call makes on the calling
// thread fails once, and the test checks after each run that the call
// either succeeded or failed whole (-ENOMEM) and left nothing behind.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "daxkv.h"

namespace daxkv_test {

// Arm: the n-th allocation from now fails (n > 0); 0 disarms.
void fail_nth_allocation(long n) noexcept;
// Whether the failure fired since it was last armed (also once disarmed).
bool allocation_failed() noexcept;

// Arm for the other threads: the n-th allocation from now made by any
// thread but the calling one fails (n > 0); 0 disarms.
void fail_nth_allocation_elsewhere(long n) noexcept;
// Whether that failure fired since it was last armed (also once disarmed).
bool allocation_failed_elsewhere() noexcept;
// Allocations the other threads made since it was last armed (all of them
// while armed, those up to the failing one once it fired).
long allocations_elsewhere() noexcept;

// Arms on construction, disarms on destruction.
class FailNthAllocation {
public:
    explicit FailNthAllocation(long n) noexcept { fail_nth_allocation(n); }
    ~FailNthAllocation() { fail_nth_allocation(0); }
    FailNthAllocation(const FailNthAllocation &) = delete;
    FailNthAllocation &operator=(const FailNthAllocation &) = delete;
};

class FailNthAllocationElsewhere {
public:
    explicit FailNthAllocationElsewhere(long n) noexcept { fail_nth_allocation_elsewhere(n); }
    ~FailNthAllocationElsewhere() { fail_nth_allocation_elsewhere(0); }
    FailNthAllocationElsewhere(const FailNthAllocationElsewhere &) = delete;
    FailNthAllocationElsewhere &operator=(const FailNthAllocationElsewhere &) = delete;
};

// The sweep: for n = 1, 2, ...: setup() unarmed, call() with its n-th
// allocation failing, then check(rc, when) unarmed (when names the run
// for messages), until a run in which no allocation failed (the call
// made fewer than n) or the test has failed. A run whose allocation failed
// returns -ENOMEM, or 0 where what failed was best effort (a log line, the
// name of a statistics page). Returns the runs made: 1 when the call
// allocates nothing on the calling thread.
// stride: fail every stride-th allocation only (1: every one).
template <typename Setup, typename Call, typename Check>
long sweep_allocations(const std::string &what, Setup setup, Call call, Check check,
                       long stride = 1) {
    long runs = 0;
    for (long n = 1;; n += stride) {
        ++runs;
        setup();
        int rc;
        bool fired;
        {
            FailNthAllocation oom(n);
            rc = call();
            fired = allocation_failed();
        }
        const std::string when = what + ", allocation " + std::to_string(n);
        if (fired) {
            EXPECT_TRUE(rc == -ENOMEM || rc >= 0) << when << ": " << rc << " " << daxkv_errmsg();
        } else {
            EXPECT_NE(rc, -ENOMEM) << when << ": -ENOMEM with no allocation failed";
        }
        check(rc, when);
        if (!fired || ::testing::Test::HasFailure())
            return runs;
    }
}

} // namespace daxkv_test

// While the count is n > 0 pauses, the calling thread's allocations are not
// counted: code in the process that stands for a C library allocating with
// malloc (the fake CUDA runtime) calls it with +1 and -1 around its work
// and finds it with dlsym, as the executable exports it.
extern "C" void daxkv_test_pause_allocation_failures(int delta) noexcept;
