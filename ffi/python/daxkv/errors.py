"""Exceptions raised by the daxkv binding.

Every failure of a library call becomes a DaxKVError subclass chosen by the
error code. The exception carries the negative code the C function returned,
the positive errno where the code is one, the static description
(daxkv_strerror) and the thread's detail message (daxkv_errmsg), which is read
right after the failing call on the same thread, before any other daxkv call
can overwrite it.
"""

from __future__ import annotations

import errno as _errno
from typing import Dict, List, Optional, Type

from . import _lib


class DaxKVError(Exception):
    """A libdaxkv call failed.

    Attributes:
        code: the negative value the C function returned.
        errno: -code when it is an errno value, else None (daxkv's own codes).
        strerror: the library's static description of the code.
        message: the library's detail message for this failure.
        op: the C function (or binding operation) that failed.
    """

    code: int
    errno: Optional[int]
    strerror: str
    message: str
    op: str

    def __init__(self, code: int, message: str = "", op: str = "", strerror: str = "") -> None:
        strerror = strerror or _fallback_strerror(code)
        message = message or strerror
        # First: OSError's __init__ (PermissionDenied) sets errno and
        # strerror from the arguments, which would leave errno negative.
        super().__init__(code, message)
        self.code = code
        self.errno = -code if -4096 < code < 0 else None
        self.strerror = strerror
        self.message = message
        self.op = op

    def __str__(self) -> str:
        where = f"{self.op}: " if self.op else ""
        return f"{where}{self.message} ({_code_name(self.code)})"

    def __reduce__(self):  # keep exceptions picklable (multiprocessing, logging)
        # Attributes set after construction (BufferTooSmall.needed) go in
        # the state, which pickle puts back into __dict__.
        return (type(self), (self.code, self.message, self.op, self.strerror), dict(self.__dict__))


class NotFound(DaxKVError, KeyError):
    """-ENOENT: the key is not stored (or, for unpin, not pinned)."""

    def __str__(self) -> str:  # KeyError would repr() the arguments
        return DaxKVError.__str__(self)


class Exists(DaxKVError):
    """The key is already stored or in flight (reserve of a present key)."""


class NoSpace(DaxKVError):
    """-ENOSPC: no free slot and nothing evictable, or the device is too small."""


class Busy(DaxKVError):
    """-EBUSY: pinned, leased or in-flight entries block the request."""


class TooBig(DaxKVError, ValueError):
    """-E2BIG: the value, key or metadata is larger than the store allows."""


class BufferTooSmall(DaxKVError, ValueError):
    """-ENOBUFS: the destination is too small; `needed` is the size required."""

    needed: Optional[int] = None


class Shutdown(DaxKVError):
    """-ESHUTDOWN: the store is shut down or closed."""


class Cancelled(DaxKVError):
    """-ECANCELED: a forced remove, or a forced removal or shrink of its
    device, cancelled the write or reservation; or a shutdown cancelled a
    queued batch."""


class Deadlock(DaxKVError):
    """-EDEADLK: the call would wait for a lease the calling thread holds (a
    forced device removal or shrink waits for it); the message names the
    lease. Release it, then call again."""


class Corrupt(DaxKVError):
    """DAXKV_E_CORRUPT: on-device metadata is invalid."""


class Foreign(DaxKVError):
    """DAXKV_E_FOREIGN: the device holds data that is not a daxkv arena."""


class InvalidArgument(DaxKVError, ValueError):
    """-EINVAL: a bad argument or configuration value."""


class NoDevice(DaxKVError):
    """-ENODEV: not a usable DAX device, or (GPU transfers) no usable GPU."""


class PermissionDenied(DaxKVError, PermissionError):
    """-EACCES / -EPERM."""


class OutOfMemory(DaxKVError, MemoryError):
    """-ENOMEM."""


class MediaError(DaxKVError):
    """-EIO: a copy fault or media error."""


class NotSupported(DaxKVError):
    """-ENOTSUP: the feature is not built into this library, or (GPU
    transfers) no CUDA runtime could be loaded or the GPU cannot register
    host memory."""


class TimedOut(DaxKVError, TimeoutError):
    """-ETIMEDOUT: the time given to wait ran out."""


