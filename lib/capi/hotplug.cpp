// The pool: runtime add, remove, resize, drain completion and status.
#include <cstring>

#include "capi/convert.hpp"
#include "capi/handles.hpp"

using namespace daxkv;
using daxkv::capi::check_flags;
using daxkv::capi::check_path;
using daxkv::capi::store_of;

namespace {

// A size argument that holds at least one slot (0: the whole device, where
// allowed).
int check_size(const Store &st, uint64_t bytes) {
    const uint64_t slot = st.config().slot_bytes;
    if (bytes / slot == 0)
        return set_error(-EINVAL, "size of %llu bytes does not fit one slot of %llu bytes",
                         static_cast<unsigned long long>(bytes),
                         static_cast<unsigned long long>(slot));
    return 0;
}

// The flags and the result struct of a removal or resize: DAXKV_FORCE
// only; the result, when given, at least its struct_size and state.
int check_change(unsigned flags, const daxkv_hotplug_result *out, const char *call) {
    if (int rc = check_flags(flags, DAXKV_FORCE, call))
        return rc;
    if (out && out->struct_size < sizeof(uint32_t) * 2)
        return set_error(-EINVAL, "result struct_size %u is too small", out->struct_size);
    return 0;
}

// The result of a change that succeeded, or that failed after it had
// moved or deleted entries (r.partial: they stay so, and out says how many).
int finish(int rc, const HotplugResult &r, daxkv_hotplug_result *out) {
    if ((rc == 0 || r.partial) && out)
        capi::copy_versioned(out, capi::public_result(r));
    return rc;
}

} // namespace

extern "C" {

DAXKV_API int daxkv_device_add(daxkv_store *s, const char *path, uint64_t bytes) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        // Anonymous memory has no size of its own to take. Checked here:
        // a failure to map is reported without its cause (which names the
        // path), and this one is the caller's argument.
        if (!bytes && std::strcmp(path, "mem:") == 0)
            return set_error(-EINVAL, "a \"mem:\" device needs a size (bytes is 0)");
        if (int rc = bytes ? check_size(st, bytes) : 0)
            return rc;
        return st.hotplug().add(path, bytes);
    });
}

DAXKV_API int daxkv_device_remove(daxkv_store *s, const char *path, int mode, unsigned flags,
                                  daxkv_hotplug_result *out) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        if (mode != DAXKV_MIGRATE && mode != DAXKV_EVICT && mode != DAXKV_DRAIN)
            return set_error(-EINVAL, "remove: mode %d is not DAXKV_MIGRATE, DAXKV_EVICT or "
                                      "DAXKV_DRAIN", mode);
        if (int rc = check_change(flags, out, "remove"))
            return rc;
        HotplugResult r;
        return finish(st.hotplug().remove(path, static_cast<MoveMode>(mode), flags, r), r, out);
    });
}

DAXKV_API int daxkv_device_resize(daxkv_store *s, const char *path, uint64_t bytes, int mode,
                                  unsigned flags, daxkv_hotplug_result *out) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        if (mode != DAXKV_MIGRATE && mode != DAXKV_EVICT)
            return set_error(-EINVAL, "resize: mode %d is not DAXKV_MIGRATE or DAXKV_EVICT (a "
                                      "resize completes before it returns: no drain)", mode);
        if (int rc = check_change(flags, out, "resize"))
            return rc;
        if (int rc = check_size(st, bytes))
            return rc;
        HotplugResult r;
        return finish(st.hotplug().resize(path, bytes, static_cast<MoveMode>(mode), flags, r), r,
                      out);
    });
}

DAXKV_API int daxkv_device_wait_drained(daxkv_store *s, const char *path, int timeout_ms) {
    return guarded([&] {
        Store &st = store_of(s);
        if (int rc = check_path(path))
            return rc;
        return st.hotplug().wait_drained(path, timeout_ms);
    });
}

DAXKV_API int daxkv_pool_status_json(daxkv_store *s, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        Store &st = store_of(s);
        CallGate::Observer seen(st.core().gate); // waited for by a shutdown begun meanwhile
        if (int rc = capi::check_buffer(buf, cap))
            return rc;
        return capi::copy_text(st.reports().pool_status_json(), buf, cap, needed, "pool status");
    });
}

} // extern "C"
