// Leases (read in place) and reservations (write in place).
#include <cerrno>
#include <cstring>
#include <memory>

#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::batch_call;
using daxkv::capi::check_flags;
using daxkv::capi::check_items;
using daxkv::capi::key_arg;
using daxkv::capi::store_of;

extern "C" {

DAXKV_API int daxkv_lease_acquire(daxkv_store *s, const void *key, size_t key_len,
                                  daxkv_lease **out) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        Store &st = store_of(s);
        // In flight until the lease holds the store (see lease_batch).
        CallGate::Call call(st.core().gate);
        const std::string_view k = key_arg(key, key_len);
        auto l = std::make_unique<daxkv_lease>();
        int rc = st.reads().lease(k, &l->state);
        if (rc == 0) {
            l->state->store = s->store; // the lease keeps the store alive
            *out = l.release();
        }
        return rc;
    });
}

DAXKV_API const void *daxkv_lease_data(const daxkv_lease *l) {
    return l && l->state ? l->state->data : nullptr;
}

DAXKV_API size_t daxkv_lease_size(const daxkv_lease *l) {
    return l && l->state ? l->state->size : 0;
}

DAXKV_API const void *daxkv_lease_meta(const daxkv_lease *l, size_t *len) {
    if (len)
        *len = l && l->state ? l->state->meta_len : 0;
    return l && l->state ? l->state->meta : nullptr;
}

DAXKV_API void daxkv_lease_release(daxkv_lease *l) {
    if (!l)
        return;
    if (l->state && l->state->store->inherited()) {
        capi::keep_inherited(std::shared_ptr<LeaseState>(std::move(l->state)));
        delete l;
        return;
    }
    LogDefer defer; // the last release of a closed store destroys it
    if (l->state) {
        // Keep the store alive until the release is done, even if this was
        // the last reference to a closed store.
        std::shared_ptr<Store> keep = l->state->store;
        keep->reads().release(*l->state);
        l->state.reset();
    }
    delete l;
}

