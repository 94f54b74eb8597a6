"""The Store, Lease and Reservation classes (ctypes over libdaxkv)."""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import json
import sys
import threading
import weakref
from array import array
from itertools import accumulate
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _lib
from .errors import (
    BatchError,
    BufferTooSmall,
    DaxKVError,
    Exists,
    InvalidArgument,
    NotFound,
    Shutdown,
    error_class,
)

Key = Union[bytes, str, bytearray, memoryview]
#: Anything with the buffer protocol, or an (address, length) pair such as
#: (tensor.data_ptr(), tensor.numel() * tensor.element_size()).
Buffer = Any

KEY_MAX = _lib.KEY_MAX

# ---------------------------------------------------------------------------
# The library handle (loaded on first use so that `import daxkv` works for
# help() and for tests of the loader itself).

_lib_lock = threading.Lock()
_L: Optional[ctypes.CDLL] = None


def library() -> ctypes.CDLL:
    """The loaded, version-checked libdaxkv (see daxkv._lib.load)."""
    global _L
    if _L is None:
        with _lib_lock:
            if _L is None:
                _L = _lib.load()
    return _L


def version() -> str:
    """The version string of the library actually loaded."""
    return library().daxkv_version_string().decode()


def version_number() -> int:
    """major*10000 + minor*100 + patch of the library actually loaded."""
    return int(library().daxkv_version_number())


def strerror(code: int) -> str:
    """The library's static description of an error code."""
    return library().daxkv_strerror(int(code)).decode("utf-8", "replace")


def _error(rc: int, op: str) -> DaxKVError:
    # The detail message is thread-local and valid only until this thread's
    # next daxkv call, so it is read first, before daxkv_strerror.
    L = library()
    msg = L.daxkv_errmsg()
    text = msg.decode("utf-8", "replace") if msg else ""
    return error_class(rc)(rc, text, op, L.daxkv_strerror(rc).decode("utf-8", "replace"))


def _item_error(rc: int, op: str, index: int) -> DaxKVError:
    L = library()
    s = L.daxkv_strerror(rc).decode("utf-8", "replace")
    return error_class(rc)(rc, s, op, s)


# ---------------------------------------------------------------------------
# Buffers: addresses of caller memory without copying it.


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 1
# PyObject_GetBuffer is the only standard way to get the address of a
# read-only buffer (bytes, a read-only numpy array): ctypes' from_buffer
# refuses those, and from_buffer_copy would copy.
_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None

# Address of a bytes object's payload relative to id(): bytes are immutable
# and never move, so the hot paths skip the buffer protocol for them.
_probe = b"daxkv"
_BYTES_OFFSET = ctypes.cast(ctypes.c_char_p(_probe), ctypes.c_void_p).value - id(_probe)
del _probe


class _Buffers:
    """Addresses of a list of buffers, held (exports acquired) until close().

    Holding the export matters: a bytearray cannot be resized and a numpy
    array cannot be reallocated while the library copies into it.
    """

    __slots__ = ("views", "keep")

    def __init__(self) -> None:
        self.views: List[_PyBuffer] = []
        self.keep: List[Any] = []

    def add(self, obj: Buffer, writable: bool, what: str) -> Tuple[int, int]:
        t = type(obj)
        if t is bytes and not writable:
            self.keep.append(obj)
            return id(obj) + _BYTES_OFFSET, len(obj)
        if t is tuple:
            if len(obj) != 2:
                raise TypeError(f"{what}: an address pair must be (address, length)")
            addr, length = obj
            if not isinstance(addr, int) or not isinstance(length, int):
                raise TypeError(f"{what}: address and length must be integers")
            if addr <= 0 and length > 0:
                raise InvalidArgument(-_errno.EINVAL, f"{what}: NULL address with length {length}")
            if addr < 0 or length < 0 or addr >= 1 << 64 or length >= 1 << 63:
                raise InvalidArgument(-_errno.EINVAL, f"{what}: address or length out of range")
            return addr, length
        if obj is None:
            raise TypeError(f"{what}: expected a buffer or an (address, length) pair, got None")
        view = _PyBuffer()
        try:
            _get_buffer(obj, ctypes.byref(view), _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE)
        except (BufferError, ValueError) as exc:  # numpy says ValueError
            kind = "a writable contiguous" if writable else "a contiguous"
            raise TypeError(f"{what}: expected {kind} buffer, got {t.__name__}: {exc}") from None
        except TypeError:
            raise TypeError(
                f"{what}: expected a buffer or an (address, length) pair, got {t.__name__}"
            ) from None
        self.views.append(view)
        return view.buf or 0, view.len

    def close(self) -> None:
        for v in self.views:
            _release_buffer(ctypes.byref(v))
        self.views.clear()
        self.keep.clear()

    def __enter__(self) -> "_Buffers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _key(k: Key) -> bytes:
    t = type(k)
    if t is bytes:
        return k
    if t is str:
        return k.encode("utf-8")
    if isinstance(k, (bytes, bytearray, memoryview)):
        return bytes(k)
    if isinstance(k, str):
        return str(k).encode("utf-8")
    raise TypeError(f"key must be bytes or str, got {t.__name__}")


def _keys(keys: Iterable[Key]) -> List[bytes]:
    if isinstance(keys, (bytes, str)):
        # A lone key would otherwise be iterated as single characters.
        raise TypeError("expected a sequence of keys, got a single key")
    return [k if type(k) is bytes else _key(k) for k in keys]


class _Batch:
    """A daxkv_item array for a list of keys, filled column-wise.

    Per-item Python assignments would cost about a microsecond per key;
    writing whole columns through strided memoryviews keeps the binding's
    overhead well below the library's own per-key cost.
    """

    __slots__ = ("n", "items", "words", "ints", "keys_blob")

    def __init__(self, keys: List[bytes]) -> None:
        n = self.n = len(keys)
        self.items = (_lib.Item * n)()
        raw = memoryview(self.items).cast("B")
        self.words = raw.cast("Q")
        self.ints = raw.cast("i")
        blob = self.keys_blob = b"".join(keys)
        base = id(blob) + _BYTES_OFFSET
        lengths = array("Q", map(len, keys))
        offsets = array("Q", accumulate(lengths, initial=base))
        del offsets[-1]
        w = _lib.ITEM_WORDS
        self.words[_lib.W_KEY :: w] = offsets
        self.words[_lib.W_KEY_LEN :: w] = lengths

    def set_column(self, word: int, values: Sequence[int]) -> None:
        self.words[word :: _lib.ITEM_WORDS] = array("Q", values)

    def column(self, word: int) -> List[int]:
        return self.words[word :: _lib.ITEM_WORDS].tolist()

    def statuses(self) -> List[int]:
        return self.ints[_lib.I_STATUS :: _lib.ITEM_INTS].tolist()


def _check_lengths(op: str, keys: Sequence[Any], other: Sequence[Any], what: str) -> None:
    if len(keys) != len(other):
        raise InvalidArgument(
            -_errno.EINVAL, f"keys and {what} must have the same length, got {len(keys)} and {len(other)}", op
        )


# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Histogram:
    """A snapshot of struct daxkv_histogram: latencies (ns) or sizes (bytes).

    ``buckets[i]`` counts the values v with bounds[i-1] < v <= bounds[i]
    (not cumulative); the last bound is None (no upper limit).
    """

    count: int
    sum: int
    buckets: Tuple[int, ...]
    unit: int  # bound of bucket 0: 1000 (ns) or 4096 (bytes)

    @property
    def bounds(self) -> List[Optional[int]]:
        n = len(self.buckets)
        return [self.unit << i for i in range(n - 1)] + [None]

    @property
    def mean(self) -> Optional[float]:
        return self.sum / self.count if self.count else None


