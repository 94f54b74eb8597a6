"""The device pool: hotplug (add, remove, resize, drain) and how each of
its devices is laid out.

_PoolCalls, mixed into Store, holds the store's calls that take a device
path; HotplugResult and DeviceLayout are what they report.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import json
from typing import Any, Dict, Optional, Union

from . import _lib
from ._async import _timeout_seconds
from ._library import _error, _optional
from .errors import InvalidArgument


class _PoolCalls:
    """Store's pool methods (mixed into Store, which provides _enter, _leave
    and _text)."""

    def _path_call(self, name: str, path: Any, *args: Any) -> int:
        import os

        p = os.fsencode(path)
        if b"\0" in p or not p:
            raise InvalidArgument(-_errno.EINVAL, "device path is empty or contains a NUL byte", name)
        fn = _optional(name)
        h = self._enter()
        try:
            rc = fn(h, p, *args)
        finally:
            self._leave()
        return rc

    def device_add(self, path: Any, size: int = 0) -> None:
        """Map and add a device to the pool (size 0: whole device or file).
        Needs hotplug=1 (else PermissionDenied). Adding an active device
        again with the same size does nothing; with another size, Busy."""
        _check_size(size, "daxkv_device_add")
        rc = self._path_call("daxkv_device_add", path, size)
        if rc < 0:
            raise _error(rc, "daxkv_device_add")

    def device_remove(self, path: Any, mode: Union[str, int] = "migrate", *, force: bool = False) -> "HotplugResult":
        """Take a device out of the pool: mode "migrate" moves its entries
        to the other devices (all or nothing: NoSpace leaves it as it was),
        "evict" deletes them, "drain" stops new entries and returns at once
        (see device_wait_drained). Busy while entries are pinned or leased
        unless force. Needs hotplug=1."""
        m = _hotplug_mode(mode, "daxkv_device_remove")
        out = _lib.HotplugResult()
        out.struct_size = ctypes.sizeof(out)
        rc = self._path_call("daxkv_device_remove", path, m, _lib.FORCE if force else 0, ctypes.byref(out))
        if rc < 0:
            raise _error(rc, "daxkv_device_remove")
        return _hotplug_result(out)

    def device_resize(
        self, path: Any, size: int, mode: Union[str, int] = "migrate", *, force: bool = False
    ) -> "HotplugResult":
        """Change the usable size of a device. Shrinking moves the entries
        above the new end ("migrate") or deletes them ("evict", only with
        force). Growing is limited to the size it was opened or added with."""
        _check_size(size, "daxkv_device_resize")
        m = _hotplug_mode(mode, "daxkv_device_resize")
        out = _lib.HotplugResult()
        out.struct_size = ctypes.sizeof(out)
        rc = self._path_call("daxkv_device_resize", path, size, m, _lib.FORCE if force else 0, ctypes.byref(out))
        if rc < 0:
            raise _error(rc, "daxkv_device_resize")
        return _hotplug_result(out)

    def device_wait_drained(self, path: Any, timeout: Optional[float] = None) -> bool:
        """Wait until a draining device holds no entries: True when drained,
        False on timeout (seconds; None: no limit). InvalidArgument if the
        device is not draining, NotFound if unknown."""
        seconds = _timeout_seconds(timeout, "device_wait_drained")
        ms = -1 if seconds is None else int(seconds * 1000)
        rc = self._path_call("daxkv_device_wait_drained", path, ms)
        if rc == -_errno.ETIMEDOUT:
            return False
        if rc < 0:
            raise _error(rc, "daxkv_device_wait_drained")
        return True

    def pool_status_json(self) -> str:
        """The pool as JSON in the shape of LMCache's hotplug_status."""
        return self._text(_optional("daxkv_pool_status_json"), "daxkv_pool_status_json")

    def pool_status(self) -> Dict[str, Any]:
        """pool_status_json(), parsed."""
        return json.loads(self.pool_status_json())

    def device_layout(self, path: Any) -> "DeviceLayout":
        """How the pool's device at path is laid out, and how much of it is
        in use (daxkv_device_describe). NotFound if it is not in the pool."""
        out = _lib.DeviceLayout()
        out.struct_size = ctypes.sizeof(out)
        rc = self._path_call("daxkv_device_describe", path, ctypes.byref(out))
        if rc < 0:
            raise _error(rc, "daxkv_device_describe")
        return DeviceLayout(
            device_id=out.device_id,
            device_index=out.device_index,
            state=_lib.DEV_STATES.get(out.state, str(out.state)),
            slot_bytes=out.slot_bytes,
            layout_slots=out.layout_slots,
            usable_slots=out.usable_slots,
            used_end=out.used_end,
            arena_bytes=out.arena_bytes,
            data_offset=out.data_offset,
            payload_base=out.payload_base or 0,
        )


@dataclasses.dataclass(frozen=True)
class HotplugResult:
    """daxkv_hotplug_result: what device_remove / device_resize did."""

    state: str  # active | draining | migrating | resizing | removing | removed | missing
    state_code: int  # DEV_*
    device_index: int  # row in pool_status()["devices"]
    moved_keys: int
    moved_bytes: int
    deleted_keys: int
    source_slots_freed: int
    old_size_bytes: int
    new_size_bytes: int
    evicted_keys: int  # destinations' cold entries evicted to make room

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _hotplug_result(r: "_lib.HotplugResult") -> HotplugResult:
    return HotplugResult(
        state=_lib.DEV_STATES.get(r.state, str(r.state)),
        state_code=r.state,
        device_index=r.device_index,
        moved_keys=r.moved_keys,
        moved_bytes=r.moved_bytes,
        deleted_keys=r.deleted_keys,
        source_slots_freed=r.source_slots_freed,
        old_size_bytes=r.old_size_bytes,
        new_size_bytes=r.new_size_bytes,
        evicted_keys=r.evicted_keys,
    )


def _hotplug_mode(mode: Union[str, int], op: str) -> int:
    if isinstance(mode, str):
        m = _lib.HOTPLUG_MODES.get(mode.lower())
        if m is None:
            raise InvalidArgument(-_errno.EINVAL, f"unknown mode {mode!r} (migrate, evict, drain)", op)
        return m
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"mode must be a name or MIGRATE/EVICT/DRAIN, got {type(mode).__name__}")
    if not -(1 << 31) <= mode < 1 << 31:
        raise InvalidArgument(-_errno.EINVAL, f"mode out of range: {mode}", op)
    return mode


def _check_size(size: Any, op: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if not 0 <= size < 1 << 64:
        raise InvalidArgument(-_errno.EINVAL, f"size out of range: {size}", op)


@dataclasses.dataclass(frozen=True)
class DeviceLayout:
    """A device of the pool as its arena is laid out (daxkv_device_layout)."""

    device_id: int
    device_index: int
    state: str
    slot_bytes: int
    layout_slots: int  # slots laid out, room to grow included
    usable_slots: int
    used_end: int  # one past the highest slot in use (0: none)
    arena_bytes: int
    data_offset: int
    payload_base: int  # address of the first payload (0: not mapped)
