// Where entries live: slots of leases and reservations, device layouts, and
// the cursor over committed keys.
#include <cstring>

#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::check_versioned;
using daxkv::capi::copy_versioned;
using daxkv::capi::store_of;

namespace {

daxkv_slot_info slot_info(const SlotLocation &loc) {
    daxkv_slot_info i;
    std::memset(&i, 0, sizeof i);
    i.device_id = loc.device_id;
    i.slot = loc.slot;
    i.generation = loc.generation;
    i.offset = loc.offset;
    i.payload_base = loc.payload_base;
    return i;
}

} // namespace

extern "C" {

DAXKV_API int daxkv_lease_slot(const daxkv_lease *l, daxkv_slot_info *out) {
    return guarded([&] {
        if (!l || !l->state)
            return set_error(-EINVAL, "lease is NULL or released");
        if (int rc = check_versioned(out, "out"))
            return rc;
        copy_versioned(out, slot_info(l->state->store->locate(*l->state)));
        return 0;
    });
}

DAXKV_API int daxkv_reservation_slot(const daxkv_reservation *r, daxkv_slot_info *out) {
    return guarded([&] {
        if (!r || !r->state)
            return set_error(-EINVAL, "reservation is NULL or finished");
        if (int rc = check_versioned(out, "out"))
            return rc;
        copy_versioned(out, slot_info(r->state->store->locate(*r->state)));
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
        const DeviceLayout d = st.device_layout(path);
        daxkv_device_layout o;
        std::memset(&o, 0, sizeof o);
        o.device_id = d.device_id;
        o.state = static_cast<uint32_t>(d.state);
        o.device_index = static_cast<int32_t>(d.index);
        o.slot_bytes = d.slot_bytes;
        o.layout_slots = d.layout_slots;
        o.usable_slots = d.usable_slots;
        o.used_end = d.used_end;
        o.arena_bytes = d.arena_bytes;
        o.data_offset = d.data_offset;
        o.payload_base = d.payload_base;
        copy_versioned(out, o);
        return 0;
    });
}

DAXKV_API int daxkv_cursor_open(daxkv_store *s, const char *device_path, daxkv_cursor **out) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        Store &st = store_of(s);
        int row = -1;
        if (device_path) {
            if (!*device_path)
                return set_error(-EINVAL, "device path is empty (NULL walks every device)");
            row = st.device_row(device_path);
        }
        auto c = std::make_unique<daxkv_cursor>();
        c->cursor = st.key_cursor(row);
        *out = c.release();
        return 0;
    });
}

DAXKV_API int daxkv_cursor_next(daxkv_cursor *c, daxkv_key_info *out) {
    return guarded([&] {
        if (!c || !c->cursor)
            return set_error(-EINVAL, "cursor is NULL");
        if (int rc = check_versioned(out, "out"))
            return rc;
        const KeyRecord *r = c->cursor->next();
        if (!r)
            return 0;
        daxkv_key_info k;
        std::memset(&k, 0, sizeof k);
        k.device_id = r->device_id;
        k.key = r->key.data();
        k.key_len = r->key.size();
        k.meta = r->meta.empty() ? nullptr : r->meta.data();
        k.meta_len = r->meta.size();
        k.value_len = r->value_len;
        k.slot = r->slot;
        k.seq = r->seq;
        k.pins = r->pins;
        k.leases = r->leases;
        copy_versioned(out, k);
        return 1;
    });
}

DAXKV_API void daxkv_cursor_close(daxkv_cursor *c) { delete c; }

} // extern "C"
