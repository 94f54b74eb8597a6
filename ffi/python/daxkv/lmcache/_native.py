"""The libdaxkv calls the LMCache integration makes, at batch granularity.

daxkv.Store's public methods take buffers and return Python objects per
item; the LMCache paths already hold raw addresses (MemoryObj.data_ptr) and
need each entry's metadata with its bytes, so they fill daxkv_item arrays
directly and read the statuses, lengths and metadata back in one pass.
"""

from __future__ import annotations

import array
import ctypes
import errno as _errno
import logging
import os
import select
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from .. import _lib
from .._batch import _Batch, _key_columns
from .._buffers import _BYTES_OFFSET
from .._library import _error, library
from .._store import Store
from ..errors import DaxKVError, NoSpace, Shutdown

logger = logging.getLogger("daxkv.lmcache")


def blob_column(blobs: List[bytes]) -> Tuple[bytes, List[int], List[int]]:
    """One bytes object holding blobs, with each blob's address and length
    (the returned bytes object must stay alive while they are used)."""
    joined = b"".join(blobs)
    addr = id(joined) + _BYTES_OFFSET
    addrs, lens = [], []
    for b in blobs:
        addrs.append(addr)
        lens.append(len(b))
        addr += len(b)
    return joined, addrs, lens


#: Write failures that are outcomes, not faults, and go unlogged: no room
#: (the caller hears of it), the store closing, and a write cancelled by a
#: forced delete of its key (LMCache's core drops such a write silently).
QUIET_WRITE_FAILURES = (-_errno.ENOSPC, -_errno.ESHUTDOWN, -_errno.ECANCELED)


def add_marks(table: Dict[bytes, Set[object]], kbs: Sequence[bytes], token: object) -> None:
    """Mark each of kbs in table (key -> the calls under way with it) with
    token, a new object per call; end_marks takes them off again."""
    for kb in kbs:
        table.setdefault(kb, set()).add(token)


def end_marks(table: Dict[bytes, Set[object]], kbs: Sequence[bytes], token: object) -> List[bytes]:
    """Take token's marks of kbs off table, whichever it made: idempotent,
    so that a call interrupted anywhere (Python runs signal handlers
    between any two steps) can end its marks, once or again, and never
    another call's. Returns the keys left with no mark."""
    emptied = []
    for kb in kbs:
        holders = table.get(kb)
        if holders is None or token not in holders:
            continue
        holders.discard(token)
        if not holders:
            del table[kb]
            emptied.append(kb)
    return emptied


def strerror(code: int) -> str:
    return library().daxkv_strerror(code).decode()


class PutBatch:
    """A daxkv_put_batch (or OP_PUT submission) of values at raw addresses,
    each with its metadata blob."""

    __slots__ = ("batch", "keep", "kbs")

    def __init__(self, kbs: List[bytes], addrs: List[int], sizes: List[int], metas: List[bytes]) -> None:
        self.kbs = kbs  # the key encodings, in item order
        self.batch = _Batch(kbs)
        self.batch.set_column(_lib.W_DATA, addrs)
        self.batch.set_column(_lib.W_LEN, sizes)
        self.keep, maddrs, mlens = blob_column(metas)
        self.batch.set_column(_lib.W_META, maddrs)
        self.batch.set_column(_lib.W_META_LEN, mlens)


class GetBatch:
    """A daxkv_get_batch (or OP_GET submission) into raw destinations, with
    room for each entry's metadata."""

    __slots__ = ("batch", "meta_cap", "metabuf", "kbs")

    def __init__(self, kbs: List[bytes], addrs: List[int], caps: List[int], meta_cap: int) -> None:
        n = len(kbs)
        self.kbs = kbs  # the key encodings, in item order
        self.batch = _Batch(kbs)
        self.batch.set_column(_lib.W_DATA, addrs)
        self.batch.set_column(_lib.W_LEN, caps)
        self.meta_cap = meta_cap
        self.metabuf = ctypes.create_string_buffer(max(1, meta_cap * n))
        base = ctypes.addressof(self.metabuf)
        self.batch.set_column(_lib.W_META, [base + j * meta_cap for j in range(n)])
        self.batch.set_column(_lib.W_META_LEN, [meta_cap] * n)

    def results(self) -> List[Tuple[int, int, bytes]]:
        """(status, value length, metadata) per item."""
        st = self.batch.statuses()
        lens = self.batch.column(_lib.W_LEN)
        mlens = self.batch.column(_lib.W_META_LEN)
        mv = memoryview(self.metabuf).cast("B")
        cap = self.meta_cap
        return [
            (s, n, mv[j * cap : j * cap + ml].tobytes() if s == 0 else b"")
            for j, (s, n, ml) in enumerate(zip(st, lens, mlens))
        ]