class TryAgain(DaxKVError):
    """-EAGAIN: a thread the call needed could not be started, or a store's
    statistics page was being rewritten throughout; a later try may work."""


class Protocol(DaxKVError):
    """-EPROTO: a statistics page of another format."""


class IsADirectory(DaxKVError, IsADirectoryError):
    """-EISDIR: a path that must name a device or file names a directory."""


class BadPath(DaxKVError, OSError):
    """-ELOOP / -ENOTDIR / -ENAMETOOLONG: a device path that cannot be
    followed (a symbolic link loop, a component that is not a directory, a
    name too long)."""


class TooManyOpenFiles(DaxKVError):
    """-EMFILE / -ENFILE: no file descriptor was left (the event fd)."""


class Overflow(DaxKVError, OverflowError):
    """-EOVERFLOW: a count (an entry's pins) would overflow."""


class BatchError(DaxKVError):
    """One or more items of a batch failed with an unexpected status.

    Items that succeeded did take effect. `statuses` holds every item's raw
    status, `errors` maps item index to its exception, and `results` is what
    the batch method would have returned with those items treated as misses.
    The exception's own code, message and class of the first failed item are
    available through `first`.
    """

    statuses: List[int]
    errors: Dict[int, DaxKVError]
    results: list
    first: DaxKVError

    def __init__(self, op: str, statuses: List[int], errors: Dict[int, DaxKVError], results: list):
        first_index = min(errors)
        self.first = errors[first_index]
        super().__init__(
            self.first.code,
            f"{len(errors)} of {len(statuses)} items failed; item {first_index}: {self.first.message}",
            op,
            self.first.strerror,
        )
        self.statuses = statuses
        self.errors = errors
        self.results = results

    def __reduce__(self):
        return (type(self), (self.op, self.statuses, self.errors, self.results))


_BY_CODE: Dict[int, Type[DaxKVError]] = {
    -_errno.ENOENT: NotFound,
    -_errno.EEXIST: Exists,
    -_errno.ENOSPC: NoSpace,
    -_errno.EBUSY: Busy,
    -_errno.E2BIG: TooBig,
    -_errno.ENOBUFS: BufferTooSmall,
    -_errno.ESHUTDOWN: Shutdown,
    -_errno.ECANCELED: Cancelled,
    -_errno.EDEADLK: Deadlock,
    -_errno.EINVAL: InvalidArgument,
    -_errno.ENODEV: NoDevice,
    -_errno.EACCES: PermissionDenied,
    -_errno.EPERM: PermissionDenied,
    -_errno.ENOMEM: OutOfMemory,
    -_errno.EIO: MediaError,
    -_errno.ENOTSUP: NotSupported,
    -_errno.ETIMEDOUT: TimedOut,
    -_errno.EAGAIN: TryAgain,
    -_errno.EPROTO: Protocol,
    -_errno.EISDIR: IsADirectory,
    -_errno.ELOOP: BadPath,
    -_errno.ENOTDIR: BadPath,
    -_errno.ENAMETOOLONG: BadPath,
    -_errno.EMFILE: TooManyOpenFiles,
    -_errno.ENFILE: TooManyOpenFiles,
    -_errno.EOVERFLOW: Overflow,
    _lib.E_CORRUPT: Corrupt,
    _lib.E_FOREIGN: Foreign,
}


def error_class(code: int) -> Type[DaxKVError]:
    """The exception class for a negative error code."""
    return _BY_CODE.get(code, DaxKVError)


def _code_name(code: int) -> str:
    if code == _lib.E_CORRUPT:
        return "DAXKV_E_CORRUPT"
    if code == _lib.E_FOREIGN:
        return "DAXKV_E_FOREIGN"
    name = _CODE_NAMES.get(-code) or _errno.errorcode.get(-code)
    return name if name else str(code)


# Names the C ABI's documentation uses where Python's errno module knows
# the value under another (35 is EDEADLOCK there, an alias of EDEADLK).
_CODE_NAMES = {_errno.EDEADLK: "EDEADLK"}


def _fallback_strerror(code: int) -> str:
    import os

    if -4096 < code < 0:
        return os.strerror(-code)
    return {_lib.E_CORRUPT: "on-device metadata is corrupt", _lib.E_FOREIGN: "foreign device"}.get(
        code, f"error {code}"
    )
