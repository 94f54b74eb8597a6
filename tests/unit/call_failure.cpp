// The interposed C library functions of call_failure.hpp.
#include "call_failure.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <cerrno>

namespace daxkv_test {
namespace {

struct Armed {
    Call call = Call::flock_exclusive;
    long left = 0; // calls until the failing one; 0: disarmed
    int err = 0;
    bool fired = false;
};
thread_local Armed armed;

// Whether this call of `call` is the one to fail (errno set if so).
bool fails(Call call) noexcept {
    if (armed.left == 0 || armed.call != call || --armed.left != 0)
        return false;
    armed.fired = true;
    errno = armed.err;
    return true;
}

template <typename Fn>
Fn next(const char *name) noexcept {
    return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

} // namespace

void fail_nth_call(Call call, long n, int err) noexcept {
    armed.call = call;
    armed.left = n > 0 ? n : 0;
    armed.err = err;
    if (n > 0)
        armed.fired = false;
}

bool call_failed() noexcept { return armed.fired; }

} // namespace daxkv_test

using daxkv_test::Call;

extern "C" int flock(int fd, int op) {
    static const auto real = daxkv_test::next<int (*)(int, int)>("flock");
    if ((op & LOCK_EX) && daxkv_test::fails(Call::flock_exclusive))
        return -1;
    return real(fd, op);
}

extern "C" int msync(void *addr, size_t len, int flags) {
    static const auto real = daxkv_test::next<int (*)(void *, size_t, int)>("msync");
    if (daxkv_test::fails(Call::msync))
        return -1;
    return real(addr, len, flags);
}

// The failing call allocates the first half of the range first, as ext4
// does when it runs out of room part-way (the file's size grows with
// the blocks it got). posix_fallocate returns the error, not errno.
extern "C" int posix_fallocate(int fd, off_t offset, off_t len) {
    static const auto real = daxkv_test::next<int (*)(int, off_t, off_t)>("posix_fallocate");
    if (daxkv_test::fails(Call::posix_fallocate)) {
        const int err = errno;
        (void)real(fd, offset, len / 2);
        return err;
    }
    return real(fd, offset, len);
}
