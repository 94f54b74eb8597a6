#include "bench_limit.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <immintrin.h>
#include <thread>
#include <vector>

namespace daxkv_cli {
namespace {

using CopyFn = void (*)(char *d, const char *s, size_t n);

void libc_copy(char *d, const char *s, size_t n) { std::memcpy(d, s, n); }

// Streaming stores, four vectors a step; the tail (under 256 bytes) is left
// to memcpy. Each loop is compiled for its own ISA and only run where the
// CPU has it.
void stream_sse2(char *d, const char *s, size_t n) {
    for (; n >= 64; n -= 64, d += 64, s += 64)
        for (int k = 0; k < 4; ++k)
            _mm_stream_si128(reinterpret_cast<__m128i *>(d) + k,
                             _mm_loadu_si128(reinterpret_cast<const __m128i *>(s) + k));
    std::memcpy(d, s, n);
}

__attribute__((target("avx2"))) void stream_avx2(char *d, const char *s, size_t n) {
    for (; n >= 128; n -= 128, d += 128, s += 128)
        for (int k = 0; k < 4; ++k)
            _mm256_stream_si256(reinterpret_cast<__m256i *>(d) + k,
                                _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s) + k));
    std::memcpy(d, s, n);
}

__attribute__((target("avx512f"))) void stream_avx512(char *d, const char *s, size_t n) {
    for (; n >= 256; n -= 256, d += 256, s += 256)
        for (int k = 0; k < 4; ++k)
            _mm512_stream_si512(reinterpret_cast<__m512i *>(d) + k,
                                _mm512_loadu_si512(reinterpret_cast<const __m512i *>(s) + k));
    std::memcpy(d, s, n);
}

// The same loops over four parts of the range at once, 1 KiB of each in
// turn: the memory system serves several streams faster than one (its
// prefetchers follow each part; none starts again at every page).
template <void (*Stream)(char *, const char *, size_t)>
void four_parts(char *d, const char *s, size_t n) {
    const size_t part = n / 4 / 4096 * 4096, piece = 1024;
    for (size_t off = 0; off < part; off += piece)
        for (size_t p = 0; p < 4; ++p)
            Stream(d + p * part + off, s + p * part + off, std::min(piece, part - off));
    Stream(d + 4 * part, s + 4 * part, n - 4 * part);
}

double best_seconds(char *dst, const char *src, size_t bytes, unsigned threads, int rounds,
                    CopyFn copy) {
    // Ranges start on 4 KiB boundaries (as slots and page-aligned buffers
    // do); the last thread takes the remainder.
    const size_t per = bytes / threads / 4096 * 4096;
    double best = 1e30;
    for (int r = 0; r < rounds; ++r) {
        std::vector<std::thread> pool;
        const auto t0 = std::chrono::steady_clock::now();
        for (unsigned t = 1; t < threads; ++t) {
            const size_t off = t * per, len = t + 1 == threads ? bytes - off : per;
            pool.emplace_back([=] {
                copy(dst + off, src + off, len);
                _mm_sfence();
            });
        }
        copy(dst, src, threads == 1 ? bytes : per);
        _mm_sfence();
        for (auto &th : pool)
            th.join();
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

} // namespace

double copy_limit_gbs(char *dst, const char *src, size_t bytes, unsigned threads, int rounds) {
    threads = std::max(1u, threads);
    rounds = std::max(1, rounds);
    std::vector<CopyFn> copies = {libc_copy, stream_sse2, four_parts<stream_sse2>};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        copies.push_back(stream_avx2);
        copies.push_back(four_parts<stream_avx2>);
    }
    if (__builtin_cpu_supports("avx512f")) {
        copies.push_back(stream_avx512);
        copies.push_back(four_parts<stream_avx512>);
    }
    double best = 1e30;
    for (CopyFn c : copies)
        best = std::min(best, best_seconds(dst, src, bytes, threads, rounds, c));
    return static_cast<double>(bytes) / best / 1e9;
}

} // namespace daxkv_cli
