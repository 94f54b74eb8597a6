#include "platform/copy.hpp"

#include <algorithm>
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

// XXH3's merge of the 8 accumulators into the 64-bit result, each already
// xored with its word of the secret (kMergeKey).
inline uint64_t merge_keyed(const uint64_t k[8], size_t len) noexcept {
    uint64_t h = static_cast<uint64_t>(len) * XXH_PRIME64_1;
    for (int i = 0; i < 4; ++i)
        h += mul128_fold64(k[2 * i], k[2 * i + 1]);
    h ^= h >> 37;
    h *= 0x165667919E3779F9ULL;
    h ^= h >> 32;
    return h;
}

const uint8_t *const kMergeKey = kSecret + kMergeAccsStart;

uint64_t merge_accs(const uint64_t acc[8], size_t len) noexcept {
    uint64_t k[8];
    for (int i = 0; i < 8; ++i)
        k[i] = acc[i] ^ read64(kMergeKey + 8 * i);
    return merge_keyed(k, len);
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

// --- lanes: several copies interleaved (copy_streams) ----------------------------------
//
// Up to kCopyLanes copies advance together in rounds: in a round every lane
// moves the same number of bytes, kInterleave of each in turn, so that the
// memory system sees all their streams at once. The per-ISA round routines
// below are the inner loops; copy_streams (at the end) starts, refills and
// ends the lanes.

// Bytes of one lane copied before the next lane's turn: four lines, short
// enough that every lane's stream stays busy, long enough for whole-line
// bursts (on the machines measured, README "Speed", 256 bytes beat 1 KiB).
constexpr size_t kInterleave = 256;
// How far ahead of a lane's reads its source lines are asked for: the
// hardware prefetchers alone, following eight streams, leave the loads
// waiting (on the machines measured, README "Speed", asking 1 KiB ahead
// gains 5 to 10%, most of it in the hashed copies).
constexpr size_t kPrefetchAhead = 1024;
constexpr size_t kInterleaveStripes = kInterleave / kStripe;

struct Lane {
    char *dst;          // where the next bytes go (hashed: the next stripe's)
    const char *src;    // where they come from
    size_t left;        // plain: bytes of whole lines left; hashed: stripes left
    size_t head, tail;  // plain: bytes before the first whole line; both: bytes after the last
    bool stream;        // non-temporal stores
    unsigned phase;     // hashed: stripes into the current 1 KiB block
    uint64_t *hash;     // where the hash goes; null for a plain copy
    // Hashed, streamed to a destination off the line: the destination's
    // lines start this many bytes into the stripes, and lines of them are
    // left to copy (0 otherwise: the stripes are copied as they are hashed).
    size_t shift, lines;
    char *out;          // the whole output, the input and its length (the
    const char *input;  // last stripe, the merge, the bytes after the
    size_t len;         // last line)
    alignas(64) uint64_t acc[8];
};

// How a hashed round stores the stripes it hashes: plainly, streaming, or
// not at all (a shifted lane copies its lines apart, Lane::shift).
enum class Stores { plain, stream, none };

// After a round of n bytes (plain) or n stripes (hashed).
inline void advance(Lane *const *lanes, size_t nl, size_t bytes, size_t n) noexcept {
    for (size_t l = 0; l < nl; ++l) {
        lanes[l]->dst += bytes;
        lanes[l]->src += bytes;
        lanes[l]->left -= n;
    }
}

// --- SSE2 (every x86-64 CPU) -------------------------------------------------------

inline void sse2_round(__m128i acc[4], const char *src, char *dst, const uint8_t *key,
                       bool copy, bool stream) noexcept {
#pragma GCC unroll 4
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
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
        __m128i a = _mm_xor_si128(acc[i], _mm_srli_epi64(acc[i], 47));
        a = _mm_xor_si128(a, _mm_loadu_si128(reinterpret_cast<const __m128i *>(kScrambleKey) + i));
        const __m128i lo = _mm_mul_epu32(a, prime);
        const __m128i hi = _mm_mul_epu32(_mm_shuffle_epi32(a, _MM_SHUFFLE(0, 3, 0, 1)), prime);
        acc[i] = _mm_add_epi64(lo, _mm_slli_epi64(hi, 32));
    }
}

