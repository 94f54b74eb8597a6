#include "platform/copy.hpp"

#include <atomic>
#include <cpuid.h>
#include <cstring>
#include <immintrin.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

// The fused hash is XXH3-64's long-input algorithm (inputs above 240
// bytes), as xxhash specifies it: 8 accumulators fed 64-byte stripes, the
// secret sliding 8 bytes a stripe, a scramble every 16 stripes (1 KiB), the
// last stripe taken again at the end of the input, the accumulators merged
// and avalanched. Only the default secret and the initial accumulators come
// from xxhash.h; the tests compare every routine with XXH3_64bits().
static_assert(XXH_SECRET_DEFAULT_SIZE == 192, "XXH3's default secret is 192 bytes");

namespace daxkv {
namespace platform {
namespace {

constexpr size_t kStripe = 64;
constexpr size_t kStripesPerBlock = (XXH_SECRET_DEFAULT_SIZE - kStripe) / 8; // 16
constexpr size_t kBlock = kStripe * kStripesPerBlock;                        // 1 KiB
constexpr size_t kLastAccStart = 7;
constexpr size_t kMergeAccsStart = 11;
const uint8_t *const kSecret = XXH3_kSecret;
const uint8_t *const kScrambleKey = XXH3_kSecret + XXH_SECRET_DEFAULT_SIZE - kStripe;
const uint8_t *const kLastKey = XXH3_kSecret + XXH_SECRET_DEFAULT_SIZE - kStripe - kLastAccStart;

uint64_t read64(const uint8_t *p) noexcept {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

uint64_t mul128_fold64(uint64_t a, uint64_t b) noexcept {
    const __uint128_t p = static_cast<__uint128_t>(a) * b;
    return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

// XXH3's merge of the 8 accumulators into the 64-bit result.
uint64_t merge_accs(const uint64_t acc[8], size_t len) noexcept {
    const uint8_t *s = kSecret + kMergeAccsStart;
    uint64_t h = static_cast<uint64_t>(len) * XXH_PRIME64_1;
    for (int i = 0; i < 4; ++i)
        h += mul128_fold64(acc[2 * i] ^ read64(s + 16 * i), acc[2 * i + 1] ^ read64(s + 16 * i + 8));
    h ^= h >> 37;
    h *= 0x165667919E3779F9ULL;
    h ^= h >> 32;
    return h;
}

// The stripe schedule of an input of len > 240 bytes, the same for every
// ISA: full 1 KiB blocks (16 stripes, then a scramble), the stripes of the
// last partial block, then the last 64 bytes once more with their own key.
// Copy routines copy the bytes the stripes covered, then the 1..64 left.
struct Schedule {
    size_t blocks, tail_stripes, covered;
    explicit Schedule(size_t len) noexcept
        : blocks((len - 1) / kBlock), tail_stripes(((len - 1) - blocks * kBlock) / kStripe),
          covered(blocks * kBlock + tail_stripes * kStripe) {}
};

// --- SSE2 (every x86-64 CPU) -------------------------------------------------------

inline void sse2_round(__m128i acc[4], const char *src, char *dst, const uint8_t *key,
                       bool copy, bool stream) noexcept {
    for (int i = 0; i < 4; ++i) {
        const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src) + i);
        if (copy) {
            if (stream)
                _mm_stream_si128(reinterpret_cast<__m128i *>(dst) + i, d);
            else
                _mm_storeu_si128(reinterpret_cast<__m128i *>(dst) + i, d);
        }
        const __m128i dk = _mm_xor_si128(d, _mm_loadu_si128(reinterpret_cast<const __m128i *>(key) + i));
        const __m128i product = _mm_mul_epu32(dk, _mm_shuffle_epi32(dk, _MM_SHUFFLE(0, 3, 0, 1)));
        const __m128i swapped = _mm_shuffle_epi32(d, _MM_SHUFFLE(1, 0, 3, 2));
        acc[i] = _mm_add_epi64(product, _mm_add_epi64(acc[i], swapped));
    }
}

inline void sse2_scramble(__m128i acc[4]) noexcept {
    const __m128i prime = _mm_set1_epi32(static_cast<int>(XXH_PRIME32_1));
    for (int i = 0; i < 4; ++i) {
        __m128i a = _mm_xor_si128(acc[i], _mm_srli_epi64(acc[i], 47));
        a = _mm_xor_si128(a, _mm_loadu_si128(reinterpret_cast<const __m128i *>(kScrambleKey) + i));
        const __m128i lo = _mm_mul_epu32(a, prime);
        const __m128i hi = _mm_mul_epu32(_mm_shuffle_epi32(a, _MM_SHUFFLE(0, 3, 0, 1)), prime);
        acc[i] = _mm_add_epi64(lo, _mm_slli_epi64(hi, 32));
    }
}

uint64_t xxh3_long_sse2(char *dst, const char *src, size_t len, bool copy, bool nt) noexcept {
    alignas(16) uint64_t init[8] = XXH3_INIT_ACC;
    __m128i acc[4];
    for (int i = 0; i < 4; ++i)
        acc[i] = _mm_load_si128(reinterpret_cast<const __m128i *>(init) + i);
    const bool stream = copy && nt && (reinterpret_cast<uintptr_t>(dst) & 15) == 0;
    const Schedule s(len);
    size_t off = 0;
    for (size_t b = 0; b < s.blocks; ++b) {
        for (size_t k = 0; k < kStripesPerBlock; ++k, off += kStripe)
            sse2_round(acc, src + off, dst + off, kSecret + 8 * k, copy, stream);
        sse2_scramble(acc);
    }
    for (size_t k = 0; k < s.tail_stripes; ++k, off += kStripe)
        sse2_round(acc, src + off, dst + off, kSecret + 8 * k, copy, stream);
    if (copy)
        std::memcpy(dst + off, src + off, len - off);
    sse2_round(acc, src + len - kStripe, nullptr, kLastKey, false, false);
    alignas(16) uint64_t out[8];
    for (int i = 0; i < 4; ++i)
        _mm_store_si128(reinterpret_cast<__m128i *>(out) + i, acc[i]);
    return merge_accs(out, len);
}

void stream_sse2(char *d, const char *s, size_t n) noexcept {
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
}

// --- AVX2 ------------------------------------------------------------------------------

#define DAXKV_AVX2 __attribute__((target("avx2")))

DAXKV_AVX2 inline void avx2_round(__m256i acc[2], const char *src, char *dst, const uint8_t *key,
                                  bool copy, bool stream) noexcept {
    for (int i = 0; i < 2; ++i) {
        const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src) + i);
        if (copy) {
            if (stream)
                _mm256_stream_si256(reinterpret_cast<__m256i *>(dst) + i, d);
            else
                _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst) + i, d);
        }
        const __m256i dk =
            _mm256_xor_si256(d, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(key) + i));
        const __m256i product = _mm256_mul_epu32(dk, _mm256_srli_epi64(dk, 32));
        const __m256i swapped = _mm256_shuffle_epi32(d, _MM_SHUFFLE(1, 0, 3, 2));
        acc[i] = _mm256_add_epi64(product, _mm256_add_epi64(acc[i], swapped));
    }
}

