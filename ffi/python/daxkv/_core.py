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
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

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
class Stats:
    """A snapshot of struct daxkv_stats."""

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

    def as_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


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
        return Stats(**{f.name: getattr(st, f.name) for f in dataclasses.fields(Stats)})

    def status_json(self) -> str:
        """The store's state as a JSON string."""
        h = self._enter()
        try:
            L = library()
            needed = ctypes.c_size_t(0)
            cap = 4096
            while True:
                buf = ctypes.create_string_buffer(cap)
                rc = L.daxkv_status_json(h, buf, cap, ctypes.byref(needed))
                if rc == -_errno.ENOBUFS and needed.value > cap:
                    cap = needed.value  # the state grew between calls: retry
                    continue
                if rc < 0:
                    raise _error(rc, "daxkv_status_json")
                return buf.value.decode("utf-8")
        finally:
            self._leave()

    def status(self) -> Dict[str, Any]:
        """status_json(), parsed."""
        return json.loads(self.status_json())


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
