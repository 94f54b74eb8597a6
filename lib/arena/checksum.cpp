#include "arena/checksum.hpp"

#include "arena/format.hpp"
#include "platform/copy.hpp"

#define XXH_STATIC_LINKING_ONLY // XXH3_state_t on the stack
#include <xxhash.h>

namespace daxkv {
namespace arena {

// The same XXH3-64 as xxhash's XXH3_64bits() (the unit tests compare them),
// with this CPU's widest routine: the packaged libxxhash is built for the
// x86-64 baseline, and its SSE2 loop hashes a block in the cache at about a
// fifth of the AVX-512 one's speed. Recovery, a lease or get with
// verify=read and a reservation's commit hash whole values here.
uint64_t block_hash(const void *p, size_t n) noexcept { return platform::hash_bytes_xxh3(p, n); }

uint64_t combine_block_hashes(const uint64_t *h, size_t nblocks) noexcept {
    return XXH3_64bits(h, nblocks * sizeof(uint64_t));
}

uint64_t value_checksum(const void *p, size_t n) noexcept {
    // Streaming over the block hashes gives the same result as
    // combine_block_hashes() without an allocation.
    auto *c = static_cast<const char *>(p);
    size_t blocks = hash_block_count(n);
    if (blocks == 1) {
        // One block: no streaming state (the common case for small values).
        uint64_t h = block_hash(c, n);
        return XXH3_64bits(&h, sizeof h);
    }
    XXH3_state_t state;
    XXH3_64bits_reset(&state);
    for (size_t b = 0; b < blocks; ++b) {
        size_t off = b * kHashBlock;
        size_t len = n - off < kHashBlock ? n - off : kHashBlock;
        uint64_t h = block_hash(c + off, len);
        XXH3_64bits_update(&state, &h, sizeof h);
    }
    return XXH3_64bits_digest(&state);
}

} // namespace arena
} // namespace daxkv