def _histogram(h: "_lib.Histogram", unit: int) -> Histogram:
    return Histogram(count=h.count, sum=h.sum, buckets=tuple(h.bucket), unit=unit)


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of struct daxkv_stats.

    The members after recovery_usec (copy_faults ... slots_leased) were
    appended to the C struct later; a library that predates them leaves
    them zero.
    """

    devices: int
    slot_bytes: int
    meta_bytes: int
    capacity_bytes: int
    slots_total: int
    slots_used: int
    slots_free: int
    entries: int
    entries_pinned: int
    slots_inflight: int
    slots_pending_free: int
    leases_active: int
    hits: int
    misses: int
    puts: int
    puts_existed: int
    puts_failed: int
    removes: int
    evictions: int
    bytes_written: int
    bytes_read: int
    verify_failures: int
    recovered_entries: int
    recovery_dropped_torn: int
    recovery_dropped_corrupt: int
    recovery_dropped_stale: int
    recovery_usec: int
    copy_faults: int = 0
    batches: int = 0
    async_submitted: int = 0
    async_completed: int = 0
    async_cancelled: int = 0
    put_latency: Optional[Histogram] = None  # ns per daxkv_put
    get_latency: Optional[Histogram] = None  # ns per daxkv_get
    batch_latency: Optional[Histogram] = None  # ns per put or get batch
    item_bytes: Optional[Histogram] = None  # bytes per value stored or copied out
    slots_leased: int = 0  # slots with at least one lease

    def as_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


def _stats(st: "_lib.Stats") -> Stats:
    hist = {
        name: _histogram(getattr(st, name), _lib.HIST_BYTES_UNIT if name == "item_bytes" else _lib.HIST_NS_UNIT)
        for name in _lib.STATS_HISTOGRAMS
    }
    return Stats(**{f.name: getattr(st, f.name) for f in dataclasses.fields(Stats) if f.name not in hist}, **hist)


def _read_text(fn: Callable[[Any, int, Any], int], op: str) -> str:
    # The *_json / prometheus calls, fn(buf, cap, &needed): grow the buffer
    # when the text grew between the size query and the copy.
    needed = ctypes.c_size_t(0)
    cap = 4096
    while True:
        buf = ctypes.create_string_buffer(cap)
        rc = fn(buf, cap, ctypes.byref(needed))
        if rc == -_errno.ENOBUFS and needed.value > cap:
            cap = needed.value  # the state grew between calls: retry
            continue
        if rc < 0:
            raise _error(rc, op)
        return buf.value.decode("utf-8")


def _option_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError(f"option {name}: expected str, int or bool, got {type(value).__name__}")


class _Config:
    """A daxkv_config, freed when done."""

    def __init__(self, handle: int) -> None:
        self.h = handle

    @classmethod
    def new(cls) -> "_Config":
        out = ctypes.c_void_p()
        rc = library().daxkv_config_new(ctypes.byref(out))
        if rc < 0:
            raise _error(rc, "daxkv_config_new")
        return cls(out.value)

    @classmethod
    def from_json(cls, text: str) -> "_Config":
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"JSON configuration must be str or bytes, got {type(text).__name__}")
        data = text.encode("utf-8") if isinstance(text, str) else text
        if b"\0" in data:
            raise InvalidArgument(-_errno.EINVAL, "JSON configuration contains a NUL byte", "from_json")
        out = ctypes.c_void_p()
        rc = library().daxkv_config_from_json(ctypes.byref(out), data)
        if rc < 0:
            raise _error(rc, "daxkv_config_from_json")
        return cls(out.value)

    def set(self, key: str, value: Any) -> None:
        v = _option_value(key, value)
        if "\0" in key or "\0" in v:
            raise InvalidArgument(-_errno.EINVAL, f"option {key!r} contains a NUL byte", "daxkv_config_set")
        rc = library().daxkv_config_set(self.h, key.encode(), v.encode())
        if rc < 0:
            raise _error(rc, "daxkv_config_set")

    def add_device(self, path: Union[str, bytes, "os.PathLike[str]"], size: int = 0) -> None:
        import os

        p = os.fsencode(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size >= 1 << 64:
            raise InvalidArgument(-_errno.EINVAL, f"device size must be an integer >= 0, got {size!r}")
        if b"\0" in p:
            raise InvalidArgument(-_errno.EINVAL, "device path contains a NUL byte", "daxkv_config_add_device")
        rc = library().daxkv_config_add_device(self.h, p, size)
        if rc < 0:
            raise _error(rc, "daxkv_config_add_device")

    def free(self) -> None:
        if self.h:
            library().daxkv_config_free(self.h)
            self.h = None


def _close_handle(box: List[Optional[int]]) -> None:
    h = box[0]
    box[0] = None
    if h:
        library().daxkv_close(h)


class Store:
    """An open libdaxkv store.

    Keyword options map to daxkv_config_set keys (slot_bytes, eviction,
    durability, on_mismatch, workers, meta_bytes, verify, hotplug, create,
    nt_stores, ...); values may be str, int or bool. Devices are given as
    ``devices=[(path, bytes), ...]`` or ``path=..., size=...``; a path is a
    /dev/daxX.Y device, a regular file (created when absent) or ``"mem:"``.

    >>> with Store(path="mem:", size=64 << 20, slot_bytes="1MiB") as s:
    ...     s.put(b"k", b"v")
    ...     s.get(b"k")
    True
    b'v'

    All methods are thread-safe and release the GIL inside the library.
    close() waits for calls in flight on other threads, so a closing store
    never frees memory under a running call.
    """

    def __init__(
        self,
        *,
        devices: Optional[Iterable[Union[Tuple[Any, int], Any]]] = None,
        path: Any = None,
        size: int = 0,
        **options: Any,
    ) -> None:
        cfg = _Config.new()
        try:
            for k, v in options.items():
                cfg.set(k, v)
            if path is not None:
                cfg.add_device(path, size)
            elif size:
                raise InvalidArgument(-_errno.EINVAL, "size= needs path=", "Store")
            for d in devices or ():
                if isinstance(d, tuple):
                    cfg.add_device(*d)
                else:
                    cfg.add_device(d, 0)
            self._open(cfg)
        finally:
            cfg.free()

    @classmethod
    def from_json(cls, text: str, **options: Any) -> "Store":
        """Open from LMCache's dax adapter JSON; options override its keys."""
        self = cls.__new__(cls)
        cfg = _Config.from_json(text)
        try:
            for k, v in options.items():
                cfg.set(k, v)
            self._open(cfg)
        finally:
            cfg.free()
        return self

    def _open(self, cfg: _Config) -> None:
        out = ctypes.c_void_p()
        rc = library().daxkv_open(ctypes.byref(out), cfg.h)
        if rc < 0:
            raise _error(rc, "daxkv_open")
        self._h: Optional[int] = out.value
        self._cond = threading.Condition(threading.Lock())
        self._users = 0
        self._box: List[Optional[int]] = [out.value]
        self._async: Optional[_AsyncState] = None  # submitted batches, created on first use
        # Safety net for stores that are never closed; also runs at exit.
        self._finalizer = weakref.finalize(self, _close_handle, self._box)

    # -- lifetime -----------------------------------------------------------

    def _enter(self) -> int:
        with self._cond:
            h = self._h
            if h is None:
                raise Shutdown(-_errno.ESHUTDOWN, "the store is closed", "daxkv")
            self._users += 1
            return h

    def _leave(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0 and self._h is None:
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._h is None

    def shutdown(self) -> None:
        """Refuse new calls (Shutdown); leases and reservations stay valid."""
        h = self._enter()
        try:
            rc = library().daxkv_shutdown(h)
            if rc < 0:
                raise _error(rc, "daxkv_shutdown")
        finally:
            self._leave()

    def close(self) -> None:
        """Shut down and free the store. Idempotent.

        Leases and reservations taken from it stay valid (the library keeps
        the mapping alive for them); only new calls fail with Shutdown.
        """
        with self._cond:
            h = self._h
            if h is None:
                return
            self._h = None  # new calls fail from here on
        # Calls already inside the library finish (or fail with ESHUTDOWN)
        # before daxkv_shutdown returns; the handle itself is freed only when
        # no thread can still be about to pass it to the library.
        library().daxkv_shutdown(h)
        with self._cond:
            while self._users:
                self._cond.wait()
        self._finalizer.detach()
        _close_handle(self._box)
        self._drop_pending()

    def _drop_pending(self) -> None:
        # After daxkv_close the library touches no item: completions nobody
        # polled are lost, their buffers released; awaiting coroutines fail.
        a = self._async
        if a is None:
            return
        with a.lock:
            pending, a.pending = a.pending, {}
            waiters, a.waiters = a.waiters, {}
            a.ready.clear()
        for p in pending.values():
            p.bufs.close()
        for loop, fut in waiters.values():
            try:
                loop.call_soon_threadsafe(
                    _fail_future, fut, Shutdown(-_errno.ESHUTDOWN, "the store was closed", "daxkv_poll")
                )
            except RuntimeError:
                pass  # that loop is closed

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daxkv.Store {'closed' if self.closed else 'open'}>"

    # -- single keys --------------------------------------------------------

    def put(self, key: Key, value: Buffer, *, replace: bool = False, meta: Optional[Buffer] = None) -> bool:
        """Store value under key. True if stored, False if the key was
        already present or in flight (nothing written) and replace is False."""
        if meta is not None:
            return self.put_many([key], [value], replace=replace, metas=[meta])[0]
        k = _key(key)
        with _Buffers() as bufs:
            addr, length = bufs.add(value, False, "value")
            h = self._enter()
            try:
                rc = library().daxkv_put(h, k, len(k), addr, length, _lib.REPLACE if replace else 0)
                if rc < 0:
                    raise _error(rc, "daxkv_put")
            finally:
                self._leave()
        return rc == 0

    def get_into(self, key: Key, dst: Buffer) -> Optional[int]:
        """Copy the value into dst (a writable buffer or (address, capacity)).

        Returns the value's length, or None on a miss. Raises BufferTooSmall
        (with .needed) when dst is too small.
        """
        k = _key(key)
        n = ctypes.c_size_t(0)
        with _Buffers() as bufs:
            addr, cap = bufs.add(dst, True, "destination")
            h = self._enter()
            try:
                rc = library().daxkv_get(h, k, len(k), addr, cap, ctypes.byref(n))
                if rc == -_errno.ENOENT:
                    return None
                if rc < 0:
                    err = _error(rc, "daxkv_get")
                    if isinstance(err, BufferTooSmall):
                        err.needed = n.value
                    raise err
            finally:
                self._leave()
        return n.value

    def get(self, key: Key, default: Optional[bytes] = None) -> Optional[bytes]:
        """The value as bytes (one copy, through a lease), or default on a miss."""
        try:
            with self.lease(key) as lease:
                return lease.tobytes()
        except NotFound:
            return default

    def __getitem__(self, key: Key) -> bytes:
        with self.lease(key) as lease:
            return lease.tobytes()

    def __setitem__(self, key: Key, value: Buffer) -> None:
        self.put(key, value, replace=True)

    def __delitem__(self, key: Key) -> None:
        if not self.remove(key):
            raise NotFound(-_errno.ENOENT, "key not found", "daxkv_remove")

    def __contains__(self, key: Key) -> bool:
        return self.contains(key)

    def contains(self, key: Key) -> bool:
        """True if the key is committed (in-flight keys are not)."""
        k = _key(key)
        h = self._enter()
        try:
            rc = library().daxkv_contains(h, k, len(k))
            if rc < 0:
                raise _error(rc, "daxkv_contains")
        finally:
            self._leave()
        return rc == 1

    def remove(self, key: Key, *, force: bool = False) -> bool:
        """Remove a key: True if removed, False on a miss. Raises Busy if
        pinned or in flight unless force (which also cancels a reservation)."""
        k = _key(key)
        h = self._enter()
        try:
            rc = library().daxkv_remove(h, k, len(k), _lib.FORCE if force else 0)
            if rc == -_errno.ENOENT:
                return False
            if rc < 0:
                raise _error(rc, "daxkv_remove")
        finally:
            self._leave()
        return True

    def pin(self, key: Key) -> None:
        """Pin a committed entry (refcounted). Raises NotFound on a miss."""
        k = _key(key)
        h = self._enter()
        try:
            rc = library().daxkv_pin(h, k, len(k))
            if rc < 0:
                raise _error(rc, "daxkv_pin")
        finally:
            self._leave()

    def unpin(self, key: Key) -> bool:
        """Drop one pin: True if one was dropped, False if the key was not pinned."""
        k = _key(key)
        h = self._enter()
        try:
            rc = library().daxkv_unpin(h, k, len(k))
            if rc == -_errno.ENOENT:
                return False
            if rc < 0:
                raise _error(rc, "daxkv_unpin")
        finally:
            self._leave()
        return True

    # -- batches ------------------------------------------------------------

    def _run(self, fn_name: str, batch: _Batch, flags: int) -> int:
        h = self._enter()
        try:
            rc = getattr(library(), fn_name)(h, batch.items, batch.n, flags)
            if rc < 0:
                raise _error(rc, fn_name)
        finally:
            self._leave()
        return rc

    @staticmethod
    def _fail(op: str, statuses: List[int], ok: Callable[[int], bool], results: list) -> None:
        errors = {i: _item_error(s, op, i) for i, s in enumerate(statuses) if not ok(s)}
        if errors:
            raise BatchError(op, statuses, errors, results)

    def put_many(
        self,
        keys: Sequence[Key],
        values: Sequence[Buffer],
        *,
        replace: bool = False,
        metas: Optional[Sequence[Optional[Buffer]]] = None,
    ) -> List[bool]:
        """Store many values in one call. Returns, per key, True if stored
        and False if it was already present or in flight.

        values are buffers or (address, length) pairs; metas (optional) are
        per-entry metadata blobs. If any item fails (NoSpace, TooBig, ...),
        BatchError is raised after the others took effect.
        """
        kb = _keys(keys)
        _check_lengths("put_many", kb, values, "values")
        if metas is not None:
            _check_lengths("put_many", kb, metas, "metas")
        if not kb:
            self._enter(), self._leave()
            return []
        batch = _Batch(kb)
        with _Buffers() as bufs:
            add = bufs.add
            pairs = [add(v, False, f"values[{i}]") for i, v in enumerate(values)]
            batch.set_column(_lib.W_DATA, [p[0] for p in pairs])
            batch.set_column(_lib.W_LEN, [p[1] for p in pairs])
            if metas is not None:
                mp = [(0, 0) if m is None else add(m, False, f"metas[{i}]") for i, m in enumerate(metas)]
                batch.set_column(_lib.W_META, [p[0] for p in mp])
                batch.set_column(_lib.W_META_LEN, [p[1] for p in mp])
            self._run("daxkv_put_batch", batch, _lib.REPLACE if replace else 0)
        st = batch.statuses()
        results = [s == 0 for s in st]
        self._fail("daxkv_put_batch", st, lambda s: s >= 0, results)
        return results

    def put_many_ptr(
        self, keys: Sequence[Key], addrs: Sequence[int], lengths: Sequence[int], *, replace: bool = False
    ) -> List[bool]:
        """put_many from raw addresses (e.g. tensor.data_ptr()) and lengths."""
        _check_lengths("put_many_ptr", keys, addrs, "addrs")
        _check_lengths("put_many_ptr", keys, lengths, "lengths")
        return self.put_many(keys, list(zip(addrs, lengths)), replace=replace)

    def get_many_into(
        self, keys: Sequence[Key], dsts: Sequence[Buffer], *, prefix: bool = False
    ) -> List[Optional[int]]:
        """Copy many values into caller buffers (or (address, capacity) pairs).

        Positional: returns each value's length, None for a miss. With
        prefix=True the copy stops at the first miss and only the prefix's
        lengths are returned. A destination too small for its value raises
        BatchError (BufferTooSmall per item) after the other items were copied.
        """
        kb = _keys(keys)
        _check_lengths("get_many_into", kb, dsts, "destinations")
        if not kb:
            self._enter(), self._leave()
            return []
        batch = _Batch(kb)
        with _Buffers() as bufs:
            add = bufs.add
            pairs = [add(d, True, f"dsts[{i}]") for i, d in enumerate(dsts)]
            batch.set_column(_lib.W_DATA, [p[0] for p in pairs])
            batch.set_column(_lib.W_LEN, [p[1] for p in pairs])
            count = self._run("daxkv_get_batch", batch, _lib.PREFIX if prefix else 0)
        st = batch.statuses()
        lens = batch.column(_lib.W_LEN)
        results: List[Optional[int]] = [n if s == 0 else None for s, n in zip(st, lens)]
        if prefix:
            results = results[:count]
            st_checked = st[:count]
        else:
            st_checked = st
        self._fail("daxkv_get_batch", st_checked, lambda s: s == 0 or s == -_errno.ENOENT, results)
        return results

    def get_many_into_ptr(
        self, keys: Sequence[Key], addrs: Sequence[int], capacities: Sequence[int], *, prefix: bool = False
    ) -> List[Optional[int]]:
        """get_many_into to raw addresses (e.g. tensor.data_ptr()) and capacities."""
        _check_lengths("get_many_into_ptr", keys, addrs, "addrs")
        _check_lengths("get_many_into_ptr", keys, capacities, "capacities")
        return self.get_many_into(keys, list(zip(addrs, capacities)), prefix=prefix)

    def get_many(self, keys: Sequence[Key], *, prefix: bool = False) -> List[Optional[bytes]]:
        """Values as bytes, None for misses; with prefix=True only the run
        of hits from the start."""
        out: List[Optional[bytes]] = []
        for k in _keys(keys):
            v = self.get(k)
            if v is None and prefix:
                break
            out.append(v)
        return out

    def contains_many(self, keys: Sequence[Key], *, pin: bool = False) -> List[bool]:
        """Per key, whether it is committed. pin=True pins every hit
        (LMCache's lookup-and-lock); release with unpin_many."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return []
        batch = _Batch(kb)
        self._run("daxkv_contains_batch", batch, _lib.PIN if pin else 0)
        st = batch.statuses()
        results = [s == 1 for s in st]
        self._fail("daxkv_contains_batch", st, lambda s: s >= 0, results)
        return results

    def prefix_length(self, keys: Sequence[Key], *, pin: bool = False) -> int:
        """Number of consecutive committed keys from the start (pinning them
        when pin=True)."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return 0
        batch = _Batch(kb)
        count = self._run("daxkv_contains_batch", batch, _lib.PREFIX | (_lib.PIN if pin else 0))
        st = batch.statuses()[:count]
        self._fail("daxkv_contains_batch", st, lambda s: s >= 0, [True] * count)
        return count

    def remove_many(self, keys: Sequence[Key], *, force: bool = False) -> List[bool]:
        """Per key, True if removed. Misses are False, and so are pinned or
        in-flight keys when force is False (left in place, as LMCache's
        non-forced delete does)."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return []
        batch = _Batch(kb)
        self._run("daxkv_remove_batch", batch, _lib.FORCE if force else 0)
        st = batch.statuses()
        results = [s == 0 for s in st]
        self._fail(
            "daxkv_remove_batch", st, lambda s: s >= 0 or s in (-_errno.ENOENT, -_errno.EBUSY), results
        )
        return results

    def unpin_many(self, keys: Sequence[Key]) -> List[bool]:
        """Per key, True if a pin was dropped (False if it was not pinned)."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return []
        batch = _Batch(kb)
        self._run("daxkv_unpin_batch", batch, 0)
        st = batch.statuses()
        results = [s == 0 for s in st]
        self._fail("daxkv_unpin_batch", st, lambda s: s >= 0 or s == -_errno.ENOENT, results)
        return results

    # -- zero copy ----------------------------------------------------------

    def lease(self, key: Key) -> "Lease":
        """Borrow an entry's bytes in place (zero copy). Raises NotFound."""
        k = _key(key)
        out = ctypes.c_void_p()
        h = self._enter()
        try:
            rc = library().daxkv_lease_acquire(h, k, len(k), ctypes.byref(out))
            if rc < 0:
                raise _error(rc, "daxkv_lease_acquire")
        finally:
            self._leave()
        return Lease(out.value)

    def reserve(self, key: Key, size: int, *, meta: Optional[Buffer] = None) -> "Reservation":
        """Reserve a slot of size bytes for key, to be filled in place.

        Raises Exists if the key is present or in flight. Use as a context
        manager: commit on success, abort on an exception.
        """
        k = _key(key)
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"size must be an int, got {type(size).__name__}")
        if size < 0 or size >= 1 << 63:
            raise InvalidArgument(-_errno.EINVAL, f"size out of range: {size}", "daxkv_reserve")
        out = ctypes.c_void_p()
        h = self._enter()
        try:
            rc = library().daxkv_reserve(h, k, len(k), size, ctypes.byref(out))
            if rc < 0:
                raise _error(rc, "daxkv_reserve")
        finally:
            self._leave()
        if rc == _lib.EXISTED or not out.value:
            raise Exists(-_errno.EEXIST, "the key is already stored or in flight", "daxkv_reserve")
        r = Reservation(out.value)
        if meta is not None:
            try:
                r.set_meta(meta)
            except BaseException:
                r.abort()
                raise
        return r

    # -- introspection ------------------------------------------------------

    def stats(self) -> Stats:
        """Counters and capacity (struct daxkv_stats)."""
        st = _lib.Stats()
        st.struct_size = ctypes.sizeof(st)
        h = self._enter()
        try:
            rc = library().daxkv_stats(h, ctypes.byref(st))
            if rc < 0:
                raise _error(rc, "daxkv_stats")
        finally:
            self._leave()
        return _stats(st)

    def _text(self, fn: Any, op: str) -> str:
        h = self._enter()
        try:
            return _read_text(lambda buf, cap, needed: fn(h, buf, cap, needed), op)
        finally:
            self._leave()

    def status_json(self) -> str:
        """The store's state as a JSON string."""
        return self._text(library().daxkv_status_json, "daxkv_status_json")

    def stats_prometheus(self) -> str:
        """Counters, gauges and histograms in the Prometheus text format
        (0.0.4; names prefixed daxkv_, latencies in seconds)."""
        return self._text(_optional("daxkv_stats_prometheus"), "daxkv_stats_prometheus")

    def status(self) -> Dict[str, Any]:
        """status_json(), parsed."""
        return json.loads(self.status_json())

    # -- GPU transfers --------------------------------------------------------

    def cuda_register(self, mapped: bool = False) -> None:
        """Page-lock the arena mappings for the GPU (cudaHostRegister;
        mapped=True: Portable|Mapped instead of Default), so that GPU
        copies go straight between GPU and arena. On failure nothing stays
        registered and the staged path keeps working: NotSupported (no
        runtime, or the GPU cannot register host memory), NoDevice (no
        GPU), OutOfMemory, Busy (registered with the other flags).
        Registering again with the same flags does nothing."""
        fn = _optional("daxkv_cuda_register")
        h = self._enter()
        try:
            rc = fn(h, _lib.CUDA_MAPPED if mapped else 0)
            if rc < 0:
                raise _error(rc, "daxkv_cuda_register")
        finally:
            self._leave()

    def cuda_unregister(self) -> None:
        """Unregister the arenas, after GPU reads still copying out of them.
        NotFound if they are not registered."""
        fn = _optional("daxkv_cuda_unregister")
        h = self._enter()
        try:
            rc = fn(h)
            if rc < 0:
                raise _error(rc, "daxkv_cuda_unregister")
        finally:
            self._leave()

    def _cuda_batch(
        self, name: str, keys: Sequence[Key], bufs: Sequence[Any], writable: bool, stream: Any, flags: int
    ) -> Tuple[_Batch, int]:
        kb = _keys(keys)
        _check_lengths(name, kb, bufs, "device buffers")
        pairs = [_device_buffer(b, writable, f"{'dsts' if writable else 'srcs'}[{i}]") for i, b in enumerate(bufs)]
        handle = _cuda_stream(stream)
        fn = _optional(name)
        batch = _Batch(kb)
        if kb:
            batch.set_column(_lib.W_DATA, [p[0] for p in pairs])
            batch.set_column(_lib.W_LEN, [p[1] for p in pairs])
        h = self._enter()
        try:
            # An empty batch goes to the library too: it says whether GPU
            # transfers work at all (NotSupported, NoDevice).
            rc = fn(h, batch.items if kb else None, batch.n, handle or None, flags)
            if rc < 0:
                raise _error(rc, name)
        finally:
            self._leave()
        return batch, rc

    def get_many_cuda(
        self, keys: Sequence[Key], dsts: Sequence[Any], stream: Any = None, *, prefix: bool = False
    ) -> List[Optional[int]]:
        """get_many_into into GPU memory: dsts are CUDA tensors (their
        data_ptr() and numel() * element_size() bytes), objects with
        __cuda_array_interface__, or (device pointer, capacity) pairs.

        Returns each value's length, None for a miss (with prefix=True only
        the prefix's). The bytes arrive in stream order: synchronize the
        stream before reading them on the host, and keep the destinations
        alive until then. stream: a cudaStream_t handle, a torch or CuPy
        stream, or None (torch's current stream when torch has initialized
        CUDA, else the legacy default stream). A copy CUDA refuses fails
        its item (MediaError in the BatchError) and no other."""
        batch, count = self._cuda_batch(
            "daxkv_get_batch_cuda", keys, dsts, True, stream, _lib.PREFIX if prefix else 0
        )
        if not batch.n:
            return []
        st = batch.statuses()
        lens = batch.column(_lib.W_LEN)
        results: List[Optional[int]] = [n if s == 0 else None for s, n in zip(st, lens)]
        checked = st
        if prefix:
            results, checked = results[:count], st[:count]
        self._fail("daxkv_get_batch_cuda", checked, lambda s: s == 0 or s == -_errno.ENOENT, results)
        return results

    def put_many_cuda(
        self, keys: Sequence[Key], srcs: Sequence[Any], stream: Any = None, *, replace: bool = False
    ) -> List[bool]:
        """put_many from GPU memory: srcs as get_many_cuda's dsts (a
        tensor's whole contents, or a pair's nbytes). The copies are ordered
        after the work already on stream and the call returns once they are
        done. Per key, True if stored, False if it was present or in flight
        (and replace is False); failed items raise BatchError after the
        others took effect."""
        batch, _ = self._cuda_batch(
            "daxkv_put_batch_cuda", keys, srcs, False, stream, _lib.REPLACE if replace else 0
        )
        if not batch.n:
            return []
        st = batch.statuses()
        results = [s == 0 for s in st]
        self._fail("daxkv_put_batch_cuda", st, lambda s: s >= 0, results)
        return results

    # -- asynchronous batches -------------------------------------------------

    def _async_state(self) -> "_AsyncState":
        a = self._async
        if a is None:
            with self._cond:
                if self._async is None:
                    self._async = _AsyncState()
                a = self._async
        return a

    def submit(
        self,
        op: Union[int, str],
        keys: Sequence[Key],
        buffers: Optional[Sequence[Buffer]] = None,
        *,
        metas: Optional[Sequence[Optional[Buffer]]] = None,
        tag: Optional[int] = None,
        replace: bool = False,
        prefix: bool = False,
        pin: bool = False,
        force: bool = False,
    ) -> int:
        """Queue a batch (daxkv_submit); returns its tag. The result comes
        back as a Completion from poll().

        op is OP_PUT, OP_GET, OP_CONTAINS or OP_REMOVE (or "put", "get",
        "contains", "remove"). buffers: the values (put) or destinations
        (get), as buffers or (address, length) pairs; None for contains and
        remove. metas: per-entry metadata blobs (put only). The flags an op
        does not take (e.g. replace with get) raise InvalidArgument.

        The store keeps the keys, the item array and every buffer (with its
        export held: a bytearray cannot be resized meanwhile) until poll()
        returns the batch's completion, so the caller may drop its own
        references at once. For (address, length) pairs the memory stays the
        caller's to keep valid. tag (0 .. 2**64-1) defaults to a fresh one;
        a tag whose batch has not been polled yet is refused.
        """
        return self._submit(
            op, keys, buffers, metas=metas, tag=tag, replace=replace, prefix=prefix, pin=pin, force=force
        )

    def _submit(
        self,
        op: Union[int, str],
        keys: Sequence[Key],
        buffers: Optional[Sequence[Buffer]] = None,
        *,
        metas: Optional[Sequence[Optional[Buffer]]] = None,
        tag: Optional[int] = None,
        replace: bool = False,
        prefix: bool = False,
        pin: bool = False,
        force: bool = False,
        waiter: Optional[Tuple[Any, Any]] = None,
    ) -> int:
        code = _op_code(op)
        kb = _keys(keys)
        if code in (_lib.OP_PUT, _lib.OP_GET):
            if buffers is None:
                raise TypeError(f"submit {_lib.OPS[code]}: buffers are required")
            _check_lengths("submit", kb, buffers, "buffers")
        elif buffers is not None:
            raise TypeError(f"submit {_lib.OPS[code]}: takes no buffers")
        if metas is not None:
            if code != _lib.OP_PUT:
                raise TypeError(f"submit {_lib.OPS[code]}: takes no metas")
            _check_lengths("submit", kb, metas, "metas")
        if tag is not None and (not isinstance(tag, int) or isinstance(tag, bool) or not 0 <= tag < 1 << 64):
            raise InvalidArgument(-_errno.EINVAL, f"tag must be an int in 0 .. 2**64-1, got {tag!r}", "submit")
        flags = (
            (_lib.REPLACE if replace else 0)
            | (_lib.PREFIX if prefix else 0)
            | (_lib.PIN if pin else 0)
            | (_lib.FORCE if force else 0)
        )
        fn = _optional("daxkv_submit")
        batch = _Batch(kb) if kb else None
        bufs = _Buffers()
        try:
            if buffers is not None and batch is not None:
                writable = code == _lib.OP_GET
                pairs = [bufs.add(b, writable, f"buffers[{i}]") for i, b in enumerate(buffers)]
                batch.set_column(_lib.W_DATA, [p[0] for p in pairs])
                batch.set_column(_lib.W_LEN, [p[1] for p in pairs])
                if metas is not None:
                    mp = [(0, 0) if m is None else bufs.add(m, False, f"metas[{i}]") for i, m in enumerate(metas)]
                    batch.set_column(_lib.W_META, [p[0] for p in mp])
                    batch.set_column(_lib.W_META_LEN, [p[1] for p in mp])
        except BaseException:
            bufs.close()
            raise
        a = self._async_state()
        pending = _Pending(code, flags, batch, bufs, kb, list(buffers) if buffers is not None else None)
        with a.lock:
            if tag is None:
                tag = a.next_tag
                while tag in a.pending:
                    tag = (tag + 1) & ((1 << 64) - 1)
                a.next_tag = (tag + 1) & ((1 << 64) - 1)
            elif tag in a.pending:
                bufs.close()
                raise InvalidArgument(-_errno.EINVAL, f"tag {tag} has a batch that was not polled yet", "submit")
            # Registered before the call: a small batch runs inline and
            # another thread may poll its completion before submit returns.
            a.pending[tag] = pending
            if waiter is not None:
                a.waiters[tag] = waiter
        ok = False
        h = self._enter()
        try:
            items = batch.items if batch is not None else None
            rc = fn(h, code, items, len(kb), flags, tag)
            if rc < 0:
                raise _error(rc, "daxkv_submit")
            ok = True
        finally:
            self._leave()
            if not ok:
                with a.lock:
                    a.pending.pop(tag, None)
                    a.waiters.pop(tag, None)
                bufs.close()
        return tag

    def event_fd(self) -> int:
        """The store's eventfd (non-blocking, close-on-exec, owned by the
        store: never close it). Readable while completions wait to be
        polled; use it with select/selectors or loop.add_reader, then call
        poll(). Valid until close()."""
        fn = _optional("daxkv_event_fd")
        h = self._enter()
        try:
            rc = fn(h)
            if rc < 0:
                raise _error(rc, "daxkv_event_fd")
        finally:
            self._leave()
        return rc

    def pending(self) -> int:
        """The number of submitted batches whose completion was not polled yet."""
        a = self._async
        if a is None:
            return 0
        with a.lock:
            return len(a.pending)

    def poll(self, max: int = 64, *, timeout: Optional[float] = 0.0) -> List["Completion"]:
        """Take up to max finished batches (each is returned once).

        timeout: seconds to wait for the first completion when none is
        waiting (0: do not wait, None: wait without limit). Works after
        shutdown(), so that cancelled batches can be collected; raises
        Shutdown after close().
        """
        if not isinstance(max, int) or isinstance(max, bool) or max < 1:
            raise InvalidArgument(-_errno.EINVAL, f"max must be an int >= 1, got {max!r}", "poll")
        if timeout is not None and timeout < 0:
            raise InvalidArgument(-_errno.EINVAL, f"timeout must be >= 0 or None, got {timeout!r}", "poll")
        a = self._async_state()
        with a.lock:
            out = [a.ready.popleft() for _ in range(min(max, len(a.ready)))]
        if len(out) < max:
            out.extend(self._poll_raw(max - len(out), timeout if not out else 0.0))
        return out

    def _poll_raw(self, cap: int, timeout: Optional[float]) -> List["Completion"]:
        fn = _optional("daxkv_poll")
        arr = (_lib.Completion * cap)()
        fd = self.event_fd() if timeout != 0 else -1
        while True:
            h = self._enter()
            try:
                rc = fn(h, arr, cap)
                if rc < 0:
                    raise _error(rc, "daxkv_poll")
            finally:
                self._leave()
            if rc > 0 or timeout == 0:
                break
            # Nothing waiting: sleep on the eventfd, then poll again (another
            # thread may have taken what woke us).
            import select

            r, _, _ = select.select([fd], [], [], timeout)
            if not r:
                break
            timeout = None if timeout is None else 0.0
        return self._deliver([arr[i] for i in range(rc)])

    def _deliver(self, raw: List["_lib.Completion"]) -> List["Completion"]:
        a = self._async_state()
        out: List[Completion] = []
        for c in raw:
            with a.lock:
                p = a.pending.pop(c.tag, None)
                waiter = a.waiters.pop(c.tag, None)
            comp = _completion(c, p)
            if waiter is not None:
                loop, fut = waiter
                loop.call_soon_threadsafe(_set_future, fut, comp)
            else:
                out.append(comp)
        return out

    async def submit_async(
        self, op: Union[int, str], keys: Sequence[Key], buffers: Optional[Sequence[Buffer]] = None, **kw: Any
    ) -> "Completion":
        """submit() and await the batch's Completion on the running asyncio
        loop (through loop.add_reader on the event fd).

        While a coroutine waits, the loop's reader polls the store:
        completions of batches nobody awaits are kept for the next poll().
        Cancelling the await does not cancel the batch; its completion is
        then dropped (the buffers are released once it finished).
        """
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fd = self.event_fd()
        self._submit(op, keys, buffers, waiter=(loop, fut), **kw)
        self._reader_add(loop, fd)
        try:
            self._on_readable()  # it may have completed inline, before the reader existed
            return await fut
        finally:
            self._reader_remove(loop, fd)

    def _reader_add(self, loop: Any, fd: int) -> None:
        a = self._async_state()
        with a.lock:
            n = a.readers.get(loop, 0)
            a.readers[loop] = n + 1
        if n == 0:
            loop.add_reader(fd, self._on_readable)

    def _reader_remove(self, loop: Any, fd: int) -> None:
        a = self._async_state()
        with a.lock:
            n = a.readers[loop] - 1
            if n:
                a.readers[loop] = n
            else:
                del a.readers[loop]
        if n == 0:
            loop.remove_reader(fd)

    def _on_readable(self) -> None:
        try:
            done = self._poll_raw(64, 0.0)
        except Shutdown:
            done = []
            a = self._async_state()
            with a.lock:
                waiters, a.waiters = a.waiters, {}
            for loop, fut in waiters.values():
                loop.call_soon_threadsafe(
                    _fail_future, fut, Shutdown(-_errno.ESHUTDOWN, "the store is closed", "daxkv_poll")
                )
        if done:
            a = self._async_state()
            with a.lock:
                a.ready.extend(done)

    async def get_many_async(
        self, keys: Sequence[Key], dsts: Sequence[Buffer], *, prefix: bool = False
    ) -> List[Optional[int]]:
        """get_many_into, run on the store's dispatcher and awaited."""
        c = await self.submit_async(_lib.OP_GET, keys, dsts, prefix=prefix)
        return c.results()

    async def put_many_async(
        self, keys: Sequence[Key], values: Sequence[Buffer], *, replace: bool = False
    ) -> List[bool]:
        """put_many, run on the store's dispatcher and awaited."""
        c = await self.submit_async(_lib.OP_PUT, keys, values, replace=replace)
        return c.results()

    # -- pool ---------------------------------------------------------------

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
        if timeout is None:
            ms = -1
        else:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
                raise InvalidArgument(
                    -_errno.EINVAL, f"timeout must be >= 0 or None, got {timeout!r}", "device_wait_drained"
                )
            ms = min(int(timeout * 1000), 2**31 - 1)
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
        h = self._enter()
        try:
            rc = fn_open(h, path, ctypes.byref(cur))
        finally:
            self._leave()
        if rc < 0:
            raise _error(rc, "daxkv_cursor_open")
        info = _lib.KeyInfo()
        info.struct_size = ctypes.sizeof(info)
        try:
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
            L.daxkv_cursor_close(cur)


