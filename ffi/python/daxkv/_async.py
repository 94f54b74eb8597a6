"""Asynchronous batches: daxkv_submit, the event fd and daxkv_poll, and
asyncio on top of them.

_AsyncCalls (Store.submit, poll, event_fd, submit_async, ..., mixed into
Store) keeps per store an _AsyncState: the batches submitted and not yet
polled (_Pending: everything the library may still touch), completions an
asyncio reader polled for others, and the futures awaiting theirs. A
polled batch becomes a Completion, whose results() are what the matching
synchronous batch method returns.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from . import _lib
from ._batch import (
    _Batch,
    _check_lengths,
    _contains_results,
    _get_results,
    _prefix_statuses,
    _put_results,
    _remove_results,
)
from ._buffers import Buffer, Key, _Buffers, _keys
from ._library import _error, _optional, strerror
from .errors import DaxKVError, InvalidArgument, Shutdown, error_class


class _AsyncCalls:
    """Store's asynchronous batch methods (mixed into Store, which provides
    _enter, _leave, _cond and the _async attribute, and calls _drop_pending
    when it closes)."""

    def _async_state(self) -> "_AsyncState":
        a = self._async
        if a is None:
            with self._cond:
                if self._async is None:
                    self._async = _AsyncState()
                    self._box[1] = self._async  # for the finalizer (_store._release)
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
                addrs, lens = bufs.add_many(buffers, writable, "buffers")
                batch.set_column(_lib.W_DATA, addrs)
                batch.set_column(_lib.W_LEN, lens)
                if metas is not None:
                    mp = [(0, 0) if m is None else bufs.add(m, False, "metas", i) for i, m in enumerate(metas)]
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
        # The batch is taken back (and its buffers let go) only when the
        # library certainly does not hold it: the call was never made, or it
        # returned an error. An exception raised between the call's return
        # and its result being looked at (KeyboardInterrupt: Python runs
        # signal handlers right after a call returns) leaves it pending: the
        # library may be copying into its buffers, and its completion, if
        # any, is polled as usual.
        refused = True
        try:
            # Inside the cleanup's reach: a closed store refuses here, and
            # the batch registered above must not stay pending with its
            # buffers' exports held.
            h = self._enter()
            try:
                items = batch.items if batch is not None else None
                n = len(kb)
                refused = False  # nothing that runs Python code before the call
                rc = fn(h, code, items, n, flags, tag)
                if rc < 0:
                    refused = True
                    raise _error(rc, "daxkv_submit")
            finally:
                self._leave()
        finally:
            if refused:
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
        timeout = _timeout_seconds(timeout, "poll")
        a = self._async_state()
        with a.lock:
            out = [a.ready.popleft() for _ in range(min(max, len(a.ready)))]
        if len(out) < max:
            out.extend(self._poll_raw(max - len(out), timeout if not out else 0.0))
        return out

    def _poll_raw(self, cap: int, timeout: Optional[float]) -> List["Completion"]:
        import time

        fn = _optional("daxkv_poll")
        a = self._async_state()
        # No more can complete than were submitted: a max of millions
        # allocated that many completions up front (or failed with a bare
        # MemoryError) to take a handful.
        with a.lock:
            cap = min(cap, max(64, len(a.pending)))
        arr = (_lib.Completion * cap)()
        fds = [self.event_fd(), a.stop_fd()] if timeout != 0 else []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            h = self._enter()
            try:
                rc = fn(h, arr, cap)
                if rc < 0:
                    raise _error(rc, "daxkv_poll")
                if rc > 0 or timeout == 0 or a.stopped:
                    # Once shut down, nothing more can complete: waiting
                    # would never end.
                    break
                # Nothing waiting: sleep on the eventfd, then poll again
                # (another thread may have taken what woke us). The sleep
                # counts as a call in flight: close() wakes it through the
                # stop fd and waits for it before the eventfd is closed.
                import select

                r, _, _ = select.select(fds, [], [], timeout)
            finally:
                self._leave()
            if not r:
                break
            # Woken, but another thread may take what woke us: wait on
            # for what is left of the timeout, not return at once.
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())
        return self._deliver([arr[i] for i in range(rc)])

    def _stop_polls(self) -> None:
        # shutdown() and close(): a poll asleep waiting for a completion
        # wakes up, and later ones do not sleep.
        self._async_state().stop()

    def _deliver(self, raw: List["_lib.Completion"]) -> List["Completion"]:
        a = self._async_state()
        out: List[Completion] = []
        for c in raw:
            with a.lock:
                p = a.pending.pop(c.tag, None)
                waiter = a.waiters.pop(c.tag, None)
                unclaimed = c.tag in a.unclaimed
                a.unclaimed.discard(c.tag)
            comp = _completion(c, p)
            if p is not None:
                self._drop_pins_of_failed_lookup(comp)
            if unclaimed:
                self._drop_unclaimed(comp)
            elif waiter is not None:
                loop, fut = waiter
                if not _in_loop(loop, _set_future, fut, comp, self._drop_unclaimed):
                    self._drop_unclaimed(comp)
            else:
                out.append(comp)
        return out

    def _drop_pins_of_failed_lookup(self, comp: "Completion") -> None:
        # A pinning lookup whose results() raises (an item failed, or the
        # batch did) unpins its hits, as contains_many and prefix_length
        # do; here, once, when it is polled, however often results() is
        # called after (or never).
        st = self._lookup_statuses(comp)
        if st is not None and (comp.result < 0 or any(s < 0 for s in st)):
            self._drop_pins(comp.keys, st)

    def _drop_unclaimed(self, comp: "Completion") -> None:
        """A completion its awaiting coroutine will never receive (the await
        was cancelled, or its loop closed): what it holds for the caller is
        let go. Its buffers were released when it was polled; the hits of a
        pinning lookup that succeeded are unpinned here, since nobody is
        left who knows which keys they are (one that failed was unpinned
        when it was polled)."""
        st = self._lookup_statuses(comp)
        if st is not None and comp.result >= 0 and all(s >= 0 for s in st):
            self._drop_pins(comp.keys, st)

    @staticmethod
    def _lookup_statuses(comp: "Completion") -> Optional[List[int]]:
        """A pinning lookup's statuses (with prefix, those of its prefix);
        None for any other completion."""
        if comp.op != _lib.OP_CONTAINS or not comp.flags & _lib.PIN or comp.statuses is None:
            return None
        if comp.result >= 0 and comp.flags & _lib.PREFIX:
            return _prefix_statuses(comp.statuses, comp.result)
        return comp.statuses

    async def submit_async(
        self, op: Union[int, str], keys: Sequence[Key], buffers: Optional[Sequence[Buffer]] = None, **kw: Any
    ) -> "Completion":
        """submit() and await the batch's Completion on the running asyncio
        loop (through loop.add_reader on the event fd).

        While a coroutine waits, the loop's reader polls the store:
        completions of batches nobody awaits are kept for the next poll().
        Cancelling the await does not cancel the batch; its completion is
        then dropped by the next poll() (or close()) after it finished,
        which releases its buffers and unpins the hits of a pinning lookup
        (nobody is left to unpin them).
        """
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fd = self._reader_add(loop)
        tag = None
        try:
            tag = self._submit(op, keys, buffers, waiter=(loop, fut), **kw)
            self._on_readable()  # it may have completed inline, before the reader saw it
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Cancelled after the completion was handed over (a task
                # cancelled while its result waits to be sent in): nobody
                # else will see it.
                self._drop_unclaimed(fut.result())
            elif tag is not None:
                self._abandon(tag, fut)
            raise
        finally:
            self._reader_remove(loop, fd)

    def _abandon(self, tag: int, fut: Any) -> None:
        """Nobody awaits tag's completion any more: it is dropped when it is
        polled (_drop_unclaimed), whether or not fut's loop runs by then
        (a loop stopped for good never runs a hand-over queued to it)."""
        a = self._async_state()
        with a.lock:
            if a.waiters.pop(tag, None) is not None:
                a.unclaimed.add(tag)
        fut.cancel()  # a hand-over already queued finds it done, and drops it

    def _reader_add(self, loop: Any) -> int:
        """Count a coroutine that waits on loop, and make sure loop watches
        the store's events; returns the descriptor it watches.

        That is the binding's own duplicate of the store's event fd, made
        while the store is open and closed once no coroutine waits any
        more. The loops know a reader by its descriptor's number, and
        close() closes the store's event fd while coroutines still await
        it (they are failed, and remove their reader when they next run):
        a number freed then and taken by another file (another store's
        event fd, a socket) would have that file's reader removed by them,
        or, added to the loop before they ran, never watched."""
        import os

        a = self._async_state()
        h = self._enter()  # the store's event fd stays open meanwhile
        try:
            with a.lock:
                if a.reader_fd is None:
                    efd = _optional("daxkv_event_fd")(h)
                    if efd < 0:
                        raise _error(efd, "daxkv_event_fd")
                    a.reader_fd = os.dup(efd)  # close-on-exec, as every fd Python makes
                fd = a.reader_fd
                n = a.readers.get(loop, 0)
                a.readers[loop] = n + 1
        finally:
            self._leave()
        if n == 0:
            try:
                loop.add_reader(fd, self._on_readable)
            except BaseException:
                self._reader_remove(loop, fd, added=False)
                raise
        return fd

    def _reader_remove(self, loop: Any, fd: int, added: bool = True) -> None:
        import os

        a = self._async_state()
        with a.lock:
            n = a.readers[loop] - 1
            if n:
                a.readers[loop] = n
            else:
                del a.readers[loop]
        if n == 0 and added:
            loop.remove_reader(fd)
        with a.lock:
            # No coroutine of any loop waits: no loop watches it.
            last = not a.readers and a.reader_fd == fd
            if last:
                a.reader_fd = None
        if last:
            os.close(fd)

    def _on_readable(self) -> None:
        try:
            done = self._poll_raw(64, 0.0)
        except Shutdown:
            done = []
            a = self._async_state()
            # Closed: the duplicate may stay readable until the coroutines
            # failed below remove their readers; empty it so that the loop
            # does not call this over and over meanwhile.
            a.drain_reader_fd()
            with a.lock:
                waiters, a.waiters = a.waiters, {}
            for loop, fut in waiters.values():
                _in_loop(loop, _fail_future, fut, Shutdown(-_errno.ESHUTDOWN, "the store is closed", "daxkv_poll"))
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

    def _drop_pending(self) -> None:
        a = self._async
        if a is not None:
            a.drop()


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
    __slots__ = (
        "lock", "pending", "ready", "waiters", "unclaimed", "readers", "reader_fd", "next_tag", "stopped",
        "_stop_pipe", "_pipe_pid", "_freed",
    )

    def __init__(self) -> None:
        import collections

        self.lock = threading.Lock()
        self.pending: Dict[int, _Pending] = {}
        self.ready: "collections.deque[Completion]" = collections.deque()  # polled by an asyncio reader
        self.waiters: Dict[int, Tuple[Any, Any]] = {}  # tag -> (loop, future)
        self.unclaimed: Set[int] = set()  # tags whose awaits were given up (_abandon)
        self.readers: Dict[Any, int] = {}  # loop -> coroutines waiting on it
        self.reader_fd: Optional[int] = None  # what they watch (_AsyncCalls._reader_add)
        self.next_tag = 1
        self.stopped = False  # shut down or closed: nothing more completes
        # (read end, write end), made by the first poll that sleeps:
        # readable for good once stopped.
        self._stop_pipe: Optional[Tuple[int, int]] = None
        self._pipe_pid = 0  # the process that made the pipe
        self._freed = False  # the store is freed: no pipe is made any more

    def stop_fd(self) -> int:
        """A descriptor readable once the store is shut down, for a poll's
        sleep beside the event fd."""
        import os

        with self.lock:
            if self._freed:
                # A poll that got past its check of the store as it closed.
                raise Shutdown(-_errno.ESHUTDOWN, "the store is closed", "daxkv_poll")
            if self._stop_pipe is None or self._pipe_pid != os.getpid():
                # A pipe inherited through fork is shared with the parent:
                # a child's own is made afresh (closing its copies of the
                # parent's leaves the parent's alone).
                for fd in self._stop_pipe or ():
                    os.close(fd)
                self._stop_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                self._pipe_pid = os.getpid()
                if self.stopped:
                    os.write(self._stop_pipe[1], b"x")
            return self._stop_pipe[0]

    def stop(self) -> None:
        import os

        with self.lock:
            if self.stopped:
                return
            self.stopped = True
            # Not into a pipe inherited through fork: it is the parent's
            # too, and would wake the parent's polls for good (a poll
            # with a timeout returned at once, one without spun).
            if self._stop_pipe is not None and self._pipe_pid == os.getpid():
                os.write(self._stop_pipe[1], b"x")

    def drain_reader_fd(self) -> None:
        import os

        with self.lock:
            if self.reader_fd is not None and self._freed:
                try:
                    os.read(self.reader_fd, 8)  # non-blocking, as the store made it
                except OSError:
                    pass

    def close_stop_fd(self) -> None:
        # Only once no call is in flight (close()): no poll sleeps on it.
        import os

        with self.lock:
            pipe, self._stop_pipe = self._stop_pipe, None
            self._freed = True
        for fd in pipe or ():
            os.close(fd)

    def drop(self) -> None:
        """Once the store is freed (close(), or the garbage-collection
        finalizer of a store never closed): the library touches no item any
        more, so completions nobody polled are lost and their buffers
        released, awaiting coroutines fail and the stop pipe is closed."""
        self.close_stop_fd()
        with self.lock:
            pending, self.pending = self.pending, {}
            waiters, self.waiters = self.waiters, {}
            self.unclaimed.clear()
            self.ready.clear()
        for p in pending.values():
            p.bufs.close()
        for loop, fut in waiters.values():
            _in_loop(loop, _fail_future, fut, Shutdown(-_errno.ESHUTDOWN, "the store was closed", "daxkv_poll"))


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
        (Cancelled, ...) or BatchError, as those methods do; a pinning
        lookup that raises had its hits unpinned when it was polled, as
        contains_many unpins them."""
        err = self.error
        if err is not None:
            raise err
        if self.statuses is None:
            raise ValueError(f"no items for tag {self.tag}: it was not submitted through this Store")
        st = self.statuses
        op = f"daxkv_submit {self.op_name}"
        count = self.result if self.flags & _lib.PREFIX else None
        if self.op == _lib.OP_PUT:
            return _put_results(op, st)
        if self.op == _lib.OP_GET:
            return _get_results(op, st, self.lengths or [0] * len(st), count)
        if self.op == _lib.OP_CONTAINS:
            return _contains_results(op, st, count)
        return _remove_results(op, st)


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


