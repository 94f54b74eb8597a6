#include "engine/fault.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "internal/error.hpp"
#include "internal/process_mutex.hpp"
#include "platform/copy.hpp"

namespace daxkv {
namespace engine {
namespace {

// The recovery point of the guarded copy running on this thread, if any.
// initial-exec TLS: the handler must not call __tls_get_addr, which may
// allocate (not async-signal-safe).
struct Recovery {
    sigjmp_buf jb;
    // guarded_call: loads from [lo, hi).
    const char *lo = nullptr, *hi = nullptr;
    // guarded_copy_streams: the streams and their guarded sides, and the
    // stream that faulted (set by the handler before it jumps).
    const platform::CopyStream *streams = nullptr;
    const uint8_t *guard = nullptr;
    size_t count = 0;
    volatile size_t hit = 0;
};
thread_local Recovery *tl_recovery __attribute__((tls_model("initial-exec"))) = nullptr;

bool within(const char *addr, const void *p, size_t n) noexcept {
    const char *lo = static_cast<const char *>(p);
    return addr >= lo && addr < lo + n;
}

// The side of r's copy a fault at addr lies on (0: not r's), and the
// stream, in r->hit.
int side_of(Recovery *r, const char *addr) noexcept {
    if (addr >= r->lo && addr < r->hi)
        return kGuardSource;
    for (size_t i = 0; i < r->count; ++i) {
        const platform::CopyStream &s = r->streams[i];
        const int side = (r->guard[i] & kGuardSource) && within(addr, s.src, s.len) ? kGuardSource
                         : (r->guard[i] & kGuardDest) && within(addr, s.dst, s.len)
                             ? kGuardDest
                             : 0;
        if (side) {
            r->hit = i;
            return side;
        }
    }
    return 0;
}

struct sigaction g_prev;
std::atomic<bool> g_installed{false};
ProcessMutex g_install_m;

std::atomic<FaultHook *> g_hook{nullptr};

void on_sigbus(int sig, siginfo_t *si, void *uc) {
    Recovery *r = tl_recovery;
    const char *addr = static_cast<const char *>(si->si_addr);
    if (r) {
        if (const int side = side_of(r, addr))
            siglongjmp(r->jb, side); // SA_NODEFER: SIGBUS is not left blocked
    }
    // Not a fault of ours: what would have happened without us.
    if (g_prev.sa_flags & SA_SIGINFO) {
        g_prev.sa_sigaction(sig, si, uc);
        return;
    }
    if (g_prev.sa_handler == SIG_IGN && si->si_code <= 0)
        return; // sent with kill() and ignored before we came
    if (g_prev.sa_handler == SIG_DFL || g_prev.sa_handler == SIG_IGN) {
        // The default action (a fault cannot be ignored): restore it and
        // raise again, so the process dies of SIGBUS as it would have.
        struct sigaction dfl;
        std::memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGBUS, &dfl, nullptr);
        raise(SIGBUS);
        return;
    }
    g_prev.sa_handler(sig);
}

} // namespace

void install_sigbus_handler() {
    std::lock_guard<ProcessMutex> g(g_install_m);
    if (g_installed.load(std::memory_order_relaxed))
        return;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sigemptyset(&sa.sa_mask);
    // NODEFER: the handler leaves by siglongjmp to a point saved without the
    // signal mask (saving it costs a system call per copy); SIGBUS must not
    // stay blocked on that thread, or its next fault would kill the process.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    if (sigaction(SIGBUS, &sa, &g_prev) != 0)
        fail_errno(errno, "sigaction(SIGBUS)");
    g_installed.store(true, std::memory_order_release);
}

bool sigbus_handler_installed() noexcept { return g_installed.load(std::memory_order_acquire); }

namespace {

// Run fn with r as this thread's recovery point: 0, or the side
// (kGuardSource, kGuardDest) of the fault that cut it short.
template <typename Fn>
int guarded(Recovery &r, Fn &&fn) noexcept {
    if (const int side = sigsetjmp(r.jb, 0)) {
        tl_recovery = nullptr;
        return side;
    }
    tl_recovery = &r;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    fn();
    std::atomic_signal_fence(std::memory_order_seq_cst);
    tl_recovery = nullptr;
    return 0;
}

int fault_code(int side) noexcept { return side == kGuardSource ? kMediaFault : kMediaFaultWriting; }

} // namespace

size_t guarded_copy_streams(const platform::CopyStream *streams, const uint8_t *guard,
                            size_t count, int *codes) noexcept {
    for (size_t i = 0; i < count; ++i)
        codes[i] = 0;
    Recovery all;
    all.streams = streams;
    all.guard = guard;
    all.count = count;
    const int side = guarded(all, [&] { platform::copy_streams(streams, count); });
    if (!side)
        return 0;
    // The lanes interleave the streams: where the others stopped is not
    // known, so each is copied again on its own, under its own guard.
    const size_t hit = all.hit;
    codes[hit] = fault_code(side);
    size_t failed = 1;
    for (size_t i = 0; i < count; ++i) {
        if (i == hit)
            continue;
        Recovery one;
        one.streams = &streams[i];
        one.guard = &guard[i];
        one.count = 1;
        if (const int s = guarded(one, [&] { platform::copy_streams(&streams[i], 1); })) {
            codes[i] = fault_code(s);
            failed++;
        }
    }
    return failed;
}

int guarded_call(const void *lo, size_t n, void (*fn)(void *arg), void *arg) noexcept {
    Recovery r;
    r.lo = static_cast<const char *>(lo);
    r.hi = r.lo + n;
    return guarded(r, [&] { fn(arg); }) ? kMediaFault : 0;
}

FaultHook *fault_hook() noexcept { return g_hook.load(std::memory_order_acquire); }

namespace testing {
void set_fault_hook(FaultHook *hook) noexcept { g_hook.store(hook, std::memory_order_release); }
} // namespace testing

} // namespace engine
} // namespace daxkv