DAXKV_AVX2 inline void avx2_scramble(__m256i acc[2]) noexcept {
    const __m256i prime = _mm256_set1_epi32(static_cast<int>(XXH_PRIME32_1));
    for (int i = 0; i < 2; ++i) {
        __m256i a = _mm256_xor_si256(acc[i], _mm256_srli_epi64(acc[i], 47));
        a = _mm256_xor_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(kScrambleKey) + i));
        const __m256i lo = _mm256_mul_epu32(a, prime);
        const __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), prime);
        acc[i] = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
    }
}

DAXKV_AVX2 uint64_t xxh3_long_avx2(char *dst, const char *src, size_t len, bool copy,
                                   bool nt) noexcept {
    alignas(32) uint64_t init[8] = XXH3_INIT_ACC;
    __m256i acc[2] = {_mm256_load_si256(reinterpret_cast<const __m256i *>(init)),
                      _mm256_load_si256(reinterpret_cast<const __m256i *>(init) + 1)};
    const bool stream = copy && nt && (reinterpret_cast<uintptr_t>(dst) & 31) == 0;
    const Schedule s(len);
    size_t off = 0;
    for (size_t b = 0; b < s.blocks; ++b) {
        for (size_t k = 0; k < kStripesPerBlock; ++k, off += kStripe)
            avx2_round(acc, src + off, dst + off, kSecret + 8 * k, copy, stream);
        avx2_scramble(acc);
    }
    for (size_t k = 0; k < s.tail_stripes; ++k, off += kStripe)
        avx2_round(acc, src + off, dst + off, kSecret + 8 * k, copy, stream);
    if (copy)
        std::memcpy(dst + off, src + off, len - off);
    avx2_round(acc, src + len - kStripe, nullptr, kLastKey, false, false);
    alignas(32) uint64_t out[8];
    _mm256_store_si256(reinterpret_cast<__m256i *>(out), acc[0]);
    _mm256_store_si256(reinterpret_cast<__m256i *>(out) + 1, acc[1]);
    return merge_accs(out, len);
}

