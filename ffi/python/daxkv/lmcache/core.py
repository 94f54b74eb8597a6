"""LMCache's ``DaxCore`` on libdaxkv.

This class has the call surface and the semantics of LMCache's own
``lmcache.v1.storage_backend.dax.core.DaxCore``, so LMCache's ``DaxBackend``
and ``dax`` L2 adapter run on it unchanged: the same constructor, the same
return values and exceptions, slot offsets relative to ``base_ptr``, lock
counts, read reservations that keep a deleted entry's bytes until they are
finalized, in-flight writes, ``remap`` and ``close`` that waits for copies
in flight. What libdaxkv adds underneath: copies on its native engine,
checksums, and (``persist_enabled=True``) restart recovery of the arena.

Sizes are LMCache's: ``max_dax_size_bytes // slot_bytes`` slots of payload.
libdaxkv's superblocks and slot headers go on top of them, so a file arena
is made larger than that by a few KiB; a Device-DAX device without room for
them holds the slots that fit, and ``max_slots`` says how many.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import errno as _errno
import logging
import math
import os
import threading
import weakref
from typing import Any, Callable, Dict, Generic, Hashable, List, Optional, Sequence, Set, Tuple, TypeVar, Union

from .. import _lib
from .._library import _error, library
from .._store import Store
from .._zero_copy import _referenced_elsewhere
from ..errors import (
    DaxKVError,
    Foreign,
    Corrupt,
    InvalidArgument,
    NoSpace,
    Shutdown,
)
from . import _native
from .keys import (
    KEY_MAX,
    KeyNotStorable,
    KeyTooLong,
    decode_key,
    encode_key,
    encode_keys_partial,
    stored_in_an_earlier_encoding,
)
from .meta import DEFAULT_META_BYTES, EntryMeta, decode_meta, encode_meta

__all__ = ["DaxCore", "DaxPutFromPtrResult", "DaxReadReservation", "DaxCoreError"]

logger = logging.getLogger("daxkv.lmcache")

KeyT = TypeVar("KeyT", bound=Hashable)
_CopyFn = Callable[[int, Any, int], None]


class DaxPutFromPtrResult(enum.Enum):
    """Result of copying a reserved source payload into a DAX slot."""

    INSERTED = enum.auto()
    ALREADY_EXISTS = enum.auto()
    INFLIGHT = enum.auto()
    NO_SPACE = enum.auto()
    CLOSED = enum.auto()
    INVALID = enum.auto()
    COPY_FAILED = enum.auto()


@dataclasses.dataclass(frozen=True)
class DaxReadReservation(Generic[KeyT]):
    """A committed DAX entry reserved for a read or restore operation.

    The entry's bytes lie at ``core.base_ptr + offset`` until the
    reservation is passed to ``finalize_reads``, even if the key is deleted
    meanwhile (libdaxkv holds a lease on the slot).
    """

    result_index: int
    key: KeyT
    offset: int
    size: int
    shape: Any
    dtype: Any
    fmt: Any
    cached_positions: Any
    slot_id: int
    generation: int
    _lease: int = dataclasses.field(default=0, repr=False, compare=False)


class DaxCoreError(RuntimeError):
    """A DAX arena could not be opened, mapped or changed. A RuntimeError, as
    LMCache's core raises; the libdaxkv error is its ``__cause__``."""


def _data_ptr(obj: Any) -> int:
    p = obj.data_ptr
    return int(p() if callable(p) else p)


def _is_multi_tensor(obj: Any) -> bool:
    return len(obj.get_shapes()) > 1


def _for_storable(
    keys: List[Any], pos: List[int], call: Callable[[List[Any]], List[bool]]
) -> List[bool]:
    """call() of the keys at positions pos (those libdaxkv can hold), its
    answers put back in place; False for every other key."""
    out = [False] * len(keys)
    if pos:
        for i, answer in zip(pos, call([keys[i] for i in pos])):
            out[i] = answer
    return out


def _key_for_log(key: Any) -> str:
    # A key's repr can raise: one holding an int of more digits than
    # Python converts to str (which is why it is refused) does.
    try:
        return repr(key)[:200]
    except Exception:
        return f"<{type(key).__name__} without a repr>"


def _stored_key_for_log(kb: bytes) -> str:
    # The decoder of a key type an application registered may fail on the
    # bytes it was given: the failed write is logged all the same.
    try:
        return _key_for_log(decode_key(kb))
    except ValueError:
        return repr(kb[:200])


# What LMCache's DaxCore raises when a write finds no free slot (its
# callers and tests match this text), in every write path of the drop-in
# and the storage backend, synchronous or not.
NO_FREE_SLOTS = "No free slots available; eviction required"


def _warn_key_too_long(what: str, key: Any, exc: KeyNotStorable) -> None:
    """Log (once per refused store) a key libdaxkv cannot hold."""
    if not isinstance(exc, KeyTooLong):
        logger.warning("%s key %s: %s, so it is not stored", what, _key_for_log(key), exc)
        return
    logger.warning(
        "%s key %s: it is %d bytes once encoded, above libdaxkv's key limit of %d bytes, "
        "so it is not stored",
        what, _key_for_log(key), exc.length, KEY_MAX,
    )


def _write_failure(status: int, meta_cap: int = 0) -> str:
    """Why a write failed, for the log: -E2BIG of an item whose key and
    size were checked before means its metadata (shape, dtype, format and
    token positions) is larger than the store's meta_bytes."""
    if status == -_errno.E2BIG:
        cap = f" ({meta_cap} bytes)" if meta_cap else ""
        return (
            f"its metadata (shape, dtype, format, token positions) is larger than meta_bytes{cap}; "
            "raise the meta_bytes option to store it"
        )
    return _native.strerror(status)


# Encoded metadata by layout: a deployment stores a handful of shapes, and
# encoding per put would cost more than the bookkeeping around the copy.
# Keyed by the shape and the identities of dtype and format (torch dtypes
# and MemoryFormat members are singletons; hashing an Enum member runs
# Python code), each entry holding those objects so that an id is never
# matched to another object.
_meta_by_layout: Dict[Tuple[Any, ...], Tuple[Any, Any, bytes]] = {}


def _meta_of(obj: Any) -> bytes:
    m = obj.metadata
    if m.cached_positions is not None:
        return encode_meta(m.shape, m.dtype, m.fmt, m.cached_positions)
    shape, dtype, fmt = m.shape, m.dtype, m.fmt
    try:
        layout = (shape, id(dtype), id(fmt))
        hit = _meta_by_layout.get(layout)
    except TypeError:  # an unhashable shape (a list)
        layout = (tuple(shape), id(dtype), id(fmt))
        hit = _meta_by_layout.get(layout)
    if hit is not None and hit[0] is dtype and hit[1] is fmt:
        return hit[2]
    blob = encode_meta(shape, dtype, fmt, None)
    if len(_meta_by_layout) > 1024:
        _meta_by_layout.clear()
    _meta_by_layout[layout] = (dtype, fmt, blob)
    return blob


def _metas_of(what: str, keys: Sequence[Any], objs: Sequence[Any]) -> Tuple[List[Optional[bytes]], bool]:
    """_meta_of of each object, None (logged) for one whose metadata the
    encoding cannot hold (positions that are not integers, a 2-D position
    tensor, ...); and whether there is any None. LMCache's core keeps the
    metadata objects as they are; here such an entry is not stored, so
    that it never comes back with metadata other than its own."""
    metas: List[Optional[bytes]] = []
    bad = False
    for key, obj in zip(keys, objs):
        try:
            metas.append(_meta_of(obj))
        except ValueError as exc:
            logger.warning("%s key %s: its metadata cannot be stored (%s)", what, _key_for_log(key), exc)
            metas.append(None)
            bad = True
    return metas, bad


