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

// The same loops over several parts of the range at once, a piece of each
// in turn: the memory system serves several streams faster than one (its
// prefetchers follow each part; none starts again at every page). With
// Ahead, each piece also asks for the lines that many bytes further on
// (software prefetch), which the hardware prefetchers, following eight
// streams, leave late.
template <void (*Stream)(char *, const char *, size_t), size_t Parts, size_t Piece,
          size_t Ahead = 0>
void in_parts(char *d, const char *s, size_t n) {
    const size_t part = n / Parts / 4096 * 4096;
    for (size_t off = 0; off < part; off += Piece)
        for (size_t p = 0; p < Parts; ++p) {
            const char *from = s + p * part + off;
            if (Ahead)
                for (size_t l = 0; l < Piece; l += 64)
                    __builtin_prefetch(from + Ahead + l);
            Stream(d + p * part + off, from, std::min(Piece, part - off));
        }
    Stream(d + Parts * part, s + Parts * part, n - Parts * part);
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
    std::vector<CopyFn> copies = {libc_copy, stream_sse2, in_parts<stream_sse2, 4, 1024>,
                                  in_parts<stream_sse2, 8, 256, 1024>};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        copies.push_back(stream_avx2);
        copies.push_back(in_parts<stream_avx2, 4, 1024>);
        copies.push_back(in_parts<stream_avx2, 8, 256, 1024>);
    }
    if (__builtin_cpu_supports("avx512f")) {
        copies.push_back(stream_avx512);
        copies.push_back(in_parts<stream_avx512, 4, 1024>);
        copies.push_back(in_parts<stream_avx512, 8, 256, 1024>);
    }
    double best = 1e30;
    for (CopyFn c : copies)
        best = std::min(best, best_seconds(dst, src, bytes, threads, rounds, c));
    return static_cast<double>(bytes) / best / 1e9;
}

} // namespace daxkv_cli