// XXH3_64bits() of len > 240 bytes (hash_bytes_xxh3).
uint64_t xxh3_long_sse2(const char *src, size_t len) noexcept {
    alignas(16) uint64_t init[8] = XXH3_INIT_ACC;
    __m128i acc[4];
    for (int i = 0; i < 4; ++i)
        acc[i] = _mm_load_si128(reinterpret_cast<const __m128i *>(init) + i);
    const Schedule s(len);
    size_t off = 0;
    for (size_t b = 0; b < s.blocks; ++b) {
        for (size_t k = 0; k < kStripesPerBlock; ++k, off += kStripe)
            sse2_round(acc, src + off, nullptr, kSecret + 8 * k, false, false);
        sse2_scramble(acc);
    }
    for (size_t k = 0; k < s.tail_stripes; ++k, off += kStripe)
        sse2_round(acc, src + off, nullptr, kSecret + 8 * k, false, false);
    sse2_round(acc, src + len - kStripe, nullptr, kLastKey, false, false);
    alignas(16) uint64_t out[8];
    for (int i = 0; i < 4; ++i)
        _mm_store_si128(reinterpret_cast<__m128i *>(out) + i, acc[i]);
    return merge_accs(out, len);
}

// The rounds of copy_streams: every lane given advances by bytes (plain;
// a multiple of 64) or by stripes (hashed), kInterleave bytes at a time.
void round_copy_sse2(Lane *const *lanes, size_t nl, size_t bytes) noexcept {
    for (size_t off = 0; off < bytes; off += kInterleave) {
        const size_t n = std::min(kInterleave, bytes - off);
        for (size_t l = 0; l < nl; ++l) {
            const char *s = lanes[l]->src + off;
            char *d = lanes[l]->dst + off;
            for (size_t b = 0; b < n; b += 64) {
                __builtin_prefetch(s + b + kPrefetchAhead);
                for (int i = 0; i < 4; ++i) {
                    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + b) + i);
                    if (lanes[l]->stream)
                        _mm_stream_si128(reinterpret_cast<__m128i *>(d + b) + i, v);
                    else
                        _mm_storeu_si128(reinterpret_cast<__m128i *>(d + b) + i, v);
                }
            }
        }
    }
    advance(lanes, nl, bytes, bytes);
}

// A lane's turn in a hashed round: n stripes from src to dst. The lane's
// fields are taken into locals first: the stores to dst may alias a Lane
// as far as the compiler knows, so a loop on x.phase, x.src and x.dst
// reloads them after every stripe (and carries x.phase through a store
// and a load), which halved the loop's speed.
template <Stores kStores>
inline void hash_turn_sse2(__m128i acc[4], const char *src, char *dst, size_t n,
                           unsigned &phase) noexcept {
    for (size_t j = 0, off = 0; j < n; ++j, off += kStripe) {
        __builtin_prefetch(src + off + kPrefetchAhead);
        sse2_round(acc, src + off, dst + off, kSecret + 8 * phase, kStores != Stores::none,
                   kStores == Stores::stream);
        if (++phase == kStripesPerBlock) {
            phase = 0;
            sse2_scramble(acc);
        }
    }
}

// Whole lines to a line-aligned destination, streaming (a shifted lane's).
inline void stream_lines_sse2(const char *src, char *dst, size_t lines) noexcept {
    for (size_t off = 0; off < lines * 64; off += 16)
        _mm_stream_si128(reinterpret_cast<__m128i *>(dst + off),
                         _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + off)));
}

