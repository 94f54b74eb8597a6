// The pool: runtime add, remove, resize, drain completion and status.
#include <cstring>

#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::store_of;

namespace {

// The path argument, checked (never echoed back in a message).
int check_path(const char *path) {
    if (!path)
        return set_error(-EINVAL, "device path is NULL");
    if (!*path)
        return set_error(-EINVAL, "device path is empty");
    if (strnlen(path, 4097) > 4096)
        return set_error(-EINVAL, "device path is longer than 4096 bytes");
    return 0;
}

} // namespace

extern "C" {

DAXKV_API int daxkv_device_add(daxkv_store *s, const char *path, uint64_t bytes) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        return st.device_add(path, bytes);
    });
}

DAXKV_API int daxkv_device_remove(daxkv_store *s, const char *path, int mode, unsigned flags,
                                  daxkv_hotplug_result *out) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        return st.device_remove(path, mode, flags, out);
    });
}

DAXKV_API int daxkv_device_resize(daxkv_store *s, const char *path, uint64_t bytes, int mode,
                                  unsigned flags, daxkv_hotplug_result *out) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        return st.device_resize(path, bytes, mode, flags, out);
    });
}

DAXKV_API int daxkv_device_wait_drained(daxkv_store *s, const char *path, int timeout_ms) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        return st.device_wait_drained(path, timeout_ms);
    });
}

DAXKV_API int daxkv_pool_status_json(daxkv_store *s, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        Store &st = store_of(s);
        if (!buf && cap)
            return set_error(-EINVAL, "buf is NULL but cap is %zu", cap);
        return capi::copy_text(st.pool_status_json(), buf, cap, needed, "pool status");
    });
}

} // extern "C"
