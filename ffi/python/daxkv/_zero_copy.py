"""Zero copy: leases (an entry's bytes read in place) and reservations (a
slot filled in place, then committed).

_ZeroCopyCalls (Store.lease, Store.lease_many and Store.reserve, mixed
into Store) hands out
Lease and Reservation objects; they hold the C handles, stay valid after
the store is closed, and say where their bytes lie (SlotInfo).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import functools
import operator
import pickle
import sys
import weakref
from typing import Any, Callable, List, Optional, Sequence, Tuple

from . import _lib
from ._batch import _key_columns, _prefix_statuses
from ._buffers import _BYTES_OFFSET, Buffer, Key, _Buffers, _key, _keys
from ._library import _errmsg, _error, _item_errors, _optional, library
from .errors import BatchError, Exists, InvalidArgument, Shutdown

# A new bytes object of n bytes not yet written (CPython's
# PyBytes_FromStringAndSize with NULL): the library copies a leased value
# straight into it, once.
_new_bytes = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(
    ("PyBytes_FromStringAndSize", ctypes.pythonapi)
)


class _ZeroCopyCalls:
    """Store's lease and reserve (mixed into Store, which provides _enter
    and _leave)."""

    def lease(self, key: Key) -> "Lease":
        """Borrow an entry's bytes in place (zero copy). Raises NotFound."""
        k = _key(key)
        claim = _Claim(_end_lease)
        h = self._enter()
        try:
            rc = library().daxkv_lease_acquire(h, k, len(k), ctypes.byref(claim.out))
            if rc < 0:
                raise _error(rc, "daxkv_lease_acquire")
        finally:
            self._leave()
        return Lease(claim.out.value, claim.state, self)

    def lease_many(self, keys: Sequence[Key], *, prefix: bool = False) -> List[Optional["Lease"]]:
        """Lease every key's entry in one call (daxkv_lease_batch): a Lease
        per key, None for a key that is not committed. With prefix, only
        the leading run of leased keys. Raises BatchError for other item
        failures (the leases of the others are released with their Lease
        objects)."""
        ks = _keys(keys)
        n = len(ks)
        h = self._enter()
        try:
            if not n:
                return []
            claim = _BatchClaim(n)
            items = claim.items
            words = memoryview(items).cast("B").cast("Q")
            # The array points into keys_blob until the call returns.
            keys_blob = _key_columns(words, _lib.LEASE_WORDS, _lib.LW["key"], _lib.LW["key_len"], ks)
            rc = library().daxkv_lease_batch(h, items, n, _lib.PREFIX if prefix else 0)
            del keys_blob
            if rc < 0:
                raise _error(rc, "daxkv_lease_batch")
        finally:
            self._leave()
        results: List[Optional[Lease]] = [
            Lease(it.lease, state, self) if it.lease else None for it, state in zip(items, claim.states)
        ]
        statuses = [it.status for it in items]
        if prefix:
            # The item the prefix stopped at is checked too: a failure there
            # is raised, not passed off as a miss (_prefix_statuses).
            results, statuses = results[:rc], _prefix_statuses(statuses, rc)
        errors = _item_errors("daxkv_lease_batch", statuses,
                              [i for i, s in enumerate(statuses) if s not in (0, -_errno.ENOENT)], _errmsg)
        if errors:
            raise BatchError("daxkv_lease_batch", statuses, errors, results)
        return results

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
        claim = _Claim(_finish_reservation)
        h = self._enter()
        try:
            rc = library().daxkv_reserve(h, k, len(k), size, ctypes.byref(claim.out))
            if rc < 0:
                raise _error(rc, "daxkv_reserve")
        finally:
            self._leave()
        if rc == _lib.EXISTED or not claim.out.value:
            raise Exists(-_errno.EEXIST, "the key is already stored or in flight", "daxkv_reserve")
        r = Reservation(claim.out.value, claim.state)
        if meta is not None:
            try:
                r.set_meta(meta)
            except BaseException:
                r.abort()
                raise
        return r