# Bytes of one element by torch dtype (torch 1.13's dtypes have no
# itemsize); 0 for a dtype torch cannot allocate.
_itemsize: Dict[Any, int] = {}


def _restorable(meta: EntryMeta, size: int, slot_bytes: int) -> bool:
    """Whether an entry can be restored into an allocation of its recorded
    layout, as LMCache's readers do (allocate shape and dtype, then copy the
    entry's size): the layout is complete, holds the value, and is no
    larger than a slot (no object this core stores is). Damaged or foreign
    metadata, or a put_reserved_from_ptr of a size beyond its shape, would
    have the copy run past the allocation, or have the allocation wait for
    memory no slot could ever need."""
    shape, dtype = meta.shape, meta.dtype
    if shape is None or dtype is None or meta.fmt is None:
        return False
    n = _itemsize.get(dtype)
    if n is None:
        import torch

        try:
            n = torch.empty((), dtype=dtype).element_size()
        except (RuntimeError, TypeError):
            n = 0
        _itemsize[dtype] = n
    # In Python ints: torch.Size.numel() wraps in 64 bits ([2**62 + 1, 4]
    # gives 4).
    return size <= math.prod(shape) * n <= slot_bytes


# Known committed keys a core remembers at most (a set of encoded keys; a
# full set starts over).
_KNOWN_MAX = 1 << 18