void round_hash_sse2(Lane *const *lanes, size_t nl, size_t stripes) noexcept {
    for (size_t k = 0; k < stripes; k += kInterleaveStripes) {
        const size_t n = std::min(kInterleaveStripes, stripes - k);
        for (size_t l = 0; l < nl; ++l) {
            Lane &x = *lanes[l];
            __m128i acc[4];
            for (int i = 0; i < 4; ++i)
                acc[i] = _mm_load_si128(reinterpret_cast<const __m128i *>(x.acc) + i);
            unsigned phase = x.phase;
            const char *s = x.src + k * kStripe;
            char *d = x.dst + k * kStripe;
            if (x.shift) {
                hash_turn_sse2<Stores::none>(acc, s, d, n, phase);
                const size_t lines = std::min(n, x.lines);
                stream_lines_sse2(s + x.shift, d + x.shift, lines);
                x.lines -= lines;
            } else if (x.stream) {
                hash_turn_sse2<Stores::stream>(acc, s, d, n, phase);
            } else {
                hash_turn_sse2<Stores::plain>(acc, s, d, n, phase);
            }
            x.phase = phase;
            for (int i = 0; i < 4; ++i)
                _mm_store_si128(reinterpret_cast<__m128i *>(x.acc) + i, acc[i]);
        }
    }
    advance(lanes, nl, stripes * kStripe, stripes);
}

// The last stripe (the input's final 64 bytes, with their own key) and the
// merge: the end of a hashed lane.
uint64_t finish_sse2(Lane &x) noexcept {
    __m128i acc[4];
    for (int i = 0; i < 4; ++i)
        acc[i] = _mm_load_si128(reinterpret_cast<const __m128i *>(x.acc) + i);
    sse2_round(acc, x.input + x.len - kStripe, nullptr, kLastKey, false, false);
    for (int i = 0; i < 4; ++i)
        _mm_store_si128(reinterpret_cast<__m128i *>(x.acc) + i, acc[i]);
    return merge_accs(x.acc, x.len);
}

// --- AVX2 ------------------------------------------------------------------------------

#define DAXKV_AVX2 __attribute__((target("avx2")))

DAXKV_AVX2 inline void avx2_round(__m256i acc[2], const char *src, char *dst, const uint8_t *key,
                                  bool copy, bool stream) noexcept {
#pragma GCC unroll 4
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
#pragma GCC unroll 4
    for (int i = 0; i < 2; ++i) {
        __m256i a = _mm256_xor_si256(acc[i], _mm256_srli_epi64(acc[i], 47));
        a = _mm256_xor_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(kScrambleKey) + i));
        const __m256i lo = _mm256_mul_epu32(a, prime);
        const __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), prime);
        acc[i] = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
    }
}

// The merge straight from the registers: read back from memory, the
// accumulators' wide stores do not forward to 8-byte loads, and every
// value's end waited for them (a fifth of a 4 KiB fused copy). The upper
// halves are cleared before the scalar part: GCC leaves them dirty across
// a call to a function that does not use them, and the SSE code of the
// caller then pays the dirty-upper-state penalty.
DAXKV_AVX2 uint64_t merge_avx2(__m256i acc0, __m256i acc1, size_t len) noexcept {
    const __m256i *key = reinterpret_cast<const __m256i *>(kMergeKey);
    const __m256i k0 = _mm256_xor_si256(acc0, _mm256_loadu_si256(key));
    const __m256i k1 = _mm256_xor_si256(acc1, _mm256_loadu_si256(key + 1));
    uint64_t k[8];
    k[0] = _mm256_extract_epi64(k0, 0);
    k[1] = _mm256_extract_epi64(k0, 1);
    k[2] = _mm256_extract_epi64(k0, 2);
    k[3] = _mm256_extract_epi64(k0, 3);
    k[4] = _mm256_extract_epi64(k1, 0);
    k[5] = _mm256_extract_epi64(k1, 1);
    k[6] = _mm256_extract_epi64(k1, 2);
    k[7] = _mm256_extract_epi64(k1, 3);
    _mm256_zeroupper();
    return merge_keyed(k, len);
}

DAXKV_AVX2 uint64_t xxh3_long_avx2(const char *src, size_t len) noexcept {
    alignas(32) uint64_t init[8] = XXH3_INIT_ACC;
    __m256i acc[2] = {_mm256_load_si256(reinterpret_cast<const __m256i *>(init)),
                      _mm256_load_si256(reinterpret_cast<const __m256i *>(init) + 1)};
    const Schedule s(len);
    size_t off = 0;
    for (size_t b = 0; b < s.blocks; ++b) {
        for (size_t k = 0; k < kStripesPerBlock; ++k, off += kStripe)
            avx2_round(acc, src + off, nullptr, kSecret + 8 * k, false, false);
        avx2_scramble(acc);
    }
    for (size_t k = 0; k < s.tail_stripes; ++k, off += kStripe)
        avx2_round(acc, src + off, nullptr, kSecret + 8 * k, false, false);
    avx2_round(acc, src + len - kStripe, nullptr, kLastKey, false, false);
    return merge_avx2(acc[0], acc[1], len);
}

