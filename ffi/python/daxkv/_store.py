"""The Store: its configuration, opening and closing, and the single-key
calls.

Store is assembled from the *Calls classes of the other modules, one per
kind of call: batches (_batch), zero copy (_zero_copy), statistics
(_stats), GPU transfers (_cuda), asynchronous batches (_async), the pool
(_pool) and the key cursor (_cursor). They rely on what Store defines
here: _enter() and _leave() around every use of the handle (close() waits
for the calls in flight) and _text() for the JSON and Prometheus texts.
The imports go one way: this module imports those, none of them imports
it.
"""

from __future__ import annotations

import atexit
import ctypes
import errno as _errno
import itertools
import logging
import operator
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, Iterable, List, Optional, Tuple, Union

from . import _lib
from ._async import _AsyncCalls, _AsyncState
from ._batch import _BatchCalls
from ._buffers import Buffer, Key, _Buffers, _key
from ._cuda import _CudaCalls
from ._cursor import _CursorCalls
from ._library import _error, in_log_callback, library
from ._pool import _PoolCalls
from ._stats import _read_text, _StatsCalls
from ._zero_copy import _ZeroCopyCalls
from .errors import BatchError, BufferTooSmall, InvalidArgument, NotFound, Shutdown


def _option_value(name: str, value: Any) -> str:
    # The words daxkv_config_set takes for a boolean, which only its boolean
    # keys accept: meta_bytes=True is not one byte of metadata.
    if isinstance(value, bool):
        return "true" if value else "false"
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
        if not isinstance(size, bool):
            try:
                size = operator.index(size)  # numpy and torch integers too
            except TypeError:
                pass
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size >= 1 << 64:
            raise InvalidArgument(
                -_errno.EINVAL,
                f"device size must be an integer in 0 .. 2**64-1, got {size!r} ({type(size).__name__})")
        if b"\0" in p:
            raise InvalidArgument(-_errno.EINVAL, "device path contains a NUL byte", "daxkv_config_add_device")
        rc = library().daxkv_config_add_device(self.h, p, size)
        if rc < 0:
            raise _error(rc, "daxkv_config_add_device")

    def free(self) -> None:
        if self.h:
            library().daxkv_config_free(self.h)
            self.h = None


def _close_handle(box: List[Any]) -> None:
    h = box[0]
    box[0] = None
    if h:
        library().daxkv_close(h)


def _release(box: List[Any]) -> None:
    """The garbage-collection finalizer of a store never closed: box holds
    its handle, its asynchronous state (made on first use) and the pid that
    opened it. The state's submitted batches keep their buffers exported,
    and its stop pipe is open, until it is dropped once the handle is
    freed, as close() does; not in a child forked since, whose copies of
    the pipe and of asyncio's wake-up pipes are its parent's too."""
    _close_handle(box)
    state, box[1] = box[1], None
    if state is not None and box[2] == os.getpid():
        state.drop()


# Stores still open, closed at interpreter exit through Store._close: it
# shuts the store down and waits for the calls in flight. Daemon threads
# keep running while the atexit handlers do, so freeing the handle under
# them (as the garbage-collection finalizer does, which is safe only once
# nothing can reference the store) would be a use after free.
_open_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()


_logger = logging.getLogger("daxkv")

# How long close() waits for the Python side of calls in flight, after the
# library's shutdown has waited for the calls inside it: microseconds of
# Python work around each call, but a call interrupted at the wrong moment
# is counted in flight for good.
_CLOSE_WAIT_S = 5.0


def _close_open_stores() -> None:
    for s in list(_open_stores):
        if s._pid != os.getpid():
            # Inherited through fork: let go of it without touching the
            # parent's state (its stop pipe is shared with the parent).
            s._finalizer()
        else:
            s._close(wait=True)


atexit.register(_close_open_stores)