def put_one(store: Store, kb: bytes, addr: int, size: int, meta: bytes) -> int:
    """One put with its metadata: a one-item batch without the column
    machinery (LMCache's wrappers store key by key). The item's status."""
    # kb and meta are bytes (immutable, kept alive by the caller's frame).
    it = _lib.Item(id(kb) + _BYTES_OFFSET, len(kb), addr, size, id(meta) + _BYTES_OFFSET, len(meta), 0)
    try:
        h = store._enter()
    except Shutdown:
        return -_errno.ESHUTDOWN
    try:
        rc = library().daxkv_put_batch(h, ctypes.byref(it), 1, 0)
    finally:
        store._leave()
    return it.status if rc >= 0 else rc


def raw_stats(store: Store) -> Any:
    """The store's daxkv_stats struct as it is (no Stats snapshot, whose
    histograms take tens of microseconds to build: LMCache's adapter asks
    for the usage of every device on every store). Raises Shutdown."""
    st = _lib.Stats()
    st.struct_size = ctypes.sizeof(st)
    h = store._enter()
    try:
        rc = library().daxkv_stats(h, st)
    finally:
        store._leave()
    if rc < 0:
        raise _error(rc, "daxkv_stats")
    return st


def run_batch(store: Store, fn_name: str, batch: _Batch, flags: int = 0) -> int:
    """Run a synchronous batch call; per-item statuses stay in the batch. A
    closed store gives -ESHUTDOWN for every item."""
    try:
        h = store._enter()
    except Shutdown:
        batch.ints[_lib.I_STATUS :: _lib.ITEM_INTS] = array.array("i", [-_errno.ESHUTDOWN] * batch.n)
        return -_errno.ESHUTDOWN
    try:
        return getattr(library(), fn_name)(h, batch.items, batch.n, flags)
    finally:
        store._leave()


def contains_many(store: Store, kbs: List[bytes], pin: bool) -> List[bool]:
    """Per key, whether it is committed (pinning each hit with pin). One key,
    the common case of LMCache's per-key wrappers, is one library call."""
    L = library()
    try:
        h = store._enter()
    except Shutdown:
        return [False] * len(kbs)
    try:
        if len(kbs) == 1:
            k = kbs[0]
            rc = L.daxkv_pin(h, k, len(k)) if pin else L.daxkv_contains(h, k, len(k))
            if pin:
                return [rc == 0]
            return [rc == 1]
        batch = _Batch(kbs)
        rc = L.daxkv_contains_batch(h, batch.items, batch.n, _lib.PIN if pin else 0)
    finally:
        store._leave()
    if rc < 0:
        return [False] * len(kbs)
    return [s == 1 for s in batch.statuses()]


def remove_many(store: Store, kbs: List[bytes], force: bool) -> List[bool]:
    """Per key, whether it was removed (pinned and in-flight keys are left
    alone without force)."""
    L = library()
    flags = _lib.FORCE if force else 0
    try:
        h = store._enter()
    except Shutdown:
        return [False] * len(kbs)
    try:
        if len(kbs) == 1:
            k = kbs[0]
            return [L.daxkv_remove(h, k, len(k), flags) == 0]
        batch = _Batch(kbs)
        rc = L.daxkv_remove_batch(h, batch.items, batch.n, flags)
    finally:
        store._leave()
    if rc < 0:
        return [False] * len(kbs)
    return [s == 0 for s in batch.statuses()]