DAXKV_AVX2 void round_copy_avx2(Lane *const *lanes, size_t nl, size_t bytes) noexcept {
    for (size_t off = 0; off < bytes; off += kInterleave) {
        const size_t n = std::min(kInterleave, bytes - off);
        for (size_t l = 0; l < nl; ++l) {
            const char *s = lanes[l]->src + off;
            char *d = lanes[l]->dst + off;
            for (size_t b = 0; b < n; b += 64) {
                __builtin_prefetch(s + b + kPrefetchAhead);
                for (int i = 0; i < 2; ++i) {
                    const __m256i v =
                        _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + b) + i);
                    if (lanes[l]->stream)
                        _mm256_stream_si256(reinterpret_cast<__m256i *>(d + b) + i, v);
                    else
                        _mm256_storeu_si256(reinterpret_cast<__m256i *>(d + b) + i, v);
                }
            }
        }
    }
    advance(lanes, nl, bytes, bytes);
}

// A lane's turn (see hash_turn_sse2).
template <Stores kStores>
DAXKV_AVX2 inline void hash_turn_avx2(__m256i acc[2], const char *src, char *dst, size_t n,
                                      unsigned &phase) noexcept {
    for (size_t j = 0, off = 0; j < n; ++j, off += kStripe) {
        __builtin_prefetch(src + off + kPrefetchAhead);
        avx2_round(acc, src + off, dst + off, kSecret + 8 * phase, kStores != Stores::none,
                   kStores == Stores::stream);
        if (++phase == kStripesPerBlock) {
            phase = 0;
            avx2_scramble(acc);
        }
    }
}

DAXKV_AVX2 inline void stream_lines_avx2(const char *src, char *dst, size_t lines) noexcept {
    for (size_t off = 0; off < lines * 64; off += 32)
        _mm256_stream_si256(reinterpret_cast<__m256i *>(dst + off),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + off)));
}

DAXKV_AVX2 void round_hash_avx2(Lane *const *lanes, size_t nl, size_t stripes) noexcept {
    for (size_t k = 0; k < stripes; k += kInterleaveStripes) {
        const size_t n = std::min(kInterleaveStripes, stripes - k);
        for (size_t l = 0; l < nl; ++l) {
            Lane &x = *lanes[l];
            __m256i acc[2] = {_mm256_load_si256(reinterpret_cast<const __m256i *>(x.acc)),
                              _mm256_load_si256(reinterpret_cast<const __m256i *>(x.acc) + 1)};
            unsigned phase = x.phase;
            const char *s = x.src + k * kStripe;
            char *d = x.dst + k * kStripe;
            if (x.shift) {
                hash_turn_avx2<Stores::none>(acc, s, d, n, phase);
                const size_t lines = std::min(n, x.lines);
                stream_lines_avx2(s + x.shift, d + x.shift, lines);
                x.lines -= lines;
            } else if (x.stream) {
                hash_turn_avx2<Stores::stream>(acc, s, d, n, phase);
            } else {
                hash_turn_avx2<Stores::plain>(acc, s, d, n, phase);
            }
            x.phase = phase;
            _mm256_store_si256(reinterpret_cast<__m256i *>(x.acc), acc[0]);
            _mm256_store_si256(reinterpret_cast<__m256i *>(x.acc) + 1, acc[1]);
        }
    }
    advance(lanes, nl, stripes * kStripe, stripes);
}

DAXKV_AVX2 uint64_t finish_avx2(Lane &x) noexcept {
    __m256i acc[2] = {_mm256_load_si256(reinterpret_cast<const __m256i *>(x.acc)),
                      _mm256_load_si256(reinterpret_cast<const __m256i *>(x.acc) + 1)};
    avx2_round(acc, x.input + x.len - kStripe, nullptr, kLastKey, false, false);
    return merge_avx2(acc[0], acc[1], x.len);
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

// The merge from the registers (see merge_avx2).
DAXKV_AVX512 uint64_t merge_avx512(__m512i acc, size_t len) noexcept {
    return merge_avx2(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1), len);
}

