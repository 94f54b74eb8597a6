"""Asynchronous batches: Store.submit / poll / event_fd and the asyncio helpers.

Bad inputs covered here (each must raise, queue nothing and leave nothing
pending in the binding):
  - an op the library does not know (99): InvalidArgument from daxkv_submit
  - an unknown op name ("frobnicate"): InvalidArgument
  - an op of the wrong type (1.0, None, True): TypeError
  - put/get without buffers, contains/remove with buffers, metas for get: TypeError
  - keys and buffers (or metas) of different lengths: InvalidArgument
  - a single key instead of a sequence, a key of the wrong type: TypeError
  - a read-only destination (bytes) for get: TypeError
  - a flag the op does not take (replace for get, pin for put): InvalidArgument
  - a tag out of range (-1, 2**64) or not an int: InvalidArgument
  - a tag whose batch was not polled yet: InvalidArgument
  - poll(max=0), poll(timeout=-1), poll(timeout=NaN), poll(timeout="1"),
    poll(timeout=True): InvalidArgument; poll(timeout=inf) and 1e300 wait
    without limit; poll(max=2**31) and 10**7 take what completed, without
    allocating for max
  - submit after shutdown: Shutdown (poll still works)
  - submit / poll / event_fd after close: Shutdown
  - close() or shutdown() while another thread waits in poll(timeout=None):
    the wait ends (Shutdown after close, [] after shutdown); poll(timeout=None)
    after shutdown returns at once
  - poll() meeting the completion of an await cancelled on an event loop
    that was closed since: the completion dropped, the others returned
  - submit of a get into a bytearray after close or shutdown: Shutdown,
    nothing pending and the bytearray's export released
"""

import array
import asyncio
import errno
import gc
import os
import select
import selectors
import threading
import time
import weakref

import pytest

import daxkv
from conftest import SLOT, open_store

BIG = 100  # items: more than the library runs inline, so the dispatcher thread runs it


@pytest.fixture
def sstore(tmp_path):
    """Small slots, room for a few hundred entries: batches of BIG items."""
    s = open_store(tmp_path, slot_bytes=8192, size=32 * SLOT)
    yield s
    s.close()


def readable(fd, timeout=0.0):
    return bool(select.select([fd], [], [], timeout)[0])


def test_put_get_contains_remove_round_trip(store):
    keys = [f"k{i}".encode() for i in range(5)]
    vals = [bytes([i]) * (100 + i) for i in range(5)]
    t = store.submit(daxkv.OP_PUT, keys, vals)
    (c,) = store.poll(timeout=5)
    assert (c.tag, c.op, c.op_name, c.result) == (t, daxkv.OP_PUT, "put", 5)
    assert c.statuses == [0] * 5 and c.lengths == [len(v) for v in vals]
    assert c.results() == [True] * 5 and c.ok and c.error is None

    dsts = [bytearray(200) for _ in keys + [b"miss"]]
    t = store.submit("get", keys + [b"miss"], dsts)
    (c,) = store.poll(timeout=5)
    assert c.tag == t and c.result == 5
    assert c.statuses == [0] * 5 + [-errno.ENOENT]
    assert c.results() == [len(v) for v in vals] + [None]
    assert c.buffers is not None and c.buffers[0] is dsts[0]
    for v, d in zip(vals, dsts):
        assert bytes(d[: len(v)]) == v

    t = store.submit("contains", [keys[0], b"miss"])
    (c,) = store.poll(timeout=5)
    assert c.result == 1 and c.statuses == [1, 0] and c.results() == [True, False] and c.lengths is None

    t = store.submit(daxkv.OP_REMOVE, [keys[0], b"miss"])
    (c,) = store.poll(timeout=5)
    assert c.result == 1 and c.results() == [True, False]
    assert keys[0] not in store and keys[1] in store


def test_put_existed_replace_and_metas(store):
    store.put(b"a", b"old")
    store.submit("put", [b"a"], [b"new"])
    (c,) = store.poll(timeout=5)
    assert c.statuses == [daxkv._lib.EXISTED] and c.results() == [False] and c.result == 0
    store.submit("put", [b"a"], [b"new"], replace=True, metas=[b"m1"])
    (c,) = store.poll(timeout=5)
    assert c.results() == [True]
    with store.lease(b"a") as lease:
        assert lease.tobytes() == b"new" and lease.meta == b"m1"


