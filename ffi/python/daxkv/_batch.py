"""Batches: many keys in one library call.

_Batch builds a batch's daxkv_item array column by column, and the
_*_results functions turn its items' statuses into what a batch method
returns, raising BatchError for the items that failed. They serve the
synchronous batch methods (_BatchCalls, mixed into Store), the CUDA batch
calls (_cuda) and the completions of submitted batches (_async) alike.
memcpy_batch, the library's batched copy between caller buffers, is here
too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import operator
from array import array
from itertools import accumulate
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from . import _lib
from ._buffers import _BYTES_OFFSET, Buffer, Key, _Buffers, _keys
from ._library import _errmsg, _error, _item_errors, library
from .errors import BatchError, BufferTooSmall, DaxKVError, InvalidArgument, Shutdown


def _key_columns(words: memoryview, stride: int, key_word: int, len_word: int, keys: List[bytes]) -> bytes:
    """Point the key and key-length columns of an item array (its 8-byte
    words, stride words an item) at keys, joined into one blob. Returns
    the blob: it must live as long as the array is used."""
    blob = b"".join(keys)
    lengths = array("Q", map(len, keys))
    offsets = array("Q", accumulate(lengths, initial=id(blob) + _BYTES_OFFSET))
    del offsets[-1]
    words[key_word::stride] = offsets
    words[len_word::stride] = lengths
    return blob


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
        self.keys_blob = _key_columns(self.words, _lib.ITEM_WORDS, _lib.W_KEY, _lib.W_KEY_LEN, keys)

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


def _fail(
    op: str, statuses: List[int], ok: Callable[[int], bool], results: list, lens: Optional[List[int]] = None,
    detail: Optional[Callable[[], str]] = None,
) -> None:
    """Raise BatchError for the items whose status is not ok(). detail:
    the library's message of this thread's batch just run (_errmsg), for a
    synchronous call; None for a completion polled later (the message is
    then the dispatcher thread's)."""
    errors = _item_errors(op, statuses, [i for i, s in enumerate(statuses) if not ok(s)], detail)
    if lens is not None:
        # A get item too small for its value has the value's length in its
        # len column: the same needed that get_into's BufferTooSmall has.
        for i, e in errors.items():
            if isinstance(e, BufferTooSmall):
                e.needed = lens[i]
    if errors:
        raise BatchError(op, statuses, errors, results)


# What a batch returns per item, from its statuses. count, where given, is
# a PREFIX batch's result: only that many items (the prefix) are reported.
# The item the prefix stopped at is still checked: a miss ends a prefix,
# but a failure (a destination too small, a bad key) is raised as it is
# without PREFIX, not passed off as a miss.


def _prefix_statuses(st: List[int], count: int) -> List[int]:
    """The statuses a PREFIX batch's errors are looked for in: the
    prefix's and the one of the item it stopped at."""
    return st[: count + 1]


def _put_results(op: str, st: List[int], detail: Optional[Callable[[], str]] = None) -> List[bool]:
    """True if stored, False if present or in flight (nothing written)."""
    results = [s == 0 for s in st]
    _fail(op, st, lambda s: s >= 0, results, detail=detail)
    return results


def _get_results(op: str, st: List[int], lens: List[int], count: Optional[int] = None,
                 detail: Optional[Callable[[], str]] = None) -> List[Optional[int]]:
    """The value's length, None for a miss."""
    results: List[Optional[int]] = [n if s == 0 else None for s, n in zip(st, lens)]
    if count is not None:
        results, st = results[:count], _prefix_statuses(st, count)
    _fail(op, st, lambda s: s == 0 or s == -_errno.ENOENT, results, lens, detail)
    return results


def _contains_results(op: str, st: List[int], count: Optional[int] = None,
                      detail: Optional[Callable[[], str]] = None) -> List[bool]:
    """True if the key is committed."""
    results = [s == 1 for s in st]
    if count is not None:
        results, st = results[:count], _prefix_statuses(st, count)
    _fail(op, st, lambda s: s >= 0, results, detail=detail)
    return results


def _remove_results(op: str, st: List[int], detail: Optional[Callable[[], str]] = None) -> List[bool]:
    """True if removed; misses, and pinned or in-flight keys left in place
    (no force), are False rather than errors."""
    results = [s == 0 for s in st]
    _fail(op, st, lambda s: s >= 0 or s in (-_errno.ENOENT, -_errno.EBUSY), results, detail=detail)
    return results


class _BatchCalls:
    """Store's synchronous batch methods (mixed into Store, which provides
    _enter, _leave and get)."""

    def _run(self, fn_name: str, batch: _Batch, flags: int) -> int:
        h = self._enter()
        try:
            rc = getattr(library(), fn_name)(h, batch.items, batch.n, flags)
            if rc < 0:
                raise _error(rc, fn_name)
        finally:
            self._leave()
        return rc

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
            addrs, lens = bufs.add_many(values, False, "values")
            batch.set_column(_lib.W_DATA, addrs)
            batch.set_column(_lib.W_LEN, lens)
            if metas is not None:
                mp = [(0, 0) if m is None else bufs.add(m, False, "metas", i) for i, m in enumerate(metas)]
                batch.set_column(_lib.W_META, [p[0] for p in mp])
                batch.set_column(_lib.W_META_LEN, [p[1] for p in mp])
            self._run("daxkv_put_batch", batch, _lib.REPLACE if replace else 0)
        return _put_results("daxkv_put_batch", batch.statuses(), _errmsg)

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
            addrs, caps = bufs.add_many(dsts, True, "dsts")
            batch.set_column(_lib.W_DATA, addrs)
            batch.set_column(_lib.W_LEN, caps)
            count = self._run("daxkv_get_batch", batch, _lib.PREFIX if prefix else 0)
        return _get_results(
            "daxkv_get_batch", batch.statuses(), batch.column(_lib.W_LEN), count if prefix else None, _errmsg
        )

    def get_many_into_ptr(
        self, keys: Sequence[Key], addrs: Sequence[int], capacities: Sequence[int], *, prefix: bool = False
    ) -> List[Optional[int]]:
        """get_many_into to raw addresses (e.g. tensor.data_ptr()) and capacities."""
        _check_lengths("get_many_into_ptr", keys, addrs, "addrs")
        _check_lengths("get_many_into_ptr", keys, capacities, "capacities")
        return self.get_many_into(keys, list(zip(addrs, capacities)), prefix=prefix)

    def get_many(self, keys: Sequence[Key], *, prefix: bool = False) -> List[Optional[bytes]]:
        """Values as bytes, None for misses; with prefix=True only the run
        of hits from the start. A key that fails (a bad key, ...) raises
        BatchError once the others were read, as get_many_into does (with
        prefix=True, the run ends there); a closed store raises Shutdown."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return []
        out: List[Optional[bytes]] = []
        statuses: List[int] = []
        errors: Dict[int, DaxKVError] = {}
        for i, k in enumerate(kb):
            try:
                v = self.get(k)
            except Shutdown:
                raise
            except DaxKVError as exc:
                errors[i] = exc
                statuses.append(exc.code)
                if prefix:
                    break
                out.append(None)
                continue
            statuses.append(0 if v is not None else -_errno.ENOENT)
            if v is None and prefix:
                break
            out.append(v)
        if errors:
            raise BatchError("get_many", statuses, errors, out)
        return out

    def contains_many(self, keys: Sequence[Key], *, pin: bool = False) -> List[bool]:
        """Per key, whether it is committed. pin=True pins every hit
        (LMCache's lookup-and-lock); release with unpin_many. When an item
        fails (BatchError), the hits it pinned are unpinned again."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return []
        batch = _Batch(kb)
        with self._pinning(kb, batch, pin):
            self._run("daxkv_contains_batch", batch, _lib.PIN if pin else 0)
            return _contains_results("daxkv_contains_batch", batch.statuses(), detail=_errmsg)

    def prefix_length(self, keys: Sequence[Key], *, pin: bool = False) -> int:
        """Number of consecutive committed keys from the start (pinning them
        when pin=True). A key that fails (a bad key, ...) raises BatchError
        rather than ending the prefix; the keys pinned are unpinned again."""
        kb = _keys(keys)
        if not kb:
            self._enter(), self._leave()
            return 0
        batch = _Batch(kb)
        with self._pinning(kb, batch, pin):
            count = self._run("daxkv_contains_batch", batch, _lib.PREFIX | (_lib.PIN if pin else 0))
            st = _prefix_statuses(batch.statuses(), count)
            _fail("daxkv_contains_batch", st, lambda s: s >= 0, [True] * count, detail=_errmsg)
            return count

    @contextlib.contextmanager
    def _pinning(self, kb: List[bytes], batch: _Batch, pin: bool) -> Iterator[None]:
        """Around a lookup that may pin its hits, until it returns them:
        whatever it raises (a failed item's BatchError, a KeyboardInterrupt
        as the library call returns) unpins what the library pinned, which
        its caller would otherwise never learn of; a pin left behind keeps
        the entry from being evicted or removed for good."""
        try:
            yield
        except BaseException:
            if pin:
                self._drop_pins(kb, batch.statuses())  # items not reached: status 0
            raise

    def _drop_pins(self, kb: List[bytes], statuses: List[int]) -> None:
        """Unpin the hits (status 1) of a pinning lookup that raises."""
        hits = [k for k, s in zip(kb, statuses) if s == 1]
        if hits:
            try:
                self.unpin_many(hits)
            except DaxKVError:
                pass  # the store is closing: the pins go with it

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
        return _remove_results("daxkv_remove_batch", batch.statuses(), _errmsg)

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
        _fail("daxkv_unpin_batch", st, lambda s: s >= 0 or s == -_errno.ENOENT, results, detail=_errmsg)
        return results


def _length(value: Any, index: int) -> int:
    """An integer length (numpy's integers too); int() would also take
    2.5 as 2 and "2" as 2."""
    if isinstance(value, bool):
        raise TypeError(f"lengths[{index}]: expected an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"lengths[{index}]: expected an int, got {type(value).__name__}") from None


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
        d = [bufs.add(x, True, "dsts", i) for i, x in enumerate(dsts)]
        s = [bufs.add(x, False, "srcs", i) for i, x in enumerate(srcs)]
        lens = [sp[1] for sp in s] if lengths is None else [_length(x, i) for i, x in enumerate(lengths)]
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