#: The longest wait a timeout gives, in seconds (what daxkv_device_wait_drained
#: takes in milliseconds); a longer one, infinity included, waits without limit.
TIMEOUT_MAX_S = (2**31 - 1) / 1000


def _timeout_seconds(timeout: Any, op: str) -> Optional[float]:
    """A caller's timeout in seconds as a wait takes it: None (no limit) for
    None and for timeouts beyond TIMEOUT_MAX_S, which select() and the
    library's millisecond timeouts cannot represent. InvalidArgument for
    anything but a number >= 0 (NaN, bool and str included)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise InvalidArgument(-_errno.EINVAL, f"timeout must be >= 0 or None, got {timeout!r}", op)
    if timeout > TIMEOUT_MAX_S:
        return None
    return float(timeout)


def _in_loop(loop: Any, fn: Callable[..., None], *args: Any) -> bool:
    """fn(*args) on an awaiting coroutine's loop; False when that loop is
    closed since (its await was cancelled and asyncio.run returned): nobody
    is left to tell, the caller drops what it was handing over, and the
    poll or close handing it over goes on with the others."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        if not loop.is_closed():
            raise
        return False
    return True


def _set_future(fut: Any, value: Any, drop: Callable[[Any], None]) -> None:
    """Hand value to fut, or to drop when fut was cancelled meanwhile."""
    if fut.done():
        drop(value)
    else:
        fut.set_result(value)


def _fail_future(fut: Any, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
