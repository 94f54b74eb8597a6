// The opaque C handles and the conversions between them and the core.
#pragma once

#include <memory>

#include "daxkv.h"
#include "internal/error.hpp"
#include "store/config.hpp"
#include "store/store.hpp"

struct daxkv_config {
    daxkv::Config cfg;
};

struct daxkv_store {
    std::shared_ptr<daxkv::Store> store;
};

struct daxkv_lease {
    std::unique_ptr<daxkv::LeaseState> state;
};

struct daxkv_reservation {
    std::unique_ptr<daxkv::ReservationState> state;
};

namespace daxkv {
namespace capi {

// The store behind a handle, or an -EINVAL error for NULL.
inline Store &store_of(daxkv_store *s) {
    if (!s || !s->store)
        fail(-EINVAL, "store handle is NULL");
    return *s->store;
}

// The array of a batch call: NULL only when empty, and a count the int
// result can hold.
inline int check_items(const daxkv_item *items, size_t n) {
    if (!items && n)
        return set_error(-EINVAL, "items is NULL but n is %zu", n);
    if (n > static_cast<size_t>(INT32_MAX))
        return set_error(-EINVAL, "n %zu is too large for one batch", n);
    return 0;
}

} // namespace capi
} // namespace daxkv
