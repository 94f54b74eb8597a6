// The batch item, the one type lib/store shares with the public header:
// a batch is the caller's array of daxkv_item, which the store reads and
// whose statuses it writes in place, so copying it into a type of the
// store's own would cost a pass over every batch. Nothing else of daxkv.h
// is used in lib/store (lib/capi converts everything else).
//
// Also here: the flags the store's calls take, the key rule, and the one
// helper through which every batch gives each item its status.
#pragma once

#include <cstddef>
#include <string_view>

#include "arena/format.hpp"
#include "daxkv.h" // for daxkv_item only
#include "internal/error.hpp"

namespace daxkv {

// Flags of the store's calls: the values of DAXKV_REPLACE, DAXKV_FORCE,
// DAXKV_PREFIX, DAXKV_PIN and DAXKV_CUDA_MAPPED (lib/capi checks each with
// a static_assert and passes the caller's flags through, once it has
// refused the ones a call does not take).
enum CallFlag : unsigned {
    kReplace = 1u << 0,
    kForce = 1u << 1,
    kPrefix = 1u << 2,
    kPin = 1u << 3,
    kCudaMapped = 1u << 4,
};

// The key rule: 1..kKeyMax bytes, not NULL. Throws Error(-EINVAL). lib/capi
// applies it to the key of a single-key call, every batch to each item's.
inline void check_key(const void *key, size_t key_len) {
    if (!key)
        fail(-EINVAL, "key is NULL");
    if (key_len == 0 || key_len > arena::kKeyMax)
        fail(-EINVAL, "key length %zu is not in 1..%u", key_len, arena::kKeyMax);
}

// check_key of item i of a batch, and that its key does not lie in the
// items array: the call writes the items (statuses, lengths, leases) as it
// goes, and such a key would change under it, between its hash (taken for
// the whole batch first) and its lookup or claim: a put filed the entry
// under another key's hash, found by no lookup and removed by none.
template <typename Item>
inline void check_item_key(const Item *items, size_t n, size_t i) {
    const Item &it = items[i];
    check_key(it.key, it.key_len);
    const auto *key = static_cast<const char *>(it.key);
    const auto *begin = reinterpret_cast<const char *>(items);
    if (key < begin + n * sizeof(Item) && begin < key + it.key_len)
        fail(-EINVAL, "item %zu: the key lies in the item array, which the call writes", i);
}

inline std::string_view key_of(const daxkv_item &it) noexcept {
    return std::string_view(static_cast<const char *>(it.key), it.key_len);
}

// The two ways a batch gives an item its status, as the single-key call
// would have returned it, its message kept for daxkv_errmsg():
// item_status() runs the item's step and returns what it returns, or the
// code of the Error it throws (anything else thrown, such as out of memory,
// fails the whole batch at the C boundary); fail_item() records a failure
// found after the step (a copy's or a DMA's result) unless the item has
// failed already.
template <typename F>
int item_status(F &&body) {
    try {
        return body();
    } catch (const Error &e) {
        return set_error(e.code(), "%s", e.what());
    }
}

inline void fail_item(daxkv_item &it, const Error &e) noexcept {
    if (it.status == 0)
        it.status = set_error(e.code(), "%s", e.what());
}

} // namespace daxkv
