// Entry checksums (XXH3-64, block-wise; see format.hpp kHashBlock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace daxkv {
namespace arena {

// Checksum of a whole value in one call.
uint64_t value_checksum(const void *p, size_t n) noexcept;
// Combine per-block hashes (each XXH3-64 of one kHashBlock block, the last
// one possibly short) into the value checksum.
uint64_t combine_block_hashes(const uint64_t *h, size_t nblocks) noexcept;
uint64_t block_hash(const void *p, size_t n) noexcept;
inline size_t hash_block_count(uint64_t len) noexcept {
    return len ? static_cast<size_t>((len + (1u << 20) - 1) >> 20) : 1;
}

} // namespace arena
} // namespace daxkv
