#include "engine/fault.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "internal/error.hpp"
#include "platform/copy.hpp"

namespace daxkv {
namespace engine {
namespace {

// The recovery point of the guarded copy running on this thread, if any.
// initial-exec TLS: the handler must not call __tls_get_addr, which may
// allocate (not async-signal-safe).
struct Recovery {
    sigjmp_buf jb;
    const char *lo, *hi;   // loads from here fault as kMediaFault
    const char *wlo, *whi; // stores into here as kMediaFaultWriting
};
thread_local Recovery *tl_recovery __attribute__((tls_model("initial-exec"))) = nullptr;

struct sigaction g_prev;
std::atomic<bool> g_installed{false};
std::mutex g_install_m;

std::atomic<FaultHook *> g_hook{nullptr};

void on_sigbus(int sig, siginfo_t *si, void *uc) {
    Recovery *r = tl_recovery;
    const char *addr = static_cast<const char *>(si->si_addr);
    // SA_NODEFER: SIGBUS is not left blocked by the jumps.
    if (r && addr >= r->lo && addr < r->hi)
        siglongjmp(r->jb, 1);
    if (r && addr >= r->wlo && addr < r->whi)
        siglongjmp(r->jb, 2);
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
    std::lock_guard<std::mutex> g(g_install_m);
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

// Run copy with a recovery point for SIGBUS on loads from src and stores
// into dst.
template <typename Copy>
int guarded(GuardedRange src, GuardedRange dst, Copy &&copy) noexcept {
    Recovery r;
    r.lo = static_cast<const char *>(src.lo);
    r.hi = r.lo + src.n;
    r.wlo = static_cast<const char *>(dst.lo);
    r.whi = r.wlo + dst.n;
    if (const int side = sigsetjmp(r.jb, 0)) {
        tl_recovery = nullptr;
        return side == 1 ? kMediaFault : kMediaFaultWriting;
    }
    tl_recovery = &r;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    copy();
    std::atomic_signal_fence(std::memory_order_seq_cst);
    tl_recovery = nullptr;
    return 0;
}

} // namespace

int guarded_copy_streams(const platform::CopyStream *streams, size_t count, GuardedRange src,
                         GuardedRange dst) noexcept {
    return guarded(src, dst, [&] { platform::copy_streams(streams, count); });
}

int guarded_call(const void *lo, size_t n, void (*fn)(void *arg), void *arg) noexcept {
    return guarded(GuardedRange{lo, n}, GuardedRange{}, [&] { fn(arg); });
}

FaultHook *fault_hook() noexcept { return g_hook.load(std::memory_order_acquire); }

namespace testing {
void set_fault_hook(FaultHook *hook) noexcept { g_hook.store(hook, std::memory_order_release); }
} // namespace testing

} // namespace engine
} // namespace daxkv