# A lease's or reservation's handle and what became of it, shared by the
# finalizers that may end it: [handle, ended, adopted]. Whichever runs first
# ends it; ended keeps the others from ending it again.
_HandleState = List[Any]


_call = operator.methodcaller("__call__")


def _finish_handle(state: _HandleState, last_call: Callable[[int], int]) -> int:
    """Mark the handle finished (state[1]) and make its last call (release,
    commit or abort) as one step, and return that call's result.

    Python raises a signal handler's exception (a KeyboardInterrupt) only
    between bytecodes, and both steps here are C calls made from C (list,
    map, methodcaller and partial are C): the interrupt comes before both
    or after both. Marked first in Python, a handle interrupted before its
    call stayed held for good, since whatever came later took it for
    finished; called first, one interrupted before its mark would be
    finished twice. The caller looks last_call up before (library() is
    Python code)."""
    steps = (functools.partial(state.__setitem__, 1, True), functools.partial(last_call, state[0]))
    return list(map(_call, steps))[1]


def _end_lease(state: _HandleState) -> None:
    if not state[1]:
        _finish_handle(state, library().daxkv_lease_release)


class _Claim:
    """The out-parameter of a call that hands over a lease or a reservation,
    made before the call. The library writes the handle into it in C, so no
    Python code runs while the handle has no owner: until a Lease or a
    Reservation adopts it, letting this object go ends the handle. A
    KeyboardInterrupt raised right after the call returns (Python runs
    signal handlers there) no longer leaks the lease or leaves the key in
    flight for good."""

    __slots__ = ("out", "state", "__weakref__")

    def __init__(self, end: Callable[[_HandleState], None]) -> None:
        self.out = ctypes.c_void_p()
        self.state: _HandleState = [None, False, False]
        # Not at exit, for the same reason as an owner's (below).
        weakref.finalize(self, _end_unadopted, self.out, self.state, end).atexit = False


def _end_unadopted(out: ctypes.c_void_p, state: _HandleState, end: Callable[[_HandleState], None]) -> None:
    if not state[2] and out.value:
        state[0] = out.value
        end(state)


class _BatchClaim:
    """The item array of daxkv_lease_batch, made before the call, with a
    state per item: the leases the library writes into it that no Lease
    adopted are released when this object goes, as _Claim does for one."""

    __slots__ = ("items", "states", "__weakref__")

    def __init__(self, n: int) -> None:
        self.items = (_lib.LeaseItem * n)()
        self.states: List[_HandleState] = [[None, False, False] for _ in range(n)]
        weakref.finalize(self, _end_unadopted_items, self.items, self.states).atexit = False


def _end_unadopted_items(items: Any, states: List[_HandleState]) -> None:
    for it, state in zip(items, states):
        if not state[2] and it.lease:
            state[0] = it.lease
            _end_lease(state)


def _adopt(handle: int, state: Optional[_HandleState]) -> _HandleState:
    """The state an owner's finalizer ends handle by: its claim's, where
    the handle came through one, so that the two never both end it."""
    if state is None:
        state = [None, False, False]
    state[0] = handle
    return state