def unpin_many(store: Store, kbs: List[bytes]) -> None:
    """Drop one pin per key (a key without pins is left alone)."""
    L = library()
    try:
        h = store._enter()
    except Shutdown:
        return
    try:
        if len(kbs) == 1:
            L.daxkv_unpin(h, kbs[0], len(kbs[0]))
            return
        batch = _Batch(kbs)
        L.daxkv_unpin_batch(h, batch.items, batch.n, 0)
    finally:
        store._leave()


class Leases:
    """Leased entries, column by column (lists of ints and bytes: no object
    per entry for the garbage collector to track; a restore of thousands of
    small chunks otherwise pays for collections over every live object)."""

    COLUMNS = ("index", "handle", "address", "size", "meta", "slot", "generation", "offset")
    __slots__ = COLUMNS + ("reading",)

    def __init__(self) -> None:
        self.index: List[int] = []  # position in the caller's key list
        self.handle: List[int] = []  # daxkv_lease *
        self.address: List[int] = []  # the value's first byte
        self.size: List[int] = []
        self.meta: List[bytes] = []
        self.slot: List[int] = []
        self.generation: List[int] = []
        self.offset: List[int] = []  # from the device's payload base
        # Whether a read of DaxCore's is counted for these leases (set by
        # lease_entries, cleared by release_entries).
        self.reading = False

    def __len__(self) -> int:
        return len(self.handle)

    def subset(self, positions: List[int]) -> "Leases":
        """The leases at positions, in that order (the handles shared: the
        caller releases each once)."""
        out = Leases()
        for name in Leases.COLUMNS:
            col = getattr(self, name)
            setattr(out, name, [col[j] for j in positions])
        return out


def lease_many(store: Store, kbs: List[bytes], *, prefix: bool, failed: Optional[List[int]] = None) -> Leases:
    """Lease each key's entry (misses skipped; with prefix, stop at the
    first miss) in one daxkv_lease_batch call. The positions of keys that
    were not leased go to failed when given. The caller releases every
    handle with release_leases."""
    leases = Leases()
    n = len(kbs)
    if not n:
        return leases
    items = (_lib.LeaseItem * n)()
    raw = memoryview(items).cast("B")
    words, ints = raw.cast("Q"), raw.cast("i")
    stride = _lib.LEASE_WORDS
    w = _lib.LW
    # The array points into keys_blob, which lives until the function returns.
    keys_blob = _key_columns(words, stride, w["key"], w["key_len"], kbs)
    try:
        h = store._enter()
    except Shutdown:
        return leases
    try:
        rc = library().daxkv_lease_batch(h, items, n, _lib.PREFIX if prefix else 0)
        del keys_blob
        if rc < 0:
            if rc != -_errno.ESHUTDOWN:
                logger.warning("DAX lease batch failed: %s", strerror(rc))
            return leases
        statuses = ints[_lib.LI_STATUS :: _lib.LEASE_INTS].tolist()
        ok = [i for i, st in enumerate(statuses) if st == 0]
        for i, st in enumerate(statuses):
            if st != 0:
                if st not in (-_errno.ENOENT, -_errno.EIO, -_errno.ESHUTDOWN):
                    logger.warning("DAX lease failed: %s", strerror(st))
                if failed is not None and not (prefix and i > len(ok)):
                    failed.append(i)

        def column(name: str) -> List[int]:
            col = words[w[name] :: stride].tolist()
            return col if len(ok) == n else [col[i] for i in ok]

        leases.index = ok
        leases.handle = column("lease")
        leases.address = column("data")
        leases.size = column("size")
        leases.slot = column("slot")
        leases.generation = column("generation")
        leases.offset = column("offset")
        # The metadata is copied out by the library, under its SIGBUS
        # guard (sigbus=handle), not read here where a fault would end the
        # process; an entry whose metadata faults was dropped by it.
        try:
            metas, statuses = _read_leases(h, leases.handle, None, None, column("meta_len"))
        except BaseException as exc:
            # The metadata could not be read at all (a shutdown right after
            # the leases, no memory): the leases go back, and a shutdown is
            # every key a miss, as one seen by the lease batch is.
            release_leases(leases.handle)
            if isinstance(exc, Shutdown):
                return Leases()
            raise
    finally:
        store._leave()
    leases.meta = metas
    unread = [j for j, st in enumerate(statuses) if st != 0]
    if unread:
        _drop_unread(leases, unread, prefix, failed, "metadata")
    return leases