def test_get_prefix_and_contains_prefix_pin(store):
    store.put_many([b"a", b"b", b"d"], [b"1", b"2", b"4"])
    store.submit("get", [b"a", b"b", b"c", b"d"], [bytearray(4) for _ in range(4)], prefix=True)
    (c,) = store.poll(timeout=5)
    assert c.result == 2 and c.results() == [1, 1]
    store.submit("contains", [b"a", b"b", b"c", b"d"], prefix=True, pin=True)
    (c,) = store.poll(timeout=5)
    assert c.result == 2 and c.results() == [True, True]
    assert store.stats().entries_pinned == 2
    store.submit("remove", [b"a"])
    (c,) = store.poll(timeout=5)
    assert c.statuses == [-errno.EBUSY] and c.results() == [False]
    store.submit("remove", [b"a"], force=True)
    (c,) = store.poll(timeout=5)
    assert c.results() == [True]


def test_a_pinning_lookup_that_fails_unpins_its_hits_as_contains_many_does(store):
    # Bad inputs: an empty key among hits, with and without prefix, results()
    # called twice, and a completion whose results() is never called. The
    # hits stayed pinned: a remove without force was refused for good.
    store.put_many([b"a", b"b"], [b"1", b"2"])
    for prefix in (False, True):
        store.submit("contains", [b"a", b"b", b""], pin=True, prefix=prefix)
        (c,) = store.poll(timeout=5)
        for _ in range(2):
            with pytest.raises(daxkv.BatchError) as info:
                c.results()
            assert info.value.statuses[:2] == [1, 1]
        assert store.stats().entries_pinned == 0, prefix
    store.submit("contains", [b"", b"a"], pin=True)
    store.poll(timeout=5)
    assert store.stats().entries_pinned == 0
    # A lookup that succeeds keeps its pins.
    store.submit("contains", [b"a", b"zz"], pin=True)
    (c,) = store.poll(timeout=5)
    assert c.results() == [True, False] and store.stats().entries_pinned == 1
    store.unpin_many([b"a"])
    assert store.remove(b"a") and store.remove(b"b")


def test_batch_on_dispatcher_thread(sstore):
    store = sstore
    keys = [f"big{i}".encode() for i in range(BIG)]
    vals = [i.to_bytes(4, "little") * 256 for i in range(BIG)]
    t1 = store.submit("put", keys, vals)
    dsts = [bytearray(1024) for _ in keys]
    t2 = store.submit("get", keys, dsts)
    got = []
    while len(got) < 2:
        got += store.poll(timeout=10)
    assert [c.tag for c in got] == [t1, t2]  # submission order
    assert got[0].result == BIG and got[1].result == BIG
    assert [bytes(d) for d in dsts] == vals


def test_empty_batch(store):
    t = store.submit("contains", [])
    (c,) = store.poll(timeout=5)
    assert c.tag == t and c.result == 0 and c.statuses == [] and c.results() == []


def test_completions_are_one_shot_and_event_fd_readable_semantics(store):
    fd = store.event_fd()
    assert fd >= 0 and fd == store.event_fd()
    assert not readable(fd)
    assert store.poll() == []
    tags = [store.submit("contains", [b"x"]) for _ in range(3)]
    assert readable(fd, 5)  # readable while completions wait
    first = store.poll(max=2)
    assert [c.tag for c in first] == tags[:2]
    assert readable(fd)  # one still waits
    rest = store.poll(max=10, timeout=5)
    assert [c.tag for c in rest] == tags[2:]
    assert not readable(fd)  # none waits
    assert store.poll() == [] and store.poll(timeout=0.05) == []
    assert store.pending() == 0


def test_event_fd_with_selectors(sstore):
    store = sstore
    sel = selectors.DefaultSelector()
    sel.register(store.event_fd(), selectors.EVENT_READ)
    try:
        assert sel.select(0) == []
        keys = [f"s{i}".encode() for i in range(BIG)]
        t = store.submit("put", keys, [b"v" * 1000] * BIG)
        assert sel.select(10)
        (c,) = store.poll()
        assert c.tag == t and c.result == BIG
        assert sel.select(0) == []
    finally:
        sel.close()


