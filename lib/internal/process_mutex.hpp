// A lock on state of the whole process that a forked child may take.
#pragma once

#include <pthread.h>

namespace daxkv {

// For state of the process, not of one store: the copy engine, the log
// callback, the CUDA loader, device discovery's settings. A thread of the
// parent that held such a lock at a fork does not exist in the child to
// let go of it, so the child finds every ProcessMutex unlocked: a
// pthread_atfork handler initializes them again while the child still has
// only the thread that forked. What one guards must therefore stay usable
// after a critical section cut short: the child sees that state as the
// fork found it. Each is registered when made and never unregistered:
// for objects that are never destroyed (static, or leaked on purpose).
class ProcessMutex {
public:
    ProcessMutex() noexcept;
    ProcessMutex(const ProcessMutex &) = delete;
    ProcessMutex &operator=(const ProcessMutex &) = delete;

    void lock() noexcept { (void)::pthread_mutex_lock(&m_); }
    bool try_lock() noexcept { return ::pthread_mutex_trylock(&m_) == 0; }
    void unlock() noexcept { (void)::pthread_mutex_unlock(&m_); }

private:
    friend struct ProcessMutexes;
    pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
    ProcessMutex *next_ = nullptr; // the one made before it
};

} // namespace daxkv