class Store(_BatchCalls, _ZeroCopyCalls, _StatsCalls, _CudaCalls, _AsyncCalls, _PoolCalls, _CursorCalls):
    """An open libdaxkv store.

    Keyword options map to daxkv_config_set keys (slot_bytes, eviction,
    durability, on_mismatch, workers, meta_bytes, verify, hotplug, create,
    nt_stores, ...); values may be str, int or bool. Devices are given as
    ``devices=[(path, bytes), ...]`` (or a dict of paths to bytes) or
    ``path=..., size=...``; a path is a
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
            if isinstance(devices, (str, bytes, os.PathLike)):
                # A lone path would be iterated as one device per character.
                raise TypeError("devices must be a list of paths or (path, size) pairs, got a single path")
            try:
                # A mapping of paths to sizes: its items (iterating it gave
                # its paths alone, and the sizes were dropped).
                device_list = list(devices.items() if isinstance(devices, Mapping) else devices or ())
            except TypeError:
                raise TypeError(
                    f"devices must be a list of paths or (path, size) pairs, got {type(devices).__name__}"
                ) from None
            for i, d in enumerate(device_list):
                if isinstance(d, (tuple, list)):
                    if len(d) != 2:
                        raise TypeError(
                            f"devices[{i}]: expected (path, size), got a {type(d).__name__} of {len(d)}")
                    cfg.add_device(*d)
                elif isinstance(d, (str, bytes, os.PathLike)):
                    cfg.add_device(d, 0)
                else:
                    raise TypeError(f"devices[{i}]: expected a path or a (path, size) pair, got {type(d).__name__}")
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
        try:
            self._open_handle(cfg, out)
        except BaseException:
            # Raised once the library has opened the store (a
            # KeyboardInterrupt as daxkv_open returns, or in the set-up
            # below it): no Store holds the handle, which would keep the
            # devices locked until the process ends.
            finalizer = self.__dict__.get("_finalizer")
            if finalizer is not None:
                finalizer()
            elif out.value:
                library().daxkv_close(out.value)
            raise

    def _open_handle(self, cfg: _Config, out: ctypes.c_void_p) -> None:
        rc = library().daxkv_open(ctypes.byref(out), cfg.h)
        if rc < 0:
            raise _error(rc, "daxkv_open")
        self._h: Optional[int] = out.value
        self._cond = threading.Condition(threading.Lock())
        # Calls using the handle, counted without a lock: next() on an
        # itertools.count is atomic under the GIL, and a lock taken twice
        # per call would cost more than the library call it guards.
        self._entered = itertools.count()
        self._left = itertools.count()
        # [handle, _AsyncState or None, pid]: what the finalizer frees.
        self._box: List[Any] = [out.value, None, os.getpid()]
        self._async: Optional[_AsyncState] = None  # submitted batches, created on first use
        # Set once close() has freed the handle: from then on the library
        # touches no item of a submitted batch.
        self._freed = threading.Event()
        # close() could not wait for the calls in flight: the last to leave
        # frees the handle.
        self._free_on_leave = False
        # Safety net for stores that are never closed. Not at exit, where
        # other threads may still be inside calls: _close_open_stores.
        self._finalizer = weakref.finalize(self, _release, self._box)
        self._finalizer.atexit = False
        self._pid = os.getpid()
        _open_stores.add(self)

    # -- lifetime -----------------------------------------------------------

    def _enter(self) -> int:
        # Counted before the handle is read: close() clears the handle
        # first, then waits for every call counted here to leave.
        next(self._entered)
        h = self._h
        if h is None:
            self._leave()
            raise Shutdown(-_errno.ESHUTDOWN, "the store is closed", "daxkv")
        return h

    def _leave(self) -> None:
        next(self._left)
        if self._h is None:
            free = False
            with self._cond:
                self._cond.notify_all()
                if self._free_on_leave and not self._calls_in_flight():
                    self._free_on_leave = False
                    free = True
            if free:
                self._free()

    def _calls_in_flight(self) -> bool:
        # Each probe advances both counters by one, which keeps their
        # difference. Left is read first: a call that enters and leaves
        # between the two reads can only make the difference larger.
        left = next(self._left)
        entered = next(self._entered)
        return entered != left

    def _text(self, fn: Any, op: str) -> str:
        h = self._enter()
        try:
            return _read_text(lambda buf, cap, needed: fn(h, buf, cap, needed), op)
        finally:
            self._leave()

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
        self._stop_polls()

    def close(self) -> None:
        """Shut down and free the store. Idempotent.

        Called from the log callback, it does not wait for the calls in
        flight (the callback may run inside one, on its thread): the last
        of them frees the store as it returns.

        Leases and reservations taken from it stay valid (the library keeps
        the mapping alive for them); only new calls fail with Shutdown.
        """
        self._close(wait=not in_log_callback())

    def _close(self, wait: bool) -> None:
        # wait=False: for callers that may run inside a call of this store
        # on their own thread (the log callback, a garbage-collection
        # finalizer), which must not wait for the calls in flight.
        with self._cond:
            h = self._h
            if h is not None:
                self._h = None  # new calls fail from here on
        if h is None:
            # Another close() is under way (or done): this one returns when
            # the store is freed, as the first does (a close() that could
            # not wait frees it with the last call in flight).
            if wait:
                self._freed.wait(_CLOSE_WAIT_S)
            return
        # Calls already inside the library finish (or fail with ESHUTDOWN)
        # before daxkv_shutdown returns; the handle itself is freed only when
        # no thread can still be about to pass it to the library.
        library().daxkv_shutdown(h)
        self._stop_polls()  # a poll asleep on the event fd is a call in flight
        with self._cond:
            if not wait:
                # The library may run the log callback on a caller's thread
                # before that call returns: this thread may be inside a
                # call of this store, and waiting would wait for itself.
                # The last call to leave frees the handle instead.
                if self._calls_in_flight():
                    self._free_on_leave = True
                    return
            else:
                deadline = time.monotonic() + _CLOSE_WAIT_S
                while self._calls_in_flight():
                    if time.monotonic() >= deadline:
                        # A call counted in never left: an exception raised
                        # between a call's counting and its try block (a
                        # KeyboardInterrupt: Python runs signal handlers
                        # right after a call returns) or a thread stuck in
                        # Python code around one. Waiting on could wait for
                        # good; freeing the handle could free it under a
                        # call. The last call to leave frees it instead, and
                        # if none ever does, it stays until the process ends.
                        _logger.warning(
                            "daxkv: Store.close() found calls counted in flight for %.0f s; "
                            "the store's handle is freed when they leave", _CLOSE_WAIT_S)
                        self._free_on_leave = True
                        return
                    self._cond.wait(0.05)
        self._free()

    def _free(self) -> None:
        self._finalizer.detach()
        _close_handle(self._box)
        self._freed.set()
        self._drop_pending()

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
            # Through a one-item batch (the library's only put that takes
            # metadata): its failure is raised as what it is (TooBig,
            # NoSpace, ...), as daxkv_put's would be, not as a BatchError.
            try:
                return self.put_many([key], [value], replace=replace, metas=[meta])[0]
            except BatchError as exc:
                raise exc.first from None
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