def _read_leases(
    h: int, handles: List[int], dsts: Optional[List[int]], sizes: Optional[List[int]], meta_lens: Optional[List[int]]
) -> Tuple[List[bytes], List[int]]:
    """daxkv_lease_read_batch of leases of the store whose handle is h:
    each value into dsts[j] (capacity sizes[j]) when dsts is given, and
    each entry's metadata (meta_lens[j] bytes) when meta_lens is. Returns
    the metadata blobs (b"" where not read) and each item's status."""
    n = len(handles)
    if not n:
        return [], []
    items = (_lib.Item * n)()
    raw = memoryview(items).cast("B")
    words, ints = raw.cast("Q"), raw.cast("i")
    stride = _lib.ITEM_WORDS
    if dsts is not None and sizes is not None:
        words[_lib.W_DATA :: stride] = array.array("Q", dsts)
        words[_lib.W_LEN :: stride] = array.array("Q", sizes)
    offsets: List[int] = []
    blob = None
    if meta_lens is not None:
        total = 0
        for m in meta_lens:
            offsets.append(total)
            total += m
        blob = ctypes.create_string_buffer(max(total, 1))
        base = ctypes.addressof(blob)
        words[_lib.W_META :: stride] = array.array("Q", [base + o if m else 0 for o, m in zip(offsets, meta_lens)])
        words[_lib.W_META_LEN :: stride] = array.array("Q", meta_lens)
    arr = (ctypes.c_void_p * n)(*handles)
    rc = library().daxkv_lease_read_batch(h, arr, items, n, 0)
    if rc < 0:
        raise _error(rc, "daxkv_lease_read_batch")
    statuses = ints[_lib.I_STATUS :: _lib.ITEM_INTS].tolist()
    metas: List[bytes] = []
    if blob is not None and meta_lens is not None:
        raw_blob = blob.raw
        metas = [
            raw_blob[o : o + m] if st == 0 else b"" for o, m, st in zip(offsets, meta_lens, statuses)
        ]
    return metas, statuses


def _drop_unread(leases: Leases, unread: List[int], prefix: bool, failed: Optional[List[int]], what: str) -> None:
    """Take the leases at positions unread (their reads failed: -EIO, the
    entry dropped by the library) out of leases and release them; with
    prefix, every lease from the first of them on. Their key positions go
    to failed when given."""
    first = unread[0]
    gone = set(range(first, len(leases))) if prefix else set(unread)
    for j in unread:
        if failed is not None and (not prefix or j == first):
            failed.append(leases.index[j])
    logger.warning("DAX lease: reading the %s of %d leased entries failed; treated as misses", what, len(unread))
    release_leases([leases.handle[j] for j in sorted(gone)])
    rest = leases.subset([j for j in range(len(leases)) if j not in gone])
    for name in Leases.COLUMNS:
        setattr(leases, name, getattr(rest, name))


def read_leases(store: Store, leases: Leases, dsts: List[int]) -> List[int]:
    """Copy each leased value into dsts[j] (room for leases.size[j] bytes)
    with daxkv_lease_read_batch, on the library's workers and under its
    SIGBUS guard. Returns each item's status: 0, or -EIO where the entry's
    bytes faulted or failed their checksum (the library dropped it; the
    lease is still the caller's to release)."""
    if not len(leases):
        return []
    h = store._enter()
    try:
        _, statuses = _read_leases(h, leases.handle, dsts, leases.size, None)
    finally:
        store._leave()
    return statuses


def release_leases(handles: List[int]) -> None:
    """Release lease handles, taking each off the list as it is released:
    a call cut short by an interrupt leaves the rest for a call again, and
    releases none twice."""
    release = library().daxkv_lease_release
    while handles:
        release(handles.pop())


