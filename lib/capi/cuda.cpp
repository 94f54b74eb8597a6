// GPU transfers: argument checks and the exception barrier.
#include "capi/handles.hpp"
#include "cuda/runtime.hpp"

using namespace daxkv;
using daxkv::capi::batch_call;
using daxkv::capi::check_flags;
using daxkv::capi::store_of;

extern "C" {

DAXKV_API int daxkv_cuda_available(void) {
    return guarded([] {
        const cuda::Runtime *rt = cuda::runtime();
        if (rt && rt->devices > 0)
            return 1;
        // Not a failure: the message only says why there is no GPU.
        set_error(rt ? -ENODEV : -ENOTSUP, "%s", cuda::unavailable_reason().c_str());
        return 0;
    });
}

DAXKV_API int daxkv_cuda_register(daxkv_store *s, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_flags(flags, DAXKV_CUDA_MAPPED, "cuda_register"))
            return rc;
        return st.gpu().register_arenas(flags);
    });
}

DAXKV_API int daxkv_cuda_unregister(daxkv_store *s) {
    return guarded([&] { return store_of(s).gpu().unregister_arenas(); });
}

DAXKV_API int daxkv_get_batch_cuda(daxkv_store *s, daxkv_item *items, size_t n, void *stream,
                                   unsigned flags) {
    return batch_call(s, items, n, flags, DAXKV_PREFIX, "get_batch_cuda",
                      [&](Store &st) { return st.gpu().get_batch(items, n, stream, flags); });
}

DAXKV_API int daxkv_put_batch_cuda(daxkv_store *s, daxkv_item *items, size_t n, void *stream,
                                   unsigned flags) {
    return batch_call(s, items, n, flags, DAXKV_REPLACE, "put_batch_cuda",
                      [&](Store &st) { return st.gpu().put_batch(items, n, stream, flags); });
}

} // extern "C"
