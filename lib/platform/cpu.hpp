// CPU primitives for persistence and fast copies: cache-line write-back
// chosen at run time (CLWB, else CLFLUSHOPT, else CLFLUSH) and
// non-temporal copies for large stores into the arena.
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxkv {
namespace platform {

enum class FlushKind { clwb, clflushopt, clflush };

FlushKind flush_kind() noexcept;
const char *flush_kind_name(FlushKind k) noexcept;

// Write back [p, p+n) from the CPU caches (no fence).
void flush_range(const void *p, size_t n) noexcept;
// Order the write-backs and non-temporal stores before later stores.
void store_fence() noexcept;

// Copy with non-temporal stores to dst (bypassing the cache); ends with a
// store fence. Falls back to memcpy for small or unaligned tails.
void memcpy_nontemporal(void *dst, const void *src, size_t n) noexcept;

} // namespace platform
} // namespace daxkv
