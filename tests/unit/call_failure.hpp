// System-call failure injection for the unit tests: the calling thread's
// n-th call of one C library function, from the time it is armed, fails
// with the errno given, without reaching the kernel. The unit binary links
// the library's layers statically, and defines the functions below itself,
// so every call the library makes from this binary comes here first; the
// others go on to the C library (dlsym(RTLD_NEXT)).
//
// Only the arming thread's calls count (as in alloc_failure.hpp), so the
// store's own threads and other tests are untouched. flock counts only the
// calls that take an exclusive lock (LOCK_EX): unlocks and shared locks
// go through, as they are not what a test of a lost lock is about. A
// failing posix_fallocate allocates half of its range first, as ext4 does
// when it runs out of room part-way.
#pragma once

namespace daxkv_test {

enum class Call { flock_exclusive, msync, posix_fallocate };

// Arm: the n-th call of `call` from now fails with err (n > 0); 0 disarms.
void fail_nth_call(Call call, long n, int err) noexcept;
// Whether the failure fired since it was last armed (also once disarmed).
bool call_failed() noexcept;

// Arms on construction, disarms on destruction.
class FailNthCall {
public:
    FailNthCall(Call call, long n, int err) noexcept : call_(call) { fail_nth_call(call, n, err); }
    ~FailNthCall() { fail_nth_call(call_, 0, 0); }
    FailNthCall(const FailNthCall &) = delete;
    FailNthCall &operator=(const FailNthCall &) = delete;

private:
    Call call_;
};

} // namespace daxkv_test