class Lease:
    """A read-only, zero-copy view of an entry's bytes in the arena.

    ``data`` is a read-only memoryview of the bytes in place, and so is
    its ``obj``; under them lies a ctypes array of the same bytes
    (``data.obj.obj``), which does write into the arena and must not be
    written. release() (or leaving the ``with`` block) invalidates
    ``data``: using it afterwards raises ValueError. Every view made from
    ``data`` or from its ``obj`` (slices, casts, numpy.frombuffer), and the
    data view itself while anything else refers to it (a variable, a
    torch.frombuffer tensor), keeps the underlying lease alive until it is
    garbage collected, so no Python object can ever point at memory the
    library has reused. A data view the caller released itself (``with
    lease.data as view``) is replaced by a new one at the next ``data``.
    The bytes stay valid after the store is closed while the lease is
    held.

    tobytes() and meta() copy through the library
    (daxkv_lease_read_batch), under the store's sigbus=handle guard and
    verify=read's checks: a fault there raises MediaError. Reads of
    ``data`` and its views are the caller's own, outside both (and so are
    tobytes() and meta() once the store is shut down or closed).
    """

    __slots__ = ("_arr", "_bytes", "_view", "_state", "_store", "size", "__weakref__")

    def __init__(self, handle: int, state: Optional[_HandleState] = None, store: Any = None) -> None:
        L = library()
        # Weak: a lease does not keep its Store object (and so its handle)
        # from being collected; the C lease keeps the bytes either way.
        self._store = None if store is None else weakref.ref(store)
        state = _adopt(handle, state)
        self._state: _HandleState = state  # [handle, finished, adopted]
        self.size: int = L.daxkv_lease_size(handle)
        ptr = L.daxkv_lease_data(handle)
        arr = _byte_array(ptr, self.size)
        # The C lease is released when the last Python view of its bytes
        # dies, never earlier. Not at exit: views may still be read there
        # (by daemon threads, by other exit handlers), and releasing the
        # lease would let a closing store unmap the bytes under them.
        weakref.finalize(arr, _end_lease, state).atexit = False
        state[2] = True  # adopted: the claim's finalizer leaves it to arr's
        self._arr: Optional[ctypes.Array] = arr
        # Every view of a ctypes array's buffer holds the array: a view
        # that owned nothing (PyMemoryView_FromMemory) would let its
        # slices outlive it, and the lease, unseen. The read-only byte view
        # of it is data's obj, through a PickleBuffer (whose exports refer
        # to the view they came from), so that data.obj does not write.
        self._bytes: Optional[memoryview] = _view(arr).toreadonly()
        self._view: Optional[memoryview] = memoryview(pickle.PickleBuffer(self._bytes))

    @property
    def data(self) -> memoryview:
        v, b = self._view, self._bytes
        if v is None or b is None:
            raise ValueError("the lease was released")
        if _released(v):
            # Released by its holder (a with block on it): not the lease.
            v = self._view = memoryview(pickle.PickleBuffer(b))
        return v

    def _held(self) -> ctypes.Array:
        # The array whose finalizer releases the C lease: held in a local
        # by an accessor for the length of its call, so that a release()
        # on another thread cannot free the lease under the call.
        arr = self._arr
        if self._view is None or arr is None:
            raise ValueError("the lease was released")
        return arr

    def _copy_out(self, dst: int, cap: int, meta: int, meta_cap: int) -> Optional[Tuple[int, int]]:
        """daxkv_lease_read_batch of this lease: its value into dst (cap
        bytes; 0: not copied) and its metadata into meta (meta_cap; 0: not
        copied). The lengths copied, or None where the store is shut down
        or closed (nothing guards the bytes then: the caller reads them in
        place). Raises MediaError where they faulted or failed their
        checksum (the library dropped the entry)."""
        store = self._store() if self._store is not None else None
        if store is None:
            return None
        try:
            h = store._enter()
        except Shutdown:
            return None
        try:
            item = _lib.Item(None, 0, dst or None, cap, meta or None, meta_cap, 0)
            lease = ctypes.c_void_p(self._state[0])
            rc = library().daxkv_lease_read_batch(h, ctypes.byref(lease), ctypes.byref(item), 1, 0)
            if rc == -_errno.ESHUTDOWN:
                return None
            if rc < 0:
                raise _error(rc, "daxkv_lease_read_batch")
            if item.status < 0:
                raise _error(item.status, "daxkv_lease_read_batch")
            return item.len, item.meta_len
        finally:
            store._leave()

    @property
    def meta(self) -> bytes:
        """The entry's metadata blob (a copy)."""
        arr = self._held()
        try:
            n = ctypes.c_size_t(0)
            p = library().daxkv_lease_meta(self._state[0], ctypes.byref(n))
            out = b""
            if p and n.value:
                out = _new_bytes(None, n.value)
                if self._copy_out(0, 0, id(out) + _BYTES_OFFSET, n.value) is None:
                    out = ctypes.string_at(p, n.value)
            return out
        finally:
            # Only now may the lease go; and not later: a MediaError's
            # traceback holds this frame, which kept the lease held for as
            # long as the error was kept.
            del arr

    def tobytes(self) -> bytes:
        """The value (a copy)."""
        arr = self._held()
        try:
            out = b""
            if self.size:
                out = _new_bytes(None, self.size)
                if self._copy_out(id(out) + _BYTES_OFFSET, self.size, 0, 0) is None:
                    out = self.data.tobytes()
            return out
        finally:
            del arr  # as in meta

    def slot(self) -> "SlotInfo":
        """Where the entry's bytes are (daxkv_lease_slot)."""
        arr = self._held()
        info = _slot_info("daxkv_lease_slot", self._state[0])
        del arr
        return info

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.tobytes()

    @property
    def released(self) -> bool:
        return self._view is None

    def release(self) -> None:
        """Invalidate data and drop this object's hold on the lease. Idempotent.

        A data view something else still refers to (a variable,
        torch.frombuffer's tensor) stays valid, and keeps the lease, until
        that reference is gone."""
        v = self._view
        if v is None:
            return
        self._view = None
        if _referenced_elsewhere(v):
            # torch.frombuffer keeps a reference to the view, not an export
            # of its buffer: released, the view would let the lease go
            # under the tensor's pointer. Left alive, it keeps owner, and
            # so the lease, until its last holder lets go.
            pass
        else:
            try:
                v.release()
            except BufferError:
                pass  # exported to e.g. numpy: the export keeps the lease alive
        del v
        # Let go of the byte view: a live export of it (data, held
        # elsewhere) keeps it, and any slice of it keeps the array.
        self._bytes = None
        arr, self._arr = self._arr, None
        # Only this local and getrefcount's argument refer to the bytes: no
        # view of them is left, and the lease ends here, in one step with
        # its mark (_finish_handle), rather than in arr's finalizer, whose
        # own Python code an interrupt could break off before the release.
        if arr is not None and sys.getrefcount(arr) == 2 and not self._state[1]:
            _finish_handle(self._state, library().daxkv_lease_release)
        del arr

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<daxkv.Lease size={self.size}{' released' if self.released else ''}>"


