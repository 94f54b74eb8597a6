// Store lifetime, single-key operations, batches and statistics.
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "capi/convert.hpp"
#include "capi/handles.hpp"
#include "internal/process_mutex.hpp"

using namespace daxkv;
using daxkv::capi::batch_call;
using daxkv::capi::check_flags;
using daxkv::capi::key_arg;
using daxkv::capi::store_of;

namespace {
// What keep_inherited keeps, made at load rather than at first use: a
// grandchild forked while a thread of its parent (a child letting go of
// what it inherited) made them would wait for that thread's static guard,
// as it would for a lock of the parent's that a ProcessMutex were not.
ProcessMutex kept_m;
auto *const kept = new (std::nothrow) std::vector<std::shared_ptr<void>>();
} // namespace

void daxkv::capi::keep_inherited(std::shared_ptr<void> &&what) noexcept {
    // Never destroyed: nothing of it may run in this process.
    try {
        std::lock_guard<ProcessMutex> g(kept_m);
        if (kept) {
            kept->push_back(std::move(what)); // left as it was if this throws
            return;
        }
    } catch (...) {
    }
    // Out of memory: the reference is given up without being dropped.
    static_cast<void>(new (std::nothrow) std::shared_ptr<void>(std::move(what)));
}

extern "C" {

DAXKV_API int daxkv_open(daxkv_store **out, const daxkv_config *cfg) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        if (!cfg)
            return set_error(-EINVAL, "config is NULL");
        auto h = std::make_unique<daxkv_store>();
        h->store = Store::open(cfg->cfg, &capi::stats_page_bytes);
        *out = h.release();
        return 0;
    });
}

DAXKV_API int daxkv_shutdown(daxkv_store *s) {
    return guarded([&] {
        store_of(s).shutdown();
        return 0;
    });
}

DAXKV_API void daxkv_close(daxkv_store *s) {
    if (!s)
        return;
    if (s->store && s->store->inherited()) {
        capi::keep_inherited(std::move(s->store));
        delete s;
        return;
    }
    LogDefer defer; // the store's last events go out once it is gone
    if (s->store)
        s->store->shutdown();
    delete s; // leases and reservations keep the store itself alive
}

DAXKV_API int daxkv_put(daxkv_store *s, const void *key, size_t key_len, const void *val,
                        size_t len, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        std::string_view k;
        if (int rc = check_put_arguments(st.core().counters, [&] {
                k = key_arg(key, key_len);
                if (!val && len)
                    return set_error(-EINVAL, "value is NULL but its length is %zu", len);
                return check_flags(flags, DAXKV_REPLACE, "put");
            }))
            return rc;
        return st.writes().put(k, val, len, flags);
    });
}

DAXKV_API int daxkv_get(daxkv_store *s, const void *key, size_t key_len, void *dst, size_t cap,
                        size_t *len_out) {
    return guarded([&] {
        Store &st = store_of(s);
        const std::string_view k = key_arg(key, key_len);
        if (!dst && cap)
            return set_error(-EINVAL, "destination is NULL but its capacity is %zu", cap);
        return st.reads().get(k, dst, cap, len_out);
    });
}

DAXKV_API int daxkv_contains(daxkv_store *s, const void *key, size_t key_len) {
    return guarded([&] {
        Store &st = store_of(s);
        return st.reads().contains(key_arg(key, key_len));
    });
}

DAXKV_API int daxkv_remove(daxkv_store *s, const void *key, size_t key_len, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        const std::string_view k = key_arg(key, key_len);
        if (int rc = check_flags(flags, DAXKV_FORCE, "remove"))
            return rc;
        return st.entries().remove(k, flags);
    });
}

DAXKV_API int daxkv_pin(daxkv_store *s, const void *key, size_t key_len) {
    return guarded([&] {
        Store &st = store_of(s);
        return st.entries().pin(key_arg(key, key_len));
    });
}

DAXKV_API int daxkv_unpin(daxkv_store *s, const void *key, size_t key_len) {
    return guarded([&] {
        Store &st = store_of(s);
        return st.entries().unpin(key_arg(key, key_len));
    });
}

DAXKV_API int daxkv_put_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return batch_call(s, items, n, flags, DAXKV_REPLACE, "put_batch",
                      [&](Store &st) { return st.writes().put_batch(items, n, flags); });
}

DAXKV_API int daxkv_get_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return batch_call(s, items, n, flags, DAXKV_PREFIX, "get_batch",
                      [&](Store &st) { return st.reads().get_batch(items, n, flags); });
}

DAXKV_API int daxkv_contains_batch(daxkv_store *s, daxkv_item *items, size_t n,
                                   unsigned flags) {
    return batch_call(s, items, n, flags, DAXKV_PREFIX | DAXKV_PIN, "contains_batch",
                      [&](Store &st) { return st.reads().contains_batch(items, n, flags); });
}

DAXKV_API int daxkv_remove_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return batch_call(s, items, n, flags, DAXKV_FORCE, "remove_batch",
                      [&](Store &st) { return st.entries().remove_batch(items, n, flags); });
}

DAXKV_API int daxkv_unpin_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return batch_call(s, items, n, flags, 0, "unpin_batch",
                      [&](Store &st) { return st.entries().unpin_batch(items, n); });
}

DAXKV_API int daxkv_stats(daxkv_store *s, struct daxkv_stats *out) {
    return guarded([&] {
        Store &st = store_of(s);
        CallGate::Observer seen(st.core().gate); // waited for by a shutdown begun meanwhile
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        if (out->struct_size < sizeof(uint32_t) * 2)
            return set_error(-EINVAL, "struct_size %u is too small (set it to sizeof)",
                             out->struct_size);
        capi::copy_versioned(out, capi::public_stats(st.reports().stats()));
        return 0;
    });
}

DAXKV_API int daxkv_status_json(daxkv_store *s, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        Store &st = store_of(s);
        CallGate::Observer seen(st.core().gate); // waited for by a shutdown begun meanwhile
        if (int rc = capi::check_buffer(buf, cap))
            return rc;
        return capi::copy_text(st.reports().status_json(), buf, cap, needed, "status");
    });
}

} // extern "C"