class _LastView:
    """Runs a callback once the last of a known number of views is gone."""

    def __init__(self, callback: Callable[[], None], views: int) -> None:
        self._callback = callback
        self._left = views
        self._lock = threading.Lock()

    def gone(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._callback()


class DaxCore(Generic[KeyT]):
    """Thread-safe shared core for DAX-backed fixed-slot storage, on libdaxkv.

    Keyword arguments beyond LMCache's three are libdaxkv's:
    ``persist_enabled`` (default False: the tier is volatile, as LMCache's;
    True: entries survive a restart and are listed by ``snapshot_keys``),
    ``meta_bytes`` (per-entry metadata capacity), ``grow_limit`` (how far
    ``remap`` may grow the arena; default ``"auto"``: to the device's or
    file's size) and any other ``daxkv.Store`` option (``durability``,
    ``verify``, ``workers``, ``on_mismatch``, ...).

    A key longer than libdaxkv's 512-byte key limit once encoded is never
    stored: its writes are refused (logged at warning level), its lookups
    and reads miss, and deleting or unlocking it does nothing; no method
    raises for it.

    Lookups without a lock answer keys the core saw committed from memory;
    entries leave only through the core (eviction is off). An entry removed
    through ``store`` directly is still reported by ``exists_many`` until a
    read of it misses or the core deletes it.
    """

    def __init__(
        self,
        *,
        device_path: Union[str, bytes, "os.PathLike[Any]"],
        max_dax_size_bytes: int,
        slot_bytes: int,
        persist_enabled: bool = False,
        meta_bytes: int = DEFAULT_META_BYTES,
        grow_limit: Any = "auto",
        before_fit: Optional[Callable[[], None]] = None,
        **options: Any,
    ) -> None:
        """Open (and format or recover) a DAX arena.

        before_fit() runs once the device is open and usable, before a
        persistent arena holding more entries than ``max_dax_size_bytes``
        has slots loses its oldest ones: what it raises fails the open with
        nothing removed (a caller's own settings, which LMCache checks after
        it has opened the device).

        Raises:
            ValueError: the path is empty, a size is not positive, or the
                arena cannot fit one slot.
            RuntimeError: the device cannot be opened or mapped, is smaller
                than ``max_dax_size_bytes``, or holds data that is not an
                arena of this layout.
        """
        if not device_path:
            raise ValueError("device_path must be a non-empty string")
        if not isinstance(device_path, (str, bytes, os.PathLike)):
            # What LMCache's os.open of it raises.
            raise TypeError(
                f"device_path must be str, bytes or os.PathLike, not {type(device_path).__name__}"
            )
        # Any path LMCache's os.open takes; the property gives back what was
        # given, as LMCache's does.
        self._given_device_path = device_path
        device_path = os.fsdecode(device_path)
        self._device_path = device_path
        self._arena_bytes = max_dax_size_bytes
        if isinstance(slot_bytes, bool) or (isinstance(slot_bytes, float) and slot_bytes.is_integer()):
            slot_bytes = int(slot_bytes)  # LMCache's arithmetic takes 1024.0 as 1024, True as 1
        self._slot_bytes = slot_bytes
        if self._arena_bytes <= 0:
            raise ValueError("max_dax_size_bytes must be > 0")
        if self._slot_bytes <= 0:
            raise ValueError("slot_bytes must be > 0")
        if self._arena_bytes // self._slot_bytes <= 0:
            # LMCache opens the device before it sizes the slots: a path it
            # cannot open is reported as such first.
            self._check_openable()
            raise ValueError("configured arena does not fit even one slot")

        self._state_lock = threading.RLock()
        self._state_condition = threading.Condition(self._state_lock)
        # Threads in close() or remap() waiting for reads and writes to end:
        # the ends of reads and writes notify only when there are any.
        self._drain_waiters = 0
        # Encoded keys this core has seen committed (stored through it, or
        # found by a lookup). LMCache's wrappers ask key by key whether a
        # key is there, and a set answers in a tenth of a library call. An
        # entry leaves the store only through this core: eviction is off,
        # and deletes and failed reads forget their keys. _known_epoch
        # changes with every forget, so a lookup or store that overlapped
        # one does not bring back a key it made stale.
        self._known: Set[bytes] = set()
        self._known_lock = threading.Lock()
        self._known_epoch = 0
        self._active_writes: Set[object] = set()
        self._active_reads = 0
        self._inflight: Dict[bytes, Set[object]] = {}
        # Keys whose write (still in _inflight) a forced delete cancelled:
        # LMCache's core keeps such a write in flight until its writer
        # returns, and reports every forced delete of it meanwhile as done,
        # while libdaxkv forgets the cancelled reservation at once.
        self._cancelled: Set[bytes] = set()
        # Keys a delete is removing (a token per delete under way), from
        # before its library call until it has forgotten them and noted the
        # writes it cancelled: LMCache's delete is one step under its lock.
        # Lookups of them meanwhile ask the library, not _known. libdaxkv
        # forgets a cancelled reservation inside that call, so a put of such
        # a key waits for the delete to end (_await_deletes); nothing waits
        # while holding the lock across a library call.
        self._deleting: Dict[bytes, Set[object]] = {}
        self._delete_waiters = 0  # puts waiting in _await_deletes
        self._closing = False
        self._closed = False
        self._persist = bool(persist_enabled)

        self._L = library()
        options.setdefault("durability", "process" if self._persist else "none")
        if not self._persist:
            # A volatile tier recovers nothing, so checksums of its values
            # would never be checked (verify=read asks for them explicitly).
            options.setdefault("verify", "off")
        self._store = self._open_store(meta_bytes, grow_limit, options)
        try:
            layout = self._store.device_layout(device_path)
            if layout.state == "missing":
                # hotplug=1 opens a pool without a missing device; a core
                # without its one device is an error, as LMCache's open is.
                self._check_openable()
                raise DaxCoreError(f"Failed to open dax device {device_path}: not a usable device")
            if before_fit is not None:
                before_fit()
            try:
                layout = _native.fit_device(
                    self._store, device_path, self._arena_bytes // self._slot_bytes, self._slot_bytes,
                    at_open=True,
                )
            except RuntimeError as exc:
                raise DaxCoreError(str(exc)) from exc.__cause__
            self._base_ptr = layout.payload_base
            self._max_slots = layout.usable_slots
            self._arena_view: Optional[memoryview] = None
            self._mmap_view: Optional[memoryview] = None
            self._arena_array: Any = None
            # Every arena array handed out (remap makes new ones): a caller's
            # view keeps its array alive, and the mapping must outlive it.
            self._arena_arrays: List["weakref.ref[Any]"] = []
            # LMCache's core holds the device open; so does this one ("mem:",
            # libdaxkv's anonymous memory, has no file).
            self._fd: Optional[int] = (
                None if device_path == "mem:" else os.open(device_path, os.O_RDONLY | os.O_CLOEXEC)
            )
        except BaseException:
            self._store.close()
            raise
        self._map_views()
        if self._persist:
            self._drop_entries_no_key_reaches()

    def _drop_entries_no_key_reaches(self) -> None:
        """Remove the recovered entries that earlier versions stored under a
        form of their key's tags that no key encodes to now (true, 1.0,
        NaN): no lookup finds them and no delete removes them, so they
        would hold their slots for good. No other thread uses the core yet."""
        try:
            stale = [
                info.key for info in self._store.keys(self._device_path)
                if stored_in_an_earlier_encoding(info.key)
            ]
            removed = sum(self._store.remove(kb, force=True) for kb in stale)
        except DaxKVError as exc:
            logger.warning("DAX recovery of %s could not look for unreachable entries: %s", self._device_path, exc)
            return
        if removed:
            logger.info(
                "DAX recovery of %s removed %d entries stored under an earlier encoding of their "
                "keys' tags, which no lookup finds",
                self._device_path, removed,
            )

    def _check_openable(self) -> None:
        if self._device_path == "mem:":
            return
        try:
            os.close(os.open(self._device_path, os.O_RDWR | os.O_CLOEXEC))
        except OSError as exc:
            raise DaxCoreError(f"Failed to open dax device {self._device_path}: {exc}") from exc

    def _refuse_size_as_lmcache(self, path: str, exc: BaseException) -> None:
        """LMCache sizes the device (fstat) before it maps it: a
        max_dax_size_bytes past what it has is that RuntimeError, whichever
        of libdaxkv's checks refused it first."""
        try:
            have = os.stat(path).st_size
        except OSError:
            return
        if have and have < self._arena_bytes:
            raise DaxCoreError(
                f"max_dax_size_bytes ({self._arena_bytes} bytes) exceeds "
                f"device capacity ({have} bytes)"
            ) from exc

    def _open_store(self, meta_bytes: int, grow_limit: Any, options: Dict[str, Any]) -> Store:
        path = self._device_path
        try:
            return Store(
                path=path,
                size=self._arena_bytes,
                slot_bytes=self._slot_bytes,
                capacity="payload",
                eviction="none",  # LMCache's controllers decide what to delete
                create=False,  # a missing path is an error, never created
                hotplug=True,  # remap() resizes the device
                grow_limit=grow_limit,
                meta_bytes=meta_bytes,
                **options,
            )
        except NoSpace as exc:
            # LMCache opens the path, then sizes it, then maps it: a path it
            # cannot open is that error, whichever check of libdaxkv's came
            # first (a configuration no arena can address, say).
            self._check_openable()
            self._refuse_size_as_lmcache(path, exc)
            raise DaxCoreError(
                f"Failed to mmap dax arena ({self._arena_bytes} bytes) from {path}: {exc}"
            ) from exc
        except InvalidArgument as exc:
            self._check_openable()
            self._refuse_size_as_lmcache(path, exc)
            if not isinstance(self._arena_bytes, int):
                # LMCache's mmap of it fails, and says so as a RuntimeError.
                raise DaxCoreError(
                    f"Failed to mmap dax arena ({self._arena_bytes} bytes) from {path}: "
                    f"{exc.message}"
                ) from exc
            raise ValueError(f"invalid DAX arena configuration for {path}: {exc.message}") from exc
        except (Foreign, Corrupt) as exc:
            raise DaxCoreError(
                f"Failed to open dax device {path}: {exc.message} (pass on_mismatch='reformat' "
                "to let libdaxkv claim it)"
            ) from exc
        except DaxKVError as exc:
            # By errno, whatever the class (a DaxKVError is an OSError only
            # for EACCES/EPERM): these are failures to open the path.
            if exc.errno in (
                _errno.ENOENT,
                _errno.EACCES,
                _errno.EPERM,
                _errno.EISDIR,
                _errno.ENODEV,
                _errno.EBUSY,
                _errno.ELOOP,
            ):
                raise DaxCoreError(f"Failed to open dax device {path}: {exc.message}") from exc
            raise DaxCoreError(
                f"Failed to mmap dax arena ({self._arena_bytes} bytes) from {path}: {exc.message}"
            ) from exc

    def _map_views(self) -> None:
        n = self._max_slots * self._slot_bytes
        arr = (ctypes.c_char * n).from_address(self._base_ptr)
        # The store maps the arena and unmaps it when it is freed, which its
        # finalizer does once nothing refers to it: a core dropped without
        # close() would leave a caller's view of the array pointing at
        # unmapped memory. The array holds the store, so the mapping lasts
        # as long as any view (as an mmap lasts while it is exported).
        arr._daxkv_store = self._store
        self._arena_arrays = [a for a in self._arena_arrays if a() is not None]
        self._arena_arrays.append(weakref.ref(arr))
        self._arena_array = arr
        self._arena_view = memoryview(arr).cast("B")
        # LMCache's mmap_obj is an mmap: a buffer of unsigned bytes that
        # indexes to ints and takes slice assignment. The ctypes array's own
        # format (<c) does neither, so mmap_obj is a second byte view.
        self._mmap_view = memoryview(arr).cast("B")

    # -- LMCache's properties ------------------------------------------------

    @property
    def device_path(self) -> Any:
        """Return the path used to open the DAX arena, as it was given."""
        return self._given_device_path

    @property
    def arena_bytes(self) -> int:
        """Return the arena size in bytes (of slot payloads)."""
        return self._arena_bytes

    @property
    def slot_bytes(self) -> int:
        """Return the fixed slot size in bytes."""
        return self._slot_bytes

    @property
    def max_slots(self) -> int:
        """Return the number of slots (fewer than max_dax_size_bytes //
        slot_bytes only on a device too small for the slot headers)."""
        return self._max_slots

    @property
    def fd(self) -> Optional[int]:
        """A read-only descriptor of the device, or None after close."""
        return self._fd

    @property
    def mmap_obj(self) -> Optional[memoryview]:
        """The mapped slot payloads as a writable buffer of bytes (format
        'B', as LMCache's mmap), or None after close (libdaxkv owns the
        mapping itself, so this is a memoryview rather than an mmap)."""
        return self._mmap_view

    @property
    def arena_view(self) -> Optional[memoryview]:
        """A memoryview of the slot payloads, or None after close."""
        return self._arena_view

    @property
    def base_ptr(self) -> int:
        """Address of slot 0's payload: slot n lies at base_ptr + n * slot_bytes."""
        return self._base_ptr

    @property
    def store(self) -> Store:
        """The libdaxkv store underneath."""
        return self._store

    @property
    def persist_enabled(self) -> bool:
        return self._persist

    def is_closing(self) -> bool:
        """Whether close has begun (or is done)."""
        with self._state_lock:
            return self._closing or self._closed

    def has_inflight(self, key: KeyT) -> bool:
        """Whether a write of key through this core is under way."""
        # One dict membership test is atomic; the lock would add nothing.
        try:
            return encode_key(key) in self._inflight
        except KeyNotStorable:
            return False  # never stored, so never written

    # -- bookkeeping ---------------------------------------------------------

    def _begin_write(self, kbs: List[bytes], token: object) -> Optional[List[int]]:
        """Mark a write of kbs in flight with token (a new object per write):
        the positions of the keys to write, None (nothing marked) when the
        core is closing. A key whose cancelled write is still in flight is
        left out (a no-op, as in LMCache's core). _end_write(kbs, token)
        ends the marks it made, once or again: call it in a finally that
        encloses this call, so that an interrupt anywhere leaves none."""
        with self._state_lock:
            if self._deleting:
                self._await_deletes(kbs)
            if self._closing or self._closed:
                return None
            pos = range(len(kbs))
            if self._cancelled:
                pos = [i for i, kb in enumerate(kbs) if kb not in self._cancelled]
            self._active_writes.add(token)
            _native.add_marks(self._inflight, [kbs[i] for i in pos], token)
            return pos  # type: ignore[return-value]

    def _await_deletes(self, kbs: Sequence[bytes]) -> None:
        """Wait (holding the state lock) until no delete is removing any of
        kbs; a delete notes what it cancelled before it ends, so that the
        caller then sees the key as LMCache's core would after the delete."""
        deleting = self._deleting
        while any(kb in deleting for kb in kbs):
            self._delete_waiters += 1
            try:
                self._state_condition.wait()
            finally:
                self._delete_waiters -= 1

    def _end_write(self, kbs: Sequence[bytes], token: object) -> None:
        """End the marks token made (_begin_write); idempotent. Callers call
        it twice, the second in a finally of the first: an interrupt that
        lands as the first begins (Python runs signal handlers as a
        function starts) leaves the second to end them."""
        with self._state_lock:
            for k in _native.end_marks(self._inflight, kbs, token):
                self._cancelled.discard(k)
            self._active_writes.discard(token)
            if self._drain_waiters:
                self._state_condition.notify_all()

    def _begin_read(self) -> bool:
        with self._state_lock:
            if self._closing or self._closed:
                return False
            self._active_reads += 1
            return True

    def _end_read(self) -> None:
        with self._state_lock:
            self._end_read_locked()

    def _end_read_locked(self) -> None:
        if self._active_reads > 0:
            self._active_reads -= 1
        else:
            logger.warning("DaxCore active read count underflow")
        if self._drain_waiters:
            self._state_condition.notify_all()

    def _handle(self) -> int:
        return self._store._enter()

    def _remember(self, kbs: List[bytes], epoch: int) -> None:
        """Note kbs as committed, unless a forget ran since epoch was read
        (before the library call that found them)."""
        with self._known_lock:
            if self._known_epoch != epoch or self._closed:
                return
            known = self._known
            if len(known) + len(kbs) > _KNOWN_MAX:
                known.clear()
            known.update(kbs)

    def _remember_one(self, kb: bytes, epoch: int) -> None:
        """_remember of one key."""
        with self._known_lock:
            if self._known_epoch == epoch and not self._closed:
                known = self._known
                if len(known) >= _KNOWN_MAX:
                    known.clear()
                known.add(kb)

    def _forget(self, kbs: List[bytes]) -> None:
        """Drop kbs from the known keys; called after the library call that
        removed (or failed to read) them."""
        with self._known_lock:
            self._known_epoch += 1
            self._known.difference_update(kbs)

    # -- writes --------------------------------------------------------------

    def put_many(self, keys: List[KeyT], objs: List[Any]) -> List[bool]:
        """Store memory objects. Per key True when committed, already
        committed or in flight; False for multi-tensor or oversize objects,
        a full arena, a failed copy or a closing core."""
        if len(keys) != len(objs):
            raise ValueError(
                "keys and objs must have the same length, " f"got {len(keys)} and {len(objs)}"
            )
        results = [False] * len(keys)
        idx: List[int] = []
        sizes: List[int] = []
        slot = self._slot_bytes
        for i, obj in enumerate(objs):
            if _is_multi_tensor(obj):
                logger.error("DaxCore does not support multi-tensor allocations for key %s", keys[i])
                continue
            size = int(obj.get_size())
            if not 0 <= size <= slot:
                continue  # larger than a slot (or no size at all)
            idx.append(i)
            sizes.append(size)
        if not idx:
            return results
        if len(idx) == len(keys):
            statuses = self._put_prepared(keys, objs, sizes)
        else:
            statuses = self._put_prepared([keys[i] for i in idx], [objs[i] for i in idx], sizes)
        for j, s in zip(idx, statuses):
            # 0 stored; 1 already committed or in flight (nothing written).
            results[j] = s >= 0
        return results

    def _put_only(
        self, keys: List[KeyT], objs: List[Any], sizes: List[int], pos: List[int], refused: int
    ) -> List[int]:
        """_put_prepared of the keys at positions pos; status refused for the
        others."""
        out = [refused] * len(keys)
        if pos:
            got = self._put_prepared([keys[i] for i in pos], [objs[i] for i in pos], [sizes[i] for i in pos])
            for i, st in zip(pos, got):
                out[i] = st
        return out

    def _put_prepared(self, keys: List[KeyT], objs: List[Any], sizes: List[int]) -> List[int]:
        """Store single-tensor objects of the given sizes (at most a slot
        each): the status per key, 0 stored, 1 already there or in flight,
        negative failed (-ESHUTDOWN when the core is closing, -ENAMETOOLONG
        for a key libdaxkv cannot hold once encoded, -EINVAL for metadata
        the encoding cannot hold; both logged and never stored)."""
        too_long: List[Tuple[int, KeyNotStorable]] = []
        kbs, pos = encode_keys_partial(keys, too_long)
        if pos is not None:
            for i, exc in too_long:
                _warn_key_too_long("DAX write skips", keys[i], exc)
            return self._put_only(keys, objs, sizes, pos, -_errno.ENAMETOOLONG)
        metas, bad = _metas_of("DAX write skips", keys, objs)
        if bad:
            # Those keys fail (logged); the others are stored.
            pos = [i for i, m in enumerate(metas) if m is not None]
            return self._put_only(keys, objs, sizes, pos, -_errno.EINVAL)
        return self._put_encoded(kbs, objs, sizes, metas)  # type: ignore[arg-type]

    def _put_encoded(self, kbs: List[bytes], objs: List[Any], sizes: List[int], metas: List[bytes]) -> List[int]:
        """_put_prepared of keys already encoded, with their metadata blobs
        (every key fits and every blob encodes): a caller that checked both
        itself, as DaxkvBackend does, spares encoding them twice."""
        addrs = [_data_ptr(o) for o in objs]
        token = object()
        marked = kbs
        try:
            pos = self._begin_write(kbs, token)
            if pos is None:
                return [-_errno.ESHUTDOWN] * len(kbs)
            if len(pos) != len(kbs):
                # A write a forced delete cancelled stays in flight until its
                # writer returns, as in LMCache's core: a put of its key
                # meanwhile is a no-op success (status 1), nothing stored.
                kbs = [kbs[i] for i in pos]
                addrs = [addrs[i] for i in pos]
                sizes = [sizes[i] for i in pos]
                metas = [metas[i] for i in pos]
            epoch = self._known_epoch
            statuses = self._put_batch(kbs, addrs, sizes, metas) if kbs else []
        finally:
            try:
                self._end_write(marked, token)
            finally:
                self._end_write(marked, token)  # see _end_write
        self._remember([k for k, s in zip(kbs, statuses) if s == 0], epoch)
        if len(pos) != len(objs):
            out = [1] * len(objs)
            for i, st in zip(pos, statuses):
                out[i] = st
            return out
        return statuses

    def _put_batch(self, kbs: List[bytes], addrs: List[int], sizes: List[int], metas: List[bytes]) -> List[int]:
        if len(kbs) == 1:
            s = _native.put_one(self._store, kbs[0], addrs[0], sizes[0], metas[0])
            if s < 0 and s not in _native.QUIET_WRITE_FAILURES:
                logger.warning("DAX write of key %s failed: %s", _stored_key_for_log(kbs[0]), self._write_failure(s))
            return [s]
        put = _native.PutBatch(kbs, addrs, sizes, metas)
        rc = _native.run_batch(self._store, "daxkv_put_batch", put.batch)
        if rc < 0 and rc != -_errno.ESHUTDOWN:
            return [rc] * len(kbs)
        statuses = put.batch.statuses()
        for k, s in zip(kbs, statuses):
            if s < 0 and s not in _native.QUIET_WRITE_FAILURES:
                logger.warning("DAX write of key %s failed: %s", _stored_key_for_log(k), self._write_failure(s))
        return statuses

    def _write_failure(self, status: int) -> str:
        try:
            cap = self._store_meta_bytes() if status == -_errno.E2BIG else 0
        except DaxKVError:
            cap = 0
        return _write_failure(status, cap)

    def put_one(self, key: KeyT, obj: Any, *, writer: Optional[_CopyFn] = None) -> bool:
        """Store one memory object.

        ``writer(dax_offset, memory_obj, size)`` copies the payload to
        ``base_ptr + dax_offset`` (default: libdaxkv's own copy).

        Returns True if the key was committed or was already committed or in
        flight; False for a multi-tensor or oversize object, a key longer
        than libdaxkv's 512-byte limit once encoded (logged), a closing core
        or a write cancelled by a forced delete.

        Raises:
            RuntimeError: no slot is free, the copy failed, or the metadata
                (token positions) cannot be stored.
        """
        if _is_multi_tensor(obj):
            logger.error("DaxCore does not support multi-tensor allocations for key %s", key)
            return False
        size = int(obj.get_size())
        if not 0 <= size <= self._slot_bytes:
            return False
        try:
            kb = encode_key(key)
        except KeyNotStorable as exc:
            _warn_key_too_long("DAX write skips", key, exc)
            return False
        try:
            meta = _meta_of(obj)
        except ValueError as exc:
            raise RuntimeError(f"DAX write failed for key {key}: its metadata cannot be stored ({exc})") from exc
        # _begin_write for one key, inline (LMCache's backend stores key by
        # key); _end_write below, whatever happens from here on.
        token = object()
        try:
            with self._state_lock:
                if self._deleting:
                    self._await_deletes((kb,))
                if self._closing or self._closed:
                    return False
                if kb in self._cancelled:
                    # Its cancelled write is still in flight (see _put_prepared).
                    return True
                self._active_writes.add(token)
                _native.add_marks(self._inflight, (kb,), token)
            if writer is None:
                epoch = self._known_epoch
                s = self._put_batch([kb], [_data_ptr(obj)], [size], [meta])[0]
                if s == 0:
                    self._remember_one(kb, epoch)
                if s >= 0:
                    return True
                if s == -_errno.ENOSPC:
                    raise RuntimeError(NO_FREE_SLOTS)
                if s == -_errno.ESHUTDOWN:
                    return False
                raise RuntimeError(f"DAX write failed for key {key}: {self._write_failure(s)}")
            return self._put_with_writer(key, kb, meta, size, obj, writer)
        finally:
            try:
                self._end_write((kb,), token)
            finally:
                self._end_write((kb,), token)  # see _end_write

    def _put_with_writer(self, key: KeyT, kb: bytes, meta: bytes, size: int, obj: Any, writer: _CopyFn) -> bool:
        L = self._L
        r = ctypes.c_void_p()
        data = ctypes.c_void_p()
        store = self._store
        try:
            h = store._enter()
        except Shutdown:
            return False
        try:
            # The reservation with its metadata and the slot's address in
            # one call: LMCache's backend stores key by key, and each
            # library call through ctypes costs a few hundred nanoseconds.
            rc = L.daxkv_reserve_meta(h, kb, len(kb), size, meta, len(meta), data, r)
        finally:
            store._leave()
        if rc == _lib.EXISTED:
            return True  # committed or in flight: a no-op success
        if rc == -_errno.ENOSPC:
            raise RuntimeError(NO_FREE_SLOTS)
        if rc == -_errno.ESHUTDOWN:
            return False
        if rc == -_errno.E2BIG:
            raise RuntimeError(f"DAX write failed for key {key}: {self._write_failure(rc)}")
        if rc < 0:
            raise _error(rc, "daxkv_reserve_meta")
        committed = False
        try:
            # The slot's payload lies at base_ptr + offset: the core has one
            # device, whose slots start at base_ptr.
            offset = (data.value or 0) - self._base_ptr
            if offset < 0:
                raise _error(-_errno.EINVAL, "daxkv_reserve_meta")
            try:
                writer(offset, obj, size)
            except Exception as exc:
                raise RuntimeError(f"DAX write failed for key {key}: {exc}") from exc
            handle, r = r, None
            epoch = self._known_epoch
            rc = L.daxkv_commit(handle)  # frees the reservation whatever happens
            committed = rc == 0
            if committed:
                self._remember_one(kb, epoch)
            if rc < 0 and rc not in (-_errno.ECANCELED, -_errno.ESHUTDOWN):
                raise RuntimeError(f"DAX write failed for key {key}: {_error(rc, 'daxkv_commit')}")
            return committed
        finally:
            if r is not None:
                L.daxkv_abort(r)

    def put_reserved_from_ptr(
        self,
        key: KeyT,
        src_ptr: int,
        size: int,
        shape: Any,
        dtype: Any,
        fmt: Any,
        cached_positions: Any,
    ) -> DaxPutFromPtrResult:
        """Store one key by copying from an already reserved source pointer
        (migration between devices); never raises for per-key outcomes."""
        if size <= 0 or size > self._slot_bytes:
            return DaxPutFromPtrResult.INVALID
        if src_ptr <= 0:
            return DaxPutFromPtrResult.INVALID
        try:
            kb = encode_key(key)
        except KeyNotStorable as exc:
            _warn_key_too_long("DAX write skips", key, exc)
            return DaxPutFromPtrResult.INVALID
        try:
            meta = encode_meta(shape, dtype, fmt, cached_positions)
        except (ValueError, TypeError, AttributeError):
            meta = None
        token = object()
        try:
            with self._state_lock:
                if self._deleting:
                    self._await_deletes((kb,))
                if self._closing or self._closed:
                    return DaxPutFromPtrResult.CLOSED
                if kb in self._inflight:
                    return DaxPutFromPtrResult.INFLIGHT
                if meta is None:
                    return DaxPutFromPtrResult.INVALID
                # _begin_write, in the same hold of the lock as the checks.
                self._active_writes.add(token)
                _native.add_marks(self._inflight, (kb,), token)
            s = self._put_batch([kb], [int(src_ptr)], [int(size)], [meta])[0]
        finally:
            try:
                self._end_write((kb,), token)
            finally:
                self._end_write((kb,), token)  # see _end_write
        if s == 0:
            return DaxPutFromPtrResult.INSERTED
        if s == _lib.EXISTED:
            return (
                DaxPutFromPtrResult.ALREADY_EXISTS
                if self._store.contains(kb)
                else DaxPutFromPtrResult.INFLIGHT
            )
        if s == -_errno.ENOSPC:
            return DaxPutFromPtrResult.NO_SPACE
        if s == -_errno.ESHUTDOWN:
            return DaxPutFromPtrResult.CLOSED
        if s in (-_errno.E2BIG, -_errno.EINVAL):
            return DaxPutFromPtrResult.INVALID
        return DaxPutFromPtrResult.COPY_FAILED

    # -- lookups and locks ---------------------------------------------------

    def exists_many(self, keys: List[KeyT], lock: bool = False) -> List[bool]:
        """Per key, whether it is committed; lock=True increments each hit's
        external lock count (released by unlock_many)."""
        if not isinstance(keys, (list, tuple)):
            keys = list(keys)  # LMCache's core iterates over any collection of keys
        if self._closing or self._closed or not keys:
            return [False] * len(keys)
        if len(keys) == 1:
            # LMCache's wrappers ask key by key: a known key needs no library
            # call, another one call, no batch.
            try:
                kb = encode_key(keys[0])
            except KeyNotStorable:
                return [False]  # a key libdaxkv cannot hold is never stored
            if not lock and kb in self._known and not (self._deleting and kb in self._deleting):
                return [True]
            store = self._store
            epoch = self._known_epoch
            try:
                h = store._enter()
            except Shutdown:
                return [False]
            try:
                if lock:
                    hit = self._L.daxkv_pin(h, kb, len(kb)) == 0
                else:
                    hit = self._L.daxkv_contains(h, kb, len(kb)) == 1
            finally:
                store._leave()
            if hit:
                self._remember_one(kb, epoch)
            return [hit]
        kbs, pos = encode_keys_partial(keys)
        if pos is not None:
            # Keys libdaxkv cannot hold (too long) are never stored: misses.
            return _for_storable(keys, pos, lambda ks: self.exists_many(ks, lock=lock))
        if not lock:
            known, deleting = self._known, self._deleting
            if all(kb in known for kb in kbs) and not (deleting and any(kb in deleting for kb in kbs)):
                return [True] * len(kbs)
        epoch = self._known_epoch
        hits = _native.contains_many(self._store, kbs, lock)
        self._remember([kb for kb, hit in zip(kbs, hits) if hit], epoch)
        return hits

    def prefix_hits(self, keys: List[KeyT], pin: bool = False) -> int:
        """How many keys from the start are committed (pinning each of them
        with pin=True): daxkv's backend's prefix lookup."""
        if self._closing or self._closed or not keys:
            return 0
        kbs, pos = encode_keys_partial(keys)
        if pos is not None:
            # The prefix ends at the first key libdaxkv cannot hold (never stored).
            n = 0
            while n < len(pos) and pos[n] == n:
                n += 1
            kbs = kbs[:n]
            if not kbs:
                return 0
        start = 0
        if not pin:
            known = self._known
            deleting = self._deleting
            for kb in kbs:
                if kb not in known or (deleting and kb in deleting):
                    break
                start += 1
            if start == len(kbs):
                return start
        rest = kbs[start:] if start else kbs
        epoch = self._known_epoch
        try:
            count = self._store.prefix_length(rest, pin=pin)
        except Shutdown:
            return 0
        if count:
            self._remember(rest[:count], epoch)
        return start + count

    def unlock_many(self, keys: List[KeyT]) -> None:
        """Drop one external lock per key (never below zero)."""
        if not keys or self._closed:
            return
        kbs, _ = encode_keys_partial(keys)  # keys too long were never stored or locked
        if kbs:
            _native.unpin_many(self._store, kbs)

    def delete_many(self, keys: List[KeyT], *, force: bool = False) -> List[bool]:
        """Delete keys. Without force, locked and in-flight keys are left
        alone; with force, locked keys go and in-flight writes are cancelled.
        A cancelled write stays in flight until its writer returns, and a
        forced delete of its key until then (a repeat in the same list
        included) is True, as in LMCache's core; a committed key is deleted
        (True) once. A delete is one step for lookups and puts of its keys,
        as LMCache's is under its lock: lookups from other threads meanwhile
        ask the library, puts wait for it. A slot still borrowed by a read
        reservation is reused only after finalize_reads."""
        if not keys or self._closed:
            return [False] * len(keys)
        kbs, pos = encode_keys_partial(keys)
        if pos is not None:
            # Keys libdaxkv cannot hold (too long) were never stored: no-ops.
            return _for_storable(keys, pos, lambda ks: self.delete_many(ks, force=force))
        # From here until the keys are forgotten and the cancelled writes
        # noted, lookups of these keys ask the library (a key it removed
        # is still among the known ones until _forget) and puts of them
        # wait (_await_deletes): one landing after the library call would
        # find no reservation of its key and store it, and one beginning
        # before it would have its write cancelled unnoted.
        # Each delete marks its keys with a token of its own, and ends its
        # marks by that token, once or again: an interrupt anywhere between
        # the marking and its end (Python runs signal handlers between any
        # two steps) leaves no mark behind, and never ends another delete's.
        marked = list(set(kbs))
        token = object()
        writing: List[bytes] = []
        try:
            with self._state_lock:
                _native.add_marks(self._deleting, marked, token)
                if force:
                    writing = [kb for kb in marked if kb in self._inflight]
            # Keys being written through this core and not committed yet:
            # removing one cancels its write.
            uncommitted: Set[bytes] = set()
            for kb in writing:
                try:
                    if not self._store.contains(kb):
                        uncommitted.add(kb)
                except Shutdown:
                    break
            try:
                results = _native.remove_many(self._store, kbs, force)
            finally:
                self._forget(kbs)
            with self._state_lock:
                cancelled = self._cancelled
                if force and (uncommitted or cancelled):
                    for i, kb in enumerate(kbs):
                        if kb not in self._inflight:
                            continue  # the write has ended (or there is none)
                        if results[i]:
                            if kb in uncommitted:
                                cancelled.add(kb)
                        elif kb in cancelled:
                            results[i] = True
                self._end_deleting(marked, token)  # one step with the notes above
        finally:
            # Ending is idempotent: a second try runs should an interrupt
            # land before the first began.
            try:
                self._end_deleting_locked(marked, token)
            finally:
                self._end_deleting_locked(marked, token)
        return results

    def _end_deleting_locked(self, kbs: List[bytes], token: object) -> None:
        with self._state_lock:
            self._end_deleting(kbs, token)

    def _end_deleting(self, kbs: List[bytes], token: object) -> None:
        """Drop a delete's marks (token) of kbs, those it made (the state
        lock held), and wake the puts waiting for them."""
        _native.end_marks(self._deleting, kbs, token)
        if self._delete_waiters:
            self._state_condition.notify_all()

    def snapshot_keys(self) -> List[KeyT]:
        """Committed keys (recovered ones included), as a list that later
        writes do not change."""
        if self.is_closing():
            return []
        out: List[KeyT] = []
        try:
            for info in self._store.keys(self._device_path):
                try:
                    out.append(decode_key(info.key))
                except ValueError:
                    continue  # an entry this integration did not write
        except Shutdown:
            return []
        return out

    def entries(self) -> List[Tuple[KeyT, int, EntryMeta]]:
        """Committed entries with their value sizes and metadata (what a
        restarted server reports to LMCache's accounting)."""
        if self.is_closing():
            return []
        out = []
        try:
            for info in self._store.keys(self._device_path):
                try:
                    out.append((decode_key(info.key), info.value_len, decode_meta(info.meta)))
                except ValueError:
                    continue
        except Shutdown:
            return []
        return out

    # -- reads ---------------------------------------------------------------

    def reserve_reads(
        self, keys: List[KeyT], *, prefix_only: bool
    ) -> Tuple[List[DaxReadReservation[KeyT]], List[bool]]:
        """Reserve committed entries for a read: each entry's bytes stay at
        ``base_ptr + offset`` until finalize_reads, even if it is deleted.
        With prefix_only, stop at the first missing or unreadable key."""
        reservations: List[DaxReadReservation[KeyT]] = []
        results = [False] * len(keys)
        if not keys or not self._begin_read():
            return reservations, results
        ls = _native.Leases()
        try:
            kbs, pos = self._readable(keys, prefix_only)
            missed: List[int] = []
            ls = _native.lease_many(self._store, kbs, prefix=prefix_only, failed=missed)
            if missed:
                self._forget([kbs[i] for i in missed])
            if pos is not None:
                ls.index = [pos[i] for i in ls.index]
            unreadable: List[int] = []
            new = object.__new__
            for j, index in enumerate(ls.index):
                try:
                    meta = decode_meta(ls.meta[j])
                except ValueError:
                    meta = EntryMeta(None, None, None, None)
                if prefix_only and (unreadable or index != len(reservations)):
                    unreadable.append(ls.handle[j])  # past the first gap of the prefix
                    continue
                if not _restorable(meta, ls.size[j], self._slot_bytes):
                    unreadable.append(ls.handle[j])  # no layout to restore it with
                    continue
                # The frozen dataclass's own __init__ sets each field through
                # object.__setattr__ (three times the cost): filled directly,
                # the instance is the same.
                r = new(DaxReadReservation)
                d = r.__dict__
                d["result_index"] = index
                d["key"] = keys[index]
                d["offset"] = ls.offset[j]
                d["size"] = ls.size[j]
                d["shape"] = meta.shape
                d["dtype"] = meta.dtype
                d["fmt"] = meta.fmt
                d["cached_positions"] = meta.cached_positions
                d["slot_id"] = ls.slot[j]
                d["generation"] = ls.generation[j]
                d["_lease"] = ls.handle[j]
                reservations.append(r)
                results[index] = True
            _native.release_leases(unreadable)
        except BaseException:
            _native.release_leases(ls.handle)
            self._end_read()
            raise
        if not reservations:
            self._end_read()
        return reservations, results

    def lease_entries(self, keys: List[KeyT], *, prefix_only: bool) -> "_native.Leases":
        """reserve_reads for daxkv's own backend, without the reservation
        objects: the readable entries' leases as columns (index: position
        in keys; address, size, and meta: the decoded EntryMeta). Pass them
        to release_entries once copied."""
        ls = _native.Leases()
        if not keys or not self._begin_read():
            return ls
        try:
            kbs, pos = self._readable(keys, prefix_only)
            missed: List[int] = []
            ls = _native.lease_many(self._store, kbs, prefix=prefix_only, failed=missed)
            if missed:
                self._forget([kbs[i] for i in missed])
            if pos is not None:
                ls.index = [pos[i] for i in ls.index]
            metas: List[EntryMeta] = []
            for blob in ls.meta:
                try:
                    metas.append(decode_meta(blob))
                except ValueError:
                    metas.append(EntryMeta(None, None, None, None))
            ls.meta = metas  # type: ignore[assignment]
            slot = self._slot_bytes
            keep = [j for j, m in enumerate(metas) if _restorable(m, ls.size[j], slot)]
            if prefix_only:
                n = 0
                while n < len(keep) and keep[n] == n and ls.index[n] == n:
                    n += 1
                keep = keep[:n]
            if len(keep) != len(ls):
                kept = set(keep)
                gone = [h for j, h in enumerate(ls.handle) if j not in kept]
                ls = ls.subset(keep)  # every column, as restores read them
                _native.release_leases(gone)
        except BaseException:
            _native.release_leases(ls.handle)
            self._end_read()
            raise
        if not len(ls):
            self._end_read()
        else:
            ls.reading = True  # ended by release_entries, once
        return ls

    @staticmethod
    def _readable(keys: List[KeyT], prefix_only: bool) -> Tuple[List[bytes], Optional[List[int]]]:
        """The encodings of the keys to read, and (None when every key is
        there) their positions in keys: a key longer than libdaxkv's limit
        was never stored, a miss (with prefix_only, the end of the prefix)."""
        kbs, pos = encode_keys_partial(keys)
        if pos is not None and prefix_only:
            n = 0
            while n < len(pos) and pos[n] == n:
                n += 1
            return kbs[:n], None
        return kbs, pos

    def read_entries(self, keys: List[KeyT], leases: "_native.Leases", dsts: List[int]) -> List[int]:
        """Copy the values of leases (from lease_entries of keys) into
        dsts, each with room for its size, on libdaxkv's workers and under
        its SIGBUS guard. Per lease 0, or -EIO where its bytes faulted or
        failed their checksum: the library dropped the entry, and its key
        is forgotten here."""
        statuses = _native.read_leases(self._store, leases, dsts)
        failed = [leases.index[j] for j, st in enumerate(statuses) if st != 0]
        if failed:
            logger.warning("DaxCore: %d leased entries could not be read and were dropped", len(failed))
            self._forget(encode_keys_partial([keys[i] for i in failed])[0])
        return statuses

    def release_entries(self, leases: "_native.Leases") -> None:
        """Release what lease_entries gave. A second call does nothing, and
        ends what a first one that an interrupt (KeyboardInterrupt, or what
        a signal handler raises) cut short left: each lease is taken off the
        list as it is released, and the read ends once."""
        _native.release_leases(leases.handle)
        with self._state_lock:
            if not leases.reading:
                return
            leases.reading = False
            self._end_read_locked()

    def reserve_reads_for_keys(self, keys: List[KeyT]) -> List[DaxReadReservation[KeyT]]:
        """Reserve readable entries of explicit keys (see reserve_reads)."""
        reservations, _ = self.reserve_reads(keys, prefix_only=False)
        return reservations

    def finalize_reads(
        self, reservations: List[DaxReadReservation[KeyT]], touched_keys: Set[KeyT]
    ) -> None:
        """Release read reservations (exactly once per reserve_reads)."""
        del touched_keys  # recency is LMCache's controllers' business
        if not reservations:
            return
        # Each lease is released once: a reservation finalized again (an
        # error path that finalizes twice) finds its handle taken. A handle
        # released twice would be freed twice, or, once its memory serves
        # another reader's lease, end that lease under its reader.
        with self._state_lock:
            handles = []
            for r in reservations:
                h = r.__dict__.get("_lease", 0)
                if h:
                    r.__dict__["_lease"] = 0
                    handles.append(h)
        if not handles:
            logger.warning("DaxCore finalize_reads: the reservations were finalized already")
            return
        _native.release_leases(handles)
        self._end_read()

    def load_many_into(self, keys: List[KeyT], objs: List[Any]) -> List[bool]:
        """Copy entries straight into caller MemoryObjs, in one native batch.
        Per key False for a miss, an entry without layout metadata, a
        multi-tensor or too small destination, or a failed copy."""
        if len(keys) != len(objs):
            raise ValueError(
                "keys and objs must have the same length, " f"got {len(keys)} and {len(objs)}"
            )
        results = [False] * len(keys)
        # A destination that reports a negative size holds nothing; one
        # larger than a slot takes any entry (none is larger).
        slot = self._slot_bytes
        caps = [min(int(o.get_size()), slot) for o in objs]
        idx = [i for i, o in enumerate(objs) if caps[i] >= 0 and not _is_multi_tensor(o)]
        kbs, pos = encode_keys_partial([keys[i] for i in idx])
        if pos is not None:
            idx = [idx[j] for j in pos]  # keys too long were never stored: misses
        if not idx or not self._begin_read():
            return results
        try:
            get = _native.GetBatch(
                kbs,
                [_data_ptr(objs[i]) for i in idx],
                [caps[i] for i in idx],
                self._store_meta_bytes(),
            )
            if _native.run_batch(self._store, "daxkv_get_batch", get.batch) < 0:
                return results
            got = get.results()
            gone = [kbs[j] for j, r in enumerate(got) if r[0] in (-_errno.ENOENT, -_errno.EIO)]
            if gone:
                self._forget(gone)
            for j, (s, _, blob) in enumerate(got):
                i = idx[j]
                if s != 0:
                    if s not in (-_errno.ENOENT, -_errno.ENOBUFS, -_errno.ESHUTDOWN):
                        logger.error("Failed to load DAX key %s into caller buffer: %s", keys[i], _native.strerror(s))
                    continue
                try:
                    meta = decode_meta(blob)
                except ValueError:
                    continue
                if meta.shape is None or meta.dtype is None or meta.fmt is None:
                    continue
                objs[i].metadata.cached_positions = meta.cached_positions
                results[i] = True
        finally:
            self._end_read()
        return results

    def _store_meta_bytes(self) -> int:
        cap = getattr(self, "_meta_cap", 0)
        if not cap:
            cap = self._meta_cap = max(1, self._store.stats().meta_bytes)
        return cap

    # -- capacity ------------------------------------------------------------

    def usage(self) -> Tuple[float, float]:
        """(slots in use, slots in use once reads of deleted entries end),
        as fractions of max_slots."""
        with self._state_lock:
            if self._max_slots <= 0 or self._closed:
                return (0.0, 0.0)
        try:
            st = _native.raw_stats(self._store)
        except Shutdown:
            return (0.0, 0.0)
        live = st.slots_used
        return (live / self._max_slots, max(0, live - st.slots_pending_free) / self._max_slots)

    def report_status(self) -> dict:
        """Health, capacity, occupancy, lock and borrow counts, in LMCache's
        field names; supports_restart_recovery tells whether the arena is
        persistent (persist_enabled)."""
        with self._state_lock:
            closed = self._closed
            status = {
                "is_healthy": not closed,
                "device_path": self._given_device_path,  # as given, as LMCache reports it
                "max_dax_size_bytes": self._arena_bytes,
                "slot_bytes": self._slot_bytes,
                "max_slots": self._max_slots,
                "live_slot_count": 0,
                "locked_key_count": 0,
                "borrowed_slot_count": 0,
                "active_read_count": self._active_reads,
                "active_write_count": len(self._active_writes),
                "closing": self._closing or self._closed,
                "supports_restart_recovery": self._persist,
            }
        if not closed:
            try:
                st = _native.raw_stats(self._store)
                status["live_slot_count"] = st.slots_used
                status["locked_key_count"] = st.entries_pinned
                status["borrowed_slot_count"] = st.slots_leased
            except Shutdown:
                status["is_healthy"] = False
        return status

    def can_shrink_to(self, new_max_slots: int) -> bool:
        """Whether every live, in-flight or borrowed slot lies below
        new_max_slots."""
        if new_max_slots <= 0:
            return False
        with self._state_lock:
            if self._closed:
                return False
        try:
            return self._store.device_layout(self._device_path).used_end <= new_max_slots
        except Shutdown:
            return False

    def remap(self, new_max_dax_size_bytes: int) -> None:
        """Change the arena to new_max_dax_size_bytes of slots. Growing keeps
        every entry in place (up to grow_limit); shrinking needs the slots
        above the new end to be empty (can_shrink_to).

        Raises:
            ValueError: the size fits no slot, or would cut off live slots.
            RuntimeError: the core is closed, or the device cannot grow that far.
        """
        if new_max_dax_size_bytes <= 0:
            raise ValueError("new_max_dax_size_bytes must be > 0")
        new_max_slots = new_max_dax_size_bytes // self._slot_bytes
        if new_max_slots <= 0:
            raise ValueError("new DAX arena does not fit even one slot")
        with self._state_lock:
            if self._closed:
                raise RuntimeError("DaxCore is closed")
            self._drain_waiters += 1
            try:
                while self._active_writes or self._active_reads > 0:
                    if not self._state_condition.wait(timeout=30.0):
                        logger.warning(
                            "DaxCore remap: still waiting for %d writes, %d reads",
                            len(self._active_writes),
                            self._active_reads,
                        )
            finally:
                self._drain_waiters -= 1
            if not self.can_shrink_to(new_max_slots):
                raise ValueError("new DAX arena would cut off live slots")
            try:
                self._store.device_resize(
                    self._device_path, new_max_slots * self._slot_bytes, "migrate"
                )
            except NoSpace as exc:
                raise DaxCoreError(
                    f"max_dax_size_bytes ({new_max_dax_size_bytes} bytes) exceeds the room "
                    f"the DAX arena was laid out with: {exc.message}"
                ) from exc
            except DaxKVError as exc:
                if exc.errno == _errno.EBUSY:
                    raise ValueError("new DAX arena would cut off live slots") from exc
                raise DaxCoreError(f"Failed to remap dax arena {self._device_path}: {exc.message}") from exc
            self._arena_bytes = new_max_dax_size_bytes
            self._max_slots = new_max_slots
            self._map_views()
            self._state_condition.notify_all()

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close after active reads and writes finish (read reservations not
        yet finalized count). Idempotent."""
        with self._state_lock:
            if self._closed:
                return
            self._closing = True
            self._drain_waiters += 1
            try:
                while self._active_writes or self._active_reads > 0:
                    if not self._state_condition.wait(timeout=30.0):
                        logger.warning(
                            "DaxCore close: still waiting for %d writes, %d reads",
                            len(self._active_writes),
                            self._active_reads,
                        )
            finally:
                self._drain_waiters -= 1
            if self._closed:
                return
            self._closed = True
            self._inflight.clear()
            self._cancelled.clear()
            with self._known_lock:
                self._known.clear()
            fd, self._fd = self._fd, None
            views = [self._arena_view, self._mmap_view]
            self._arena_view = self._mmap_view = None
            self._arena_array = None
            self._base_ptr = 0
        # A view a caller still refers to (torch.frombuffer's tensor keeps
        # the view object, no export of it) is left alive: it keeps the
        # array, and so the mapping (handled below).
        while views:
            view = views.pop()
            if view is not None and not _referenced_elsewhere(view):
                try:
                    view.release()
                except BufferError:
                    pass  # a caller still holds a slice of it (handled below)
            del view
        # The store unmaps the arena when it is closed, and a caller may still
        # hold a view of mmap_obj or arena_view (LMCache's core cannot close
        # its mmap then, so such a view stays readable there). While one
        # does, the store is only shut down (no new calls); the last view to
        # go closes it.
        held = [a for a in (r() for r in self._arena_arrays) if a is not None]
        self._arena_arrays = []
        if held:
            self._store.shutdown()
            # Closed from a finalizer, which may run on a thread inside a
            # call of this store: without waiting for the calls in flight.
            last_view = _LastView(lambda store=self._store: store._close(wait=False), len(held))
            for arr in held:
                weakref.finalize(arr, last_view.gone)
            del held, arr
        else:
            self._store.close()
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "DaxCore[KeyT]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._max_slots} slots of {self._slot_bytes} bytes"
        return f"<daxkv.lmcache.DaxCore {self._device_path}: {state}>"
