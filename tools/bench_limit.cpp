#include "bench_limit.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <emmintrin.h>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace daxkv_cli {
namespace {

// SSE2 streaming stores, 64 bytes a step: every x86-64 CPU has them, and
// the memory system, not the vector width, limits a copy this large.
void stream_copy(char *d, const char *s, size_t n) {
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + 16));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + 32));
        const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + 48));
        _mm_stream_si128(reinterpret_cast<__m128i *>(d), a);
        _mm_stream_si128(reinterpret_cast<__m128i *>(d + 16), b);
        _mm_stream_si128(reinterpret_cast<__m128i *>(d + 32), c);
        _mm_stream_si128(reinterpret_cast<__m128i *>(d + 48), e);
    }
    std::memcpy(d, s, n);
    _mm_sfence();
}

template <typename Copy>
double best_seconds(char *dst, const char *src, size_t bytes, unsigned threads, int rounds,
                    Copy copy) {
    double best = 1e30;
    const size_t per = bytes / threads / 64 * 64;
    for (int r = 0; r < rounds; ++r) {
        std::vector<std::thread> pool;
        const auto t0 = std::chrono::steady_clock::now();
        for (unsigned t = 1; t < threads; ++t)
            pool.emplace_back([&, t] { copy(dst + t * per, src + t * per, per); });
        copy(dst, src, per);
        for (auto &th : pool)
            th.join();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                                  .count());
    }
    return best / (double(per) * threads) * double(bytes);
}

} // namespace

double copy_limit_gbs(size_t bytes, unsigned threads, int rounds) {
    threads = std::max(1u, threads);
    Buffer src(bytes), dst(bytes);
    fill_pattern(src.p, bytes, 1);
    const double libc = best_seconds(dst.p, src.p, bytes, threads, rounds,
                                     [](char *d, const char *s, size_t n) { std::memcpy(d, s, n); });
    const double nt = best_seconds(dst.p, src.p, bytes, threads, rounds, stream_copy);
    return double(bytes) / std::min(libc, nt) / 1e9;
}

} // namespace daxkv_cli
