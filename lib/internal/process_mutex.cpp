#include "internal/process_mutex.hpp"

#include <atomic>

namespace daxkv {

struct ProcessMutexes {
    // Every ProcessMutex made, the newest first. Only ever pushed onto (one
    // may be made on a thread while another forks), never taken from.
    static std::atomic<ProcessMutex *> all;

    static void push(ProcessMutex *m) noexcept {
        m->next_ = all.load(std::memory_order_relaxed);
        while (!all.compare_exchange_weak(m->next_, m, std::memory_order_release,
                                          std::memory_order_relaxed)) {
        }
    }

    // In the child, before fork returns there: it has one thread.
    static void forked_child() noexcept {
        for (ProcessMutex *m = all.load(std::memory_order_acquire); m; m = m->next_)
            (void)::pthread_mutex_init(&m->m_, nullptr);
    }
};

std::atomic<ProcessMutex *> ProcessMutexes::all{nullptr};

namespace {
// Registered at load, before any fork that could find one held.
const int registered = ::pthread_atfork(nullptr, nullptr, ProcessMutexes::forked_child);
} // namespace

ProcessMutex::ProcessMutex() noexcept {
    (void)registered;
    ProcessMutexes::push(this);
}

} // namespace daxkv
