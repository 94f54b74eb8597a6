"""Python binding of libdaxkv, a KV-cache store on Device-DAX memory.

    import daxkv
    with daxkv.Store(path="/dev/dax0.0", slot_bytes="4MiB") as store:
        store.put(b"chunk-0", tensor_bytes)
        with store.lease(b"chunk-0") as lease:
            view = lease.data          # read-only memoryview, zero copy

The library is found through $DAXKV_LIBRARY, a build tree next to this
package, or the SONAME libdaxkv.so.0 (see daxkv._lib.candidates). For
LMCache's DaxCore call surface see daxkv.lmcache; for a prometheus_client
collector (of a Store, or of a store running in another process) see
daxkv.prometheus.
"""

from ._version import __version__
from ._async import Completion
from ._batch import memcpy_batch
from ._buffers import KEY_MAX
from ._cuda import cuda_available
from ._cursor import KeyInfo
from ._devices import DeviceInfo, list_devices, probe
from ._library import library, set_log_callback, strerror, version, version_number
from ._pool import DeviceLayout, HotplugResult
from ._stats import Histogram, Stats, stats_peek, stats_prometheus_peek, status_peek
from ._store import Store
from ._zero_copy import Lease, Reservation, SlotInfo
from ._lib import (
    DEV_ACTIVE,
    DEV_DRAINING,
    DEV_MIGRATING,
    DEV_MISSING,
    DEV_REMOVED,
    DEV_REMOVING,
    DEV_RESIZING,
    DRAIN,
    EVICT,
    LOG_DEBUG,
    LOG_ERR,
    LOG_INFO,
    LOG_WARNING,
    MIGRATE,
    OP_CONTAINS,
    OP_GET,
    OP_PUT,
    OP_REMOVE,
    LibraryError,
)
from .errors import (
    BadPath,
    BatchError,
    BufferTooSmall,
    Busy,
    Cancelled,
    Deadlock,
    Corrupt,
    DaxKVError,
    Exists,
    Foreign,
    InvalidArgument,
    IsADirectory,
    MediaError,
    NoDevice,
    NoSpace,
    NotFound,
    NotSupported,
    OutOfMemory,
    Overflow,
    PermissionDenied,
    Protocol,
    Shutdown,
    TimedOut,
    TooBig,
    TooManyOpenFiles,
    TryAgain,
    error_class,
)

__all__ = [
    "__version__",
    "KEY_MAX",
    "Completion",
    "DeviceInfo",
    "DeviceLayout",
    "Histogram",
    "HotplugResult",
    "KeyInfo",
    "SlotInfo",
    "list_devices",
    "probe",
    "Lease",
    "Reservation",
    "Stats",
    "Store",
    "cuda_available",
    "library",
    "memcpy_batch",
    "set_log_callback",
    "stats_peek",
    "stats_prometheus_peek",
    "status_peek",
    "strerror",
    "version",
    "version_number",
    "LOG_DEBUG",
    "LOG_ERR",
    "LOG_INFO",
    "LOG_WARNING",
    "OP_PUT",
    "OP_GET",
    "OP_CONTAINS",
    "OP_REMOVE",
    "DEV_ACTIVE",
    "DEV_DRAINING",
    "DEV_MIGRATING",
    "DEV_RESIZING",
    "DEV_REMOVING",
    "DEV_REMOVED",
    "DEV_MISSING",
    "MIGRATE",
    "EVICT",
    "DRAIN",
    "LibraryError",
    "BatchError",
    "BufferTooSmall",
    "Busy",
    "Cancelled",
    "Deadlock",
    "Corrupt",
    "DaxKVError",
    "Exists",
    "Foreign",
    "InvalidArgument",
    "IsADirectory",
    "MediaError",
    "NoDevice",
    "NoSpace",
    "NotFound",
    "NotSupported",
    "OutOfMemory",
    "Overflow",
    "PermissionDenied",
    "Protocol",
    "Shutdown",
    "TimedOut",
    "TooBig",
    "TooManyOpenFiles",
    "TryAgain",
    "error_class",
]