def fit_device(store: Store, path: str, slots: int, slot_bytes: int, at_open: bool = False) -> Any:
    """Give a device of an open store `slots` slots, as far as its arena's
    layout reaches, and return its layout. LMCache sizes its arenas on every
    open; a reopened arena comes back with the size it was last used with,
    which yields to the configured one here. Entries above the new end move
    down. RuntimeError when that fails.

    at_open: the store was just opened, and nothing uses its entries yet. A
    persistent arena may then hold more entries than the configured slots
    (it was grown at run time, by resize or remap, and the configuration
    was left as it was): it is a cache, and a restart must not fail for it.
    The oldest entries (by commit sequence) that do not fit are removed,
    and the log says how many. (A device added at run time keeps the size
    its arena has instead: its entries may be in use by then.)"""
    layout = store.device_layout(path)
    wanted = min(slots, layout.layout_slots)
    if layout.usable_slots == wanted:
        return layout
    try:
        store.device_resize(path, wanted * slot_bytes, "migrate")
    except NoSpace as exc:
        entries = sorted(store.keys(path), key=lambda e: e.seq)
        excess = len(entries) - wanted
        if not at_open or excess <= 0:
            raise RuntimeError(_fit_failure(path, wanted, len(entries), exc)) from exc
        logger.warning(
            "DAX device %s holds %d entries, more than the %d slots it is configured for: removing "
            "the %d oldest", path, len(entries), wanted, excess)
        store.remove_many([e.key for e in entries[:excess]])
        try:
            store.device_resize(path, wanted * slot_bytes, "migrate")
        except DaxKVError as again:
            raise RuntimeError(_fit_failure(path, wanted, None, again)) from again
    except DaxKVError as exc:
        raise RuntimeError(_fit_failure(path, wanted, None, exc)) from exc
    return store.device_layout(path)


def _fit_failure(path: str, wanted: int, held: Optional[int], exc: DaxKVError) -> str:
    if held is not None and held > wanted:
        return f"Failed to open dax device {path}: it holds {held} entries, more than the {wanted} slots it is configured for"
    return f"Failed to resize dax arena {path} to {wanted} slots: {exc.message}"


# Seconds between close()'s looks at whether the library still holds a
# batch, once no completion came (see AsyncEngine.close).
_ORPHAN_CHECK = 0.5


class Submission:
    """Whether AsyncEngine.submit had the library take a batch (see there)."""

    __slots__ = ("accepted",)

    def __init__(self) -> None:
        self.accepted = False