DAXKV_AVX2 void stream_avx2(char *d, const char *s, size_t n) noexcept {
    for (; n >= 128; n -= 128, d += 128, s += 128) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 32));
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 64));
        const __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 96));
        _mm256_stream_si256(reinterpret_cast<__m256i *>(d), a);
        _mm256_stream_si256(reinterpret_cast<__m256i *>(d + 32), b);
        _mm256_stream_si256(reinterpret_cast<__m256i *>(d + 64), c);
        _mm256_stream_si256(reinterpret_cast<__m256i *>(d + 96), e);
    }
    std::memcpy(d, s, n);
}

// --- AVX-512 ---------------------------------------------------------------------------

// GCC 12 warns of "uninitialized" vectors inside its own AVX-512 intrinsic
// headers (the unused pass-through operand of the masked builtins they
// expand to); nothing of ours is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define DAXKV_AVX512 __attribute__((target("avx512f")))

DAXKV_AVX512 inline void avx512_round(__m512i &acc, const char *src, char *dst,
                                      const uint8_t *key, bool copy, bool stream) noexcept {
    const __m512i d = _mm512_loadu_si512(src);
    if (copy) {
        if (stream)
            _mm512_stream_si512(reinterpret_cast<__m512i *>(dst), d);
        else
            _mm512_storeu_si512(dst, d);
    }
    const __m512i dk = _mm512_xor_si512(d, _mm512_loadu_si512(key));
    const __m512i product = _mm512_mul_epu32(dk, _mm512_srli_epi64(dk, 32));
    const __m512i swapped = _mm512_shuffle_epi32(d, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(1, 0, 3, 2)));
    acc = _mm512_add_epi64(product, _mm512_add_epi64(acc, swapped));
}

DAXKV_AVX512 inline void avx512_scramble(__m512i &acc) noexcept {
    const __m512i prime = _mm512_set1_epi32(static_cast<int>(XXH_PRIME32_1));
    __m512i a = _mm512_xor_si512(acc, _mm512_srli_epi64(acc, 47));
    a = _mm512_xor_si512(a, _mm512_loadu_si512(kScrambleKey));
    const __m512i lo = _mm512_mul_epu32(a, prime);
    const __m512i hi = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), prime);
    acc = _mm512_add_epi64(lo, _mm512_slli_epi64(hi, 32));
}

DAXKV_AVX512 uint64_t xxh3_long_avx512(char *dst, const char *src, size_t len, bool copy,
                                       bool nt) noexcept {
    alignas(64) uint64_t init[8] = XXH3_INIT_ACC;
    __m512i acc = _mm512_load_si512(init);
    const bool stream = copy && nt && (reinterpret_cast<uintptr_t>(dst) & 63) == 0;
    const Schedule s(len);
    size_t off = 0;
    for (size_t b = 0; b < s.blocks; ++b) {
        for (size_t k = 0; k < kStripesPerBlock; ++k, off += kStripe)
            avx512_round(acc, src + off, dst + off, kSecret + 8 * k, copy, stream);
        avx512_scramble(acc);
    }
    for (size_t k = 0; k < s.tail_stripes; ++k, off += kStripe)
        avx512_round(acc, src + off, dst + off, kSecret + 8 * k, copy, stream);
    if (copy)
        std::memcpy(dst + off, src + off, len - off);
    avx512_round(acc, src + len - kStripe, nullptr, kLastKey, false, false);
    alignas(64) uint64_t out[8];
    _mm512_store_si512(out, acc);
    return merge_accs(out, len);
}