DAXKV_AVX512 uint64_t xxh3_long_avx512(const char *src, size_t len) noexcept {
    alignas(64) uint64_t init[8] = XXH3_INIT_ACC;
    __m512i acc = _mm512_load_si512(init);
    const Schedule s(len);
    size_t off = 0;
    for (size_t b = 0; b < s.blocks; ++b) {
        for (size_t k = 0; k < kStripesPerBlock; ++k, off += kStripe)
            avx512_round(acc, src + off, nullptr, kSecret + 8 * k, false, false);
        avx512_scramble(acc);
    }
    for (size_t k = 0; k < s.tail_stripes; ++k, off += kStripe)
        avx512_round(acc, src + off, nullptr, kSecret + 8 * k, false, false);
    avx512_round(acc, src + len - kStripe, nullptr, kLastKey, false, false);
    return merge_avx512(acc, len);
}

DAXKV_AVX512 void round_copy_avx512(Lane *const *lanes, size_t nl, size_t bytes) noexcept {
    for (size_t off = 0; off < bytes; off += kInterleave) {
        const size_t n = std::min(kInterleave, bytes - off);
        for (size_t l = 0; l < nl; ++l) {
            const char *s = lanes[l]->src + off;
            char *d = lanes[l]->dst + off;
            for (size_t b = 0; b < n; b += 64) {
                __builtin_prefetch(s + b + kPrefetchAhead);
                const __m512i v = _mm512_loadu_si512(s + b);
                if (lanes[l]->stream)
                    _mm512_stream_si512(reinterpret_cast<__m512i *>(d + b), v);
                else
                    _mm512_storeu_si512(d + b, v);
            }
        }
    }
    advance(lanes, nl, bytes, bytes);
}

// A lane's turn (see hash_turn_sse2).
template <Stores kStores>
DAXKV_AVX512 inline void hash_turn_avx512(__m512i &acc, const char *src, char *dst, size_t n,
                                          unsigned &phase) noexcept {
    for (size_t j = 0, off = 0; j < n; ++j, off += kStripe) {
        __builtin_prefetch(src + off + kPrefetchAhead);
        avx512_round(acc, src + off, dst + off, kSecret + 8 * phase, kStores != Stores::none,
                     kStores == Stores::stream);
        if (++phase == kStripesPerBlock) {
            phase = 0;
            avx512_scramble(acc);
        }
    }
}

DAXKV_AVX512 inline void stream_lines_avx512(const char *src, char *dst, size_t lines) noexcept {
    for (size_t off = 0; off < lines * 64; off += 64)
        _mm512_stream_si512(reinterpret_cast<__m512i *>(dst + off), _mm512_loadu_si512(src + off));
}

DAXKV_AVX512 void round_hash_avx512(Lane *const *lanes, size_t nl, size_t stripes) noexcept {
    for (size_t k = 0; k < stripes; k += kInterleaveStripes) {
        const size_t n = std::min(kInterleaveStripes, stripes - k);
        for (size_t l = 0; l < nl; ++l) {
            Lane &x = *lanes[l];
            __m512i acc = _mm512_load_si512(x.acc);
            unsigned phase = x.phase;
            const char *s = x.src + k * kStripe;
            char *d = x.dst + k * kStripe;
            if (x.shift) {
                hash_turn_avx512<Stores::none>(acc, s, d, n, phase);
                const size_t lines = std::min(n, x.lines);
                stream_lines_avx512(s + x.shift, d + x.shift, lines);
                x.lines -= lines;
            } else if (x.stream) {
                hash_turn_avx512<Stores::stream>(acc, s, d, n, phase);
            } else {
                hash_turn_avx512<Stores::plain>(acc, s, d, n, phase);
            }
            x.phase = phase;
            _mm512_store_si512(x.acc, acc);
        }
    }
    advance(lanes, nl, stripes * kStripe, stripes);
}