DAXKV_API int daxkv_lease_batch(daxkv_store *s, daxkv_lease_item *items, size_t n,
                                unsigned flags) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_items(items, n))
            return rc;
        if (int rc = check_flags(flags, DAXKV_PREFIX, "lease_batch"))
            return rc;
        // An item holds a lease's outputs only while it holds the lease:
        // an address of bytes given back would be read by a caller that
        // looks at data before status, while its slot is freed and written
        // again (after a start over, an item leased in the first pass may
        // fail in the next, or be left -ENOENT behind a prefix's end). So
        // every item that ends without a lease is cleared; the others are
        // first written once leased.
        auto clear = [](daxkv_lease_item &it) {
            it.lease = nullptr;
            it.data = nullptr;
            it.size = 0;
            it.meta = nullptr;
            it.meta_len = 0;
            it.slot = it.generation = it.offset = 0;
            it.device_id = 0;
        };
        for (size_t i = 0; i < n; ++i)
            items[i].lease = nullptr;
        auto release_all = [&] {
            for (size_t i = 0; i < n; ++i) {
                daxkv_lease_release(items[i].lease);
                clear(items[i]);
            }
        };
        // A failure of the whole call (out of memory, shutdown) releases
        // what it leased: nothing stays leased, and every item says so.
        auto fail_all = [&](int rc) {
            release_all();
            for (size_t i = 0; i < n; ++i)
                items[i].status = rc;
            return rc;
        };
        // An item whose device has its lease gate up (a removal or shrink
        // under way, pool.hpp) is waited for as
        // daxkv_lease_acquire waits, but never while this call holds leases
        // of its own: the call may be what is waited for (the leases taken
        // for earlier items). It gives them back, waits, and starts over;
        // -EDEADLK when what is waited for is a lease of an earlier call.
        int leased = 0;
        try {
            // The whole pass is one call in flight, not only each item's
            // lease: after a lease and between items it reads the handle and
            // the store, which a shutdown that no longer waited for it (and
            // a close right after) would free under it.
            CallGate::Call call(st.core().gate);
            for (size_t i = 0; i < n; ++i) {
                daxkv_lease_item &it = items[i];
                uint32_t gated = UINT32_MAX;
                it.status = item_status([&] {
                    check_item_key(items, n, i);
                    auto l = std::make_unique<daxkv_lease>();
                    const int rc = st.reads().lease(key_arg(it.key, it.key_len), &l->state,
                                                    leased ? &gated : nullptr);
                    if (rc)
                        return rc;
                    l->state->store = s->store; // the lease keeps the store alive
                    const LeaseState &ls = *l->state;
                    const SlotLocation loc = locate(st, ls);
                    it.data = ls.data;
                    it.size = ls.size;
                    it.meta = ls.meta;
                    it.meta_len = ls.meta_len;
                    it.slot = loc.slot;
                    it.generation = loc.generation;
                    it.offset = loc.offset;
                    it.device_id = loc.device_id;
                    it.lease = l.release();
                    return 0;
                });
                if (it.status == -EAGAIN && gated != UINT32_MAX) {
                    release_all();
                    leased = 0;
                    st.reads().wait_lease_gate(gated); // -ESHUTDOWN: thrown
                    i = SIZE_MAX;                      // from the first item again
                    continue;
                }
                if (it.status == -ESHUTDOWN)
                    return fail_all(set_error(-ESHUTDOWN, "the store is shut down"));
                // The item would wait for a lease this thread took in an
                // earlier call (its message says which): so would it after
                // a start over. The whole call fails, as when the wait
                // after giving this call's leases back finds the same.
                if (it.status == -EDEADLK)
                    return fail_all(-EDEADLK);
                if (it.status == 0) {
                    ++leased;
                    continue;
                }
                clear(it);
                if (flags & DAXKV_PREFIX) {
                    for (size_t j = i + 1; j < n; ++j) {
                        clear(items[j]);
                        items[j].status = -ENOENT;
                    }
                    break;
                }
            }
        } catch (...) {
            return fail_all(error_from_exception());
        }
        return leased;
    });
}

DAXKV_API int daxkv_lease_read_batch(daxkv_store *s, daxkv_lease *const *leases,
                                     daxkv_item *items, size_t n, unsigned flags) {
    // The leases and buffers are checked as the items are (batch_call): a
    // call refused for them has looked at no item and written none.
    auto check_leases = [&](Store &st) {
        if (!leases && n)
            return set_error(-EINVAL, "leases is NULL but n is %zu", n);
        for (size_t i = 0; i < n; ++i) {
            const daxkv_lease *l = leases[i];
            if (!l || !l->state)
                return set_error(-EINVAL, "lease %zu is NULL", i);
            if (l->state->store.get() != &st)
                return set_error(-EINVAL, "lease %zu is a lease of another store", i);
            if (!items[i].data && items[i].len)
                return set_error(-EINVAL, "item %zu: data is NULL but its capacity is %zu", i,
                                 items[i].len);
            if (!items[i].meta && items[i].meta_len)
                return set_error(-EINVAL, "item %zu: meta is NULL but its capacity is %zu", i,
                                 items[i].meta_len);
        }
        return 0;
    };
    return batch_call(
        s, items, n, flags, 0, "lease_read_batch",
        [&](Store &st) {
            std::vector<LeaseState *> states(n); // -ENOMEM here is every item's
            for (size_t i = 0; i < n; ++i)
                states[i] = leases[i]->state.get();
            return st.reads().read_leases(states.data(), items, n);
        },
        check_leases);
}

