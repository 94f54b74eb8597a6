"""The key cursor: Store.keys() walks the committed keys (daxkv_cursor_*)
and yields a KeyInfo for each; _CursorCalls is mixed into Store.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
from typing import Any, Iterator

from . import _lib
from ._library import _error, _optional, library
from .errors import InvalidArgument


class _CursorCalls:
    """Store's key cursor (mixed into Store, which provides _enter and
    _leave)."""

    def keys(self, device: Any = None) -> Iterator["KeyInfo"]:
        """The committed keys, of every device or of one (daxkv_cursor_*).

        The walk runs beside writers: a key that stays committed throughout
        is reported exactly once; one added or removed meanwhile may or may
        not be. Each KeyInfo holds copies of the key and its metadata."""
        import os

        fn_open = _optional("daxkv_cursor_open")
        L = library()
        path = None
        if device is not None:
            path = os.fsencode(device)
            if b"\0" in path or not path:
                raise InvalidArgument(-_errno.EINVAL, "device path is empty or contains a NUL byte", "keys")
        cur = ctypes.c_void_p()
        # The cursor is closed whatever is raised once the library has made
        # it (a KeyboardInterrupt as daxkv_cursor_open returns): it holds
        # the store, whose devices would stay locked after close().
        try:
            h = self._enter()
            try:
                rc = fn_open(h, path, ctypes.byref(cur))
            finally:
                self._leave()
            if rc < 0:
                raise _error(rc, "daxkv_cursor_open")
            info = _lib.KeyInfo()
            info.struct_size = ctypes.sizeof(info)
            while True:
                rc = L.daxkv_cursor_next(cur, ctypes.byref(info))
                if rc == 0:
                    return
                if rc < 0:
                    raise _error(rc, "daxkv_cursor_next")
                yield KeyInfo(
                    key=ctypes.string_at(info.key, info.key_len),
                    meta=ctypes.string_at(info.meta, info.meta_len) if info.meta and info.meta_len else b"",
                    value_len=info.value_len,
                    device_id=info.device_id,
                    slot=info.slot,
                    seq=info.seq,
                    pins=info.pins,
                    leases=info.leases,
                )
        finally:
            if cur.value:
                L.daxkv_cursor_close(cur)


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """A committed entry as the key cursor reports it (daxkv_key_info)."""

    key: bytes
    meta: bytes
    value_len: int
    device_id: int
    slot: int
    seq: int  # commit sequence: larger is newer
    pins: int
    leases: int
