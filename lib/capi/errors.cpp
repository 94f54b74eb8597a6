// Versions, error strings, the thread-local message, logging.
#include <cerrno>
#include <cstring>

#include "capi/handles.hpp"

using namespace daxkv;

extern "C" {

DAXKV_API unsigned daxkv_version_number(void) { return DAXKV_VERSION_NUMBER; }

DAXKV_API const char *daxkv_version_string(void) { return DAXKV_VERSION_STRING; }

DAXKV_API const char *daxkv_strerror(int err) {
    switch (err) {
    case 0: return "success";
    case DAXKV_EXISTED: return "the key already exists";
    case DAXKV_E_CORRUPT: return "on-device metadata is corrupt";
    case DAXKV_E_FOREIGN: return "the device holds data that is not a daxkv arena of this layout";
    case -EINVAL: return "invalid argument or configuration";
    case -ENOENT: return "not found";
    case -ENOSPC: return "no free slot and nothing evictable, or device too small";
    case -E2BIG: return "key, value or metadata too large";
    case -EBUSY: return "pinned, leased, in flight or locked";
    case -ENOBUFS: return "destination buffer too small";
    case -ESHUTDOWN: return "the store is shut down";
    case -ENODEV: return "not a usable DAX device";
    case -EACCES: return "permission denied";
    case -EPERM: return "operation not permitted";
    case -ENOMEM: return "out of memory";
    case -EIO: return "I/O error: copy fault, media error or checksum mismatch";
    case -ENOTSUP: return "feature not built in";
    case -ECANCELED: return "cancelled by a forced remove";
    case -EISDIR: return "is a directory";
    case -ELOOP: return "too many levels of symbolic links";
    case -EOVERFLOW: return "value too large for the counter";
    default: break;
    }
    if (err < 0 && err > DAXKV_E_BASE) {
        // Any other negative errno: the C library's text (static strings on
        // glibc for known codes).
        return strerror(-err);
    }
    return "unknown error";
}

DAXKV_API const char *daxkv_errmsg(void) { return last_error_message(); }

DAXKV_API void daxkv_set_log_fn(daxkv_log_fn fn, int max_level, void *arg) {
    set_log_fn(fn, max_level, arg);
}

} // extern "C"