DAXKV_AVX512 uint64_t finish_avx512(Lane &x) noexcept {
    __m512i acc = _mm512_load_si512(x.acc);
    avx512_round(acc, x.input + x.len - kStripe, nullptr, kLastKey, false, false);
    return merge_avx512(acc, x.len);
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

uint64_t xxh3_long(const char *src, size_t len) noexcept {
    switch (g_isa.load(std::memory_order_relaxed)) {
    case CopyIsa::avx512: return xxh3_long_avx512(src, len);
    case CopyIsa::avx2: return xxh3_long_avx2(src, len);
    case CopyIsa::sse2: break;
    }
    return xxh3_long_sse2(src, len);
}

// --- copy_streams: lanes started, refilled and ended --------------------------------

struct Kernels {
    void (*copy)(Lane *const *lanes, size_t nl, size_t bytes) noexcept;
    void (*hash)(Lane *const *lanes, size_t nl, size_t stripes) noexcept;
    uint64_t (*finish)(Lane &lane) noexcept;
};

const Kernels &kernels() noexcept {
    static const Kernels sse2{round_copy_sse2, round_hash_sse2, finish_sse2};
    static const Kernels avx2{round_copy_avx2, round_hash_avx2, finish_avx2};
    static const Kernels avx512{round_copy_avx512, round_hash_avx512, finish_avx512};
    switch (g_isa.load(std::memory_order_relaxed)) {
    case CopyIsa::avx512: return avx512;
    case CopyIsa::avx2: return avx2;
    case CopyIsa::sse2: break;
    }
    return sse2;
}

// A plain copy at least this long is cut into kCopyLanes lanes of its own.
constexpr size_t kSplitMin = 64 * 1024;
static_assert(kSplitMin / kCopyLanes >= 4096, "every part of a split copy is a lane's worth");

// Lines of a lane's source prefetched when it starts: as far ahead as the
// rounds then keep asking (a lane of 64 KiB waits noticeably for its first
// kilobyte otherwise).
constexpr size_t kStartLines = kPrefetchAhead / 64;

void start_lane(Lane &x, const CopyStream &c) noexcept {
    x.dst = x.out = static_cast<char *>(c.dst);
    x.src = x.input = static_cast<const char *>(c.src);
    x.len = c.len;
    x.hash = c.hash;
    x.head = x.shift = x.lines = 0;
    if (x.hash) {
        // The stripes follow the source. Streaming stores need whole lines
        // of the destination: when its lines fall elsewhere, the bytes
        // before its first line are copied now, its lines in each turn
        // apart from the stripes (one more load each, from the cache), and
        // the rest at the end. Storing the stripes plainly instead (one
        // read for ownership of every line) ran restores with verify=read
        // into a malloc'ed buffer at less than half the speed.
        const size_t to_line = (64 - (reinterpret_cast<uintptr_t>(x.dst) & 63)) & 63;
        x.stream = c.nt && to_line == 0;
        const Schedule sch(x.len);
        x.left = sch.blocks * kStripesPerBlock + sch.tail_stripes;
        x.tail = x.len - sch.covered;
        if (c.nt && to_line) {
            x.shift = to_line;
            x.lines = (x.len - to_line) / 64; // never more than the stripes
            x.tail = x.len - to_line - x.lines * 64;
            std::memcpy(x.dst, x.src, to_line);
        }
        x.phase = 0;
        const uint64_t init[8] = XXH3_INIT_ACC;
        std::memcpy(x.acc, init, sizeof x.acc);
    } else {
        // Streaming: the bytes before the destination's first whole line
        // (the head) are copied plainly, then whole lines.
        x.stream = c.nt;
        x.head = x.stream ? (64 - (reinterpret_cast<uintptr_t>(x.dst) & 63)) & 63 : 0;
        x.left = (x.len - x.head) / 64 * 64;
        x.tail = x.len - x.head - x.left;
    }
    // The source's first lines are asked for now and read once every new
    // lane has asked for its own: a batch of small values waits for their
    // first misses together, not in turn.
    for (size_t i = 0; i < kStartLines * 64 && i < x.len; i += 64)
        __builtin_prefetch(x.src + i);
}

void copy_head(Lane &x) noexcept {
    std::memcpy(x.dst, x.src, x.head);
    x.dst += x.head;
    x.src += x.head;
}

// Every line (or stripe) of the lane is copied: the bytes after them, and
// the hash.
void end_lane(Lane &x, const Kernels &k) noexcept {
    std::memcpy(x.out + x.len - x.tail, x.input + x.len - x.tail, x.tail);
    if (x.hash)
        *x.hash = k.finish(x);
}

// The streams one after another, a plain one of kSplitMin or more as
// kCopyLanes parts of it; a short one (below kStreamMin) is done at once.
class StreamCursor {
public:
    StreamCursor(const CopyStream *s, size_t n) noexcept : s_(s), n_(n) {}

    // The next stream (or part) long enough for a lane; false at the end.
    bool next(CopyStream &out) noexcept {
        while (i_ < n_) {
            const CopyStream &c = s_[i_];
            if (c.len < kStreamMin) {
                ++i_;
                short_copy(c);
                continue;
            }
            if (c.hash || c.len < kSplitMin) {
                ++i_;
                out = c;
                return true;
            }
            // Parts on 4 KiB boundaries; the last takes the rest.
            const size_t per = c.len / kCopyLanes / 4096 * 4096;
            const size_t from = part_ * per;
            out = c;
            out.dst = static_cast<char *>(c.dst) + from;
            out.src = static_cast<const char *>(c.src) + from;
            out.len = part_ + 1 == kCopyLanes ? c.len - from : per;
            if (++part_ == kCopyLanes) {
                part_ = 0;
                ++i_;
            }
            return true;
        }
        return false;
    }

private:
    static void short_copy(const CopyStream &c) noexcept {
        std::memcpy(c.dst, c.src, c.len);
        if (c.hash)
            *c.hash = XXH3_64bits(c.src, c.len);
    }

    const CopyStream *s_;
    size_t n_, i_ = 0;
    unsigned part_ = 0;
};

} // namespace