def _referenced_elsewhere(view: memoryview) -> bool:
    """Whether anything but the caller's one local refers to view.

    getrefcount counts that local and its own argument. A memoryview takes
    no weak references, so a holder that keeps the view object without an
    export of its buffer (torch.frombuffer does) is seen only this way."""
    return sys.getrefcount(view) > 3


def _released(view: memoryview) -> bool:
    """Whether view was released (memoryview has no attribute that says
    so: any use of a released one raises ValueError)."""
    try:
        view.nbytes
    except ValueError:
        return True
    return False


def _byte_array(ptr: Optional[int], size: int) -> ctypes.Array:
    """A ctypes array over size bytes at ptr (an empty one of its own for
    no bytes)."""
    if size and ptr:
        return (ctypes.c_char * size).from_address(ptr)
    return (ctypes.c_char * 0)()


def _view(arr: ctypes.Array) -> memoryview:
    base = memoryview(arr)
    v = base.cast("B")
    base.release()
    return v


def _finish_reservation(state: _HandleState) -> None:
    # A reservation dropped without commit is aborted once no view of its
    # bytes can still write into the slot (state[1]: committed or aborted).
    if not state[1]:
        _finish_handle(state, library().daxkv_abort)


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

    def __init__(self, handle: int, state: Optional[_HandleState] = None) -> None:
        L = library()
        self._state: _HandleState = _adopt(handle, state)
        self.size: int = L.daxkv_reservation_size(handle)
        arr = _byte_array(L.daxkv_reservation_data(handle), self.size)
        # Not at exit, for the same reason as a lease's: live views may
        # still write into the slot.
        weakref.finalize(arr, _finish_reservation, self._state).atexit = False
        self._state[2] = True  # adopted: the claim's finalizer leaves it to arr's
        self._arr: Optional[ctypes.Array] = arr
        self._view: Optional[memoryview] = _view(arr)

    @property
    def done(self) -> bool:
        return self._arr is None

    def _held(self) -> ctypes.Array:
        # The bytes of an open reservation, held by the caller for the
        # length of its call: an abort() on another thread cannot let the
        # finalizer free the reservation under it. A reservation marked
        # finished is not open, whatever still holds its bytes.
        arr = self._arr
        if arr is None or self._state[1]:
            raise ValueError("the reservation was committed or aborted")
        return arr

    @property
    def data(self) -> memoryview:
        arr = self._held()
        v = self._view
        if v is None or _released(v):
            # None after a refused commit's release; released by its
            # holder (a with block on it), it can write no more.
            v = self._view = _view(arr)
        return v

    def slot(self) -> "SlotInfo":
        """Where the reserved bytes are (daxkv_reservation_slot)."""
        arr = self._held()
        info = _slot_info("daxkv_reservation_slot", self._state[0])
        del arr
        return info

    def set_meta(self, meta: Buffer) -> None:
        """Attach a metadata blob (copied) to be committed with the entry."""
        arr = self._held()
        with _Buffers() as bufs:
            addr, n = bufs.add(meta, False, "meta")
            rc = library().daxkv_reservation_set_meta(self._state[0], addr, n)
            del arr
            if rc < 0:
                raise _error(rc, "daxkv_reservation_set_meta")

    def commit(self) -> None:
        """Make the entry visible. The reservation is finished even when
        this raises (Cancelled after a forced remove, Shutdown after close)."""
        arr = self._held()
        v, self._view = self._view, None
        if v is not None and not _released(v):
            if _referenced_elsewhere(v):
                # A holder of the data view itself (torch.frombuffer's
                # tensor keeps the view, not an export) could still write.
                self._view = v
                raise BufferError(
                    "reservation data is still referenced (e.g. by torch.frombuffer); "
                    "drop those references before commit")
            try:
                v.release()
            except BufferError:
                self._view = v
                raise BufferError(
                    "reservation data is exported (e.g. to numpy); release those views before commit"
                ) from None
        del v
        # Our reference and getrefcount's argument; a third one is a live
        # view (slice, cast) that could still write after the commit.
        if sys.getrefcount(arr) > 3:
            raise BufferError("views of the reservation data are still alive; release them before commit")
        # Marked before arr goes: its finalizer then knows not to abort.
        rc = _finish_handle(self._state, library().daxkv_commit)
        self._arr = None
        if rc < 0:
            raise _error(rc, "daxkv_commit")

    def abort(self) -> None:
        """Drop the reservation; its slot is returned. Idempotent."""
        if self._arr is None:
            return
        v, self._view = self._view, None
        # A view referenced elsewhere (torch.frombuffer's tensor) is left
        # alive: it keeps arr, so the abort waits for it too.
        if v is not None and not _referenced_elsewhere(v):
            try:
                v.release()
            except BufferError:
                pass
        del v
        self._arr = None  # the finalizer aborts once the last view is gone

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            if self._arr is not None:
                try:
                    self.commit()
                except BaseException:
                    # Refused (views still alive) or interrupted: the block
                    # did not end in a commit, so it ends in an abort, as
                    # one that raised does; the commit's error is raised.
                    self.abort()
                    raise
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<daxkv.Reservation size={self.size}{' done' if self.done else ''}>"


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
