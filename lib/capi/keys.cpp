// Where entries live: slots of leases and reservations, device layouts, and
// the cursor over committed keys.
#include <cstring>

#include "capi/convert.hpp"
#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::check_versioned;
using daxkv::capi::copy_versioned;
using daxkv::capi::store_of;

extern "C" {

DAXKV_API int daxkv_lease_slot(const daxkv_lease *l, daxkv_slot_info *out) {
    return guarded([&] {
        if (!l || !l->state)
            return set_error(-EINVAL, "lease is NULL or released");
        if (int rc = check_versioned(out, "out"))
            return rc;
        capi::check_owned(*l->state->store);
        copy_versioned(out, capi::public_slot(locate(*l->state->store, *l->state)));
        return 0;
    });
}

DAXKV_API int daxkv_reservation_slot(const daxkv_reservation *r, daxkv_slot_info *out) {
    return guarded([&] {
        if (!r || !r->state)
            return set_error(-EINVAL, "reservation is NULL or finished");
        if (int rc = check_versioned(out, "out"))
            return rc;
        capi::check_owned(*r->state->store);
        copy_versioned(out, capi::public_slot(locate(*r->state->store, *r->state)));
        return 0;
    });
}

DAXKV_API int daxkv_device_describe(daxkv_store *s, const char *path, daxkv_device_layout *out) {
    return guarded([&] {
        Store &st = store_of(s);
        if (!path || !*path)
            return set_error(-EINVAL, "device path is NULL or empty");
        if (int rc = check_versioned(out, "out"))
            return rc;
        copy_versioned(out, capi::public_layout(describe_device(st, path)));
        return 0;
    });
}

DAXKV_API int daxkv_cursor_open(daxkv_store *s, const char *device_path, daxkv_cursor **out) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        store_of(s);
        if (device_path && !*device_path)
            return set_error(-EINVAL, "device path is empty (NULL walks every device)");
        const std::string path = device_path ? device_path : "";
        auto c = std::make_unique<daxkv_cursor>();
        c->cursor = std::make_unique<KeyCursor>(s->store, device_path ? &path : nullptr);
        *out = c.release();
        return 0;
    });
}

DAXKV_API int daxkv_cursor_next(daxkv_cursor *c, daxkv_key_info *out) {
    return guarded([&] {
        if (!c || !c->cursor)
            return set_error(-EINVAL, "cursor is NULL");
        capi::check_owned(c->cursor->store());
        if (int rc = check_versioned(out, "out"))
            return rc;
        const KeyRecord *r = c->cursor->next();
        if (!r)
            return 0;
        copy_versioned(out, capi::public_key(*r));
        return 1;
    });
}

DAXKV_API void daxkv_cursor_close(daxkv_cursor *c) {
    if (c && c->cursor && c->cursor->store().inherited())
        capi::keep_inherited(std::shared_ptr<KeyCursor>(std::move(c->cursor)));
    LogDefer defer; // the last reference to a closed store destroys it
    delete c;
}

} // extern "C"