# ---------------------------------------------------------------------------
# Asynchronous batches: the state a Store keeps for them.


class _Pending:
    """A submitted batch: everything the library may still touch."""

    __slots__ = ("op", "flags", "batch", "bufs", "keys", "objs")

    def __init__(
        self,
        op: int,
        flags: int,
        batch: Optional[_Batch],
        bufs: _Buffers,
        keys: List[bytes],
        objs: Optional[list],
    ) -> None:
        self.op = op
        self.flags = flags
        self.batch = batch  # the daxkv_item array and the keys' blob
        self.bufs = bufs  # buffer exports, released once polled
        self.keys = keys
        self.objs = objs  # the caller's buffer objects, handed back in the Completion


class _AsyncState:
    __slots__ = ("lock", "pending", "ready", "waiters", "readers", "next_tag")

    def __init__(self) -> None:
        import collections

        self.lock = threading.Lock()
        self.pending: Dict[int, _Pending] = {}
        self.ready: "collections.deque[Completion]" = collections.deque()  # polled by an asyncio reader
        self.waiters: Dict[int, Tuple[Any, Any]] = {}  # tag -> (loop, future)
        self.readers: Dict[Any, int] = {}  # loop -> coroutines waiting on it
        self.next_tag = 1


@dataclasses.dataclass
class Completion:
    """One finished batch, as poll() returns it.

    result is what the batch call returned (items stored, hits, removed,
    or the prefix length), or a negative code: -ECANCELED when shutdown
    cancelled the batch before it ran. statuses are the items' final
    statuses; lengths the value lengths (get: copied out, put: stored),
    None for contains and remove. keys and buffers are the batch's (the
    buffers hold what a get copied). statuses, lengths, keys and buffers are
    None for a tag this Store did not submit.
    """

    tag: int
    op: int
    result: int
    statuses: Optional[List[int]] = None
    lengths: Optional[List[int]] = None
    keys: Optional[List[bytes]] = None
    buffers: Optional[list] = None
    flags: int = 0

    @property
    def op_name(self) -> str:
        return _lib.OPS.get(self.op, str(self.op))

    @property
    def ok(self) -> bool:
        return self.result >= 0

    @property
    def cancelled(self) -> bool:
        return self.result == -_errno.ECANCELED

    @property
    def error(self) -> Optional[DaxKVError]:
        """The batch's failure as an exception (Cancelled, ...), or None."""
        if self.result >= 0:
            return None
        s = strerror(self.result)
        return error_class(self.result)(self.result, s, f"daxkv_submit {self.op_name}", s)

    def results(self) -> list:
        """What the synchronous batch method returns for these items:
        put_many's, get_many_into's, contains_many's (prefix: the hits of
        the prefix) or remove_many's list. Raises the batch's error
        (Cancelled, ...) or BatchError, as those methods do."""
        err = self.error
        if err is not None:
            raise err
        if self.statuses is None:
            raise ValueError(f"no items for tag {self.tag}: it was not submitted through this Store")
        st = self.statuses
        op = f"daxkv_submit {self.op_name}"
        prefix = bool(self.flags & _lib.PREFIX)
        if self.op == _lib.OP_PUT:
            results: list = [s == 0 for s in st]
            Store._fail(op, st, lambda s: s >= 0, results)
        elif self.op == _lib.OP_GET:
            lens = self.lengths or [0] * len(st)
            results = [n if s == 0 else None for s, n in zip(st, lens)]
            checked = st
            if prefix:
                results, checked = results[: self.result], st[: self.result]
            Store._fail(op, checked, lambda s: s == 0 or s == -_errno.ENOENT, results)
        elif self.op == _lib.OP_CONTAINS:
            results = [s == 1 for s in st]
            checked = st
            if prefix:
                results, checked = results[: self.result], st[: self.result]
            Store._fail(op, checked, lambda s: s >= 0, results)
        else:
            results = [s == 0 for s in st]
            Store._fail(op, st, lambda s: s >= 0 or s in (-_errno.ENOENT, -_errno.EBUSY), results)
        return results