def test_poll_timeout_wakes_on_completion(sstore):
    store = sstore
    keys = [f"w{i}".encode() for i in range(BIG)]
    t = store.submit("put", keys, [b"v" * 4096] * BIG)
    got = store.poll(timeout=None)  # blocks until the dispatcher posted it
    assert [c.tag for c in got] == [t] and got[0].result == BIG


@pytest.mark.parametrize("timeout", [float("inf"), 1e300])
def test_poll_with_an_unbounded_timeout_waits_for_a_completion(store, timeout):
    store.put(b"k", b"v")
    late = threading.Timer(0.1, lambda: store.submit("contains", [b"k"], tag=5))
    late.start()
    try:
        (c,) = store.poll(timeout=timeout)
    finally:
        late.join()
    assert (c.tag, c.results()) == (5, [True])


@pytest.mark.parametrize("stop", ["close", "shutdown"])
def test_a_poll_waiting_without_limit_is_woken_by_close_and_shutdown(tmp_path, stop):
    # Nothing can complete once the store is shut down: a poll waiting for
    # a completion must return ([] after shutdown, Shutdown after close)
    # instead of sleeping on the event fd for ever (or, after close, on a
    # descriptor the store had closed).
    fds_before = len(os.listdir("/proc/self/fd"))
    s = open_store(tmp_path)
    outcome = {}

    def wait():
        try:
            outcome["polled"] = s.poll(timeout=None)
        except daxkv.Shutdown:
            outcome["raised"] = "Shutdown"

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    time.sleep(0.2)  # asleep on the event fd
    getattr(s, stop)()
    waiter.join(5)
    assert not waiter.is_alive(), f"{stop}() left a poll(timeout=None) asleep"
    if stop == "close":
        assert outcome == {"raised": "Shutdown"}
    else:
        assert outcome == {"polled": []}
        assert s.poll(timeout=None) == []  # returns at once once shut down
        assert s.poll(timeout=30) == []
        s.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_poll_without_limit_after_shutdown_returns_at_once(tmp_path):
    # shut down before anything asynchronous was used
    with open_store(tmp_path) as s:
        s.shutdown()
        assert s.poll(timeout=None) == []


def test_explicit_tags(store):
    t = store.submit("contains", [b"a"], tag=2**64 - 1)
    assert t == 2**64 - 1
    with pytest.raises(daxkv.InvalidArgument):
        store.submit("contains", [b"a"], tag=2**64 - 1)  # not polled yet
    (c,) = store.poll(timeout=5)
    assert c.tag == 2**64 - 1
    assert store.submit("contains", [b"a"], tag=2**64 - 1) == 2**64 - 1  # free again
    # automatic tags skip the ones in use
    store.submit("contains", [b"a"], tag=7)
    auto = {store.submit("contains", [b"a"]) for _ in range(10)}
    assert 7 not in auto and len(auto) == 10
    assert len(store.poll(max=100, timeout=5)) == 12


def test_buffers_kept_alive_until_polled(store):
    store.put(b"k", b"0123456789")
    dst = array.array("b", bytes(16))
    ref = weakref.ref(dst)
    value = array.array("b", b"abcdef")
    vref = weakref.ref(value)
    store.submit("get", [b"k"], [dst])
    store.submit("put", [b"k2"], [value])
    del dst, value
    gc.collect()
    assert ref() is not None and vref() is not None  # the store holds them
    assert store.pending() == 2
    done = store.poll(max=2, timeout=5)
    assert done[0].buffers[0].tobytes()[:10] == b"0123456789"
    assert store.get(b"k2") == b"abcdef"
    assert store.pending() == 0
    del done
    gc.collect()
    assert ref() is None and vref() is None  # released after the poll


