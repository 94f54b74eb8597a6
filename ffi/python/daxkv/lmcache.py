"""A drop-in for LMCache's ``DaxCore`` call surface, backed by libdaxkv.

LMCache keeps its own wrappers (DaxBackend, DaxL2Adapter: event fds, thread
pools, MemoryObj allocation, listeners); this module replaces the core they
call. The semantics follow LMCache's DaxCore:

* put_many: per key True when committed, already present or already in
  flight; False for multi-tensor objects, oversize objects, a closed core, a
  full arena or a failed copy. A length mismatch raises ValueError.
* exists_many(keys, lock): hits only for committed entries; lock=True
  increments each hit's lock count (a pin). All misses once closed.
* unlock_many: drops one lock per key; never goes below zero.
* delete_many(keys, force): force=False leaves locked and in-flight keys
  alone; force=True deletes locked keys and cancels in-flight writes.
* load_many_into: False for a miss, a multi-tensor or too-small destination.
* reserve_reads / finalize_reads: read borrows (zero-copy leases) that keep
  the bytes valid even if the key is deleted meanwhile; every reservation
  must be finalized, also on error paths.
* usage() = (live/max, (live - pending_free)/max); report_status() has
  DaxCore's field names; hotplug_status() is libdaxkv's pool status, which
  has the shape of LMCache's hotplug_status (device changes go through
  ``core.store.device_add`` / ``device_remove``; open with hotplug=1).

Keys are serialised canonically: bytes and str as themselves, objects with
``to_string()`` (CacheEngineKey) by it, and ObjectKey-like objects by their
identifying fields. Per-entry metadata (shape, dtype, fmt, cached_positions)
is stored as a JSON blob next to the value.

Differences that callers can see:

* Reservations carry absolute addresses: ``core.base_ptr`` is 0 and
  ``reservation.offset`` is the source address, so the usual
  ``base_ptr + offset`` still computes the right pointer.
* snapshot_keys() returns the keys stored through this object that are
  still committed (libdaxkv's C ABI has no key iterator); keys recovered
  from the device at open are not listed.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _core
from .errors import BatchError, DaxKVError, NoSpace, NotFound, Shutdown, TooBig

__all__ = [
    "DaxCore",
    "DaxPutFromPtrResult",
    "DaxReadReservation",
    "PutTicket",
    "key_to_bytes",
    "encode_meta",
    "decode_meta",
]

_OBJECT_KEY_FIELDS = (
    "fmt",
    "model_name",
    "world_size",
    "worker_id",
    "kv_rank",
    "chunk_hash",
    "dtype",
    "cache_salt",
)


def key_to_bytes(key: Any) -> bytes:
    """Canonical byte string of an LMCache key (or of bytes/str)."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    to_string = getattr(key, "to_string", None)
    if callable(to_string):
        s = to_string()
        return s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if not hasattr(key, "chunk_hash"):
        raise TypeError(
            f"cannot serialise key of type {type(key).__name__}: expected bytes, str, "
            "an object with to_string(), or one with a chunk_hash field"
        )
    parts = []
    for name in _OBJECT_KEY_FIELDS:
        if not hasattr(key, name):
            continue
        v = getattr(key, name)
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).hex()
        elif isinstance(v, int) and not isinstance(v, bool) and name == "chunk_hash":
            v = format(v & ((1 << 256) - 1) if v < 0 else v, "x")
        elif v is None:
            v = ""
        parts.append(f"{name}={v}")
    return "@".join(parts).encode("utf-8")


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "tolist"):  # tensors and numpy arrays
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    name = getattr(v, "name", None)  # enums such as MemoryFormat
    if isinstance(name, str):
        return name
    return str(v)


