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

// Seconds for `threads` threads to copy bytes from src to dst with copy,
// once. Ranges start on 4 KiB boundaries (as slots and page-aligned
// buffers do); the last thread takes the remainder.
double timed_copy(char *dst, const char *src, size_t bytes, unsigned threads, CopyFn copy) {
    const size_t per = bytes / threads / 4096 * 4096;
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
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Loop {
    const char *name;
    CopyFn copy;
};

std::vector<Loop> loops() {
    std::vector<Loop> v = {{"memcpy", libc_copy},
                           {"sse2", stream_sse2},
                           {"sse2 4 parts", in_parts<stream_sse2, 4, 1024>},
                           {"sse2 8 parts prefetch", in_parts<stream_sse2, 8, 256, 1024>}};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        v.push_back({"avx2", stream_avx2});
        v.push_back({"avx2 4 parts", in_parts<stream_avx2, 4, 1024>});
        v.push_back({"avx2 8 parts prefetch", in_parts<stream_avx2, 8, 256, 1024>});
    }
    if (__builtin_cpu_supports("avx512f")) {
        v.push_back({"avx512", stream_avx512});
        v.push_back({"avx512 4 parts", in_parts<stream_avx512, 4, 1024>});
        v.push_back({"avx512 8 parts prefetch", in_parts<stream_avx512, 8, 256, 1024>});
    }
    return v;
}

} // namespace

CopyLimit::CopyLimit(char *dst, const char *src, size_t bytes, unsigned threads)
    : dst_(dst), src_(src), bytes_(bytes), threads_(std::max(1u, threads)) {
    double fastest = 1e30;
    for (const Loop &l : loops()) {
        const double t = timed_copy(dst_, src_, bytes_, threads_, l.copy);
        if (t < fastest) {
            fastest = t;
            copy_ = l.copy;
            loop_ = l.name;
        }
    }
}

void CopyLimit::sample() {
    best_ = std::min(best_, timed_copy(dst_, src_, bytes_, threads_, copy_));
}

double CopyLimit::gb_per_s() const {
    return best_ < 1e30 ? static_cast<double>(bytes_) / best_ / 1e9 : 0.0;
}

} // namespace daxkv_cli
