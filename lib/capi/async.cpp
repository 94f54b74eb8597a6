// The asynchronous API: submit, event fd, poll.
#include "capi/handles.hpp"
#include "store/async.hpp"

using namespace daxkv;
using daxkv::capi::store_of;

extern "C" {

DAXKV_API int daxkv_submit(daxkv_store *s, int op, daxkv_item *items, size_t n, unsigned flags,
                           uint64_t tag) {
    return guarded([&] { return store_of(s).async().submit(op, items, n, flags, tag); });
}

DAXKV_API int daxkv_event_fd(daxkv_store *s) {
    return guarded([&] { return store_of(s).async().event_fd(); });
}

DAXKV_API int daxkv_poll(daxkv_store *s, daxkv_completion *out, size_t cap) {
    return guarded([&] { return store_of(s).async().poll(out, cap); });
}

} // extern "C"
