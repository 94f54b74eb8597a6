#include "platform/cpu.hpp"

#include <cpuid.h>
#include <emmintrin.h>
#include <immintrin.h>

namespace daxkv {
namespace platform {
namespace {

constexpr size_t kCacheLine = 64;

FlushKind detect() noexcept {
    unsigned a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (b & (1u << 24))
            return FlushKind::clwb;
        if (b & (1u << 23))
            return FlushKind::clflushopt;
    }
    return FlushKind::clflush;
}

const FlushKind g_flush = detect();

// The instructions are emitted with target attributes so that one binary
// runs on every x86-64 CPU; only the detected one is ever executed.
__attribute__((target("clwb"))) void flush_clwb(const char *p, const char *end) noexcept {
    for (; p < end; p += kCacheLine)
        _mm_clwb(const_cast<char *>(p));
}
__attribute__((target("clflushopt"))) void flush_clflushopt(const char *p,
                                                            const char *end) noexcept {
    for (; p < end; p += kCacheLine)
        _mm_clflushopt(const_cast<char *>(p));
}
void flush_clflush(const char *p, const char *end) noexcept {
    for (; p < end; p += kCacheLine)
        _mm_clflush(p);
}

} // namespace

FlushKind flush_kind() noexcept { return g_flush; }

const char *flush_kind_name(FlushKind k) noexcept {
    switch (k) {
    case FlushKind::clwb: return "clwb";
    case FlushKind::clflushopt: return "clflushopt";
    case FlushKind::clflush: return "clflush";
    }
    return "?";
}

void flush_range(const void *p, size_t n) noexcept {
    if (!n)
        return;
    auto start = reinterpret_cast<uintptr_t>(p) & ~(uintptr_t)(kCacheLine - 1);
    const char *b = reinterpret_cast<const char *>(start);
    const char *e = static_cast<const char *>(p) + n;
    switch (g_flush) {
    case FlushKind::clwb: flush_clwb(b, e); break;
    case FlushKind::clflushopt: flush_clflushopt(b, e); break;
    case FlushKind::clflush: flush_clflush(b, e); break;
    }
}

void store_fence() noexcept { _mm_sfence(); }

} // namespace platform
} // namespace daxkv