void copy_streams(const CopyStream *streams, size_t n) noexcept {
    const Kernels &k = kernels();
    StreamCursor cursor(streams, n);
    Lane lanes[kCopyLanes];
    Lane *plain[kCopyLanes], *hashed[kCopyLanes];
    size_t active = 0;
    CopyStream next;
    for (;;) {
        const size_t old = active;
        while (active < kCopyLanes && cursor.next(next))
            start_lane(lanes[active++], next);
        for (size_t l = old; l < active; ++l)
            copy_head(lanes[l]);
        if (!active)
            return;
        // A round: every lane of a kind moves as far as the shortest of
        // them can; that one (at least) then ends, and a new lane takes
        // its place.
        size_t np = 0, nh = 0, bytes = SIZE_MAX, stripes = SIZE_MAX;
        for (size_t l = 0; l < active; ++l) {
            Lane &x = lanes[l];
            if (x.hash) {
                hashed[nh++] = &x;
                stripes = std::min(stripes, x.left);
            } else {
                plain[np++] = &x;
                bytes = std::min(bytes, x.left);
            }
        }
        if (np)
            k.copy(plain, np, bytes);
        if (nh)
            k.hash(hashed, nh, stripes);
        for (size_t l = 0; l < active;) {
            if (lanes[l].left) {
                ++l;
                continue;
            }
            end_lane(lanes[l], k);
            if (l != --active)
                lanes[l] = lanes[active];
        }
    }
}

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
    if (!nt || n < kStreamMin) {
        std::memcpy(dst, src, n);
        return;
    }
    const CopyStream one{dst, src, n, nullptr, true};
    copy_streams(&one, 1);
}

uint64_t copy_and_hash(void *dst, const void *src, size_t n, bool nt) noexcept {
    uint64_t h = 0;
    const CopyStream one{dst, src, n, &h, nt};
    copy_streams(&one, 1);
    return h;
}

uint64_t hash_bytes_xxh3(const void *p, size_t n) noexcept {
    if (n < kStreamMin)
        return XXH3_64bits(p, n);
    return xxh3_long(static_cast<const char *>(p), n);
}

namespace testing {
void force_copy_isa(CopyIsa isa) noexcept { g_isa.store(isa, std::memory_order_relaxed); }
void reset_copy_isa() noexcept { g_isa.store(detect(), std::memory_order_relaxed); }
} // namespace testing

} // namespace platform
} // namespace daxkv