DAXKV_AVX512 void stream_avx512(char *d, const char *s, size_t n) noexcept {
    for (; n >= 256; n -= 256, d += 256, s += 256) {
        const __m512i a = _mm512_loadu_si512(s);
        const __m512i b = _mm512_loadu_si512(s + 64);
        const __m512i c = _mm512_loadu_si512(s + 128);
        const __m512i e = _mm512_loadu_si512(s + 192);
        _mm512_stream_si512(reinterpret_cast<__m512i *>(d), a);
        _mm512_stream_si512(reinterpret_cast<__m512i *>(d + 64), b);
        _mm512_stream_si512(reinterpret_cast<__m512i *>(d + 128), c);
        _mm512_stream_si512(reinterpret_cast<__m512i *>(d + 192), e);
    }
    std::memcpy(d, s, n);
}

#pragma GCC diagnostic pop

// --- dispatch --------------------------------------------------------------------------

bool os_saves(uint64_t mask) noexcept {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return false;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((static_cast<uint64_t>(hi) << 32 | lo) & mask) == mask;
}

bool supported(CopyIsa isa) noexcept {
    unsigned a, b, c, d;
    switch (isa) {
    case CopyIsa::sse2: return true;
    case CopyIsa::avx2:
        return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2) && os_saves(0x6);
    case CopyIsa::avx512:
        // ZMM state (opmask, upper halves, upper registers) as well as YMM.
        return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX512F) && os_saves(0xe6);
    }
    return false;
}

CopyIsa detect() noexcept {
    // The widest: on the machines measured (README, Speed) AVX-512 streams
    // as fast as AVX2 and hashes in the copy loop for free, where AVX2
    // loses about a tenth.
    if (supported(CopyIsa::avx512))
        return CopyIsa::avx512;
    if (supported(CopyIsa::avx2))
        return CopyIsa::avx2;
    return CopyIsa::sse2;
}

std::atomic<CopyIsa> g_isa{detect()};

uint64_t xxh3_long(char *dst, const char *src, size_t len, bool copy, bool nt) noexcept {
    switch (g_isa.load(std::memory_order_relaxed)) {
    case CopyIsa::avx512: return xxh3_long_avx512(dst, src, len, copy, nt);
    case CopyIsa::avx2: return xxh3_long_avx2(dst, src, len, copy, nt);
    case CopyIsa::sse2: break;
    }
    return xxh3_long_sse2(dst, src, len, copy, nt);
}

} // namespace

CopyIsa copy_isa() noexcept { return g_isa.load(std::memory_order_relaxed); }

const char *copy_isa_name(CopyIsa isa) noexcept {
    switch (isa) {
    case CopyIsa::sse2: return "sse2";
    case CopyIsa::avx2: return "avx2";
    case CopyIsa::avx512: return "avx512";
    }
    return "?";
}

bool copy_isa_supported(CopyIsa isa) noexcept { return supported(isa); }

void copy_bytes(void *dst, const void *src, size_t n, bool nt) noexcept {
    auto *d = static_cast<char *>(dst);
    auto *s = static_cast<const char *>(src);
    if (!nt || n < kStreamMin) {
        std::memcpy(d, s, n);
        return;
    }
    // Align the destination to a cache line, then stream whole lines.
    const size_t head = (64 - (reinterpret_cast<uintptr_t>(d) & 63)) & 63;
    std::memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    switch (g_isa.load(std::memory_order_relaxed)) {
    case CopyIsa::avx512: stream_avx512(d, s, n); return;
    case CopyIsa::avx2: stream_avx2(d, s, n); return;
    case CopyIsa::sse2: stream_sse2(d, s, n); return;
    }
}

uint64_t copy_and_hash(void *dst, const void *src, size_t n, bool nt) noexcept {
    if (n < kStreamMin) {
        std::memcpy(dst, src, n);
        return XXH3_64bits(src, n);
    }
    return xxh3_long(static_cast<char *>(dst), static_cast<const char *>(src), n, true, nt);
}

uint64_t hash_bytes_xxh3(const void *p, size_t n) noexcept {
    if (n < kStreamMin)
        return XXH3_64bits(p, n);
    return xxh3_long(nullptr, static_cast<const char *>(p), n, false, false);
}

namespace testing {
void force_copy_isa(CopyIsa isa) noexcept { g_isa.store(isa, std::memory_order_relaxed); }
void reset_copy_isa() noexcept { g_isa.store(detect(), std::memory_order_relaxed); }
} // namespace testing

} // namespace platform
} // namespace daxkv