def test_buffer_exports_held_until_polled(sstore):
    store = sstore
    keys = [f"e{i}".encode() for i in range(BIG)]
    store.put_many(keys, [b"z" * 100] * BIG)
    dsts = [bytearray(100) for _ in keys]
    store.submit("get", keys, dsts)
    (c,) = store.poll(timeout=10)
    dsts[0].extend(b"x")  # export released: resizable again
    keys2 = [b"hold"]
    store.put(b"hold", b"v")
    d = bytearray(8)
    store.submit("get", keys2, [d])
    with pytest.raises(BufferError):
        d.extend(b"x")  # the library may still write into it
    store.poll(timeout=5)
    d.extend(b"x")


def test_an_interrupt_right_after_the_submit_call_leaves_the_batch_pending(sstore, monkeypatch):
    # KeyboardInterrupt (Python runs signal handlers right after a call
    # returns) between daxkv_submit's return and its result being looked
    # at: the library holds the batch, so the binding keeps it pending with
    # its buffers' exports. Before, it took the batch back and let the
    # buffers go while the library copied into them (a crash, or the
    # library writing into freed memory).
    import daxkv._async as async_mod

    store = sstore
    keys = [f"i{i}".encode() for i in range(BIG)]
    store.put_many(keys, [bytes([i % 251]) * 100 for i in range(BIG)])
    real = async_mod._optional

    def interrupted(name):
        fn = real(name)
        if name != "daxkv_submit":
            return fn

        def call(*args):
            fn(*args)
            raise KeyboardInterrupt

        return call

    monkeypatch.setattr(async_mod, "_optional", interrupted)
    dsts = [bytearray(100) for _ in keys]
    with pytest.raises(KeyboardInterrupt):
        store.submit("get", keys, dsts)
    monkeypatch.setattr(async_mod, "_optional", real)
    assert store.pending() == 1
    (done,) = store.poll(timeout=10)
    assert done.result == BIG
    assert all(d == bytes([i % 251]) * 100 for i, d in enumerate(dsts))
    dsts[0].extend(b"x")  # the export is released with the completion
    assert store.pending() == 0


def test_buffers_gc_while_dispatcher_runs(store):
    n = 8
    keys = [f"g{i}".encode() for i in range(n)]
    vals = [bytes([65 + i]) * SLOT for i in range(n)]
    # Large puts run on the dispatcher while the caller drops everything.
    for _ in range(3):
        store.submit("put", keys, [bytearray(v) for v in vals], replace=True)
        gc.collect()
    got = []
    while len(got) < 3:
        got += store.poll(timeout=10)
    assert all(c.result == n for c in got)
    for k, v in zip(keys, vals):
        assert store.get(k) == v


def test_shutdown_cancels_queued_batches(tmp_path):
    s = open_store(tmp_path)
    try:
        n = 8
        keys = [f"q{i}".encode() for i in range(n)]
        val = b"q" * SLOT
        tags = [s.submit("put", keys, [val] * n, replace=True) for _ in range(100)]
        s.shutdown()
        with pytest.raises(daxkv.Shutdown):
            s.submit("contains", [b"a"])
        done = s.poll(max=100)  # every completion was posted before shutdown returned
        assert sorted(c.tag for c in done) == sorted(tags)
        assert s.pending() == 0
        cancelled = [c for c in done if c.cancelled]
        assert cancelled, "100 queued 8 MiB batches all ran before shutdown"
        for c in done:
            if c.cancelled:
                assert c.statuses == [-errno.ECANCELED] * n
                assert isinstance(c.error, daxkv.Cancelled)
                with pytest.raises(daxkv.Cancelled):
                    c.results()
            else:
                assert c.result == n
        # the batches run in submission order: the cancelled ones are the tail
        first = next(i for i, c in enumerate(done) if c.cancelled)
        assert all(c.cancelled for c in done[first:])
        assert s.poll() == []
    finally:
        s.close()


def test_close_with_unpolled_completions(tmp_path):
    s = open_store(tmp_path)
    fd = s.event_fd()
    assert fd >= 0
    buf = array.array("b", bytes(8))
    ref = weakref.ref(buf)
    s.submit("get", [b"k"], [buf])
    del buf
    s.close()
    gc.collect()
    assert ref() is None and s.pending() == 0
    for call in (lambda: s.poll(), s.event_fd, lambda: s.submit("contains", [b"a"])):
        with pytest.raises(daxkv.Shutdown):
            call()


