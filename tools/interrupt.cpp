#include "interrupt.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <unistd.h>

namespace daxkv_cli {

namespace {

// Fixed storage: the handler may only read memory and call unlink(2).
constexpr int kSlots = 16;
constexpr size_t kPathMax = 4096;
char paths[kSlots][kPathMax];
std::atomic<bool> used[kSlots];
std::mutex slots_m; // registrations (not the handler)

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

void on_signal(int sig) {
    for (int i = 0; i < kSlots; ++i)
        if (used[i].load(std::memory_order_acquire))
            ::unlink(paths[i]);
    // Die of the signal, as without the handler (the exit status says so).
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig);
}

void install_handlers() {
    for (int sig : kSignals) {
        struct sigaction old = {};
        if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL)
            continue; // ignored or handled by the caller: left as it is
        struct sigaction sa = {};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (int other : kSignals)
            sigaddset(&sa.sa_mask, other);
        ::sigaction(sig, &sa, nullptr);
    }
}

} // namespace

RemovedIfInterrupted::RemovedIfInterrupted(const std::string &path) : slot_(-1) {
    if (path.empty() || path.size() >= kPathMax)
        return;
    static std::once_flag installed;
    std::call_once(installed, install_handlers);
    std::lock_guard<std::mutex> g(slots_m);
    for (int i = 0; i < kSlots; ++i)
        if (!used[i].load(std::memory_order_relaxed)) {
            std::memcpy(paths[i], path.c_str(), path.size() + 1);
            used[i].store(true, std::memory_order_release);
            slot_ = i;
            return;
        }
}

RemovedIfInterrupted::~RemovedIfInterrupted() {
    if (slot_ < 0)
        return;
    std::lock_guard<std::mutex> g(slots_m);
    used[slot_].store(false, std::memory_order_release);
}

} // namespace daxkv_cli
