// daxkv_memcpy_batch: LMCache's batched_memcpy on the copy engine.
#include <vector>

#include "capi/handles.hpp"
#include "engine/copy_engine.hpp"
#include "store/copies.hpp"

using namespace daxkv;

extern "C" {

DAXKV_API int daxkv_memcpy_batch(void *const *dst, const void *const *src, const size_t *len,
                                 size_t n, unsigned flags) {
    return guarded([&] {
        if (flags)
            return set_error(-EINVAL, "memcpy_batch: flags must be 0, got 0x%x", flags);
        if (n == 0)
            return 0;
        if (!dst || !src || !len)
            return set_error(-EINVAL, "memcpy_batch: %s is NULL",
                             !dst ? "dst" : !src ? "src" : "len");
        std::vector<engine::CopyOp> ops;
        ops.reserve(n);
        uint64_t total = 0;
        for (size_t i = 0; i < n; ++i) {
            if (len[i] == 0)
                continue;
            if (!dst[i] || !src[i])
                return set_error(-EINVAL, "memcpy_batch: range %zu has a NULL %s", i,
                                 !dst[i] ? "destination" : "source");
            auto d = reinterpret_cast<uintptr_t>(dst[i]), s = reinterpret_cast<uintptr_t>(src[i]);
            if (d + len[i] < d || s + len[i] < s)
                return set_error(-EINVAL, "memcpy_batch: range %zu of %zu bytes wraps the "
                                          "address space", i, len[i]);
            engine::CopyOp op;
            op.dst = dst[i];
            op.src = src[i];
            op.len = len[i];
            // Overlapping ranges keep memmove semantics: one piece, one thread.
            op.overlap_safe = d < s + len[i] && s < d + len[i];
            ops.push_back(op);
            total += len[i];
        }
        // Streaming stores by the batch's bytes, as the store's batches
        // decide (store/copies.hpp): a large batch would only push the
        // caller's other data out of the cache. The engine fences them
        // before it returns.
        if (total >= kNonTemporalMin)
            for (engine::CopyOp &op : ops)
                op.nontemporal = true;
        engine::shared_engine().run(ops.data(), ops.size());
        return 0;
    });
}

} // extern "C"
