"""An L2 adapter for LMCache's multiprocess (MP) server, on libdaxkv.

LMCache loads it by configuration, through its plugin adapter type::

    --l2-adapter '{"type": "plugin",
                   "module_path": "daxkv.lmcache.l2",
                   "class_name": "DaxkvL2Adapter",
                   "adapter_params": {"device_path": "/dev/dax0.0",
                                      "max_dax_size_gb": 64,
                                      "slot_bytes": 33554432}}'

``adapter_params`` takes the members of LMCache's own ``dax`` adapter
(``device_path`` + ``max_dax_size_gb`` or ``devices``, ``slot_bytes``,
``hotplug_enabled``, ``num_*_workers``) and libdaxkv's: ``persist_enabled``
(restart recovery), ``durability``, ``verify``, ``workers``, ``meta_bytes``,
``on_mismatch``, ``numa``, ``nt_stores``.

All devices form one libdaxkv pool. Stores and loads are libdaxkv batches
(one per piece of a task: 512 items, the first and last 128) submitted to
its asynchronous engine (daxkv_submit); one thread sleeps on the store's
event fd and completes LMCache's tasks, signalling LMCache's store and
load event fds. A lookup is one batch run in the submitting call, its
result posted on the lookup event fd at once. Hotplug goes through
LMCache's generic ``reconfigure`` routes (status, add, remove, resize)
with LMCache's HTTP codes.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import logging
import math
import os
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional, Tuple

from lmcache.native_storage_ops import Bitmap
from lmcache.v1.distributed.api import KeyEntry, KeyListPage, ObjectKey
from lmcache.v1.distributed.internal_api import L2StoreResult
from lmcache.v1.distributed.l2_adapters.base import AdapterUsage, L2AdapterInterface, L2TaskId
from lmcache.v1.distributed.l2_adapters.config import L2AdapterConfigBase
from lmcache.v1.distributed.l2_adapters.reconfiguration import L2ReconfigureError
from lmcache.v1.platform import create_event_notifier

from .. import _lib
from .._batch import _Batch
from .._store import Store
from ..errors import DaxKVError, Deadlock, InvalidArgument, NotFound, NoSpace, PermissionDenied, Busy, Shutdown
from . import _native
from .keys import KeyNotStorable, decode_key, encode_keys_partial
from .meta import DEFAULT_META_BYTES, decode_meta

__all__ = ["DaxkvL2Adapter", "DaxkvL2AdapterConfig"]

logger = logging.getLogger("daxkv.lmcache")

_OPERATIONS = ["status", "add", "remove", "resize"]
# libdaxkv's options an adapter_params dict may carry, passed to the store.
_STORE_OPTIONS = ("durability", "verify", "workers", "meta_bytes", "on_mismatch", "numa",
                  "nt_stores", "sigbus", "placement", "grow_limit")


# The counts of a device row once the adapter is closed (LMCache's close()
# clears its cores' slots, locks and borrows).
_CLOSED_COUNTS = {"live_slot_count": 0, "entry_count": 0, "locked_key_count": 0, "borrowed_slot_count": 0,
                  "active_read_count": 0, "active_write_count": 0}


def _unusable_device(devices: List[Tuple[str, int]]) -> Optional[str]:
    """Why the first of devices LMCache's adapter would fail to open or size
    cannot be used (its open, then its fstat), or None."""
    for path, size in devices:
        if path == "mem:":
            continue  # libdaxkv's memory device: nothing to open
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            return f"Failed to open dax device {path}: {exc}"
        try:
            have = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if have and have < size:
            return f"max_dax_size_bytes ({size} bytes) exceeds device capacity ({have} bytes)"
    return None


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _positive_float(value: Any, name: str) -> float:
    # Finite too: an infinite size has no byte count (int() of it raises
    # OverflowError).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number")
    try:
        return float(value)
    except OverflowError:  # an int past any float (10**400)
        raise ValueError(f"{name} is too large") from None


def _gib_bytes(value: Any, name: str) -> int:
    """A positive number of GiB as bytes: ValueError naming the member
    where it is no positive number, or too large for a float of bytes
    (1e300, 10**400: OverflowError escaped LMCache's loader, which takes
    TypeError and ValueError)."""
    gb = _positive_float(value, name)
    try:
        return int(gb * 1024**3)
    except OverflowError:
        raise ValueError(f"{name} is too large") from None


def _device_path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()


class DaxkvL2AdapterConfig(L2AdapterConfigBase):
    """The adapter's configuration (LMCache's plugin loader finds it by the
    adapter class's name + "Config" and builds it with from_dict)."""

    def __init__(
        self,
        *,
        slot_bytes: int,
        devices: List[Tuple[str, int]],
        hotplug_enabled: bool = False,
        persist_enabled: bool = False,
        store_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        if not devices and not hotplug_enabled:
            raise ValueError("devices may be empty only when hotplug_enabled is true")
        self.slot_bytes = slot_bytes
        self.devices = list(devices)
        self.hotplug_enabled = hotplug_enabled
        self.persist_enabled = persist_enabled
        self.store_options = dict(store_options or {})

    @classmethod
    def from_dict(cls, d: dict) -> "DaxkvL2AdapterConfig":
        """LMCache's dax adapter members plus libdaxkv's; ValueError names
        the member that is wrong."""
        if not isinstance(d, dict):
            raise ValueError("adapter_params must be a dict")
        slot_bytes = _positive_int(d.get("slot_bytes"), "slot_bytes")
        devices: List[Tuple[str, int]] = []
        if "devices" in d:
            # As LMCache's adapter: devices wins, and the single-device
            # members beside it are not looked at.
            if "device_path" in d or "max_dax_size_gb" in d:
                logger.warning("DAX L2 adapter: devices is given, so device_path and "
                               "max_dax_size_gb are ignored")
            raw = d["devices"]
            if not isinstance(raw, list):
                raise ValueError("devices must be a list")
            for i, dev in enumerate(raw):
                if not isinstance(dev, dict):
                    raise ValueError(f"devices[{i}] must be a dict")
                path = _device_path(dev.get("device_path"), f"devices[{i}].device_path")
                size = _gib_bytes(dev.get("max_dax_size_gb"), f"devices[{i}].max_dax_size_gb")
                if size // slot_bytes <= 0:
                    raise ValueError(f"devices[{i}] configured DAX arena does not fit one slot")
                devices.append((path, size))
        else:
            # As LMCache's adapter: only an explicit "devices": [] starts
            # without a device.
            path = _device_path(d.get("device_path"), "device_path")
            size = _gib_bytes(d.get("max_dax_size_gb"), "max_dax_size_gb")
            if size // slot_bytes <= 0:
                raise ValueError("configured DAX arena does not fit even one slot")
            devices.append((path, size))
        # LMCache's adapter takes bool() of the value: true/false, 0/1 (an
        # integer, as daxkv_config_from_json takes it) and null mean what
        # they say there too. A string is refused, where LMCache would take
        # "false" for true.
        hotplug = d.get("hotplug_enabled", False)
        if hotplug is None:
            hotplug = False
        if not isinstance(hotplug, int):
            raise ValueError("hotplug_enabled must be a boolean")
        hotplug = bool(hotplug)
        persist = d.get("persist_enabled", False)
        if not isinstance(persist, bool):
            raise ValueError("persist_enabled must be a boolean")
        options: Dict[str, Any] = {}
        for name in ("num_store_workers", "num_lookup_workers", "num_load_workers"):
            if name in d:
                _positive_int(d[name], name)
        if "num_load_workers" in d:
            options["workers"] = min(d["num_load_workers"], 256)
        for name in _STORE_OPTIONS:
            if name in d:
                v = d[name]
                if not isinstance(v, (str, int)) or isinstance(v, float):
                    raise ValueError(f"{name} must be a string or an integer")
                options[name] = v
        known = {"type", "slot_bytes", "devices", "device_path", "max_dax_size_gb", "hotplug_enabled",
                 "persist_enabled", "num_store_workers", "num_lookup_workers", "num_load_workers",
                 "eviction", "serde", *_STORE_OPTIONS}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown adapter_params member(s): {', '.join(unknown)}")
        cfg = cls(
            slot_bytes=slot_bytes,
            devices=devices,
            hotplug_enabled=hotplug,
            persist_enabled=persist,
            store_options=options,
        )
        cfg.eviction_config = cls._parse_eviction_config(d)
        return cfg

    @classmethod
    def help(cls) -> str:
        return (
            "libdaxkv L2 adapter (module daxkv.lmcache.l2, class DaxkvL2Adapter) fields:\n"
            "- device_path (str), max_dax_size_gb (float): one device\n"
            "- devices (list of {device_path, max_dax_size_gb}): several devices, one pool\n"
            "- slot_bytes (int): fixed slot size in bytes (required, >0)\n"
            "- hotplug_enabled (bool): runtime add/remove/resize through reconfigure\n"
            "- persist_enabled (bool): keep entries across restarts (default false)\n"
            "- durability, verify, workers, meta_bytes, on_mismatch, numa, nt_stores,\n"
            "  sigbus, placement, grow_limit: libdaxkv options (see daxkv_config_set)\n"
            "- num_store_workers, num_lookup_workers, num_load_workers (int): accepted;\n"
            "  num_load_workers sizes libdaxkv's copy engine"
        )


# A task's items go to the library in pieces of _PIECE_ITEMS items: the
# library copies one piece while the next one is prepared, and a load's
# completions are read while later pieces are copied. The first and the
# last piece are smaller (_EDGE_ITEMS): nothing is copied while the first
# is prepared, and nothing is left to copy while the last one's completion
# is read. What pieces overlap is the Python work per item, so they are cut
# by items, not bytes: each costs a hand-off to the library's dispatcher
# thread and a completion, which a task of a few hundred large chunks does
# not win back. On two vCPUs (ffi/python/bench_lmcache.py, alternating
# rounds), 256 chunks of 1 MiB restored at a median 0.88 of the C call in
# pieces of 64 MiB and 0.93 in one piece, stored at 0.87 and 0.93; 4,096
# chunks of 64 KiB at 0.61 in pieces of 1,024 and 0.53 in one.
_PIECE_ITEMS = 512
_EDGE_ITEMS = 128

# Seconds close() waits, once the library has finished every batch, for
# tasks whose submitters have yet to post them (see close).
_CLOSE_POST_WAIT = 10.0


def _fills(obj: Any, length: int, meta: Any) -> bool:
    """Whether an entry of length bytes, stored with meta, is a whole value
    for obj: exactly its size, and of its dtype and shape where both are
    known."""
    if length != int(obj.get_size()):
        return False
    m = getattr(obj, "metadata", None)
    for field in ("dtype", "shape"):
        stored, wanted = getattr(meta, field), getattr(m, field, None)
        if stored is not None and wanted is not None and _comparable(stored) != _comparable(wanted):
            return False
    return True


def _comparable(v: Any) -> Any:
    """A shape as a tuple (a torch.Size is one; a list is compared as one),
    anything else as it is."""
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _pieces(n: int, step: int, edge: int) -> List[Tuple[int, int]]:
    """[start, end) of each piece of an n-item task: the first and the last
    edge items, the rest step items at a time; one piece if n <= 2 * edge."""
    if n <= 2 * edge:
        return [(0, n)]
    cuts = [0, edge, *range(edge + step, n - edge, step), n - edge, n]
    return list(zip(cuts, cuts[1:]))


class _Task:
    """A submitted LMCache task: what its completion needs, and how many of
    its pieces are still out (the last one to complete finishes it)."""

    __slots__ = ("task_id", "keys", "objs", "index", "failed_early", "lock", "left", "ok", "result")

    def __init__(self, task_id: int, keys: List[ObjectKey], objs: Optional[List[Any]], index: List[int]) -> None:
        self.task_id = task_id
        self.keys = keys
        self.objs = objs
        self.index = index  # positions of the submitted items in keys
        self.failed_early = len(index) != len(keys)
        self.lock = threading.Lock()
        self.left = 0  # pieces not yet completed
        self.ok = 0  # items stored or loaded
        self.result: Any = None  # a load's bitmap

    def piece_done(self, ok: int, failed: bool = False) -> bool:
        """Count a completed (or never submitted) piece; True for the last."""
        with self.lock:
            self.ok += ok
            if failed:
                self.failed_early = True
            self.left -= 1
            return self.left == 0


def _payload_path(payload: Dict[str, object]) -> str:
    """A reconfigure payload's device_path, as LMCache reads it."""
    path = payload.get("device_path")
    if not isinstance(path, str) or not path.strip():
        raise L2ReconfigureError(400, "device_path must be a non-empty string")
    return path.strip()


def _payload_size(payload: Dict[str, object]) -> int:
    size = payload.get("size_bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise L2ReconfigureError(400, "size_bytes must be a positive integer")
    return size


def _payload_force(payload: Dict[str, object]) -> bool:
    force = payload.get("force", False)
    if not isinstance(force, bool):
        raise L2ReconfigureError(400, "force must be a boolean")
    return force


class DaxkvL2Adapter(L2AdapterInterface):
    """LMCache MP L2 adapter storing fixed-size objects in a libdaxkv pool."""

    def __init__(self, config: DaxkvL2AdapterConfig, **_: Any) -> None:
        """Open the pool and start the completion thread.

        Raises:
            RuntimeError: a configured device cannot be opened or mapped.
            ValueError: a size that does not fit one slot, or a bad option.
        """
        if isinstance(config, dict):
            config = DaxkvL2AdapterConfig.from_dict(config)
        super().__init__(max_capacity_bytes=sum(size for _, size in config.devices))
        self._config = config
        self._slot_bytes = config.slot_bytes
        self._piece = max(1, _PIECE_ITEMS)
        self._edge = max(1, min(self._piece, _EDGE_ITEMS))
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._next_task_id: L2TaskId = 0
        self._inflight = {"store": 0, "lookup": 0, "load": 0}
        # Tasks counted and not yet posted on their event fd (a result
        # stored but its notify to come counts): close() waits for them
        # before it closes the fds.
        self._unposted = 0
        self._posted = threading.Condition(self._lock)
        self._completed_store: Dict[L2TaskId, L2StoreResult] = {}
        self._completed_lookup: Dict[L2TaskId, Bitmap] = {}
        self._completed_load: Dict[L2TaskId, Bitmap] = {}
        # The bytes asked for each device (configured, added or resized to),
        # as LMCache reports them; a removed device's last size stays.
        self._sizes: Dict[str, int] = {path: size for path, size in config.devices}
        # The device rows when the adapter closed (LMCache lists them closed).
        self._closed_rows: Optional[List[dict]] = None
        self._store_efd = create_event_notifier()
        self._lookup_efd = create_event_notifier()
        self._load_efd = create_event_notifier()
        # The keys listeners have been told are stored (and not since told
        # deleted), by encoding. A store's completion comes after the library
        # committed its keys: a delete or an eviction running in between
        # removes a key no listener has heard of yet. Each key is told
        # stored at most once and deleted only after it was told stored, in
        # the order of those decisions (taken, with their notifications,
        # under _told_lock), so LMCache's byte accounting and eviction
        # controllers never count a key twice, nor one that is gone.
        self._told: Dict[bytes, ObjectKey] = {}
        # Calls that may remove keys from the library (deletes, evicting
        # hotplug), counted under _told_lock when they end, whether they
        # succeed or fail: a store piece whose count has not moved since
        # its submission lost none of its keys, and its completion tells
        # them without asking the library. (Counted as they started, a
        # piece submitted while a delete ran took the count the delete had
        # already moved, and its key committed and then removed was told
        # stored.)
        self._removals = 0
        self._told_lock = threading.RLock()  # a listener may delete from its callback
        opts = dict(config.store_options)
        opts.setdefault("durability", "process" if config.persist_enabled else "none")
        if not config.persist_enabled:
            # Nothing is recovered, so value checksums would never be
            # checked (verify=read asks for them explicitly).
            opts.setdefault("verify", "off")
        opts.setdefault("meta_bytes", DEFAULT_META_BYTES)
        opts.setdefault("grow_limit", "auto")  # resize grows a device as far as it goes
        try:
            try:
                self._store = Store(
                    devices=config.devices,
                    slot_bytes=config.slot_bytes,
                    capacity="payload",
                    eviction="none",  # LMCache's L2 eviction controller decides
                    create=False,
                    # Always: resizing a reopened device to its configured
                    # size needs it; hotplug_enabled gates the reconfigure
                    # routes instead.
                    hotplug=True,
                    **opts,
                )
            except InvalidArgument as exc:
                # LMCache's adapter opens and sizes each device before it
                # maps it: a device it cannot open, or one smaller than
                # asked for, is that RuntimeError, whichever check of the
                # library's refused the configuration first.
                unusable = _unusable_device(config.devices)
                if unusable is not None:
                    raise RuntimeError(f"failed to map DAX device: {unusable}") from exc
                raise ValueError(f"invalid DAX adapter configuration: {exc.message}") from exc
            except DaxKVError as exc:
                raise RuntimeError(f"failed to map DAX device: {exc.message}") from exc
            for path, _ in config.devices:
                if self._store.device_layout(path).state == "missing":
                    # A pool with hotplug opens without a missing device; a
                    # configured one that cannot be mapped is an error, as
                    # in LMCache's adapter.
                    why = "does not exist" if not os.path.lexists(path) else "is not a usable device"
                    raise RuntimeError(f"failed to map DAX device: {path} {why}")
            self._meta_cap = self._store.stats().meta_bytes
            self._engine = _native.AsyncEngine(self._store, "daxkv-l2-completions")
            # Last: fitting a persistent device to a smaller configured size
            # removes its oldest entries, which an adapter that then failed
            # to start (a later device missing) must not have done.
            for path, size in config.devices:
                _native.fit_device(self._store, path, size // config.slot_bytes, config.slot_bytes, at_open=True)
        except BaseException:
            if hasattr(self, "_engine"):
                self._engine.close()
            for efd in (self._store_efd, self._lookup_efd, self._load_efd):
                efd.close()
            if hasattr(self, "_store"):
                self._store.close()
            raise
        if config.persist_enabled:
            self._account_recovered()

    # -- restart recovery ------------------------------------------------------

    def _account_recovered(self) -> None:
        """Count what the store recovered in LMCache's byte accounting, so
        that the eviction controller knows (and can evict) it; listeners
        registered later are told about it at registration."""
        n = self._tell_found(None)
        if n:
            logger.info("DAX L2 adapter recovered %d entries", n)

    def _tell_found(self, device_path: Optional[str]) -> int:
        """Tell the listeners, as just stored, about the entries the library
        holds (on one device, or in the pool) that they have not been told
        about: those it recovered at open, or found on a device added back
        with its arena. Without this, LMCache's accounting and eviction
        controller never learn of them, and nothing ever evicts them."""
        keys: List[ObjectKey] = []
        with self._told_lock:
            try:
                infos = self._store.keys() if device_path is None else self._store.keys(device_path)
                for info in infos:
                    if info.key in self._told:
                        continue
                    try:
                        key = decode_key(info.key)
                    except ValueError:
                        continue
                    if isinstance(key, ObjectKey):
                        self._told[info.key] = key
                        keys.append(key)
            except (NotFound, Shutdown):
                pass  # removed or closed meanwhile: what was listed is told
            if keys:
                self._tell_listeners("stored", self._notify_keys_stored, keys, [self._slot_bytes] * len(keys))
        return len(keys)

    def register_listener(self, listener: Any) -> None:
        """Register a listener; it is told at once about every key the
        adapter's listeners were told is stored (recovered ones included),
        as if they were just stored. A store still completing tells it with
        the others."""
        with self._told_lock:
            super().register_listener(listener)
            keys = list(self._told.values())
            if keys:
                listener.on_l2_keys_stored(keys, [self._slot_bytes] * len(keys))

    def list_l2_keys(
        self, model_name: Optional[str] = None, page_size: int = 500, cursor: Optional[str] = None
    ) -> KeyListPage:
        """A page of the stored keys (ordered by their encoding; the cursor
        is the encoding of the last key of the previous page, in hex)."""
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        after = bytes.fromhex(cursor) if cursor else b""
        found = []
        try:
            for info in self._store.keys():
                if info.key <= after:
                    continue
                try:
                    key = decode_key(info.key)
                except ValueError:
                    continue
                if not isinstance(key, ObjectKey) or (model_name is not None and key.model_name != model_name):
                    continue
                found.append((info.key, key))
        except Shutdown:
            # Closed (or closing meanwhile): it holds nothing any more, as
            # for the adapter's other queries.
            return KeyListPage(entries=(), next_page_token=None)
        found.sort(key=lambda t: t[0])
        page = found[:page_size]
        entries = tuple(KeyEntry(key=k.to_encoded_object_key(), size_bytes=self._slot_bytes) for _, k in page)
        next_token = page[-1][0].hex() if len(found) > page_size else None
        return KeyListPage(entries=entries, next_page_token=next_token)

    # -- event fds ---------------------------------------------------------------

    def get_store_event_fd(self) -> int:
        return self._store_efd.fileno()

    def get_lookup_and_lock_event_fd(self) -> int:
        return self._lookup_efd.fileno()

    def get_load_event_fd(self) -> int:
        return self._load_efd.fileno()

    def _new_task(self, kind: str) -> L2TaskId:
        with self._lock:
            if self._closing or self._closed:
                raise RuntimeError("DaxkvL2Adapter is closing")
            task_id = self._next_task_id
            self._next_task_id += 1
            self._inflight[kind] += 1
            self._unposted += 1
            return task_id

    def _finish(self, kind: str, task_id: L2TaskId, result: Any) -> None:
        table = {"store": self._completed_store, "lookup": self._completed_lookup,
                 "load": self._completed_load}[kind]
        with self._lock:
            table[task_id] = result
            self._inflight[kind] -= 1
        efd = {"store": self._store_efd, "lookup": self._lookup_efd, "load": self._load_efd}[kind]
        try:
            efd.notify()
        except (OSError, ValueError):
            # Closed by close() (from a listener on the completion thread):
            # LMCache's notifier raises ValueError for its fd of -1 then.
            logger.debug("event fd closed during shutdown")
        finally:
            with self._lock:
                self._unposted -= 1
                if not self._unposted:
                    self._posted.notify_all()

    # -- store -------------------------------------------------------------------

    def submit_store_task(self, keys: List[ObjectKey], objects: List[Any]) -> L2TaskId:
        """Store objects (libdaxkv batches, one per piece of the task); the
        result comes through the store event fd. A key already stored
        counts as stored; a key libdaxkv cannot hold (longer than its
        512-byte limit once encoded) is logged and fails the task for it."""
        if len(keys) != len(objects):
            raise ValueError(
                f"keys and objects must have the same length, got {len(keys)} and {len(objects)}"
            )
        from .core import _data_ptr, _is_multi_tensor, _meta_of, _warn_key_too_long

        # The keys are encoded before the task is counted: once it is, every
        # piece completes (or is failed), whatever a key or object holds.
        too_long: List[Tuple[int, KeyNotStorable]] = []
        kbs, pos = encode_keys_partial(keys, too_long)
        task_id = self._new_task("store")
        for i, exc in too_long:
            _warn_key_too_long("DAX L2 store skips", keys[i], exc)
        n = len(keys)
        task = _Task(task_id, list(keys), list(objects), [])
        task.failed_early = False
        pieces = _pieces(n, self._piece, self._edge)
        task.left = len(pieces) or 1
        if not n:
            self._store_done(task, 0, 0, None, False)
            return task_id
        # Position in keys -> encoding (None: a key too long to store).
        if pos is None:
            key_bytes: List[Optional[bytes]] = kbs  # type: ignore[assignment]
        else:
            key_bytes = [None] * n
            for i, kb in zip(pos, kbs):
                key_bytes[i] = kb
        slot = self._slot_bytes
        index = task.index
        # Each piece is prepared and submitted in turn: the library copies
        # one while the next is prepared.
        for p, (a, b) in enumerate(pieces):
            first = len(index)
            submission = _native.Submission()
            try:
                names, addrs, sizes, metas = [], [], [], []
                skipped = False
                for i in range(a, b):
                    kb = key_bytes[i]
                    if kb is None:
                        skipped = True
                        continue
                    obj = objects[i]
                    size = int(obj.get_size())
                    if _is_multi_tensor(obj) or not 0 <= size <= slot:
                        logger.error("DAX L2 store skips key %s: multi-tensor or larger than a slot", keys[i])
                        skipped = True
                        continue
                    try:
                        meta = _meta_of(obj)
                    except ValueError as exc:
                        # Never stored with metadata other than its own.
                        logger.warning("DAX L2 store skips key %s: its metadata cannot be stored (%s)", keys[i], exc)
                        skipped = True
                        continue
                    addrs.append(_data_ptr(obj))
                    sizes.append(size)
                    metas.append(meta)
                    names.append(kb)
                    index.append(i)
                if not names:
                    self._store_done(task, first, 0, None, skipped)
                    continue
                self._engine.submit(
                    _lib.OP_PUT, _native.PutBatch(names, addrs, sizes, metas), 0,
                    lambda rc, put, first=first, skipped=skipped, removals=self._removals: self._store_done(
                        task, first, rc, put, skipped, removals), submission)
            except BaseException as exc:
                if isinstance(exc, Shutdown):
                    # close() raced the submission: expected, the task fails.
                    logger.debug("DAX L2 store submission refused: the adapter is closing")
                elif isinstance(exc, Exception):
                    logger.exception("DAX L2 store submission failed")
                # This piece (unless the library took it: its completion
                # counts it) and those not submitted fail, so that the task
                # posts: close() waits for every task counted. An interrupt
                # then reaches the caller.
                for _ in range(len(pieces) - p - submission.accepted):
                    self._store_done(task, first, 0, None, True)
                if not isinstance(exc, Exception):
                    raise
                break
        return task_id

    def _store_done(self, task: _Task, first: int, rc: int, put: Optional[_native.PutBatch], failed: bool,
                    removals: int = 0) -> None:
        """A piece of a store completed (put None: nothing of it was
        submitted; failed: some of its keys were refused before); the last
        one finishes the task."""
        statuses = put.batch.statuses() if put is not None else []
        ok = 0
        new = []
        for j, s in enumerate(statuses, first):
            if s >= 0:
                ok += 1
                if s == 0:
                    new.append((put.kbs[j - first], task.keys[task.index[j]]))
            elif s == -_errno.E2BIG:
                # Keys and sizes were checked before: the metadata is too big.
                logger.warning(
                    "DAX L2 store of key %s failed: its metadata (shape, dtype, format, token positions) "
                    "is larger than meta_bytes (%d bytes); raise meta_bytes in adapter_params to store it",
                    task.keys[task.index[j]], self._meta_cap)
            elif s not in _native.QUIET_WRITE_FAILURES:
                logger.warning("DAX L2 store of key %s failed: %s", task.keys[task.index[j]], _native.strerror(s))
        # Listeners first (LMCache's controllers account the bytes there), so
        # that a caller woken by the completion sees the new keys counted.
        if new:
            self._tell_stored(new, removals)
        if task.piece_done(ok, failed=failed or ok != len(statuses)):
            success = not task.failed_early
            self._finish("store", task.task_id, L2StoreResult(success, self._slot_bytes * task.ok))

    def _tell_stored(self, keys: List[Tuple[bytes, ObjectKey]], removals: int) -> None:
        """Tell the listeners about the keys a store inserted (encoding,
        key) that are still there and that they have not been told about
        yet (removals: the count of removals when the store was submitted)."""
        # On the completion thread: a listener that closes the adapter while
        # it holds _told_lock (told of a delete) waits in close() for this
        # very completion; once the adapter is closing, its listeners are
        # told nothing more.
        while not self._told_lock.acquire(timeout=0.05):
            if self._closing:
                return
        try:
            self._tell_stored_locked(keys, removals)
        finally:
            self._told_lock.release()

    def _tell_stored_locked(self, keys: List[Tuple[bytes, ObjectKey]], removals: int) -> None:
        fresh: Dict[bytes, ObjectKey] = {}
        for kb, key in keys:
            if kb not in self._told:
                fresh.setdefault(kb, key)
        if not fresh:
            return
        # A delete (or an evicting hotplug) between the library's commit
        # and this completion removed the key: not told at all.
        if self._removals == removals:
            present = [True] * len(fresh)  # nothing was removed since the submission
        else:
            present = _native.contains_many(self._store, list(fresh), False)
        told = []
        for (kb, key), there in zip(fresh.items(), present):
            if there:
                self._told[kb] = key
                told.append(key)
        if told:
            self._tell_listeners("stored", self._notify_keys_stored, told, [self._slot_bytes] * len(told))

    def _tell_gone(self, kbs: List[bytes]) -> None:
        """Tell the listeners about the keys removed from the library that
        they were told are stored (the caller holds _told_lock)."""
        gone = []
        for kb in kbs:
            key = self._told.pop(kb, None)
            if key is not None:
                gone.append(key)
        if gone:
            self._notify_keys_deleted(gone, [self._slot_bytes] * len(gone))

    @staticmethod
    def _tell_listeners(what: str, notify: Callable[..., None], *args: Any) -> None:
        """notify(*args) from a completion: a listener that raises is
        logged, and the task still finishes (its caller waits on the event
        fd for it, as LMCache's adapter posts its results whatever its
        listeners do)."""
        try:
            notify(*args)
        except Exception:
            logger.exception("a DAX L2 listener failed on keys %s", what)

    def pop_completed_store_tasks(self) -> Dict[L2TaskId, L2StoreResult]:
        with self._lock:
            done, self._completed_store = self._completed_store, {}
        return done

    # -- lookup and lock ---------------------------------------------------------

    def submit_lookup_and_lock_task(self, keys: List[ObjectKey], layout_desc: Any = None) -> L2TaskId:
        """Look up keys and lock (pin) each hit until submit_unlock.

        The lookup runs here, in one library call (a hash lookup per key,
        no copy), and its result is posted at once: handing it to a thread
        would cost more than the lookup itself."""
        del layout_desc  # every entry carries its own layout
        # Encoded before the task is counted; a key libdaxkv cannot hold
        # (too long) was never stored: a miss.
        kbs, pos = encode_keys_partial(keys)
        task_id = self._new_task("lookup")
        n = len(keys)
        bitmap = Bitmap(n)
        try:
            if kbs:
                batch = _Batch(kbs)
                rc = _native.run_batch(self._store, "daxkv_contains_batch", batch, _lib.PIN)
                if rc < 0 and rc != -_errno.ESHUTDOWN:
                    logger.error("DAX L2 lookup failed: %s", _native.strerror(rc))
                elif rc == n:
                    bitmap = Bitmap(n, n)  # every key found: all bits at once
                elif rc > 0:
                    for j, s in enumerate(batch.statuses()):
                        if s == 1:
                            bitmap.set(j if pos is None else pos[j])
        except Exception:
            logger.exception("DAX L2 lookup failed")
        finally:
            # Posted whatever happened (an interrupt included): close()
            # waits for every task counted.
            self._finish("lookup", task_id, bitmap)
        return task_id

    def query_lookup_and_lock_result(self, task_id: L2TaskId) -> Optional[Bitmap]:
        with self._lock:
            return self._completed_lookup.pop(task_id, None)

    def submit_unlock(self, keys: List[ObjectKey]) -> None:
        """Drop one lock per key (never below zero)."""
        if not keys:
            return
        kbs, _ = encode_keys_partial(keys)  # keys too long were never stored or locked
        if kbs:
            _native.run_batch(self._store, "daxkv_unpin_batch", _Batch(kbs))

    # -- load --------------------------------------------------------------------

    def submit_load_task(self, keys: List[ObjectKey], objects: List[Any]) -> L2TaskId:
        """Copy entries into the caller's objects (libdaxkv batches, one per
        piece of the task)."""
        if len(keys) != len(objects):
            raise ValueError(
                f"keys and objects must have the same length, got {len(keys)} and {len(objects)}"
            )
        from .core import _data_ptr, _is_multi_tensor

        # Encoded before the task is counted; a key libdaxkv cannot hold
        # (too long) was never stored: a miss.
        kbs, pos = encode_keys_partial(keys)
        if pos is None:
            key_bytes: List[Optional[bytes]] = kbs  # type: ignore[assignment]
        else:
            key_bytes = [None] * len(keys)
            for i, kb in zip(pos, kbs):
                key_bytes[i] = kb
        task_id = self._new_task("load")
        n = len(keys)
        task = _Task(task_id, list(keys), list(objects), [])
        task.result = []  # positions loaded, gathered piece by piece
        pieces = _pieces(n, self._piece, self._edge)
        task.left = len(pieces) or 1
        if not n:
            self._load_done(task, 0, None)
            return task_id
        index = task.index
        for p, (a, b) in enumerate(pieces):
            first = len(index)
            submission = _native.Submission()
            try:
                names, addrs, caps = [], [], []
                for i in range(a, b):
                    kb = key_bytes[i]
                    obj = objects[i]
                    # A negative size holds nothing; one beyond a slot takes
                    # any entry (none is larger).
                    cap = min(int(obj.get_size()), self._slot_bytes) if kb is not None else -1
                    if cap < 0 or _is_multi_tensor(obj):
                        continue
                    addrs.append(_data_ptr(obj))
                    caps.append(cap)
                    names.append(kb)
                    index.append(i)
                if not names:
                    self._load_done(task, first, None)
                    continue
                get = _native.GetBatch(names, addrs, caps, self._meta_cap)
                self._engine.submit(_lib.OP_GET, get, 0, lambda rc, g, first=first: self._load_done(task, first, g),
                                    submission)
            except BaseException as exc:
                if isinstance(exc, Shutdown):
                    # close() raced the submission: expected, the keys miss.
                    logger.debug("DAX L2 load submission refused: the adapter is closing")
                elif isinstance(exc, Exception):
                    logger.exception("DAX L2 load submission failed")
                # As for a store: every piece the library did not take misses.
                for _ in range(len(pieces) - p - submission.accepted):
                    self._load_done(task, first, None)
                if not isinstance(exc, Exception):
                    raise
                break
        return task_id

    def _load_done(self, task: _Task, first: int, get: Optional[_native.GetBatch]) -> None:
        """A piece of a load completed (get None: it was never submitted);
        the last one finishes the task."""
        positions: List[int] = []
        failed: List[bytes] = []  # read errors: the library may have dropped the entry
        objs = task.objs
        assert objs is not None
        index, keys = task.index, task.keys
        for j, (s, length, blob) in enumerate(get.results() if get is not None else (), first):
            i = index[j]
            if s != 0:
                if s not in (-_errno.ENOENT, -_errno.ENOBUFS, -_errno.ESHUTDOWN):
                    logger.error("DAX L2 load of key %s failed: %s", keys[i], _native.strerror(s))
                    failed.append(get.kbs[j - first])
                continue
            try:
                meta = decode_meta(blob)
            except ValueError:
                continue
            if not _fills(objs[i], length, meta):
                # An entry of another size, dtype or shape under the same
                # key (a persistent device kept across a change of the KV
                # layout): a hit would hand back an object partly written,
                # or bytes of another type. A miss.
                logger.debug("DAX L2 entry of %s (%d bytes) does not fit its object: a miss", keys[i], length)
                continue
            objs[i].metadata.cached_positions = meta.cached_positions
            positions.append(i)
        with task.lock:
            task.result.extend(positions)
        if failed:
            self._tell_dropped(failed)
        # Listeners first, as for a store (and as LMCache's own adapter
        # does): a caller woken by the completion finds the keys' access
        # already recorded by the eviction controllers.
        if positions:
            self._tell_listeners("accessed", self._notify_keys_accessed, [keys[i] for i in positions])
        if task.piece_done(len(positions)):
            n = len(keys)
            if len(task.result) == n:
                bitmap = Bitmap(n, n)  # every key loaded: all bits at once
            else:
                bitmap = Bitmap(n)
                for i in task.result:
                    bitmap.set(i)
            self._finish("load", task.task_id, bitmap)

    def _tell_dropped(self, kbs: List[bytes]) -> None:
        """Tell the listeners about keys whose read failed and that the
        library dropped (a value failing its checksum with verify=read, a
        read that faulted with sigbus=handle): gone, as if deleted. On the
        completion thread, as _tell_stored."""
        while not self._told_lock.acquire(timeout=0.05):
            if self._closing:
                return
        try:
            # Gone only where the library answers a miss: a lookup that
            # fails (a closing store) tells nothing.
            batch = _Batch(kbs)
            if _native.run_batch(self._store, "daxkv_contains_batch", batch) >= 0:
                self._tell_gone([kb for kb, s in zip(kbs, batch.statuses()) if s == 0])
        except Exception:
            # A listener that raises is logged; the load still posts.
            logger.exception("DAX L2 listener failed on keys a failed read dropped")
        finally:
            self._told_lock.release()

    def query_load_result(self, task_id: L2TaskId) -> Optional[Bitmap]:
        with self._lock:
            return self._completed_load.pop(task_id, None)

    # -- delete and capacity -------------------------------------------------------

    def delete(self, keys: List[ObjectKey]) -> None:
        """Delete unlocked keys; locked ones are skipped. A slot still read
        is reused once the read ends."""
        if not keys or self._closed:
            return
        kbs, pos = encode_keys_partial(keys)  # keys too long were never stored
        if not kbs:
            return
        batch = _Batch(kbs)
        with self._told_lock:
            try:
                _native.run_batch(self._store, "daxkv_remove_batch", batch)
            finally:
                self._removals += 1
            # A key removed before its store's completion told anyone of it
            # is not told deleted either (that completion finds it gone).
            self._tell_gone([kb for kb, s in zip(kbs, batch.statuses()) if s == 0])

    def get_usage(self) -> AdapterUsage:
        """Slot-based usage: occupied slots (those still read after a delete
        included) times slot_bytes, over the pool's slots."""
        try:
            st = _native.raw_stats(self._store)
            used, capacity = st.slots_used * self._slot_bytes, st.slots_total * self._slot_bytes
        except Shutdown:
            used = capacity = 0
        base = super().get_usage()
        return AdapterUsage(
            total_bytes_used=used,
            total_capacity_bytes=capacity,
            bytes_by_cache_salt=MappingProxyType(dict(base.bytes_by_cache_salt)),
        )

    # -- status and hotplug ---------------------------------------------------------

    def hotplug_status(self) -> dict:
        """The pool in LMCache's hotplug_status shape. Each device row has
        LMCache's members (its size as asked for, reads and writes in
        progress, the adapter's tasks in flight, closing) beside libdaxkv's
        own; a removed device keeps its row with its last size, and a closed
        adapter lists its devices as closed, as LMCache's does."""
        with self._lock:
            closing = self._closing or self._closed
            inflight = dict(self._inflight)
            closed_rows = self._closed_rows
        status: Optional[dict] = None
        if closed_rows is None:
            try:
                status = self._store.pool_status()
            except Shutdown:
                with self._lock:
                    closed_rows = self._closed_rows or []
        if status is None:
            # As LMCache's closed cores: nothing in use, locked or borrowed.
            devices = [dict(row, state="closed", is_healthy=False, **_CLOSED_COUNTS) for row in closed_rows or []]
            status = {"slot_bytes": self._slot_bytes, "total_capacity_bytes": 0, "total_used_bytes": 0,
                      "live_slot_count": 0, "locked_key_count": 0, "borrowed_slot_count": 0,
                      "is_healthy": False, "devices": devices}
        else:
            devices = status.get("devices", [])
            for d in devices:
                self._as_lmcache_row(d)
        for d in devices:
            # A removed device's core is closed, in LMCache's terms.
            d["closing"] = closing or d.get("state") in ("removed", "closed")
            d["inflight_store_tasks"] = inflight["store"]
            d["inflight_lookup_tasks"] = inflight["lookup"]
            d["inflight_load_tasks"] = inflight["load"]
        # The store always allows hotplug (to size reopened devices);
        # whether the adapter does is the configuration's.
        status["hotplug_enabled"] = self._config.hotplug_enabled
        status["num_devices"] = len(devices)
        return status

    def _as_lmcache_row(self, d: dict) -> None:
        """A device row of the library's pool status in LMCache's terms."""
        path = d.get("device_path")
        if isinstance(path, list):
            # The library writes a path that is not valid UTF-8 as its
            # bytes; LMCache (and the routes below) name devices by str, as
            # os.fsdecode spells such a path.
            d["device_path"] = path = os.fsdecode(bytes(path))
        asked = self._sizes.get(path)
        if asked is None or d.get("state") == "missing":
            return
        if d.get("state") == "removed":
            # LMCache's row of a removed device keeps the size it had.
            d["max_dax_size_bytes"] = asked
            d["max_slots"] = asked // self._slot_bytes
        elif d.get("max_slots") == asked // self._slot_bytes:
            # The bytes asked for, as LMCache reports them, where the
            # library holds the slots they make (a size that is not a whole
            # number of slots, or an arena laid out smaller, would not).
            d["max_dax_size_bytes"] = asked

    def report_status(self) -> dict:
        pool = self.hotplug_status()
        with self._lock:
            closing = self._closing or self._closed
            inflight = dict(self._inflight)
        try:
            leased = _native.raw_stats(self._store).slots_leased
        except Shutdown:
            leased = 0
        devices = pool.get("devices", [])
        return {
            "is_healthy": bool(pool.get("is_healthy")) and not self._closed,
            "type": "dax",  # LMCache's name for the kind of tier
            "device_path": self._config.devices[0][0] if self._config.devices else "",
            "max_dax_size_bytes": pool.get("total_capacity_bytes", 0),
            "slot_bytes": self._slot_bytes,
            "live_slot_count": sum(int(d.get("live_slot_count", 0)) for d in devices
                                   if d.get("state") != "closed"),
            "locked_key_count": sum(int(d.get("locked_key_count", 0)) for d in devices
                                    if d.get("state") != "closed"),
            "borrowed_slot_count": leased,
            "inflight_store_tasks": inflight["store"],
            "inflight_lookup_tasks": inflight["lookup"],
            "inflight_load_tasks": inflight["load"],
            "closing": closing,
            "supports_restart_recovery": self._config.persist_enabled,
            "hotplug_enabled": self._config.hotplug_enabled,
            "devices": devices,
            "num_devices": len(devices),
        }

    def reconfigure_status(self) -> dict:
        return {"backend": "dax", "supported_operations": list(_OPERATIONS), "status": self.hotplug_status()}

    def reconfigure(self, operation: str, payload: Dict[str, object]) -> dict:
        """LMCache's generic reconfigure routes: status, add, remove, resize,
        each payload member checked in LMCache's order. Raises
        L2ReconfigureError with LMCache's HTTP codes and messages."""
        if operation == "status":
            return dict(self.reconfigure_status())
        if operation not in ("add", "remove", "resize"):
            raise L2ReconfigureError(400, f"unsupported DAX reconfigure operation: {operation}")
        if not isinstance(payload, dict):
            raise L2ReconfigureError(400, "payload must be a JSON object")
        if operation == "add":
            return self.hotplug_add_device(_payload_path(payload), _payload_size(payload))
        if operation == "remove":
            path = _payload_path(payload)
            mode = payload.get("mode", "migrate")
            if not isinstance(mode, str):
                raise L2ReconfigureError(400, "mode must be migrate, evict, or drain")
            return self.hotplug_remove_device(path, mode, _payload_force(payload))
        if operation == "resize":
            path = _payload_path(payload)
            size = _payload_size(payload)
            mode = payload.get("mode", "migrate")
            if not isinstance(mode, str):
                raise L2ReconfigureError(400, "mode must be migrate or evict")
            return self.hotplug_resize_device(path, size, mode, _payload_force(payload))
        raise L2ReconfigureError(400, f"unsupported DAX reconfigure operation: {operation}")

    @staticmethod
    def _device_path_of(device_path: str) -> str:
        """A device path as LMCache's adapter looks it up: stripped, and 400
        when nothing is left."""
        device_path = device_path.strip()
        if not device_path:
            raise L2ReconfigureError(400, "device_path must be non-empty")
        return device_path

    def _device_row(self, path: str) -> Tuple[int, dict]:
        for i, d in enumerate(self.hotplug_status()["devices"]):
            if d["device_path"] == path and d["state"] not in ("removed", "missing", "closed"):
                return i, d
        raise L2ReconfigureError(404, "DAX device not found")

    @staticmethod
    def _blocked_error(locked: int, borrowed: int) -> L2ReconfigureError:
        """LMCache's 409 for a device with locked or borrowed slots."""
        return L2ReconfigureError(409, "device has locked or borrowed slots", payload={
            "status": "blocked", "reason": "device has externally locked or borrowed slots",
            "locked_key_count": locked, "borrowed_slot_count": borrowed})

    def _blocked(self, row: dict) -> Optional[L2ReconfigureError]:
        """_blocked_error for a status row with locked or borrowed slots."""
        locked, borrowed = int(row.get("locked_key_count", 0)), int(row.get("borrowed_slot_count", 0))
        return self._blocked_error(locked, borrowed) if locked or borrowed else None

    def _ensure_hotplug_enabled(self) -> None:
        if not self._config.hotplug_enabled:
            raise L2ReconfigureError(403, "DAX hotplug is disabled")

    def _refused(self, exc: DaxKVError, path: str, what: str) -> L2ReconfigureError:
        """LMCache's answer to a change of the pool the library refused (the
        library's reason goes to the log): 404 for a device not in the
        pool; 409 for one that holds locked (pinned) or borrowed (leased)
        entries, with LMCache's "blocked" body, or whose shrink would drop
        entries; 507 where a migration has nowhere to go."""
        logger.warning("DAX hotplug %s of %s refused: %s", what, path, exc.message)
        if isinstance(exc, NotFound):
            return L2ReconfigureError(404, "DAX device not found")
        if isinstance(exc, Busy):
            try:
                _, row = self._device_row(path)
            except L2ReconfigureError:
                row = {}
            blocked = self._blocked(row)
            if blocked is not None:
                return blocked
            if what != "resize":
                return self._blocked_error(0, 0)
            return L2ReconfigureError(409, "resize shrink would drop live keys without migration")
        if isinstance(exc, NoSpace):
            others = [d for d in self.hotplug_status()["devices"]
                      if d["device_path"] != path and d["state"] == "active"]
            return L2ReconfigureError(
                507, "insufficient destination DAX capacity" if others else "no active destination DAX capacity")
        if isinstance(exc, PermissionDenied):
            return L2ReconfigureError(403, "DAX hotplug is disabled")
        if isinstance(exc, Deadlock):
            # The calling thread holds a lease the change would wait for:
            # it conflicts with that lease, as a locked key does.
            return L2ReconfigureError(409, exc.message)
        if what == "resize":
            return L2ReconfigureError(400, "failed to remap DAX device")
        return L2ReconfigureError(400, exc.message)

    def hotplug_add_device(self, device_path: str, size_bytes: int) -> dict:
        self._ensure_hotplug_enabled()
        device_path = device_path.strip()
        if not device_path:
            raise L2ReconfigureError(400, "device_path must be non-empty")
        if size_bytes <= 0:
            raise L2ReconfigureError(400, "size_bytes must be > 0")
        if size_bytes // self._slot_bytes <= 0:
            raise L2ReconfigureError(400, "size_bytes does not fit one slot")
        for i, d in enumerate(self.hotplug_status()["devices"]):
            if d["device_path"] == device_path and d["state"] not in ("removed", "missing", "closed"):
                # LMCache compares the bytes asked for, not the slots they make.
                if self._sizes.get(device_path) != size_bytes:
                    raise L2ReconfigureError(409, "device_path already active with a different size")
                return {"status": "ok", "operation": "add", "adapter_index": 0, "device": d}
        if self._closing or self._closed:
            # LMCache's adapter maps the device into the closed adapter and
            # answers "ok"; a closed store takes no device.
            raise L2ReconfigureError(409, "DAX L2 adapter is closed")
        if "\x00" in device_path:
            # No file has such a name: LMCache's os.open raises ValueError
            # for it, which its adapter answers so.
            logger.error("Invalid DAX hotplug add request: a NUL byte in device_path %r", device_path)
            raise L2ReconfigureError(400, "invalid DAX hotplug add request")
        try:
            self._store.device_add(device_path, size_bytes)
        except PermissionDenied as exc:
            raise L2ReconfigureError(403, exc.message) from exc
        except DaxKVError as exc:
            # As LMCache: the cause (which names the path) goes to the log,
            # the answer does not repeat the path.
            logger.error("DAX hotplug add failed: %s", exc)
            raise L2ReconfigureError(400, "failed to map DAX device") from exc
        # A device added back, or one that holds an arena, comes with the
        # size its arena records; LMCache maps the size asked for.
        try:
            _native.fit_device(self._store, device_path, size_bytes // self._slot_bytes, self._slot_bytes)
        except RuntimeError as exc:
            logger.warning("DAX hotplug add of %s keeps the size its arena has: %s", device_path, exc)
        self._sizes[device_path] = size_bytes
        self._recalculate_capacity()
        n = self._tell_found(device_path)
        if n:
            logger.info("DAX L2 adapter found %d entries on the added device", n)
        index, dev = self._device_row(device_path)
        return {"status": "ok", "operation": "add", "adapter_index": 0, "device": dev}

    def hotplug_remove_device(self, device_path: str, mode: str, force: bool = False) -> dict:
        self._ensure_hotplug_enabled()
        if mode not in ("migrate", "evict", "drain"):
            raise L2ReconfigureError(400, "mode must be migrate, evict, or drain")
        device_path = self._device_path_of(device_path)
        self._device_row(device_path)  # 404 for a device not in the pool (after close() too)
        # An evicting change deletes keys: no store completion or delete
        # decides about them meanwhile (a migration deletes none).
        with self._told_lock if mode == "evict" else contextlib.nullcontext():
            before = self._keys_on(device_path) if mode == "evict" else []
            try:
                r = self._store.device_remove(device_path, mode, force=force)
            except DaxKVError as exc:
                raise self._refused(exc, device_path, "remove") from exc
            finally:
                if mode == "evict":
                    self._removals += 1
            self._tell_evicted(before)
        index = r.device_index
        if mode == "drain":
            return {"status": "ok", "operation": "drain", "adapter_index": 0,
                    "device_path": device_path, "index": index, "state": "draining"}
        self._recalculate_capacity()
        return {"status": "ok", "operation": "remove", "adapter_index": 0, "device_path": device_path,
                "index": index, "moved_keys": r.moved_keys, "moved_bytes": r.moved_bytes,
                "deleted_keys": r.deleted_keys, "source_slots_freed": r.source_slots_freed,
                "state": "removed"}

    def hotplug_resize_device(self, device_path: str, size_bytes: int, mode: str, force: bool = False) -> dict:
        self._ensure_hotplug_enabled()
        if mode not in ("migrate", "evict"):
            raise L2ReconfigureError(400, "mode must be migrate or evict")
        if size_bytes <= 0:
            raise L2ReconfigureError(400, "size_bytes must be > 0")
        if size_bytes // self._slot_bytes <= 0:
            raise L2ReconfigureError(400, "size_bytes does not fit one slot")
        device_path = self._device_path_of(device_path)
        index, row = self._device_row(device_path)
        old = self._sizes.get(device_path, int(row["max_dax_size_bytes"]))
        if old == size_bytes:
            return {"status": "ok", "operation": "resize", "adapter_index": 0, "device_path": device_path,
                    "index": index, "old_size_bytes": old, "new_size_bytes": size_bytes,
                    "state": row["state"]}
        grow = size_bytes > old
        if not grow and not force:
            # LMCache's adapter refuses a shrink of a device with locked or
            # borrowed keys; this one only where the shrink moves entries
            # (one that moves nothing changes no key: see
            # docs/lmcache-integration.md).
            blocked = self._blocked(row)
            if blocked is not None and (
                    self._store.device_layout(device_path).used_end > size_bytes // self._slot_bytes):
                raise blocked
        # An evicting change deletes keys: no store completion or delete
        # decides about them meanwhile (a migration deletes none).
        with self._told_lock if mode == "evict" else contextlib.nullcontext():
            before = self._keys_on(device_path) if mode == "evict" else []
            try:
                r = self._store.device_resize(device_path, size_bytes, mode, force=force)
            except NoSpace as exc:
                if grow:
                    # No room to grow into (the arena's, or the file
                    # system's): LMCache's remap fails so, with no
                    # destination to run out of.
                    logger.warning("DAX hotplug resize of %s refused: %s", device_path, exc.message)
                    raise L2ReconfigureError(400, "failed to remap DAX device") from exc
                raise self._refused(exc, device_path, "resize") from exc
            except DaxKVError as exc:
                raise self._refused(exc, device_path, "resize") from exc
            finally:
                if mode == "evict":
                    self._removals += 1
            self._tell_evicted(before)
        self._sizes[device_path] = size_bytes
        self._recalculate_capacity()
        return {"status": "ok", "operation": "resize", "adapter_index": 0, "device_path": device_path,
                "index": r.device_index, "old_size_bytes": old, "new_size_bytes": size_bytes,
                "state": r.state}

    def _recalculate_capacity(self) -> None:
        """As LMCache's adapter after every add, remove and resize: the
        capacity behind supports_global_eviction is that of the devices that
        still hold data (not removed or missing)."""
        self._max_capacity_bytes = sum(
            int(d.get("max_dax_size_bytes", 0))
            for d in self.hotplug_status().get("devices", [])
            if d.get("state") not in ("removed", "missing")
        )

    def _keys_on(self, device_path: str) -> List[bytes]:
        """The encodings of the keys stored on a device."""
        try:
            return [info.key for info in self._store.keys(device_path)]
        except (NotFound, Shutdown):
            return []

    def _tell_evicted(self, before: List[bytes]) -> None:
        """After an evicting remove or resize: tell the listeners about the
        keys that were on the device and are gone (the caller holds
        _told_lock, taken before the device's keys were listed)."""
        if before:
            present = _native.contains_many(self._store, before, False)
            self._tell_gone([kb for kb, there in zip(before, present) if not there])

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Wait for submitted tasks, then close the pool and the event fds."""
        with self._lock:
            if self._closing or self._closed:
                return
            self._closing = True
        self._engine.close()
        if not self._engine.on_thread():
            # Lookups run in their submitters' threads: the event fds stay
            # open until every counted task has posted its result (LMCache's
            # adapter shuts its executors down, waiting, before it closes
            # its notifiers). On the completion thread (a listener closing
            # the adapter) the tasks still pending are completed by this
            # very thread once close returns: no wait there.
            # Once the engine is closed, no batch of the library is left:
            # a task still unposted is one a submitting thread is preparing
            # or posting. One whose submitter was interrupted (Python runs
            # signal handlers between any two steps) never posts: close
            # waits for it a while, not for good (a result posted later
            # finds its event fd closed, which it takes quietly).
            deadline = time.monotonic() + _CLOSE_POST_WAIT
            with self._lock:
                while self._unposted:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._posted.wait(timeout=left):
                        if self._unposted:
                            logger.warning(
                                "DAX L2 adapter close: %d tasks never posted their results (their submitters "
                                "were interrupted?); closing without them", self._unposted)
                        break
        rows = self.hotplug_status()["devices"]
        with self._lock:
            self._closed_rows = rows
        self._store.close()
        for efd in (self._store_efd, self._lookup_efd, self._load_efd):
            efd.close()
        with self._lock:
            self._closed = True
