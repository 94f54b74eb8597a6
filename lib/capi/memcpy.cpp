// daxkv_memcpy_batch: LMCache's batched_memcpy on the copy engine.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "capi/handles.hpp"
#include "engine/copy_engine.hpp"
#include "store/copies.hpp"

using namespace daxkv;

namespace {

// The bytes [begin, end) that range `range` of a batch writes or reads.
struct Span {
    uintptr_t begin, end;
    size_t range;
};

// Ranges of one batch run on different threads in no set order: two that
// write one byte, or one that writes a byte another reads, leave bytes
// that depend on the schedule. Finds such a pair in O(n log n): the
// destinations, sorted by where they begin, must each begin past the end
// of every one before it; a source may then share bytes only with its own
// range's destination (memmove). *writer is a range that writes a byte
// *other writes (*other_writes) or reads.
bool find_conflict(std::vector<Span> &writes, const std::vector<Span> &reads, size_t *writer,
                   size_t *other, bool *other_writes) {
    std::sort(writes.begin(), writes.end(),
              [](const Span &a, const Span &b) { return a.begin < b.begin; });
    const Span *furthest = writes.empty() ? nullptr : &writes[0];
    for (size_t i = 1; i < writes.size(); ++i) {
        if (writes[i].begin < furthest->end) {
            *writer = furthest->range;
            *other = writes[i].range;
            *other_writes = true;
            return true;
        }
        if (writes[i].end > furthest->end)
            furthest = &writes[i];
    }
    // Disjoint and sorted by begin, the destinations are sorted by end too.
    for (const Span &r : reads) {
        auto w = std::lower_bound(writes.begin(), writes.end(), r.begin,
                                  [](const Span &x, uintptr_t at) { return x.end <= at; });
        if (w != writes.end() && w->range == r.range)
            ++w; // its own destination: memmove semantics
        if (w != writes.end() && w->begin < r.end) {
            *writer = w->range;
            *other = r.range;
            *other_writes = false;
            return true;
        }
    }
    return false;
}

} // namespace

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
        if (n > SIZE_MAX / sizeof(void *))
            return set_error(-EINVAL, "memcpy_batch: n %zu is larger than an array of "
                                      "pointers can be", n);
        std::vector<engine::CopyOp> ops;
        ops.reserve(n);
        std::vector<Span> writes, reads;
        writes.reserve(n);
        reads.reserve(n);
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
            writes.push_back(Span{d, d + len[i], i});
            reads.push_back(Span{s, s + len[i], i});
            total += len[i];
        }
        size_t writer = 0, other = 0;
        bool other_writes = false;
        if (find_conflict(writes, reads, &writer, &other, &other_writes))
            return set_error(-EINVAL,
                             "memcpy_batch: ranges %zu and %zu overlap (range %zu writes "
                             "bytes that range %zu %s); nothing copied",
                             std::min(writer, other), std::max(writer, other), writer, other,
                             other_writes ? "writes too" : "reads");
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