namespace {

// Metadata a reservation is to commit with, against the store's
// meta_bytes: 0, or the error (with its message).
int check_meta(uint32_t cap, const void *meta, size_t len) {
    if (!meta && len)
        return set_error(-EINVAL, "meta is NULL but its length is %zu", len);
    if (len > cap)
        return set_error(-E2BIG, "metadata of %zu bytes is larger than meta_bytes (%u)", len,
                         cap);
    return 0;
}

// daxkv_reserve and daxkv_reserve_meta. The metadata is checked before a
// slot is taken: a failure leaves nothing reserved.
int reserve(daxkv_store *s, const void *key, size_t key_len, size_t len, const void *meta,
            size_t meta_len, void **data, daxkv_reservation **out) {
    return guarded([&] {
        if (data)
            *data = nullptr;
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        Store &st = store_of(s);
        // In flight until the reservation holds the store (see lease_batch).
        CallGate::Call call(st.core().gate);
        std::string_view k;
        if (int rc = check_put_arguments(st.core().counters, [&] {
                k = key_arg(key, key_len);
                return check_meta(st.config().meta_bytes, meta, meta_len);
            }))
            return rc;
        auto r = std::make_unique<daxkv_reservation>();
        std::string blob = meta_len ? std::string(static_cast<const char *>(meta), meta_len)
                                    : std::string();
        int rc = st.reservations().reserve(k, len, &r->state);
        if (rc == 0) {
            r->state->meta.swap(blob);
            r->state->store = s->store; // the reservation keeps the store alive
            if (data)
                *data = r->state->data;
            *out = r.release();
        }
        return rc;
    });
}

} // namespace

DAXKV_API int daxkv_reserve(daxkv_store *s, const void *key, size_t key_len, size_t len,
                            daxkv_reservation **out) {
    return reserve(s, key, key_len, len, nullptr, 0, nullptr, out);
}

DAXKV_API int daxkv_reserve_meta(daxkv_store *s, const void *key, size_t key_len, size_t len,
                                 const void *meta, size_t meta_len, void **data,
                                 daxkv_reservation **out) {
    return reserve(s, key, key_len, len, meta, meta_len, data, out);
}

DAXKV_API void *daxkv_reservation_data(daxkv_reservation *r) {
    return r && r->state ? r->state->data : nullptr;
}

DAXKV_API size_t daxkv_reservation_size(const daxkv_reservation *r) {
    return r && r->state ? r->state->len : 0;
}

DAXKV_API int daxkv_reservation_set_meta(daxkv_reservation *r, const void *meta, size_t len) {
    return guarded([&] {
        if (!r || !r->state)
            return set_error(-EINVAL, "reservation is NULL");
        // In a forked child the metadata would go nowhere: the child may
        // only let go of the reservation (libdaxkv(3)).
        capi::check_owned(*r->state->store);
        if (int rc = check_meta(r->state->store->config().meta_bytes, meta, len))
            return rc;
        r->state->meta.assign(static_cast<const char *>(meta), len);
        return 0;
    });
}

DAXKV_API int daxkv_commit(daxkv_reservation *r) {
    if (!r)
        return set_error(-EINVAL, "reservation is NULL");
    LogDefer defer; // outlives `owned`: freeing it may destroy a closed store
    std::unique_ptr<daxkv_reservation> owned(r); // freed whatever happens
    return guarded([&] {
        if (!owned->state)
            return set_error(-EINVAL, "reservation is empty");
        if (owned->state->store->inherited()) {
            capi::keep_inherited(std::shared_ptr<ReservationState>(std::move(owned->state)));
            return set_error(-EPERM, "the reservation was made before this process was forked "
                                     "from its parent; a forked child may not commit it");
        }
        std::shared_ptr<Store> keep = owned->state->store;
        return keep->reservations().commit(*owned->state);
    });
}

DAXKV_API void daxkv_abort(daxkv_reservation *r) {
    if (!r)
        return;
    if (r->state && r->state->store->inherited()) {
        capi::keep_inherited(std::shared_ptr<ReservationState>(std::move(r->state)));
        delete r;
        return;
    }
    LogDefer defer;
    if (r->state) {
        std::shared_ptr<Store> keep = r->state->store;
        keep->reservations().abort(*r->state);
        r->state.reset();
    }
    delete r;
}

} // extern "C"
