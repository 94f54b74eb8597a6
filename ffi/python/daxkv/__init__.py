"""Python binding of libdaxkv, a KV-cache store on Device-DAX memory.

    import daxkv
    with daxkv.Store(path="/dev/dax0.0", slot_bytes="4MiB") as store:
        store.put(b"chunk-0", tensor_bytes)
        with store.lease(b"chunk-0") as lease:
            view = lease.data          # read-only memoryview, zero copy

The library is found through $DAXKV_LIBRARY, a build tree next to this
package, or the SONAME libdaxkv.so.0 (see daxkv._lib.candidates). For
LMCache's DaxCore call surface see daxkv.lmcache.
"""

from ._core import (
    KEY_MAX,
    DeviceInfo,
    list_devices,
    probe,
    Lease,
    Reservation,
    Stats,
    Store,
    library,
    memcpy_batch,
    set_log_callback,
    strerror,
    version,
    version_number,
)
from ._lib import LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_WARNING, LibraryError
from .errors import (
    BatchError,
    BufferTooSmall,
    Busy,
    Cancelled,
    Corrupt,
    DaxKVError,
    Exists,
    Foreign,
    InvalidArgument,
    MediaError,
    NoDevice,
    NoSpace,
    NotFound,
    NotSupported,
    OutOfMemory,
    PermissionDenied,
    Shutdown,
    TooBig,
    error_class,
)

__all__ = [
    "KEY_MAX",
    "DeviceInfo",
    "list_devices",
    "probe",
    "Lease",
    "Reservation",
    "Stats",
    "Store",
    "library",
    "memcpy_batch",
    "set_log_callback",
    "strerror",
    "version",
    "version_number",
    "LOG_DEBUG",
    "LOG_ERR",
    "LOG_INFO",
    "LOG_WARNING",
    "LibraryError",
    "BatchError",
    "BufferTooSmall",
    "Busy",
    "Cancelled",
    "Corrupt",
    "DaxKVError",
    "Exists",
    "Foreign",
    "InvalidArgument",
    "MediaError",
    "NoDevice",
    "NoSpace",
    "NotFound",
    "NotSupported",
    "OutOfMemory",
    "PermissionDenied",
    "Shutdown",
    "TooBig",
    "error_class",
]