class AsyncEngine:
    """Batches submitted with daxkv_submit, completed by one thread that
    sleeps on the store's event fd: each completion runs its callback with
    (result, batch) on that thread. close() waits for every submitted batch
    to complete first, so nothing the library still touches is freed."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._pending: Dict[int, Tuple[Any, Callable[[int, Any], None]]] = {}
        self._submitting: Set[int] = set()  # tags registered in _pending, their calls not yet answered
        self._orphans: List[Any] = []  # registered, never taken by the library (see close)
        self._abandoned = False  # the store was closed under the engine
        self._close_pipe_on_exit = False  # close() ran on the thread itself
        self._next_tag = 1
        self._event_fd = store.event_fd()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, op: int, batch: Any, flags: int, done: Callable[[int, Any], None],
               submission: Optional["Submission"] = None) -> None:
        """Queue batch (a PutBatch, GetBatch or _Batch); done(result, batch)
        runs when it completed. Raises on a refused submission. Whatever
        raises, submission.accepted says whether the library took the
        batch: an exception with it set (an interrupt as the library's call
        returned: Python runs signal handlers right after a call) leaves
        the batch to its completion, which runs done() as usual, for the
        library may be copying from or into its buffers; without it, done()
        never runs and the caller lets go of what it holds for the batch."""
        sub = submission if submission is not None else Submission()
        sub.accepted = False
        items = batch.batch if hasattr(batch, "batch") else batch
        tag = None
        # Every step from the registration on is undone by the finally, by
        # tag, once or again (an interrupt may land anywhere, the exit of
        # the with block included).
        try:
            with self._lock:
                if self._stopping or self._abandoned:
                    raise Shutdown(-_errno.ESHUTDOWN, "the adapter is closing", "daxkv_submit")
                tag = self._next_tag
                self._next_tag += 1
                # Registered first: a small batch may complete inline and be
                # polled before daxkv_submit returns.
                self._pending[tag] = (batch, done)
                self._submitting.add(tag)
            fn = library().daxkv_submit
            ptr, n = items.items, items.n
            h = self._store._enter()
            try:
                sub.accepted = True  # nothing that runs Python code before the call
                rc = fn(h, op, ptr, n, flags, tag)
                if rc < 0:
                    sub.accepted = False
                    raise _error(rc, "daxkv_submit")
            finally:
                self._store._leave()
        finally:
            if tag is not None:
                with self._lock:
                    self._submitting.discard(tag)
                    if not sub.accepted:
                        self._pending.pop(tag, None)
                    self._drained.notify_all()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._lock:
                closes_pipe = self._close_pipe_on_exit
            if closes_pipe:
                self._close_pipe()

    def _loop(self) -> None:
        L = library()
        cap = 64
        arr = (_lib.Completion * cap)()
        poller = select.poll()
        poller.register(self._event_fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            with self._lock:
                if self._stopping and not self._pending:
                    return
            poller.poll()
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
            while True:
                try:
                    h = self._store._enter()
                except Shutdown:
                    self._complete_abandoned()
                    return
                try:
                    n = L.daxkv_poll(h, arr, cap)
                finally:
                    self._store._leave()
                if n <= 0:
                    break
                for i in range(n):
                    self._complete(arr[i].tag, arr[i].result)

    def _complete_abandoned(self) -> None:
        """The store was closed under the engine (its owner's close, not the
        engine's): the completions it had not yet handed over are gone with
        it. Once it is freed, the library touches no item any more and
        every item holds its final status (shutdown posts a completion for
        every batch), so each batch still pending completes here with
        -ESHUTDOWN; its callback reads what became of each item."""
        self._store._freed.wait()
        with self._lock:
            self._abandoned = True  # no new submissions
            while self._submitting:  # each is refused by the closed store
                self._drained.wait()
            tags = list(self._pending)
        for tag in tags:
            self._complete(tag, -_errno.ESHUTDOWN)

    def _complete(self, tag: int, result: int) -> None:
        with self._lock:
            entry = self._pending.pop(tag, None)
        if entry is not None:
            batch, done = entry
            try:
                done(result, batch)
            except Exception:
                logger.exception("completion of a DAX batch failed")
        with self._lock:
            self._drained.notify_all()

    def _library_idle(self) -> bool:
        """Whether the library has posted every batch submitted to the store."""
        try:
            st = raw_stats(self._store)
        except Shutdown:
            return False  # closed under the engine: the loop completes what is left
        return st.async_submitted == st.async_completed + st.async_cancelled

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def on_thread(self) -> bool:
        """Whether the caller is the completion thread (in a callback)."""
        return threading.current_thread() is self._thread

    def close(self) -> None:
        """Wait for every submitted batch, then stop the thread."""
        with self._lock:
            if self._stopping and not self._thread.is_alive():
                return
            self._stopping = True
            if threading.current_thread() is self._thread:
                # From a completion callback: only this thread completes
                # the batches still pending, and it cannot join itself. It
                # completes them, ends its loop and closes the pipe then.
                self._close_pipe_on_exit = True
                return
            quiet = 0
            while self._pending:
                if self._drained.wait(timeout=_ORPHAN_CHECK):
                    quiet = 0
                    continue
                # Nothing completed for a while. A batch registered here that
                # the library never took (its submitter interrupted between
                # the two: Python runs signal handlers between any two
                # steps) never completes: once the library has posted every
                # batch it took, twice in a row, those left are such. They
                # stay referenced (a submitter may still be in its call), but
                # close waits for them no more.
                quiet = quiet + 1 if self._library_idle() else 0
                if quiet >= 2:
                    logger.warning("DAX engine close: %d batches were registered but never taken by the "
                                   "library (their submitters were interrupted?); closing without them",
                                   len(self._pending))
                    self._orphans.extend(self._pending.values())
                    self._pending.clear()
        try:
            os.write(self._wake_w, b"x")
        except (OSError, ValueError):
            pass  # closed already by the thread's own close()
        self._thread.join()
        self._close_pipe()

    def _close_pipe(self) -> None:
        # Once: the thread's exit and a close() from another thread may
        # both get here, and a number closed twice may be another file's.
        with self._lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd < 0:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
