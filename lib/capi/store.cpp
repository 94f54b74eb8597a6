// Store lifetime, single-key operations, batches and statistics.
#include <cstring>

#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::check_items;
using daxkv::capi::store_of;

extern "C" {

DAXKV_API int daxkv_open(daxkv_store **out, const daxkv_config *cfg) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        if (!cfg)
            return set_error(-EINVAL, "config is NULL");
        auto h = std::make_unique<daxkv_store>();
        h->store = Store::open(cfg->cfg);
        *out = h.release();
        return 0;
    });
}

DAXKV_API int daxkv_shutdown(daxkv_store *s) {
    return guarded([&] { return store_of(s).shutdown(); });
}

DAXKV_API void daxkv_close(daxkv_store *s) {
    if (!s)
        return;
    LogDefer defer; // the store's last events go out once it is gone
    if (s->store)
        s->store->shutdown();
    delete s; // leases and reservations keep the store itself alive
}

DAXKV_API int daxkv_put(daxkv_store *s, const void *key, size_t key_len, const void *val,
                        size_t len, unsigned flags) {
    return guarded(
        [&] { return store_of(s).put(key, key_len, val, len, nullptr, 0, flags); });
}

DAXKV_API int daxkv_get(daxkv_store *s, const void *key, size_t key_len, void *dst, size_t cap,
                        size_t *len_out) {
    return guarded([&] { return store_of(s).get(key, key_len, dst, cap, len_out); });
}

DAXKV_API int daxkv_contains(daxkv_store *s, const void *key, size_t key_len) {
    return guarded([&] { return store_of(s).contains(key, key_len); });
}

DAXKV_API int daxkv_remove(daxkv_store *s, const void *key, size_t key_len, unsigned flags) {
    return guarded([&] { return store_of(s).remove(key, key_len, flags); });
}

DAXKV_API int daxkv_pin(daxkv_store *s, const void *key, size_t key_len) {
    return guarded([&] { return store_of(s).pin(key, key_len); });
}

DAXKV_API int daxkv_unpin(daxkv_store *s, const void *key, size_t key_len) {
    return guarded([&] { return store_of(s).unpin(key, key_len); });
}

DAXKV_API int daxkv_put_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_items(items, n))
            return rc;
        return st.put_batch(items, n, flags);
    });
}

DAXKV_API int daxkv_get_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_items(items, n))
            return rc;
        return st.get_batch(items, n, flags);
    });
}

DAXKV_API int daxkv_contains_batch(daxkv_store *s, daxkv_item *items, size_t n,
                                   unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_items(items, n))
            return rc;
        return st.contains_batch(items, n, flags);
    });
}

DAXKV_API int daxkv_remove_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_items(items, n))
            return rc;
        return st.remove_batch(items, n, flags);
    });
}

DAXKV_API int daxkv_unpin_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_items(items, n))
            return rc;
        return st.unpin_batch(items, n, flags);
    });
}

DAXKV_API int daxkv_stats(daxkv_store *s, struct daxkv_stats *out) {
    return guarded([&] {
        Store &st = store_of(s);
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        if (out->struct_size < sizeof(uint32_t) * 2)
            return set_error(-EINVAL, "struct_size %u is too small (set it to sizeof)",
                             out->struct_size);
        st.stats(*out);
        return 0;
    });
}

DAXKV_API int daxkv_status_json(daxkv_store *s, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        Store &st = store_of(s);
        if (!buf && cap)
            return set_error(-EINVAL, "buf is NULL but cap is %zu", cap);
        return capi::copy_text(st.status_json(), buf, cap, needed, "status");
    });
}

} // extern "C"
