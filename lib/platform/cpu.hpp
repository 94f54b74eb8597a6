// CPU primitives for persistence and fast copies: cache-line write-back
// chosen at run time (CLWB, else CLFLUSHOPT, else CLFLUSH) and
// non-temporal copies for large stores into the arena.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace daxkv {
namespace platform {

enum class FlushKind { clwb, clflushopt, clflush };

FlushKind flush_kind() noexcept;
const char *flush_kind_name(FlushKind k) noexcept;

// Write back [p, p+n) from the CPU caches (no fence).
void flush_range(const void *p, size_t n) noexcept;
// Order the write-backs and non-temporal stores before later stores.
void store_fence() noexcept;

// A pause inside a spin loop: fewer wasted cycles and less power, and a
// sibling hyperthread gets the core.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Spin while busy() holds, for `limit` at most, offering the CPU to another
// thread every 64 rounds: on a machine with fewer CPUs than busy threads,
// the thread this one waits for may need this very CPU. For a thread about
// to sleep for something that usually comes within microseconds: waking
// from a futex takes tens of them on a virtual machine, and a thread asleep
// when its work arrives starts late.
template <class Busy> void spin_while(Busy busy, std::chrono::microseconds limit) noexcept {
    using Clock = std::chrono::steady_clock;
    const auto until = Clock::now() + limit;
    for (unsigned i = 1; busy(); ++i) {
        cpu_relax();
        if (i % 64 == 0) {
            if (Clock::now() >= until)
                return;
            std::this_thread::yield();
        }
    }
}

} // namespace platform
} // namespace daxkv
