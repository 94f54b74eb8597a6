// Bulk copies at the memory system's speed: routines chosen once per CPU
// (AVX-512, AVX2, or the x86-64 baseline SSE2), and the entry checksum
// (XXH3-64) computed inside the copy loop, on the bytes as they pass
// through the registers, instead of in a second pass over them.
//
// Every routine gives the same bytes and the same hash on every ISA; the
// hash is exactly xxhash's XXH3_64bits() of the bytes (the unit tests
// compare them), so arenas written with and without these routines check
// the same way.
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxkv {
namespace platform {

enum class CopyIsa { sse2, avx2, avx512 };

// The routines in use: the widest the CPU and the OS support.
CopyIsa copy_isa() noexcept;
const char *copy_isa_name(CopyIsa isa) noexcept;
// Whether this CPU (and OS) can run isa.
bool copy_isa_supported(CopyIsa isa) noexcept;

// Copy n bytes; stream (non-temporal stores, no read for ownership of the
// destination's lines) when nt, a large copy as several interleaved lanes
// (copy_streams). No fence: call store_fence() (cpu.hpp) before another
// thread may read dst. Ranges must not overlap.
void copy_bytes(void *dst, const void *src, size_t n, bool nt) noexcept;

// Copy n bytes and return XXH3_64bits() of them, in one pass.
uint64_t copy_and_hash(void *dst, const void *src, size_t n, bool nt) noexcept;

// One copy of a copy_streams() call: len bytes from src to dst, with
// streaming stores when nt; with hash set, XXH3_64bits() of the bytes is
// stored there.
struct CopyStream {
    void *dst;
    const void *src;
    size_t len;
    uint64_t *hash;
    bool nt;
};

// Up to this many copies advance together.
constexpr size_t kCopyLanes = 8;

// Copy (and hash) every stream, as copy_bytes / copy_and_hash would, but
// kCopyLanes at a time, interleaved 256 bytes at a time: the memory system
// serves several streams at once faster than one (its prefetchers follow
// each; none has to start again at every page). A plain copy of 64 KiB or
// more is cut into kCopyLanes parts of its own. No fence (see copy_bytes).
// Ranges must not overlap.
void copy_streams(const CopyStream *streams, size_t n) noexcept;

// XXH3_64bits() of n bytes with this CPU's widest routine.
uint64_t hash_bytes_xxh3(const void *p, size_t n) noexcept;

// Below this many bytes the streaming and fused routines hand over to
// memcpy and the one-shot XXH3 (their set-up costs more than they save,
// and short XXH3 inputs use other formulas).
constexpr size_t kStreamMin = 4096;

namespace testing {
// Run the routines of isa (which must be supported) instead of the
// detected ones; for the tests that check every ISA against the others.
void force_copy_isa(CopyIsa isa) noexcept;
void reset_copy_isa() noexcept;
} // namespace testing

} // namespace platform
} // namespace daxkv
