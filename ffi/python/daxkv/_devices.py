"""The host's devices, seen without a store: list_devices() and
probe(path), each reporting DeviceInfo.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
from typing import List, Union

from . import _lib
from ._library import _error, _optional
from .errors import InvalidArgument


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """A device as the library sees it (daxkv_device_info)."""

    path: str
    name: str
    kind: str  # devdax | file | memory
    mode: str  # none | devdax | system-ram
    size: int
    align: int
    numa_node: int
    target_node: int


def _device_info(d: "_lib.DeviceInfo") -> DeviceInfo:
    return DeviceInfo(
        path=d.path.decode("utf-8", "replace"),
        name=d.name.decode("utf-8", "replace"),
        kind=_lib.KINDS.get(d.kind, str(d.kind)),
        mode=_lib.MODES.get(d.mode, str(d.mode)),
        size=d.size,
        align=d.align,
        numa_node=d.numa_node,
        target_node=d.target_node,
    )


def probe(path: Union[str, bytes]) -> DeviceInfo:
    """What a store would see at path. NotFound if missing, NoDevice if unusable."""
    import os

    p = os.fsencode(path)
    if b"\0" in p:
        raise InvalidArgument(-_errno.EINVAL, "path contains a NUL byte", "daxkv_probe")
    fn = _optional("daxkv_probe")
    d = _lib.DeviceInfo()
    d.struct_size = ctypes.sizeof(d)
    rc = fn(p, ctypes.byref(d))
    if rc < 0:
        raise _error(rc, "daxkv_probe")
    return _device_info(d)


def list_devices() -> List[DeviceInfo]:
    """Every DAX device on the host (devdax and system-ram modes)."""
    fn = _optional("daxkv_list_devices")
    count = ctypes.c_size_t(0)
    cap = 8
    while True:
        arr = (_lib.DeviceInfo * cap)()
        for d in arr:
            d.struct_size = ctypes.sizeof(_lib.DeviceInfo)
        rc = fn(arr, cap, ctypes.byref(count))
        if rc == -_errno.ENOBUFS and count.value > cap:
            cap = count.value  # devices appeared between calls: retry
            continue
        if rc < 0:
            raise _error(rc, "daxkv_list_devices")
        return [_device_info(arr[i]) for i in range(min(count.value, cap))]