def test_a_store_never_closed_lets_go_of_its_pipe_and_buffers(tmp_path):
    # Dropped without close(), a store that had polled with a timeout kept
    # its stop pipe open (two descriptors each) and one with a submitted
    # batch nobody polled kept its buffers exported for good: the
    # garbage-collection finalizer freed the handle alone.
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        s = open_store(tmp_path)
        s.put(b"k", b"v" * 8)
        assert s.poll(timeout=0.001) == []  # makes the stop pipe
        buf = array.array("b", bytes(8))
        view = memoryview(buf)
        s.submit("get", [b"k"], [view])
        del s
        gc.collect()
        view.release()  # "memoryview has 1 exported buffer" while still exported
        buf.append(1)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_poll_allocates_for_what_can_complete_not_for_max(store):
    # poll(max=10**7) allocated ten million completions (or raised a bare
    # MemoryError for 2**31) to take a handful.
    import resource

    store.put(b"k", b"v")
    store.submit("get", [b"k"], [bytearray(1)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done = store.poll(max=2**31, timeout=10)
    assert [c.result for c in done] == [1]
    assert store.poll(max=10**7) == []
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_submit_after_close_holds_nothing(tmp_path):
    # A refused submission must not stay pending nor keep its buffers'
    # exports: after close, and after shutdown (the library refuses it).
    for stop in ("close", "shutdown"):
        (tmp_path / stop).mkdir()
        s = open_store(tmp_path / stop)
        getattr(s, stop)()
        dst = bytearray(8)
        with pytest.raises(daxkv.Shutdown):
            s.submit("get", [b"k"], [dst])
        assert s.pending() == 0
        dst.extend(b"x")  # no export left behind: resizable
        s.close()


def test_bad_inputs(store):
    bad = [
        (daxkv.InvalidArgument, lambda: store.submit(99, [b"a"])),
        (daxkv.InvalidArgument, lambda: store.submit("frobnicate", [b"a"])),
        (TypeError, lambda: store.submit(1.0, [b"a"], [b"v"])),
        (TypeError, lambda: store.submit(None, [b"a"])),
        (TypeError, lambda: store.submit(True, [b"a"], [b"v"])),
        (TypeError, lambda: store.submit("put", [b"a"])),
        (TypeError, lambda: store.submit("get", [b"a"])),
        (TypeError, lambda: store.submit("contains", [b"a"], [b"v"])),
        (TypeError, lambda: store.submit("get", [b"a"], [bytearray(1)], metas=[b"m"])),
        (daxkv.InvalidArgument, lambda: store.submit("put", [b"a", b"b"], [b"v"])),
        (daxkv.InvalidArgument, lambda: store.submit("put", [b"a"], [b"v"], metas=[b"1", b"2"])),
        (TypeError, lambda: store.submit("contains", b"abc")),
        (TypeError, lambda: store.submit("contains", [1])),
        (TypeError, lambda: store.submit("get", [b"a"], [b"read-only"])),
        (TypeError, lambda: store.submit("put", [b"a"], [None])),
        (daxkv.InvalidArgument, lambda: store.submit("get", [b"a"], [bytearray(1)], replace=True)),
        (daxkv.InvalidArgument, lambda: store.submit("put", [b"a"], [b"v"], pin=True)),
        (daxkv.InvalidArgument, lambda: store.submit("remove", [b"a"], prefix=True)),
        (daxkv.InvalidArgument, lambda: store.submit("contains", [b"a"], tag=-1)),
        (daxkv.InvalidArgument, lambda: store.submit("contains", [b"a"], tag=2**64)),
        (daxkv.InvalidArgument, lambda: store.submit("contains", [b"a"], tag="1")),
        (daxkv.InvalidArgument, lambda: store.poll(max=0)),
        (daxkv.InvalidArgument, lambda: store.poll(timeout=-1)),
        (daxkv.InvalidArgument, lambda: store.poll(timeout=float("nan"))),
        (daxkv.InvalidArgument, lambda: store.poll(timeout="1")),
        (daxkv.InvalidArgument, lambda: store.poll(timeout=True)),
    ]
    for exc, call in bad:
        with pytest.raises(exc):
            call()
        assert store.pending() == 0
    assert store.poll() == []
    assert not readable(store.event_fd())
    assert store.stats().async_submitted == 0


def test_threads_submit_and_poll(store):
    per, nthreads = 50, 4
    tags = []
    lock = threading.Lock()

    def worker(w):
        for i in range(per):
            t = store.submit("put", [f"t{w}-{i}".encode()], [b"v" * 64])
            with lock:
                tags.append(t)

    ths = [threading.Thread(target=worker, args=(w,)) for w in range(nthreads)]
    for t in ths:
        t.start()
    got = []
    while len(got) < per * nthreads:
        got += store.poll(max=32, timeout=10)
    for t in ths:
        t.join()
    assert sorted(c.tag for c in got) == sorted(tags) and len(set(tags)) == per * nthreads
    assert all(c.results() == [True] for c in got)


def test_stats_count_async_batches(store):
    before = store.stats()
    for _ in range(3):
        store.submit("put", [b"a"], [b"v"], replace=True)
    store.poll(max=10, timeout=5)
    st = store.stats()
    assert st.async_submitted - before.async_submitted == 3
    assert st.async_completed - before.async_completed == 3
    assert st.async_cancelled == 0
    assert st.batches - before.batches >= 3


# -- asyncio ------------------------------------------------------------------


def test_asyncio_round_trip(sstore):
    store = sstore
    keys = [f"a{i}".encode() for i in range(BIG)]
    vals = [bytes([i % 256]) * 512 for i in range(BIG)]

    async def main():
        stored = await store.put_many_async(keys, vals)
        dsts = [bytearray(512) for _ in keys]
        lens = await store.get_many_async(keys + [b"miss"], dsts + [bytearray(1)])
        return stored, dsts, lens

    stored, dsts, lens = asyncio.run(main())
    assert stored == [True] * BIG
    assert lens == [512] * BIG + [None]
    assert [bytes(d) for d in dsts] == vals
    assert store.pending() == 0


def test_asyncio_gather_and_inline_batches(store):
    async def one(i):
        k = f"c{i}".encode()
        assert await store.put_many_async([k], [k * 3]) == [True]
        d = bytearray(16)
        assert await store.get_many_async([k], [d], prefix=True) == [len(k) * 3]
        return bytes(d[: len(k) * 3])

    async def main():
        return await asyncio.gather(*(one(i) for i in range(20)))

    out = asyncio.run(main())
    assert out == [f"c{i}".encode() * 3 for i in range(20)]
    assert store.pending() == 0 and store.poll() == []


def test_asyncio_leaves_other_completions_to_poll(store):
    t = store.submit("contains", [b"x"])  # completed inline, waiting to be polled

    async def main():
        c = await store.submit_async("put", [b"y"], [b"v"])
        return c

    c = asyncio.run(main())
    assert c.op_name == "put" and c.results() == [True]
    (other,) = store.poll()
    assert other.tag == t and other.results() == [False]


def test_poll_drops_the_completion_of_an_await_whose_loop_is_closed():
    # An await cancelled while its batch is in flight, its event loop then
    # closed: the batch's completion is dropped when a later poll() meets
    # it, and that poll still returns the other completions. It once raised
    # RuntimeError ("Event loop is closed") and lost the completions polled
    # with it.
    MiB = 1 << 20
    with daxkv.Store(path="mem:", size=80 * MiB, slot_bytes=MiB) as s:
        keys = [f"slow{i}".encode() for i in range(64)]
        vals = [b"s" * MiB] * len(keys)

        async def abandon():
            task = asyncio.ensure_future(s.submit_async("put", keys, vals))
            await asyncio.sleep(0)  # submitted, now awaiting its completion
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(abandon())
        assert s.pending() == 1  # still copying (64 MiB)
        tag = s.submit("contains", [b"other"])
        done = []
        for _ in range(100):
            if not s.pending():
                break
            done += s.poll(timeout=0.1)
        assert [c.tag for c in done] == [tag]
        assert s.pending() == 0
        assert s.get(keys[-1]) == vals[-1]  # the batch itself ran


@pytest.mark.parametrize("turns", [1, 2])
@pytest.mark.parametrize("prefix", [False, True])
def test_a_cancelled_pinning_lookup_unpins_its_hits(store, turns, prefix):
    # A pinning lookup awaited with submit_async, the await cancelled: its
    # completion reaches nobody, and nobody else knows which keys it
    # pinned. Its hits stayed pinned for good (a remove without force
    # refused with Busy, an unforced device removal too). turns=1: cancelled
    # before the completion is handed over (the future is cancelled);
    # turns=2: after it was handed over, before the task resumed (the task
    # gets CancelledError with its future's result set).
    keys = [b"p0", b"p1", b"p2"]
    store.put_many(keys, [b"v"] * 3)

    async def main():
        t = asyncio.ensure_future(store.submit_async("contains", keys + [b"miss"], pin=True, prefix=prefix))
        for _ in range(turns):
            await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())
    assert store.pending() == 0 and store.poll() == []
    assert store.stats().entries_pinned == 0
    assert {i.key: i.pins for i in store.keys()} == dict.fromkeys(keys, 0)
    assert store.remove_many(keys) == [True] * 3


@pytest.mark.parametrize("loop_after", ["closed", "stopped"])
def test_a_pinning_lookup_given_up_before_its_completion_unpins_its_hits(loop_after):
    # As above, with the await's loop gone before the batch completed: the
    # completion, met by a later poll(), has no loop to go to. closed: an
    # asyncio.run that returned; stopped: a run_until_complete that
    # returned, the loop left open (a completion handed to it was never
    # delivered nor dropped, and the hits stayed pinned).
    MiB = 1 << 20
    with daxkv.Store(path="mem:", size=80 * MiB, slot_bytes=MiB) as s:
        s.put(b"pinned", b"v")

        async def give_up():
            # The lookup queued behind 64 MiB of puts on the dispatcher.
            s.submit("put", [f"slow{i}".encode() for i in range(64)], [b"s" * MiB] * 64)
            task = asyncio.ensure_future(s.submit_async("contains", [b"pinned"] * 100, pin=True))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(give_up())
            if loop_after == "closed":
                loop.close()
            for _ in range(100):
                if not s.pending():
                    break
                s.poll(timeout=0.1)
            assert s.pending() == 0
            assert s.stats().entries_pinned == 0
            assert s.remove(b"pinned")
        finally:
            loop.close()


def _open_fds():
    return set(os.listdir("/proc/self/fd"))


def test_no_descriptor_stays_open_for_the_loops_once_no_coroutine_waits(sstore):
    # The loops watch a duplicate of the event fd; it is closed as soon as
    # no coroutine awaits the store, so that a store never closed (left to
    # the garbage collector) does not keep one open.
    fds = _open_fds()

    async def main():
        await sstore.put_many_async([b"d"], [b"v"])
        idle = _open_fds()  # the loop's own, and the store's event fd
        await asyncio.gather(*(sstore.get_many_async([b"d"], [bytearray(1)]) for _ in range(5)))
        assert _open_fds() == idle

    asyncio.run(main())
    assert _open_fds() - fds == {str(sstore.event_fd())}


@pytest.mark.parametrize("reuser", ["store", "socket"])
def test_closing_a_store_awaited_on_leaves_the_file_that_reuses_its_event_fd_alone(tmp_path, reuser):
    # A coroutine awaits a batch of store s1; s1 is closed, which fails the
    # coroutine, and closed the event fd the loop watched for it. The next
    # file opened took that number (another store's event fd, a socket):
    # added to the loop before the failed coroutine ran, it was never
    # watched (the loop still knew the number, and only swapped the
    # callback), and that coroutine's removal of "its" reader then removed
    # the new file's. The other store's await, a socket's recv, never ended.
    MiB = 1 << 20
    before = _open_fds()
    s1 = daxkv.Store(path="mem:", size=80 * MiB, slot_bytes=MiB)
    keys = [f"k{i}".encode() for i in range(8)]
    s1.put_many(keys, [b"x" * MiB] * 8)

    async def main():
        loop = asyncio.get_running_loop()
        t = asyncio.ensure_future(s1.get_many_async(keys, [bytearray(MiB) for _ in keys]))
        await asyncio.sleep(0)  # awaiting, the batch on the dispatcher
        freed = s1.event_fd()
        s1.close()
        if reuser == "store":
            with daxkv.Store(path="mem:", size=16 * MiB, slot_bytes=MiB) as s2:
                s2.put(b"y", b"yy")
                dst = bytearray(2)
                got = await asyncio.wait_for(s2.get_many_async([b"y"] * 100, [dst] * 100), 10)
                assert got == [2] * 100 and dst == b"yy"
        else:
            import socket

            a, b = socket.socketpair()
            if b.fileno() == freed:
                a, b = b, a
            if a.fileno() != freed:  # the number freed, whichever the pair got
                os.dup2(a.fileno(), freed)
                a.close()
                a = socket.socket(fileno=freed)
            with a, b:
                a.setblocking(False)
                recv = asyncio.ensure_future(loop.sock_recv(a, 5))  # nothing sent yet: it waits
                for _ in range(3):
                    await asyncio.sleep(0)  # the failed coroutine runs meanwhile
                b.send(b"hello")
                assert await asyncio.wait_for(recv, 10) == b"hello"
        with pytest.raises(daxkv.Shutdown):
            await t

    asyncio.run(main())
    assert _open_fds() == before  # the readers' descriptor closed with the last of them


def test_asyncio_errors(store):
    async def cancelled_put():
        return await store.put_many_async([b"a"], [b"v"], replace=True)

    async def bad():
        await store.submit_async("get", [b"a"], [bytearray(1)], replace=True)

    with pytest.raises(daxkv.InvalidArgument):
        asyncio.run(bad())
    assert store.pending() == 0
    assert asyncio.run(cancelled_put()) == [True]
    store.shutdown()
    with pytest.raises(daxkv.Shutdown):
        asyncio.run(cancelled_put())


def test_a_forked_childs_close_leaves_the_parents_poll_waiting(tmp_path):
    # The pipe that wakes sleeping polls at shutdown is inherited by a
    # forked child; the child's close() wrote into it, so every later poll
    # of the parent found it readable: poll(timeout=...) returned at once
    # and poll(timeout=None) spun.
    import os
    import time

    s = open_store(tmp_path)
    try:
        s.poll(timeout=0.01)  # a poll that sleeps makes the pipe
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                s.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        t0 = time.monotonic()
        assert s.poll(timeout=0.3) == []
        assert time.monotonic() - t0 >= 0.25, "the parent's poll no longer waits"
        s.put(b"k", b"v")
        tag = s.submit("get", [b"k"], [bytearray(8)])
        got = []
        while not got:
            got = s.poll(timeout=5.0)
        assert got[0].tag == tag and got[0].results() == [1]
    finally:
        s.close()


def test_a_too_small_destination_reports_the_size_it_needs(store):
    store.put(b"k", b"v" * 100)
    tag = store.submit("get", [b"k"], [bytearray(10)])
    got = []
    while not got:
        got = store.poll(timeout=5.0)
    assert got[0].tag == tag
    with pytest.raises(daxkv.BatchError) as ei:
        got[0].results()
    assert isinstance(ei.value.first, daxkv.BufferTooSmall)
    assert ei.value.first.needed == 100


def test_a_poll_woken_for_a_completion_another_thread_took_waits_on(store, monkeypatch):
    # Two threads polling: one wakes on the event fd, the other takes the
    # completion first. The woken poll returned [] at once instead of
    # waiting out its timeout. Here the "other thread" takes it from inside
    # the sleep, right after the event fd became readable.
    import select
    import time

    real_select = select.select
    stolen = []

    def racing_select(r, w, x, timeout=None):
        if not stolen:
            store.submit("contains", [b"k"])  # runs inline: its completion waits
            ready = real_select(r, w, x, timeout)
            stolen.extend(store.poll(timeout=0))  # taken before the waker polls
            return ready
        return real_select(r, w, x, timeout)

    monkeypatch.setattr(select, "select", racing_select)
    t0 = time.monotonic()
    assert store.poll(timeout=0.5) == []
    elapsed = time.monotonic() - t0
    assert len(stolen) == 1
    assert elapsed >= 0.4, f"the poll gave up after {elapsed:.3f}s of its 0.5s timeout"
