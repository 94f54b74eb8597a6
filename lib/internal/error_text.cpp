// The static description of every return code (daxkv_strerror).
#include <cerrno>
#include <cstring>

#include "internal/error.hpp"

namespace daxkv {

const char *error_text(int code) noexcept {
    switch (code) {
    case 0: return "success";
    case kExisted: return "the key already exists";
    case kErrCorrupt: return "on-device metadata is corrupt";
    case kErrForeign: return "the device holds data that is not a daxkv arena of this layout";
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
    case -ECANCELED:
        return "cancelled: by a forced remove, a forced removal or shrink of its device, or a "
               "shutdown";
    case -EDEADLK: return "would wait for a lease or reservation the calling thread holds";
    case -EISDIR: return "is a directory";
    case -ELOOP: return "too many levels of symbolic links";
    case -EOVERFLOW: return "value too large for the counter";
    default: break;
    }
    if (code < 0 && code > kErrBase) {
        // Any other negative errno: the C library's description of it.
        // Not strerror(): for a code the C library does not know it formats
        // "Unknown error N" into a buffer the next such call (the caller's
        // own strerror included) writes over, where this text is static.
        if (const char *text = strerrordesc_np(-code))
            return text;
    }
    return "unknown error";
}

} // namespace daxkv