def encode_meta(shape: Any, dtype: Any, fmt: Any, cached_positions: Any = None) -> bytes:
    """The metadata blob stored with each entry."""
    return json.dumps(
        {
            "shape": _plain(list(shape)) if shape is not None else None,
            "dtype": _plain(dtype),
            "fmt": _plain(fmt),
            "cached_positions": _plain(cached_positions),
        },
        separators=(",", ":"),
    ).encode("utf-8")


def decode_meta(blob: bytes) -> Dict[str, Any]:
    if not blob:
        return {"shape": None, "dtype": None, "fmt": None, "cached_positions": None}
    return json.loads(blob.decode("utf-8"))


class DaxPutFromPtrResult(enum.Enum):
    INSERTED = "inserted"
    ALREADY_EXISTS = "already_exists"
    INFLIGHT = "inflight"
    NO_SPACE = "no_space"
    CLOSED = "closed"
    INVALID = "invalid"
    COPY_FAILED = "copy_failed"


@dataclasses.dataclass(frozen=True)
class DaxReadReservation:
    """A borrowed, committed entry; valid until finalize_reads."""

    result_index: int
    key: Any
    offset: int  # absolute address (DaxCore.base_ptr is 0)
    size: int
    shape: Any
    dtype: Any
    fmt: Any
    cached_positions: Any
    slot_id: int = -1
    generation: int = 0
    _lease: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def src_ptr(self) -> int:
        return self.offset


class PutTicket:
    """A write reservation from DaxCore.reserve_put: fill ``data`` (or copy
    to ``dst_ptr``), then call DaxCore.finalize_put exactly once."""

    def __init__(self, key: Any, key_bytes: bytes, reservation: "_core.Reservation") -> None:
        self.key = key
        self.key_bytes = key_bytes
        self.reservation = reservation
        self._done = False

    @property
    def data(self) -> memoryview:
        return self.reservation.data

    @property
    def dst_ptr(self) -> int:
        return _buffer_address(self.reservation.data)

    @property
    def size(self) -> int:
        return self.reservation.size


def _obj_ptr(obj: Any) -> int:
    p = obj.data_ptr
    return int(p() if callable(p) else p)


def _obj_meta(obj: Any) -> Tuple[Any, Any, Any, Any]:
    m = getattr(obj, "metadata", None)
    shape = getattr(m, "shape", None) if m is not None else None
    if shape is None and hasattr(obj, "get_shape"):
        shape = obj.get_shape()
    dtype = getattr(m, "dtype", None) if m is not None else None
    if dtype is None and hasattr(obj, "get_dtype"):
        dtype = obj.get_dtype()
    fmt = getattr(m, "fmt", None) if m is not None else None
    if fmt is None and hasattr(obj, "get_memory_format"):
        fmt = obj.get_memory_format()
    positions = getattr(m, "cached_positions", None) if m is not None else None
    return shape, dtype, fmt, positions


def _multi_tensor(obj: Any) -> bool:
    shapes = getattr(obj, "get_shapes", None)
    if not callable(shapes):
        return False
    try:
        return len(shapes()) > 1
    except TypeError:
        return False


