// The asynchronous API: submit, event fd, poll.
#include <algorithm>

#include "capi/convert.hpp"
#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::check_items;
using daxkv::capi::store_of;

namespace {

// The flags each op takes: those of its batch call.
unsigned allowed_flags(int op) noexcept {
    switch (op) {
    case DAXKV_OP_PUT: return DAXKV_REPLACE;
    case DAXKV_OP_GET: return DAXKV_PREFIX;
    case DAXKV_OP_CONTAINS: return DAXKV_PREFIX | DAXKV_PIN;
    case DAXKV_OP_REMOVE: return DAXKV_FORCE;
    default: return 0;
    }
}

} // namespace

extern "C" {

DAXKV_API int daxkv_submit(daxkv_store *s, int op, daxkv_item *items, size_t n, unsigned flags,
                           uint64_t tag) {
    return guarded([&] {
        Store &st = store_of(s);
        if (op != DAXKV_OP_PUT && op != DAXKV_OP_GET && op != DAXKV_OP_CONTAINS &&
            op != DAXKV_OP_REMOVE)
            return set_error(-EINVAL, "op %d is not one of DAXKV_OP_PUT, GET, CONTAINS, REMOVE",
                             op);
        if (flags & ~allowed_flags(op))
            return set_error(-EINVAL, "flags 0x%x are not valid for op %d", flags, op);
        if (int rc = check_items(items, n))
            return rc;
        return st.async().submit(static_cast<AsyncOp>(op), items, n, flags, tag);
    });
}

DAXKV_API int daxkv_event_fd(daxkv_store *s) {
    return guarded([&] {
        Store &st = store_of(s);
        CallGate::Observer seen(st.core().gate); // waited for by a shutdown begun meanwhile
        return st.async().event_fd();
    });
}

DAXKV_API int daxkv_poll(daxkv_store *s, daxkv_completion *out, size_t cap) {
    return guarded([&] {
        Store &st = store_of(s);
        CallGate::Observer seen(st.core().gate); // waited for by a shutdown begun meanwhile
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        if (cap == 0)
            return set_error(-EINVAL, "cap is 0: no completion could be returned");
        // The count is the return value: at most INT32_MAX at a time.
        const size_t got = st.async().poll(
            std::min(cap, static_cast<size_t>(INT32_MAX)),
            [&](size_t k, const Completion &c) { out[k] = capi::public_completion(c); });
        return static_cast<int>(got);
    });
}

} // extern "C"