def _completion(c: "_lib.Completion", p: Optional[_Pending]) -> Completion:
    if p is None:
        return Completion(tag=c.tag, op=c.op, result=c.result)
    try:
        b = p.batch
        statuses = b.statuses() if b is not None else []
        lengths = None
        if p.op in (_lib.OP_PUT, _lib.OP_GET):
            lengths = b.column(_lib.W_LEN) if b is not None else []
    finally:
        p.bufs.close()  # the library is done with the items: release the exports
    return Completion(c.tag, c.op, c.result, statuses, lengths, p.keys, p.objs, p.flags)


def _op_code(op: Union[int, str]) -> int:
    if isinstance(op, str):
        for code, name in _lib.OPS.items():
            if name == op.lower():
                return code
        raise InvalidArgument(-_errno.EINVAL, f"unknown op {op!r} (put, get, contains, remove)", "submit")
    if isinstance(op, bool) or not isinstance(op, int):
        raise TypeError(f"op must be an OP_* int or a name, got {type(op).__name__}")
    if not -(1 << 31) <= op < 1 << 31:
        raise InvalidArgument(-_errno.EINVAL, f"op out of range: {op}", "submit")
    return op  # unknown ints are the library's to refuse (InvalidArgument)


def _set_future(fut: Any, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail_future(fut: Any, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


# ---------------------------------------------------------------------------
# Pool


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


# ---------------------------------------------------------------------------


def _release_lease(handle: int) -> None:
    library().daxkv_lease_release(handle)


class Lease:
    """A read-only, zero-copy view of an entry's bytes in the arena.

    ``data`` is a read-only memoryview of the bytes in place. release() (or
    leaving the ``with`` block) invalidates ``data``: using it afterwards
    raises ValueError. Views derived from it (slices, numpy.frombuffer)
    keep the underlying lease alive until they are garbage collected, so no
    Python object can ever point at memory the library has reused. The
    bytes stay valid after the store is closed while the lease is held.
    """

    __slots__ = ("_arr", "_view", "_handle", "size", "__weakref__")

    def __init__(self, handle: int) -> None:
        L = library()
        self._handle = handle
        self.size: int = L.daxkv_lease_size(handle)
        ptr = L.daxkv_lease_data(handle)
        if self.size and ptr:
            arr = (ctypes.c_char * self.size).from_address(ptr)
        else:
            arr = (ctypes.c_char * 0)()
        # The C lease is released when the last Python view of its bytes
        # dies, never earlier.
        weakref.finalize(arr, _release_lease, handle)
        self._arr = arr
        self._view: Optional[memoryview] = _view(arr, readonly=True)

    @property
    def data(self) -> memoryview:
        if self._view is None:
            raise ValueError("the lease was released")
        return self._view

    @property
    def meta(self) -> bytes:
        """The entry's metadata blob (a copy)."""
        if self._view is None:
            raise ValueError("the lease was released")
        n = ctypes.c_size_t(0)
        p = library().daxkv_lease_meta(self._handle, ctypes.byref(n))
        return ctypes.string_at(p, n.value) if p and n.value else b""

    def tobytes(self) -> bytes:
        return self.data.tobytes()

    def slot(self) -> "SlotInfo":
        """Where the entry's bytes are (daxkv_lease_slot)."""
        if self._view is None:
            raise ValueError("the lease was released")
        return _slot_info("daxkv_lease_slot", self._handle)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.tobytes()

    @property
    def released(self) -> bool:
        return self._view is None

    def release(self) -> None:
        """Invalidate data and drop this object's hold on the lease. Idempotent."""
        v = self._view
        if v is None:
            return
        self._view = None
        try:
            v.release()
        except BufferError:
            pass  # exported to e.g. numpy: the export keeps the lease alive
        self._arr = None

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<daxkv.Lease size={self.size}{' released' if self.released else ''}>"


def _view(arr: ctypes.Array, readonly: bool) -> memoryview:
    base = memoryview(arr)
    v = base.cast("B")
    if readonly:
        out = v.toreadonly()
        v.release()
        v = out
    base.release()
    return v


def _finish_reservation(state: List[Any]) -> None:
    # state = [handle, done]; a reservation dropped without commit is aborted
    # once no view of its bytes can still write into the slot.
    if not state[1]:
        state[1] = True
        library().daxkv_abort(state[0])


class Reservation:
    """A slot reserved for a key, filled in place through ``data`` (a
    writable memoryview) and made visible by commit().

    As a context manager it commits when the block succeeds and aborts when
    it raises. commit() refuses (BufferError) while views derived from
    ``data`` are alive, since they could still write into the entry after
    it became visible. abort() with live views defers the abort until they
    are gone; until then the key stays in flight.
    """

    __slots__ = ("_arr", "_view", "_state", "size", "__weakref__")

    def __init__(self, handle: int) -> None:
        L = library()
        self._state: List[Any] = [handle, False]
        self.size: int = L.daxkv_reservation_size(handle)
        ptr = L.daxkv_reservation_data(handle)
        if self.size and ptr:
            arr = (ctypes.c_char * self.size).from_address(ptr)
        else:
            arr = (ctypes.c_char * 0)()
        weakref.finalize(arr, _finish_reservation, self._state)
        self._arr: Optional[ctypes.Array] = arr
        self._view: Optional[memoryview] = _view(arr, readonly=False)

    @property
    def done(self) -> bool:
        return self._arr is None

    @property
    def data(self) -> memoryview:
        if self._arr is None:
            raise ValueError("the reservation was committed or aborted")
        if self._view is None:
            self._view = _view(self._arr, readonly=False)
        return self._view

    def slot(self) -> "SlotInfo":
        """Where the reserved bytes are (daxkv_reservation_slot)."""
        if self._arr is None:
            raise ValueError("the reservation was committed or aborted")
        return _slot_info("daxkv_reservation_slot", self._state[0])

    def set_meta(self, meta: Buffer) -> None:
        """Attach a metadata blob (copied) to be committed with the entry."""
        if self._arr is None:
            raise ValueError("the reservation was committed or aborted")
        with _Buffers() as bufs:
            addr, n = bufs.add(meta, False, "meta")
            rc = library().daxkv_reservation_set_meta(self._state[0], addr, n)
            if rc < 0:
                raise _error(rc, "daxkv_reservation_set_meta")

    def commit(self) -> None:
        """Make the entry visible. The reservation is finished even when
        this raises (Cancelled after a forced remove, Shutdown after close)."""
        arr = self._arr
        if arr is None:
            raise ValueError("the reservation was committed or aborted")
        if self._view is not None:
            try:
                self._view.release()
            except BufferError:
                raise BufferError(
                    "reservation data is exported (e.g. to numpy); release those views before commit"
                ) from None
            self._view = None
        # Our reference and getrefcount's argument; a third one is a live
        # view (slice, cast) that could still write after the commit.
        if sys.getrefcount(arr) > 3:
            raise BufferError("views of the reservation data are still alive; release them before commit")
        self._state[1] = True
        self._arr = None
        rc = library().daxkv_commit(self._state[0])
        if rc < 0:
            raise _error(rc, "daxkv_commit")

    def abort(self) -> None:
        """Drop the reservation; its slot is returned. Idempotent."""
        if self._arr is None:
            return
        if self._view is not None:
            try:
                self._view.release()
            except BufferError:
                pass
            self._view = None
        self._arr = None  # the finalizer aborts once the last view is gone

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            if self._arr is not None:
                self.commit()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<daxkv.Reservation size={self.size}{' done' if self.done else ''}>"


# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SlotInfo:
    """Where an entry's bytes are: payload_base + offset (daxkv_slot_info)."""

    device_id: int
    slot: int
    generation: int
    offset: int
    payload_base: int

    @property
    def address(self) -> int:
        return self.payload_base + self.offset


def _slot_info(name: str, handle: int) -> SlotInfo:
    out = _lib.SlotInfo()
    out.struct_size = ctypes.sizeof(out)
    rc = _optional(name)(handle, ctypes.byref(out))
    if rc < 0:
        raise _error(rc, name)
    return SlotInfo(out.device_id, out.slot, out.generation, out.offset, out.payload_base or 0)


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


def _optional(name: str) -> Any:
    fn = getattr(library(), name, None)
    if fn is None:
        from .errors import NotSupported

        raise NotSupported(-_errno.ENOTSUP, f"the loaded libdaxkv has no {name}", name)
    return fn


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


# ---------------------------------------------------------------------------
# A running store's statistics, read without opening it: an open store
# publishes them every stats_interval ms (configuration key, default 1000;
# 0 publishes nothing) into a page file in $DAXKV_STATS_DIR (default
# /dev/shm), found by the path of any of its devices. NotFound when no
# running store publishes for the path (none has it open, its
# stats_interval is 0, it died, or the path does not exist);
# InvalidArgument for an empty path or "mem:", which no other process can
# name.


def _peek_path(path: Any, op: str) -> bytes:
    import os

    p = os.fsencode(path)
    if b"\0" in p:
        raise InvalidArgument(-_errno.EINVAL, "device path contains a NUL byte", op)
    return p  # empty: the library's own InvalidArgument, with its message


def stats_peek(path: Union[str, bytes, "os.PathLike[str]"]) -> Stats:
    """The statistics the running store holding the device at path last
    published (at most its stats_interval old), from this process or
    another. Members a publisher of an older library lacked are zero."""
    p = _peek_path(path, "daxkv_stats_peek")
    fn = _optional("daxkv_stats_peek")
    st = _lib.Stats()
    st.struct_size = ctypes.sizeof(st)
    rc = fn(p, ctypes.byref(st))
    if rc < 0:
        raise _error(rc, "daxkv_stats_peek")
    return _stats(st)


def status_peek(path: Union[str, bytes, "os.PathLike[str]"]) -> Dict[str, Any]:
    """That store's status (as Store.status()) with a "publisher" entry:
    pid, store_id (the uuid of its first device's arena, also the store
    label of its Prometheus samples) and published_unix_ns."""
    p = _peek_path(path, "daxkv_status_peek")
    fn = _optional("daxkv_status_peek")
    return json.loads(_read_text(lambda buf, cap, needed: fn(p, buf, cap, needed), "daxkv_status_peek"))


def stats_prometheus_peek(path: Union[str, bytes, "os.PathLike[str]"]) -> str:
    """That store's statistics in the Prometheus text format (as
    Store.stats_prometheus()), every sample labelled with the store's id."""
    p = _peek_path(path, "daxkv_stats_prometheus_peek")
    fn = _optional("daxkv_stats_prometheus_peek")
    return _read_text(lambda buf, cap, needed: fn(p, buf, cap, needed), "daxkv_stats_prometheus_peek")


# ---------------------------------------------------------------------------
# GPU transfers. The library loads the CUDA runtime itself on first use (it
# never links it): without a runtime the calls raise NotSupported, without
# a GPU NoDevice, and everything else works unchanged.


def cuda_available() -> bool:
    """True if the library could load a CUDA runtime that sees a GPU."""
    fn = getattr(library(), "daxkv_cuda_available", None)
    return fn is not None and fn() == 1


def _device_buffer(obj: Any, writable: bool, what: str) -> Tuple[int, int]:
    """(device pointer, bytes) of a CUDA tensor, an object with
    __cuda_array_interface__, or a (device pointer, bytes) pair."""
    if type(obj) is tuple:
        if len(obj) != 2:
            raise TypeError(f"{what}: a device buffer pair must be (pointer, nbytes)")
        addr, length = obj
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in obj):
            raise TypeError(f"{what}: pointer and nbytes must be integers")
        if addr <= 0 and length > 0:
            raise InvalidArgument(-_errno.EINVAL, f"{what}: NULL pointer with nbytes {length}")
        if addr < 0 or length < 0 or addr >= 1 << 64 or length >= 1 << 63:
            raise InvalidArgument(-_errno.EINVAL, f"{what}: pointer or nbytes out of range")
        return addr, length
    # A torch tensor, duck-typed so that torch stays an optional import.
    if callable(getattr(obj, "data_ptr", None)) and callable(getattr(obj, "element_size", None)):
        if not getattr(obj, "is_cuda", False):
            raise TypeError(f"{what}: not a CUDA tensor (device {getattr(obj, 'device', '?')})")
        if not obj.is_contiguous():
            raise TypeError(f"{what}: the tensor is not contiguous")
        return int(obj.data_ptr()), int(obj.numel()) * int(obj.element_size())
    cai = getattr(obj, "__cuda_array_interface__", None)
    if isinstance(cai, dict):
        addr, readonly = cai["data"]
        if writable and readonly:
            raise TypeError(f"{what}: the device array is read-only")
        itemsize = int(cai["typestr"][2:])
        n = 1
        for dim in cai["shape"]:
            n *= int(dim)
        strides = cai.get("strides")
        if strides is not None and n > 1:
            want = itemsize
            for dim, stride in reversed(list(zip(cai["shape"], strides))):
                if dim > 1 and stride != want:
                    raise TypeError(f"{what}: the device array is not C-contiguous")
                want *= dim
        return int(addr or 0), n * itemsize
    raise TypeError(
        f"{what}: expected a CUDA tensor or a (device pointer, nbytes) pair, got {type(obj).__name__}"
    )


def _cuda_stream(stream: Any) -> int:
    """A cudaStream_t handle: an int, a torch.cuda.Stream (.cuda_stream) or
    a CuPy stream (.ptr); None is torch's current stream when torch has
    initialized CUDA in this process (the stream its kernels write the
    tensors on), else the legacy default stream (0)."""
    if stream is None:
        torch = sys.modules.get("torch")  # never imported here: torch is optional
        cuda = getattr(torch, "cuda", None)
        initialized = getattr(cuda, "is_initialized", None)
        if initialized is not None and initialized():
            return int(cuda.current_stream().cuda_stream)
        return 0
    if isinstance(stream, bool):
        raise TypeError("stream must be a cudaStream_t handle, a stream object or None")
    if not isinstance(stream, int):
        for attr in ("cuda_stream", "ptr"):
            handle = getattr(stream, attr, None)
            if isinstance(handle, int) and not isinstance(handle, bool):
                stream = handle
                break
        else:
            raise TypeError(
                f"stream must be a cudaStream_t handle, a stream object or None, got {type(stream).__name__}"
            )
    if not 0 <= stream < 1 << 64:
        raise InvalidArgument(-_errno.EINVAL, f"stream handle out of range: {stream}")
    return stream


def memcpy_batch(dsts: Sequence[Buffer], srcs: Sequence[Buffer], lengths: Optional[Sequence[int]] = None) -> None:
    """Copy many ranges on the library's worker pool (memmove per range).

    dsts and srcs are buffers or (address, length) pairs. lengths defaults
    to each source's length; a destination shorter than its range raises.
    """
    n = len(dsts)
    if len(srcs) != n or (lengths is not None and len(lengths) != n):
        raise InvalidArgument(-_errno.EINVAL, "dsts, srcs and lengths must have the same length", "memcpy_batch")
    if n == 0:
        return
    with _Buffers() as bufs:
        d = [bufs.add(x, True, f"dsts[{i}]") for i, x in enumerate(dsts)]
        s = [bufs.add(x, False, f"srcs[{i}]") for i, x in enumerate(srcs)]
        lens = [sp[1] for sp in s] if lengths is None else [int(x) for x in lengths]
        for i, ln in enumerate(lens):
            if ln < 0 or ln > s[i][1] or ln > d[i][1]:
                raise InvalidArgument(
                    -_errno.EINVAL,
                    f"range {i}: length {ln} exceeds source ({s[i][1]}) or destination ({d[i][1]})",
                    "memcpy_batch",
                )
        darr = (ctypes.c_void_p * n)(*[p[0] for p in d])
        sarr = (ctypes.c_void_p * n)(*[p[0] for p in s])
        larr = (ctypes.c_size_t * n)(*lens)
        rc = library().daxkv_memcpy_batch(darr, sarr, larr, n, 0)
        if rc < 0:
            raise _error(rc, "daxkv_memcpy_batch")


# Every callback ever installed is kept: a library thread may still be
# running the previous one while it is being replaced.
_log_callbacks: List[Any] = []


def set_log_callback(fn: Optional[Callable[[int, str], None]], max_level: int = _lib.LOG_WARNING) -> None:
    """Route the library's log messages (level, text) to fn; None turns it off.

    fn may run on library threads; exceptions it raises are printed by
    ctypes and otherwise ignored.
    """
    L = library()
    if fn is None:
        L.daxkv_set_log_fn(_lib.LOG_FN(), 0, None)
        return

    def trampoline(level: int, msg: bytes, _arg: Any) -> None:
        fn(level, msg.decode("utf-8", "replace") if msg else "")

    cb = _lib.LOG_FN(trampoline)
    _log_callbacks.append(cb)
    L.daxkv_set_log_fn(cb, int(max_level), None)