class DaxCore:
    """LMCache's DaxCore(device_path, max_dax_size_bytes, slot_bytes) on libdaxkv.

    Eviction is off (``eviction=none``), as in LMCache's core: LMCache's
    controllers decide what to delete. Extra keyword options go to the store
    (durability, workers, verify, ...). ``meta_decoder`` maps the stored
    dtype/fmt strings back to objects (for example to torch dtypes).
    """

    base_ptr = 0

    def __init__(
        self,
        device_path: str,
        max_dax_size_bytes: int,
        slot_bytes: int,
        *,
        meta_bytes: int = 16 << 10,
        meta_decoder: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
        store: Optional[_core.Store] = None,
        **options: Any,
    ) -> None:
        if int(slot_bytes) <= 0:
            raise ValueError("slot_bytes must be > 0")
        if int(max_dax_size_bytes) <= 0:
            raise ValueError("max_dax_size_bytes must be > 0")
        if int(max_dax_size_bytes) // int(slot_bytes) < 1:
            raise ValueError("DAX arena does not fit even one slot")
        self.device_path = device_path
        self.max_dax_size_bytes = int(max_dax_size_bytes)
        self.slot_bytes = int(slot_bytes)
        options.setdefault("eviction", "none")
        self._store = store or _core.Store(
            path=device_path,
            size=self.max_dax_size_bytes,
            slot_bytes=self.slot_bytes,
            meta_bytes=meta_bytes,
            **options,
        )
        self._durable = str(options.get("durability", "process")) != "none"
        self._decode = meta_decoder
        self._lock = threading.Lock()
        self._known: Dict[bytes, Any] = {}  # key bytes -> key object (snapshot_keys)
        self._inflight: Dict[bytes, int] = {}  # writes in progress through this object
        self._active_reads = 0
        self._active_writes = 0
        self._closing = False

    # -- helpers ------------------------------------------------------------

    @property
    def store(self) -> _core.Store:
        return self._store

    @property
    def max_slots(self) -> int:
        return self._stats().slots_total if not self._closing else self.max_dax_size_bytes // self.slot_bytes

    def _stats(self) -> _core.Stats:
        return self._store.stats()

    def _begin_writes(self, kb: List[bytes]) -> None:
        with self._lock:
            self._active_writes += 1
            for k in kb:
                self._inflight[k] = self._inflight.get(k, 0) + 1

    def _end_writes(self, kb: List[bytes]) -> None:
        with self._lock:
            self._active_writes -= 1
            for k in kb:
                n = self._inflight[k] - 1
                if n:
                    self._inflight[k] = n
                else:
                    del self._inflight[k]

    def _remember(self, kb: List[bytes], keys: Sequence[Any], ok: List[bool]) -> None:
        with self._lock:
            for k, key, good in zip(kb, keys, ok):
                if good:
                    self._known[k] = key

    def _forget(self, kb: List[bytes], done: List[bool]) -> None:
        with self._lock:
            for k, d in zip(kb, done):
                if d:
                    self._known.pop(k, None)

    def _meta_dict(self, blob: bytes) -> Dict[str, Any]:
        d = decode_meta(blob)
        return self._decode(d) if self._decode else d

    # -- writes -------------------------------------------------------------

    def put_many(self, keys: Sequence[Any], objs: Sequence[Any]) -> List[bool]:
        if len(keys) != len(objs):
            raise ValueError(f"keys and objs must have the same length, got {len(keys)} and {len(objs)}")
        if not keys:
            return []
        if self._closing:
            return [False] * len(keys)
        kb = [key_to_bytes(k) for k in keys]
        ok = [False] * len(keys)
        idx, values, metas = [], [], []
        for i, obj in enumerate(objs):
            if _multi_tensor(obj):
                continue  # LMCache logs and skips multi-tensor allocations
            size = int(obj.get_size())
            if size > self.slot_bytes or size <= 0:
                continue
            idx.append(i)
            values.append((_obj_ptr(obj), size))
            metas.append(encode_meta(*_obj_meta(obj)))
        if not idx:
            return ok
        sel = [kb[i] for i in idx]
        self._begin_writes(sel)
        try:
            try:
                res = self._store.put_many(sel, values, metas=metas)
                statuses = [0 if r else 1 for r in res]
            except BatchError as e:
                statuses = e.statuses
            except Shutdown:
                return ok
        finally:
            self._end_writes(sel)
        for j, s in enumerate(statuses):
            ok[idx[j]] = s >= 0  # stored, already present or already in flight
        self._remember(kb, keys, [o for o in ok])
        return ok

    def put_one(self, key: Any, obj: Any) -> None:
        """put_many for one key; raises RuntimeError where it would return False."""
        if _multi_tensor(obj):
            raise ValueError("DaxCore does not support multi-tensor allocations")
        size = int(obj.get_size())
        if size > self.slot_bytes:
            raise ValueError(f"object size {size} for key {key} exceeds slot size {self.slot_bytes}")
        if self._closing:
            raise RuntimeError("DaxCore is closed")
        kb = key_to_bytes(key)
        self._begin_writes([kb])
        try:
            self._store.put(kb, (_obj_ptr(obj), size), meta=encode_meta(*_obj_meta(obj)))
        except BatchError as e:
            if isinstance(e.first, NoSpace):
                raise RuntimeError("No free slots available") from e
            raise RuntimeError(f"DAX write failed for key {key}: {e}") from e
        except Shutdown as e:
            raise RuntimeError("DaxCore is closed") from e
        finally:
            self._end_writes([kb])
        self._remember([kb], [key], [True])

    def put_reserved_from_ptr(
        self,
        key: Any,
        src_ptr: int,
        size: int,
        shape: Any = None,
        dtype: Any = None,
        fmt: Any = None,
        cached_positions: Any = None,
    ) -> DaxPutFromPtrResult:
        """Reserve, copy from a raw pointer, commit. Never raises for
        per-key outcomes; returns a DaxPutFromPtrResult."""
        if size <= 0 or size > self.slot_bytes or src_ptr <= 0:
            return DaxPutFromPtrResult.INVALID
        if self._closing:
            return DaxPutFromPtrResult.CLOSED
        kb = key_to_bytes(key)
        with self._lock:
            if kb in self._inflight:
                return DaxPutFromPtrResult.INFLIGHT
        self._begin_writes([kb])
        try:
            try:
                r = self._store.reserve(kb, size, meta=encode_meta(shape, dtype, fmt, cached_positions))
            except _core.Exists:
                return DaxPutFromPtrResult.ALREADY_EXISTS
            except NoSpace:
                return DaxPutFromPtrResult.NO_SPACE
            except Shutdown:
                return DaxPutFromPtrResult.CLOSED
            except (TooBig, ValueError):
                return DaxPutFromPtrResult.INVALID
            try:
                _core.memcpy_batch([r.data], [(int(src_ptr), int(size))])
            except BaseException:
                r.abort()
                return DaxPutFromPtrResult.COPY_FAILED
            try:
                r.commit()
            except Shutdown:
                return DaxPutFromPtrResult.CLOSED
            except DaxKVError:
                return DaxPutFromPtrResult.COPY_FAILED
        finally:
            self._end_writes([kb])
        self._remember([kb], [key], [True])
        return DaxPutFromPtrResult.INSERTED

    def reserve_put(
        self,
        key: Any,
        size: int,
        shape: Any = None,
        dtype: Any = None,
        fmt: Any = None,
        cached_positions: Any = None,
    ) -> Optional["PutTicket"]:
        """First half of a caller-driven write (LMCache's _reserve_put): the
        key is in flight until finalize_put. Returns None if the key is
        already present or in flight; raises RuntimeError if closed or full."""
        if size <= 0 or size > self.slot_bytes:
            raise ValueError(f"object size {size} for key {key} exceeds slot size {self.slot_bytes}")
        if self._closing:
            raise RuntimeError("DaxCore is closed")
        kb = key_to_bytes(key)
        self._begin_writes([kb])
        try:
            r = self._store.reserve(kb, size, meta=encode_meta(shape, dtype, fmt, cached_positions))
        except _core.Exists:
            self._end_writes([kb])
            return None
        except NoSpace as e:
            self._end_writes([kb])
            raise RuntimeError("No free slots available") from e
        except Shutdown as e:
            self._end_writes([kb])
            raise RuntimeError("DaxCore is closed") from e
        except BaseException:
            self._end_writes([kb])
            raise
        return PutTicket(key, kb, r)

    def finalize_put(self, ticket: "PutTicket", ok: bool) -> bool:
        """Second half: commit (ok=True) or reclaim the slot. Returns whether
        the entry is now committed (False if it was cancelled meanwhile)."""
        if ticket._done:
            raise ValueError("ticket already finalized")
        ticket._done = True
        try:
            if not ok:
                ticket.reservation.abort()
                return False
            try:
                ticket.reservation.commit()
            except DaxKVError:
                return False  # cancelled by a forced delete, or closed
            self._remember([ticket.key_bytes], [ticket.key], [True])
            return True
        finally:
            self._end_writes([ticket.key_bytes])

    # -- lookups ------------------------------------------------------------

    def exists_many(self, keys: Sequence[Any], lock: bool = False) -> List[bool]:
        if not keys:
            return []
        if self._closing:
            return [False] * len(keys)
        try:
            return self._store.contains_many([key_to_bytes(k) for k in keys], pin=lock)
        except Shutdown:
            return [False] * len(keys)

    def prefix_hits(self, keys: Sequence[Any], lock: bool = False) -> int:
        """Consecutive hits from the start (batched_contains), locking them if asked."""
        if not keys or self._closing:
            return 0
        try:
            return self._store.prefix_length([key_to_bytes(k) for k in keys], pin=lock)
        except Shutdown:
            return 0

    def has_inflight(self, key: Any) -> bool:
        kb = key_to_bytes(key)
        with self._lock:
            return kb in self._inflight

    def unlock_many(self, keys: Sequence[Any]) -> int:
        """Drop one lock per key; returns how many locks were dropped."""
        if not keys or self._closing:
            return 0
        try:
            return sum(self._store.unpin_many([key_to_bytes(k) for k in keys]))
        except Shutdown:
            return 0

    def delete_many(self, keys: Sequence[Any], force: bool = False) -> List[bool]:
        if not keys:
            return []
        if self._closing:
            return [False] * len(keys)
        kb = [key_to_bytes(k) for k in keys]
        try:
            done = self._store.remove_many(kb, force=force)
        except Shutdown:
            return [False] * len(keys)
        self._forget(kb, done)
        return done

    def snapshot_keys(self) -> List[Any]:
        with self._lock:
            items = list(self._known.items())
        if not items or self._closing:
            return []
        try:
            hits = self._store.contains_many([k for k, _ in items])
        except Shutdown:
            return []
        gone = [k for (k, _), h in zip(items, hits) if not h]
        if gone:  # evicted or removed behind this object's back
            with self._lock:
                for k in gone:
                    self._known.pop(k, None)
        return [obj for (_, obj), h in zip(items, hits) if h]

    # -- reads --------------------------------------------------------------

    def reserve_reads(self, keys: Sequence[Any], prefix_only: bool = False) -> List[DaxReadReservation]:
        """Borrow every readable key (or, prefix_only, the run of readable
        keys from the start). Each reservation's bytes stay valid until
        finalize_reads, even if the key is deleted meanwhile."""
        out: List[DaxReadReservation] = []
        if not keys or self._closing:
            return out
        try:
            for i, key in enumerate(keys):
                try:
                    lease = self._store.lease(key_to_bytes(key))
                except NotFound:
                    if prefix_only:
                        break
                    continue
                m = self._meta_dict(lease.meta)
                if m.get("shape") is None or m.get("dtype") is None or m.get("fmt") is None:
                    lease.release()  # unreadable: no layout to restore it with
                    if prefix_only:
                        break
                    continue
                addr = _buffer_address(lease.data)
                out.append(
                    DaxReadReservation(
                        result_index=i,
                        key=key,
                        offset=addr,
                        size=lease.size,
                        shape=m["shape"],
                        dtype=m["dtype"],
                        fmt=m["fmt"],
                        cached_positions=m.get("cached_positions"),
                        _lease=lease,
                    )
                )
        except Shutdown:
            pass
        except BaseException:
            self.finalize_reads(out, _counted=False)
            raise
        if out:
            with self._lock:
                self._active_reads += 1
        return out

    def reserve_reads_for_keys(self, keys: Sequence[Any]) -> List[DaxReadReservation]:
        return self.reserve_reads(keys, prefix_only=False)

    def finalize_reads(self, reservations: Sequence[DaxReadReservation], _counted: bool = True) -> None:
        """Release the borrows of reserve_reads. Call exactly once, also on errors."""
        for r in reservations:
            if r._lease is not None:
                r._lease.release()
        if reservations and _counted:
            with self._lock:
                self._active_reads -= 1

    def load_many_into(self, keys: Sequence[Any], objs: Sequence[Any]) -> List[bool]:
        """Copy stored values straight into caller MemoryObjs (MP load)."""
        if len(keys) != len(objs):
            raise ValueError(f"keys and objs must have the same length, got {len(keys)} and {len(objs)}")
        ok = [False] * len(keys)
        if not keys or self._closing:
            return ok
        idx = [i for i, o in enumerate(objs) if not _multi_tensor(o)]
        if not idx:
            return ok
        kb = [key_to_bytes(keys[i]) for i in idx]
        dsts = [(_obj_ptr(objs[i]), int(objs[i].get_size())) for i in idx]
        with self._lock:
            self._active_reads += 1
        try:
            try:
                lens = self._store.get_many_into(kb, dsts)
            except BatchError as e:
                lens = e.results  # too-small destinations are simply not loaded
            except Shutdown:
                return ok
        finally:
            with self._lock:
                self._active_reads -= 1
        for j, n in enumerate(lens):
            ok[idx[j]] = n is not None
        return ok

    # -- status -------------------------------------------------------------

    def usage(self) -> Tuple[float, float]:
        if self._closing:
            return 0.0, 0.0
        st = self._stats()
        if not st.slots_total:
            return 0.0, 0.0
        live = st.slots_used
        return live / st.slots_total, max(0, live - st.slots_pending_free) / st.slots_total

    def report_status(self) -> Dict[str, Any]:
        closed = self._closing or self._store.closed
        base = {
            "is_healthy": not closed,
            "device_path": self.device_path,
            "max_dax_size_bytes": self.max_dax_size_bytes,
            "slot_bytes": self.slot_bytes,
            "closing": self._closing,
            "supports_restart_recovery": self._durable,
        }
        with self._lock:
            base["active_read_count"] = self._active_reads
            base["active_write_count"] = self._active_writes
        if closed:
            base.update(max_slots=self.max_dax_size_bytes // self.slot_bytes, live_slot_count=0,
                        locked_key_count=0, borrowed_slot_count=0)
            return base
        st = self._stats()
        base.update(
            max_slots=st.slots_total,
            live_slot_count=st.slots_used,
            locked_key_count=st.entries_pinned,
            borrowed_slot_count=st.leases_active,
        )
        return base

    def hotplug_status(self) -> Dict[str, Any]:
        """The device pool (daxkv_pool_status_json): hotplug_enabled,
        num_devices, total_capacity_bytes, total_used_bytes, is_healthy and
        a "devices" list. A closed core reports no devices, unhealthy."""
        if not (self._closing or self._store.closed):
            try:
                return self._store.pool_status()
            except Shutdown:
                pass
        return {
            "hotplug_enabled": False,
            "is_healthy": False,
            "num_devices": 0,
            "slot_bytes": self.slot_bytes,
            "total_capacity_bytes": 0,
            "total_used_bytes": 0,
            "devices": [],
        }

    def close(self) -> None:
        """Idempotent. Later calls behave as LMCache's closed core."""
        self._closing = True
        self._store.close()

    def __enter__(self) -> "DaxCore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _buffer_address(view: memoryview) -> int:
    if len(view) == 0:
        return 0
    # The lease view is read-only; PyObject_GetBuffer gives its address
    # without copying (the lease itself keeps the bytes in place).
    with _core._Buffers() as b:
        return b.add(view, False, "lease")[0]
