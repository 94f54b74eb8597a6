# SPDX-License-Identifier: Apache-2.0
"""daxkv.lmcache.DaxCore as LMCache's callers use it: reservations, writes,
deleted-but-reserved slots, properties, remap, metadata, close, capacity.

Each test pins a behaviour of LMCache's own DaxCore
(lmcache/v1/storage_backend/dax/core.py) that daxkv's drop-in once got
wrong or must keep.

Bad inputs tried here:

* reserve_reads with missing keys (holes, prefix stop, a prefix that starts
  with a miss);
* put_one: a writer that raises ValueError; a full arena (one slot and two
  slots, taken); a key already committed; a key whose write is in flight
  (put_one from inside the first put's writer, with and without a writer);
  an object larger than the slot; a two-tensor object; a put after close;
* put_many / load_many_into with lists of different lengths (2 keys, 1
  object);
* a put_one or put_many of a key from another thread between a forced
  delete's library call and its note of the write it cancelled, and a
  put_one with a writer that begins while a forced delete of its key runs;
* lookups from another thread between a delete's (plain or forced)
  library call and its bookkeeping, after a lookup with a lock,
  snapshot_keys or entries() found the key gone;
* put_reserved_from_ptr with size 0, size slot_bytes + 1, source pointer
  0, a key already stored, a full arena;
* reserve_reads of an empty key list; unlock_many of a key holding no
  lock; delete_many of locked keys (plain, then forced);
* a key deleted while reserved, then a put into the arena whose only slot it
  holds;
* remap: to 0 bytes, to fewer bytes than one slot, to a size that cuts off
  live slots (committed, and borrowed by a reservation), past the room the
  file was laid out for, after close;
* load_many_into: a destination one element too small, a two-tensor
  destination, a key never stored;
* every call after close and while close waits (put_many, put_one,
  put_reserved_from_ptr, exists_many, reserve_reads, load_many_into,
  snapshot_keys, entries, delete_many, unlock_many, usage, can_shrink_to,
  report_status, remap, a second close);
* a slice of arena_view, a view of mmap_obj, and both, held across close
  and read afterwards;
* stored metadata that does not decode: a progression of 2**32 - 1
  positions (with and without a layout), a billion position deltas in two
  bytes, one position more than POSITIONS_MAX, an int8 position of 500, a
  position past 64 bits, positions of dtype quint8, a dimension past 64
  bits; cached positions one more than POSITIONS_MAX to encode;
* cached positions the encoding cannot hold exactly, in put_many beside a
  plain object and in put_one with and without a writer: a 2-D tensor, a
  0-d tensor, fractional floats, NaN, infinity, a complex, a list holding
  a str; integral float64 positions (stored exactly);
* entries whose layout does not hold their value or does not fit a slot
  (listed at test_reservations_never_hold_more_than_their_layout_allocates);
* finalize_reads and release_entries called twice on the same reservations;
* objects reporting a size of -1, -2**63 and 2**64 + 5 to put_many, put_one
  and (as destinations) load_many_into.
"""

# Standard
import ctypes
import gc
import os
import threading
import weakref

# Third Party
import pytest
import torch

# First Party
import daxkv
from daxkv.lmcache import (
    DaxCore,
    DaxCoreError,
    DaxPutFromPtrResult,
    DaxReadReservation,
    decode_meta,
    encode_key,
    encode_meta,
)
from daxkv.lmcache.meta import POSITIONS_MAX
from dk_helpers import (
    SizedAs,
    byte_obj,
    ekey,
    interrupted_at_line,
    kv_obj,
    make_device,
    multi_obj,
    obj_bytes,
    open_fds,
    pattern,
    release,
    wait_until,
)
from lmcache.utils import CacheEngineKey
from lmcache.v1.distributed.api import ObjectKey
from lmcache.v1.memory_management import MemoryFormat

S = 1024  # slot bytes used throughout


@pytest.fixture
def make_core(tmp_path):
    """make_core(slots, room=None, name="dax.bin", **kw): a core on a file of
    room (default slots) * S bytes, opened with slots * S bytes."""
    cores = []

    def _make(slots, room=None, name="dax.bin", **kw):
        path = os.path.join(tmp_path, name)
        if not os.path.exists(path):
            make_device(path, (room or slots) * S)
        core = DaxCore(device_path=path, max_dax_size_bytes=slots * S, slot_bytes=S, **kw)
        cores.append(core)
        return core

    yield _make
    for core in cores:
        core.close()


def reserve_one(core, key):
    reservations, hits = core.reserve_reads([key], prefix_only=False)
    assert hits == [True]
    return reservations[0], reservations


def stored_bytes(core, key) -> bytes:
    r, rs = reserve_one(core, key)
    try:
        return ctypes.string_at(core.base_ptr + r.offset, r.size)
    finally:
        core.finalize_reads(rs, set())


# -- 1. Generic subscription -------------------------------------------------------


def test_generic_subscription_constructs_a_core(tmp_path):
    path = make_device(tmp_path / "dax.bin", 4 * S)
    core = DaxCore[CacheEngineKey](device_path=path, max_dax_size_bytes=4 * S, slot_bytes=S)
    try:
        assert type(core) is DaxCore
        assert core.max_slots == 4
        obj = byte_obj(S, 1)
        assert core.put_one(ekey(1), obj) is True
        assert core.exists_many([ekey(1), ekey(2)]) == [True, False]
        # Any collection of keys, as LMCache's core iterates over it.
        assert core.exists_many({ekey(1)}) == [True]
        assert core.exists_many((ekey(2), ekey(1))) == [False, True]
        assert core.exists_many(k for k in [ekey(1), ekey(2)]) == [True, False]
        release(obj)
    finally:
        core.close()
    other = make_device(tmp_path / "objects.bin", 2 * S)
    object_core = DaxCore[ObjectKey](device_path=other, max_dax_size_bytes=2 * S, slot_bytes=S)
    try:
        assert object_core.max_slots == 2
    finally:
        object_core.close()


# -- 2. reserve_reads ----------------------------------------------------------------


def test_reserve_reads_leaves_holes_or_stops_at_the_prefix(make_core):
    core = make_core(4)
    objs = [byte_obj(S, 10), byte_obj(S - 24, 12)]
    assert core.put_many([ekey(0), ekey(2)], objs) == [True, True]
    keys = [ekey(0), ekey(1), ekey(2)]

    reservations, hits = core.reserve_reads(keys, prefix_only=False)
    try:
        assert hits == [True, False, True]
        assert [r.result_index for r in reservations] == [0, 2]
        assert [r.key for r in reservations] == [ekey(0), ekey(2)]
        assert [r.size for r in reservations] == [S, S - 24]
        for r, obj in zip(reservations, objs):
            assert isinstance(r, DaxReadReservation)
            # offset is relative to base_ptr, a whole slot
            assert r.offset % S == 0 and 0 <= r.offset < core.max_slots * S
            assert r.slot_id == r.offset // S
            assert ctypes.string_at(core.base_ptr + r.offset, r.size) == obj_bytes(obj)
            assert r.shape == torch.Size([obj.get_size()])
            assert r.dtype == torch.uint8
            assert r.fmt == MemoryFormat.KV_2LTD
            assert r.cached_positions is None
        assert len({r.slot_id for r in reservations}) == 2
        assert core.report_status()["active_read_count"] == 1
    finally:
        core.finalize_reads(reservations, {ekey(0)})
    assert core.report_status()["active_read_count"] == 0

    prefix, hits = core.reserve_reads(keys, prefix_only=True)
    try:
        assert hits == [True, False, False]
        assert [(r.result_index, r.key) for r in prefix] == [(0, ekey(0))]
    finally:
        core.finalize_reads(prefix, set())

    none, hits = core.reserve_reads([ekey(1), ekey(0)], prefix_only=True)
    assert (none, hits) == ([], [False, False])
    # nothing reserved: no read counts as active, nothing to finalize
    assert core.report_status()["active_read_count"] == 0
    assert core.reserve_reads([], prefix_only=False) == ([], [])
    release(*objs)


def test_generation_changes_when_a_slot_is_reused(make_core):
    core = make_core(1)
    a, b = byte_obj(S, 1), byte_obj(S, 2)
    assert core.put_one(ekey(1), a) is True
    first, rs = reserve_one(core, ekey(1))
    core.finalize_reads(rs, set())
    assert core.delete_many([ekey(1)]) == [True]
    assert core.put_one(ekey(2), b) is True
    second, rs = reserve_one(core, ekey(2))
    core.finalize_reads(rs, set())
    assert (first.slot_id, second.slot_id) == (0, 0)
    assert second.generation == first.generation + 1
    assert stored_bytes(core, ekey(2)) == pattern(S, 2)
    release(a, b)


# -- 3. put_one ------------------------------------------------------------------------


def test_put_one_writer_gets_base_relative_offset_and_its_bytes_are_loaded(make_core):
    core = make_core(4)
    obj = kv_obj((2, 4, 64), 3.0)  # 1024 bytes of bf16
    written = pattern(S, 77)  # not obj's bytes: the writer decides what lands
    calls = []

    def writer(offset, memory_obj, size):
        calls.append((offset, memory_obj, size))
        ctypes.memmove(core.base_ptr + offset, written, size)

    assert core.put_one(ekey(5), obj, writer=writer) is True
    assert len(calls) == 1
    offset, passed, size = calls[0]
    assert passed is obj and size == S
    assert offset % S == 0 and 0 <= offset < 4 * S
    r, rs = reserve_one(core, ekey(5))
    assert (r.offset, r.slot_id) == (offset, offset // S)
    core.finalize_reads(rs, set())

    dst = kv_obj((2, 4, 64), 0.0)
    assert core.load_many_into([ekey(5)], [dst]) == [True]
    assert obj_bytes(dst) == written
    assert bytes(core.arena_view[offset : offset + S]) == written
    release(obj, dst)


def test_put_one_writer_failure_raises_and_reclaims_the_slot(make_core):
    core = make_core(1)
    obj = byte_obj(S, 4)
    key = ekey(9)

    def failing(offset, memory_obj, size):
        raise ValueError("boom")

    with pytest.raises(RuntimeError) as info:
        core.put_one(key, obj, writer=failing)
    assert str(info.value) == f"DAX write failed for key {key}: boom"
    assert type(info.value.__cause__) is ValueError
    assert core.exists_many([key]) == [False]
    assert core.has_inflight(key) is False
    assert core.report_status()["live_slot_count"] == 0
    # the only slot is free again
    assert core.put_one(ekey(10), obj) is True
    assert stored_bytes(core, ekey(10)) == pattern(S, 4)
    release(obj)


def test_put_one_on_a_full_arena_raises(make_core):
    core = make_core(2)
    objs = [byte_obj(S, i) for i in range(3)]
    assert core.put_one(ekey(0), objs[0]) is True
    assert core.put_one(ekey(1), objs[1]) is True
    with pytest.raises(RuntimeError, match=r"^No free slots available; eviction required$"):
        core.put_one(ekey(2), objs[2])
    with pytest.raises(RuntimeError, match="No free slots available"):
        core.put_one(ekey(2), objs[2], writer=lambda o, m, s: None)
    # put_many reports a full arena per key instead
    assert core.put_many([ekey(0), ekey(2)], [objs[0], objs[2]]) == [True, False]
    assert core.exists_many([ekey(2)]) == [False]
    release(*objs)


def test_put_one_existing_or_inflight_key_is_a_noop_success(make_core):
    core = make_core(4)
    first, second = byte_obj(S, 1), byte_obj(S, 2)
    key = ekey(3)
    assert core.put_one(key, first) is True

    untouched = []
    assert core.put_one(key, second, writer=lambda o, m, s: untouched.append(o)) is True
    assert core.put_one(key, second) is True
    assert untouched == []
    assert stored_bytes(core, key) == pattern(S, 1)

    other = ekey(4)
    nested = {}

    def outer(offset, memory_obj, size):
        nested["inflight"] = core.has_inflight(other)
        nested["with_writer"] = core.put_one(
            other, second, writer=lambda o, m, s: untouched.append(o)
        )
        nested["default"] = core.put_one(other, second)
        nested["exists"] = core.exists_many([other])
        ctypes.memmove(core.base_ptr + offset, memory_obj.data_ptr, size)

    assert core.put_one(other, first, writer=outer) is True
    assert nested == {"inflight": True, "with_writer": True, "default": True, "exists": [False]}
    assert untouched == []
    assert stored_bytes(core, other) == pattern(S, 1)
    assert core.report_status()["live_slot_count"] == 2
    release(first, second)


def test_forced_delete_of_a_write_in_flight_reports_it_until_the_write_ends(make_core):
    # LMCache's core keeps a write that a forced delete cancelled in flight
    # until its writer returns, and each forced delete of the key meanwhile,
    # a repeat in the same list included, reports True. A plain delete
    # leaves in-flight keys alone; a committed key is deleted once.
    core = make_core(4)
    obj = byte_obj(S, 1)
    key = ekey(1)
    seen = {}

    def writer(force):
        def copy(offset, memory_obj, size):
            seen[force] = (
                core.delete_many([key, key], force=force),
                core.delete_many([key], force=force),
                core.delete_many([ekey(9), ekey(9)], force=force),
                core.has_inflight(key),
            )
            ctypes.memmove(core.base_ptr + offset, memory_obj.data_ptr, size)

        return copy

    assert core.put_one(key, obj, writer=writer(False)) is True
    assert seen[False] == ([False, False], [False], [False, False], True)
    assert core.exists_many([key]) == [True]
    assert core.delete_many([key, key]) == [True, False]

    assert core.put_one(key, obj, writer=writer(True)) is False  # cancelled
    assert seen[True] == ([True, True], [True], [False, False], True)
    assert core.has_inflight(key) is False
    assert core.exists_many([key]) == [False]
    assert core.delete_many([key], force=True) == [False]  # the write has ended

    assert core.put_one(key, obj) is True
    assert core.delete_many([key, key], force=True) == [True, False]
    assert core.put_one(key, obj) is True
    assert core.exists_many([key], lock=True) == [True]
    assert core.delete_many([key, key]) == [False, False]
    assert core.delete_many([key, key], force=True) == [True, False]
    assert core.report_status()["live_slot_count"] == 0
    release(obj)


@pytest.mark.parametrize("slots", [1, 4])
def test_a_put_of_a_key_whose_write_was_cancelled_is_a_noop_until_the_write_ends(make_core, slots):
    # LMCache's core keeps a write cancelled by a forced delete in flight
    # until its writer returns: a put_many or put_one of its key meanwhile
    # is a no-op success (True, nothing copied or stored), also when the
    # arena has no free slot, and the key is absent once the writer returns.
    core = make_core(slots)
    obj, other = byte_obj(S, 1), byte_obj(S, 2)
    key = ekey(1)
    seen = {}
    untouched = []

    def copy(offset, memory_obj, size):
        ctypes.memmove(core.base_ptr + offset, memory_obj.data_ptr, size)
        seen["delete"] = core.delete_many([key], force=True)
        seen["put_many"] = core.put_many([key, key], [other, other])
        seen["put_one"] = core.put_one(key, other)
        seen["put_one_writer"] = core.put_one(key, other, writer=lambda o, m, s: untouched.append(o))
        seen["from_ptr"] = core.put_reserved_from_ptr(
            key, other.data_ptr, S, other.metadata.shape, other.metadata.dtype, other.metadata.fmt, None
        )
        seen["exists"] = core.exists_many([key])
        seen["snapshot"] = core.snapshot_keys()

    assert core.put_one(key, obj, writer=copy) is False  # cancelled
    assert seen == {
        "delete": [True],
        "put_many": [True, True],
        "put_one": True,
        "put_one_writer": True,
        "from_ptr": DaxPutFromPtrResult.INFLIGHT,
        "exists": [False],
        "snapshot": [],
    }
    assert untouched == []
    assert core.exists_many([key]) == [False]
    assert core.snapshot_keys() == []
    assert core.report_status()["live_slot_count"] == 0
    # Once the write has ended the key is stored as usual.
    assert core.put_many([key], [other]) == [True]
    assert stored_bytes(core, key) == pattern(S, 2)
    release(obj, other)


class _PutOnAnotherThread:
    """call() on a thread of its own; settled is set once it has returned,
    or once it waits for a forced delete of its key to end (the core's
    _await_deletes, which the test wraps), whichever comes first."""

    def __init__(self, core, monkeypatch, call, settled=None):
        self.settled = settled or threading.Event()
        self.result = None
        self.error = None
        original = getattr(core, "_await_deletes", None)

        def await_deletes(*args):
            self.settled.set()
            return original(*args)

        monkeypatch.setattr(core, "_await_deletes", await_deletes, raising=False)

        def run():
            try:
                self.result = call()
            except BaseException as exc:  # reported by the test's assertions
                self.error = exc
            finally:
                self.settled.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()


@pytest.mark.parametrize("how", ["put_one", "put_many"])
def test_a_put_during_a_forced_delete_of_a_cancelled_write_stores_nothing(make_core, monkeypatch, how):
    # LMCache's forced delete is one step under its core's lock: a put of
    # the key from another thread comes before it (a no-op, the write is in
    # flight) or after it (a no-op, the cancelled write is still in
    # flight). libdaxkv forgets the cancelled reservation inside the
    # library call; a put landing between that call and the core's note of
    # the cancellation must not store the key.
    core = make_core(4)
    obj, other = byte_obj(S, 1), byte_obj(S, 2)
    key = ekey(1)
    remove_many = daxkv.lmcache._native.remove_many
    puts = []

    def removing(store, kbs, force):
        results = remove_many(store, kbs, force)
        if force and not puts:
            call = (lambda: core.put_one(key, other)) if how == "put_one" else (
                lambda: core.put_many([key], [other]))
            puts.append(_PutOnAnotherThread(core, monkeypatch, call))
            puts[0].settled.wait()
        return results

    monkeypatch.setattr(daxkv.lmcache._native, "remove_many", removing)
    seen = {}

    def copy(offset, memory_obj, size):
        ctypes.memmove(core.base_ptr + offset, memory_obj.data_ptr, size)
        seen["delete"] = core.delete_many([key], force=True)
        puts[0].thread.join()
        seen["exists"] = core.exists_many([key])

    assert core.put_one(key, obj, writer=copy) is False  # cancelled
    put = puts[0]
    assert put.error is None
    assert put.result == (True if how == "put_one" else [True])
    assert seen == {"delete": [True], "exists": [False]}
    assert core.exists_many([key]) == [False]
    assert core.report_status()["live_slot_count"] == 0
    release(obj, other)


def test_a_write_a_forced_delete_cancels_is_noted_even_if_it_began_during_the_delete(make_core, monkeypatch):
    # A put_one whose writer starts while a forced delete of its key is
    # under way: the delete comes before it (the write stores the key) or
    # after it (the write is cancelled, and a put of the key until its
    # writer returns is a no-op). Never both: a cancelled write, and
    # another put's bytes stored meanwhile.
    core = make_core(4)
    first, second = byte_obj(S, 1), byte_obj(S, 2)
    key = ekey(1)
    in_writer = threading.Event()
    settled = threading.Event()  # in the writer, or waiting for the delete
    finish = threading.Event()
    remove_many = daxkv.lmcache._native.remove_many
    puts = []

    def copy(offset, memory_obj, size):
        ctypes.memmove(core.base_ptr + offset, memory_obj.data_ptr, size)
        in_writer.set()
        settled.set()
        finish.wait()

    def removing(store, kbs, force):
        if force and not puts:
            call = lambda: core.put_one(key, first, writer=copy)  # noqa: E731
            puts.append(_PutOnAnotherThread(core, monkeypatch, call, settled))
            settled.wait()
        return remove_many(store, kbs, force)

    monkeypatch.setattr(daxkv.lmcache._native, "remove_many", removing)
    assert core.delete_many([key], force=True) in ([True], [False])
    put = puts[0]
    in_writer.wait()
    # The first write is in flight: a put of its key is a no-op.
    assert core.put_one(key, second) is True
    finish.set()
    put.thread.join()
    assert put.error is None
    if put.result:
        assert stored_bytes(core, key) == pattern(S, 1)
    else:
        assert core.exists_many([key]) == [False]
    release(first, second)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("seen_by", ["lock", "snapshot", "entries"])
def test_a_key_seen_gone_during_a_delete_is_not_reported_present_again(make_core, monkeypatch, force, seen_by):
    # LMCache's delete is one step under its core's lock: once a lookup
    # from another thread has found the key gone (a lookup with a lock,
    # snapshot_keys, entries), no later lookup finds it (without a put).
    # The drop-in's lookups answer keys it saw committed from memory; a
    # delete updates that memory after its library call.
    core = make_core(4)
    obj = byte_obj(S, 1)
    key = ekey(1)
    assert core.put_one(key, obj) is True
    assert core.exists_many([key]) == [True]  # known: answered from memory
    remove_many = daxkv.lmcache._native.remove_many
    seen = {}

    def look():
        if seen_by == "lock":
            seen["first"] = core.exists_many([key], lock=True)
        elif seen_by == "snapshot":
            seen["first"] = [key in core.snapshot_keys()]
        else:
            seen["first"] = [key in [k for k, _, _ in core.entries()]]
        seen["then"] = (core.exists_many([key]), core.exists_many([key, ekey(2)]), core.prefix_hits([key]))

    def removing(store, kbs, f):
        results = remove_many(store, kbs, f)
        t = threading.Thread(target=look)
        t.start()
        t.join()
        return results

    monkeypatch.setattr(daxkv.lmcache._native, "remove_many", removing)
    assert core.delete_many([key], force=force) == [True]
    assert seen == {"first": [False], "then": ([False], [False, False], 0)}
    assert core.exists_many([key]) == [False]
    release(obj)


@pytest.mark.parametrize("force", [False, True])
def test_a_delete_interrupted_anywhere_leaves_no_key_marked(make_core, force):
    # An interrupt (KeyboardInterrupt, or any exception a signal handler
    # raises) between a delete's marking of its keys and the try that ends
    # the marks left them marked for good: every later put of those keys
    # waited forever for the delete (_await_deletes). One after the marks
    # ended and before that was noted ended them twice (KeyError, or
    # another delete's mark taken). Here it lands on every line in turn.
    core = make_core(4)
    obj = byte_obj(S, 5)
    code = DaxCore.delete_many.__code__
    for k in range(1, 200):
        assert core.put_one(ekey(1), obj) is True
        if not interrupted_at_line(lambda: core.delete_many([ekey(1), ekey(2)], force=force), code, k):
            break
        assert core._deleting == {}, f"line {k} of delete_many: keys left marked"
        done = threading.Event()
        t = threading.Thread(target=lambda: (core.put_one(ekey(2), obj), done.set()), daemon=True)
        t.start()
        assert done.wait(10), f"line {k} of delete_many: a put of its key waits for good"
        assert core.delete_many([ekey(2)]) == [True]
    else:
        pytest.fail("delete_many ran past 200 lines")
    assert k > 10
    release(obj)


@pytest.mark.parametrize("how", ["put_one", "put_one_writer", "put_many", "put_reserved_from_ptr"])
def test_a_put_interrupted_anywhere_leaves_no_write_in_flight(make_core, how):
    # An interrupt between a put's counting its write in flight and the try
    # that ends it left the write counted for good: close() waited for it
    # ("still waiting for 1 writes") and a put of the key after it was a
    # no-op that stored nothing. Here one lands on every line in turn.
    core = make_core(4)
    obj = byte_obj(S, 5)

    def copy(offset, o, size):
        ctypes.memmove(core.base_ptr + offset, o.data_ptr, size)

    calls = {
        "put_one": (lambda: core.put_one(ekey(1), obj), DaxCore.put_one),
        "put_one_writer": (lambda: core.put_one(ekey(1), obj, writer=copy), DaxCore.put_one),
        "put_many": (lambda: core.put_many([ekey(1)], [obj]), DaxCore._put_encoded),
        "put_reserved_from_ptr": (
            lambda: core.put_reserved_from_ptr(
                ekey(1), obj.data_ptr, S, torch.Size([S]), torch.uint8, MemoryFormat.KV_2LTD, None
            ),
            DaxCore.put_reserved_from_ptr,
        ),
    }
    fn, method = calls[how]
    for k in range(1, 200):
        interrupted = interrupted_at_line(fn, method.__code__, k)
        assert not core.has_inflight(ekey(1)), f"line {k}: the write stays in flight"
        assert core.report_status()["active_write_count"] == 0, f"line {k}"
        if not interrupted:
            break
        core.delete_many([ekey(1)])
    assert k > 3
    assert core.exists_many([ekey(1)]) == [True]
    release(obj)


def test_put_rejections_return_false(make_core):
    core = make_core(2)
    big, multi, obj = byte_obj(S + 1, 1), multi_obj(), byte_obj(S, 2)
    assert core.put_one(ekey(1), big) is False
    assert core.put_one(ekey(2), multi) is False
    assert core.put_many([ekey(1), ekey(2), ekey(3)], [big, multi, obj]) == [False, False, True]
    with pytest.raises(ValueError, match=r"^keys and objs must have the same length, got 2 and 1$"):
        core.put_many([ekey(4), ekey(5)], [obj])
    with pytest.raises(ValueError, match=r"^keys and objs must have the same length, got 2 and 1$"):
        core.load_many_into([ekey(4), ekey(5)], [obj])
    assert core.snapshot_keys() == [ekey(3)]
    release(big, multi, obj)


def test_lookups_of_known_keys_follow_deletes_and_failed_reads(make_core):
    # exists_many answers keys it saw committed without a library call: a
    # delete (plain, forced, or of a key that is not there) and a read that
    # finds an entry gone must make it ask the library again.
    core = make_core(4)
    obj = byte_obj(S, 5)
    a, b, c = ekey(1), ekey(2), ekey(3)
    assert core.put_many([a, b], [obj, obj]) == [True, True]
    assert core.exists_many([a]) == [True]
    assert core.exists_many([a, b, c]) == [True, True, False]
    assert core.delete_many([a]) == [True]
    assert core.exists_many([a]) == [False]
    assert core.exists_many([a, b]) == [False, True]
    assert core.put_one(a, obj) is True
    assert core.exists_many([a]) == [True]
    assert core.exists_many([a], lock=True) == [True]
    assert core.delete_many([a]) == [False]  # locked: stays
    assert core.exists_many([a]) == [True]
    assert core.delete_many([a], force=True) == [True]
    assert core.exists_many([a]) == [False]
    assert core.prefix_hits([b, a]) == 1
    # Removed behind the core's back (through its store): a read that
    # misses it makes lookups ask the library again.
    assert core.exists_many([b]) == [True]
    core.store.remove(core_key_bytes(b), force=True)
    reservations, hits = core.reserve_reads([b], prefix_only=False)
    assert hits == [False] and reservations == []
    assert core.exists_many([b]) == [False]
    assert core.prefix_hits([b]) == 0
    release(obj)


def test_a_lookup_racing_a_delete_does_not_bring_the_key_back(make_core):
    core = make_core(2)
    obj = byte_obj(S, 6)
    key = ekey(9)
    assert core.put_one(key, obj) is True
    epoch = core._known_epoch  # a lookup read it, then the library found the key
    assert core.delete_many([key]) == [True]
    core._remember([core_key_bytes(key)], epoch)  # that lookup ends after the delete
    assert core.exists_many([key]) == [False]
    release(obj)


def core_key_bytes(key):
    from daxkv.lmcache import encode_key

    return encode_key(key)


# -- 4. finalize_reads and deleted-but-reserved slots ----------------------------------


def test_deleted_while_reserved_keeps_bytes_until_finalize(make_core):
    core = make_core(1)
    obj, other = byte_obj(S, 21), byte_obj(S, 22)
    key = ekey(1)
    assert core.put_one(key, obj) is True
    r, rs = reserve_one(core, key)

    assert core.delete_many([key]) == [True]
    assert core.exists_many([key]) == [False]
    assert core.snapshot_keys() == []
    assert core.reserve_reads([key], prefix_only=False) == ([], [False])
    # the reserved bytes stay readable, and the slot is not handed out
    assert ctypes.string_at(core.base_ptr + r.offset, S) == pattern(S, 21)
    with pytest.raises(RuntimeError, match="No free slots available"):
        core.put_one(ekey(2), other)
    status = core.report_status()
    assert (status["live_slot_count"], status["borrowed_slot_count"]) == (1, 1)
    assert core.usage() == (1.0, 0.0)
    assert ctypes.string_at(core.base_ptr + r.offset, S) == pattern(S, 21)

    core.finalize_reads(rs, {key})
    assert core.report_status()["borrowed_slot_count"] == 0
    assert core.usage() == (0.0, 0.0)
    assert core.put_one(ekey(2), other) is True
    again, rs2 = reserve_one(core, ekey(2))
    core.finalize_reads(rs2, set())
    assert (again.slot_id, again.generation) == (r.slot_id, r.generation + 1)
    assert stored_bytes(core, ekey(2)) == pattern(S, 22)
    release(obj, other)


# -- 5. properties ---------------------------------------------------------------------


def test_properties_while_open_and_after_close(tmp_path):
    path = make_device(tmp_path / "dax.bin", 4 * S)
    fds_before = open_fds()
    core = DaxCore(device_path=path, max_dax_size_bytes=4 * S, slot_bytes=S)
    objs = [byte_obj(S, 30 + i) for i in range(2)]
    try:
        assert (core.arena_bytes, core.slot_bytes, core.max_slots, core.device_path) == (
            4 * S,
            S,
            4,
            path,
        )
        assert core.is_closing() is False
        assert os.fstat(core.fd).st_ino == os.stat(path).st_ino
        assert core.base_ptr != 0
        assert core.put_many([ekey(0), ekey(1)], objs) == [True, True]
        mm = memoryview(core.mmap_obj).cast("B")
        view = core.arena_view
        assert len(mm) == len(view) == 4 * S
        for i, obj in enumerate(objs):
            r, rs = reserve_one(core, ekey(i))
            core.finalize_reads(rs, set())
            at = r.slot_id * S
            assert bytes(view[at : at + S]) == pattern(S, 30 + i)
            assert bytes(mm[at : at + S]) == pattern(S, 30 + i)
            assert ctypes.addressof(ctypes.c_char.from_buffer(core.mmap_obj)) + at == core.base_ptr + r.offset
            # Used as LMCache's mmap is: unsigned bytes that index to ints
            # and take slice assignment (a ctypes array of c_char, format
            # <c, did neither).
            mo = memoryview(core.mmap_obj)
            assert mo.format == "B" and not mo.readonly
            assert mo[at] == pattern(S, 30 + i)[0]
            assert mo[at : at + 4].tolist() == list(pattern(S, 30 + i)[:4])
            mo.release()
        mm.release()
        del view
    finally:
        core.close()
    assert core.is_closing() is True
    assert (core.fd, core.mmap_obj, core.arena_view, core.base_ptr) == (None, None, None, 0)
    assert open_fds() == fds_before
    core.close()  # idempotent
    release(*objs)


def _own_core_with_one_stored_slot(tmp_path, seed):
    """A core on a two-slot file holding pattern(S, seed) under ekey(1):
    returns the core, the object put and the slot's offset in the arena.
    Not make_core's: that fixture keeps its cores alive and closes them at
    teardown, and these tests close or drop theirs while views remain."""
    path = make_device(tmp_path / "dax.bin", 2 * S)
    core = DaxCore(device_path=path, max_dax_size_bytes=2 * S, slot_bytes=S)
    obj = byte_obj(S, seed)
    assert core.put_one(ekey(1), obj) is True
    r, rs = reserve_one(core, ekey(1))
    core.finalize_reads(rs, set())
    return core, obj, r.offset


@pytest.mark.parametrize("held", ["arena_view slice", "mmap_obj", "both"])
def test_views_of_the_arena_held_across_close_stay_readable(tmp_path, held):
    # LMCache's core cannot close an mmap while a view of it is exported, so
    # such a view stays readable; reading one after close once crashed the
    # process (the store unmapped the arena under it).
    core, obj, at = _own_core_with_one_stored_slot(tmp_path, 81)
    views = []
    if held != "mmap_obj":
        views.append(core.arena_view[at : at + S])
    if held != "arena_view slice":
        views.append(memoryview(core.mmap_obj).cast("B")[at : at + S])
    store = core.store
    core.close()
    assert (core.mmap_obj, core.arena_view) == (None, None)
    with pytest.raises(daxkv.Shutdown):
        store.contains(b"anything")  # no new calls, as after a close
    for view in views:
        assert bytes(view) == pattern(S, 81)
    assert not store.closed  # the mapping stays while a view does
    views.pop().release()
    gc.collect()
    if views:
        assert bytes(views[0]) == pattern(S, 81)
        assert not store.closed
        views.pop().release()
        gc.collect()
    assert store.closed  # the last view gone: the store is closed
    release(obj)


@pytest.mark.parametrize("held", ["arena_view itself", "a torch tensor of arena_view"])
def test_arena_view_itself_held_across_close_stays_readable(tmp_path, held):
    # torch.frombuffer keeps a reference to the view object, no export of
    # its buffer: close() released the view as one nobody used, the store
    # unmapped the arena, and reading the tensor crashed the process.
    core, obj, at = _own_core_with_one_stored_slot(tmp_path, 83)
    if held == "arena_view itself":
        view = core.arena_view

        def read() -> bytes:
            return bytes(view[at : at + S])
    else:
        torch = pytest.importorskip("torch")
        view = torch.frombuffer(core.arena_view, dtype=torch.uint8)

        def read() -> bytes:
            return view[at : at + S].numpy().tobytes()
    store = core.store
    core.close()
    assert core.arena_view is None
    assert not store.closed  # the mapping stays while the view does
    assert read() == pattern(S, 83)
    del view, read
    gc.collect()
    assert store.closed  # the last view gone: the store is closed
    release(obj)


@pytest.mark.parametrize("held", ["arena_view slice", "mmap_obj"])
def test_views_of_the_arena_outlive_a_core_dropped_without_close(tmp_path, held):
    # A core garbage-collected without close() took its store along, whose
    # finalizer unmapped the arena under the caller's view: reading it
    # crashed the process. LMCache's mmap stays mapped while exported.
    core, obj, at = _own_core_with_one_stored_slot(tmp_path, 82)
    if held == "mmap_obj":
        view = memoryview(core.mmap_obj).cast("B")[at : at + S]
    else:
        view = core.arena_view[at : at + S]
    store = weakref.ref(core.store)
    del core
    gc.collect()
    assert store() is not None and not store().closed  # checked before the read
    assert bytes(view) == pattern(S, 82)
    view.release()
    gc.collect()
    assert store() is None  # the last view gone, the store is freed
    release(obj)


# -- 6. remap and can_shrink_to --------------------------------------------------------


def test_remap_grows_within_the_file_and_shrinks_when_high_slots_are_empty(make_core):
    core = make_core(2, room=4)
    objs = [byte_obj(S, 40 + i) for i in range(4)]
    assert core.put_many([ekey(0), ekey(1)], objs[:2]) == [True, True]
    with pytest.raises(RuntimeError, match="No free slots available"):
        core.put_one(ekey(2), objs[2])
    before = {i: stored_slot(core, ekey(i)) * S for i in range(2)}

    assert core.can_shrink_to(4) is True
    core.remap(4 * S)
    assert (core.max_slots, core.arena_bytes, len(core.arena_view)) == (4, 4 * S, 4 * S)
    assert core.put_many([ekey(2), ekey(3)], objs[2:]) == [True, True]
    slots = {}
    for i in range(4):
        r, rs = reserve_one(core, ekey(i))
        core.finalize_reads(rs, set())
        slots[i] = r.slot_id
        assert ctypes.string_at(core.base_ptr + r.offset, S) == pattern(S, 40 + i)
        if i < 2:
            assert r.offset == before[i]
    assert sorted(slots.values()) == [0, 1, 2, 3]
    in_slot_3 = [i for i, s in slots.items() if s == 3][0]
    assert bytes(core.arena_view[3 * S : 4 * S]) == pattern(S, 40 + in_slot_3)

    assert [core.can_shrink_to(n) for n in (0, 1, 3, 4, 5)] == [False, False, False, True, True]
    high = [i for i, s in slots.items() if s >= 2]
    assert core.delete_many([ekey(i) for i in high]) == [True, True]
    assert core.can_shrink_to(2) is True
    core.remap(2 * S)
    assert (core.max_slots, core.arena_bytes, len(core.arena_view)) == (2, 2 * S, 2 * S)
    for i in slots:
        if i not in high:
            assert stored_bytes(core, ekey(i)) == pattern(S, 40 + i)
    assert core.report_status()["live_slot_count"] == 2
    release(*objs)


def _still_serves(core, live, spare_obj, spare_key):
    """The core is usable: entries load back, status healthy, a put works."""
    for key, data in live.items():
        assert stored_bytes(core, key) == data
    assert core.report_status()["is_healthy"] is True
    assert core.put_one(spare_key, spare_obj) is True
    assert core.delete_many([spare_key]) == [True]


def test_remap_refusals_leave_the_core_as_it_was(make_core):
    core = make_core(2, room=4)
    objs = [byte_obj(S, 50 + i) for i in range(3)]
    assert core.put_many([ekey(0), ekey(1)], objs[:2]) == [True, True]
    live = {ekey(0): pattern(S, 50), ekey(1): pattern(S, 51)}

    with pytest.raises(ValueError, match=r"^new DAX arena would cut off live slots$"):
        core.remap(S)
    assert (core.max_slots, core.arena_bytes, len(core.arena_view)) == (2, 2 * S, 2 * S)

    with pytest.raises(ValueError, match=r"^new_max_dax_size_bytes must be > 0$"):
        core.remap(0)
    with pytest.raises(ValueError, match=r"^new DAX arena does not fit even one slot$"):
        core.remap(S - 1)

    # past the room the 4-slot file was laid out for
    with pytest.raises(RuntimeError, match=r"exceeds the room") as info:
        core.remap(5 * S)
    assert isinstance(info.value, DaxCoreError)
    assert (core.max_slots, core.arena_bytes, len(core.arena_view)) == (2, 2 * S, 2 * S)
    core.delete_many([ekey(1)])
    del live[ekey(1)]
    _still_serves(core, live, objs[2], ekey(7))
    assert core.can_shrink_to(1) is (stored_slot(core, ekey(0)) == 0)

    # a legal remap still works afterwards
    core.remap(4 * S)
    assert core.max_slots == 4
    _still_serves(core, live, objs[2], ekey(7))
    release(*objs)


def stored_slot(core, key):
    r, rs = reserve_one(core, key)
    core.finalize_reads(rs, set())
    return r.slot_id


def test_remap_waits_out_borrowed_high_slots(make_core):
    core = make_core(2)
    objs = [byte_obj(S, 60), byte_obj(S, 61)]
    assert core.put_many([ekey(0), ekey(1)], objs) == [True, True]
    high = ekey(0) if stored_slot(core, ekey(0)) == 1 else ekey(1)
    r, rs = reserve_one(core, high)
    assert core.delete_many([high]) == [True]
    # a deleted but reserved slot still counts
    assert core.can_shrink_to(1) is False
    core.finalize_reads(rs, set())
    assert core.can_shrink_to(1) is True
    core.remap(S)
    assert core.max_slots == 1
    release(*objs)


def test_remap_after_close_raises(make_core):
    core = make_core(2)
    core.close()
    with pytest.raises(RuntimeError, match=r"^DaxCore is closed$"):
        core.remap(2 * S)
    assert core.can_shrink_to(1) is False


# -- 7. metadata -----------------------------------------------------------------------

POSITIONS = {
    "progression": torch.arange(0, 512, 2),
    "scattered": torch.tensor([5, 1, 900, -3, 2**40, 0]),
    "empty": torch.tensor([], dtype=torch.int64),
    "none": None,
    "int32": torch.arange(7, 10, dtype=torch.int32),
}


@pytest.mark.parametrize("name", list(POSITIONS))
def test_metadata_comes_back_as_torch_types(make_core, name):
    core = make_core(2)
    positions = POSITIONS[name]
    obj = kv_obj((2, 4, 64), 1.5)
    obj.metadata.cached_positions = positions
    assert core.put_one(ekey(1), obj) is True

    r, rs = reserve_one(core, ekey(1))
    core.finalize_reads(rs, set())
    assert type(r.shape) is torch.Size and r.shape == torch.Size([2, 4, 64])
    assert isinstance(r.dtype, torch.dtype) and r.dtype == torch.bfloat16
    assert type(r.fmt) is MemoryFormat and r.fmt is MemoryFormat.KV_T2D
    if positions is None:
        assert r.cached_positions is None
    else:
        assert r.cached_positions.dtype == positions.dtype
        assert r.cached_positions.tolist() == positions.tolist()

    dst = kv_obj((2, 4, 64), 0.0)
    dst.metadata.cached_positions = torch.tensor([42])  # overwritten by the load
    assert core.load_many_into([ekey(1)], [dst]) == [True]
    assert torch.equal(dst.tensor, obj.tensor)
    loaded = dst.metadata.cached_positions
    if positions is None:
        assert loaded is None
    else:
        assert loaded.dtype == positions.dtype and loaded.tolist() == positions.tolist()
    entries = core.entries()
    assert [(k, size) for k, size, _ in entries] == [(ekey(1), S)]
    meta = entries[0][2]
    assert (meta.shape, meta.dtype, meta.fmt) == (torch.Size([2, 4, 64]), torch.bfloat16, MemoryFormat.KV_T2D)
    release(obj, dst)


def _with_positions(tail: bytes) -> bytes:
    """Stored metadata of a (2, 4, 64) bfloat16 KV_T2D entry whose positions
    part is tail (dtype name, count, kind, ...)."""
    layout = encode_meta(torch.Size([2, 4, 64]), torch.bfloat16, MemoryFormat.KV_T2D)
    return bytes((layout[0], layout[1] | 8)) + layout[2:] + tail


GARBLED_META = {
    # positions only: a progression of 2**32 - 1 values in 14 bytes
    "huge-progression": b"\x01\x08\x05int64\xff\xff\xff\xff\x0f\x00\x00\x00",
    "huge-progression-with-layout": _with_positions(b"\x05int64\xff\xff\xff\xff\x0f\x00\x00\x00"),
    # a billion deltas announced, two present
    "deltas-past-the-end": _with_positions(b"\x05int64\x80\x94\xeb\xdc\x03\x01\x02\x02"),
    # one more than the format's limit, as a progression
    "progression-past-the-limit": _with_positions(b"\x05int64\x81\x80\x40\x00\x00\x02"),
    # values torch cannot hold in the stored dtype
    "position-past-int8": _with_positions(b"\x04int8\x01\x00\xe8\x07\x00"),
    "position-past-64-bits": _with_positions(b"\x05int64\x01\x00" + b"\xff" * 10 + b"\x01\x00"),
    "not-a-tensor-dtype": _with_positions(b"\x06quint8\x01\x00\x02\x00"),
    # a dimension torch.Size accepts but cannot use
    "dimension-past-64-bits": encode_meta([2, 2**70, 64], torch.bfloat16, MemoryFormat.KV_T2D),
}


@pytest.mark.parametrize("name", list(GARBLED_META))
def test_garbled_metadata_is_a_miss_not_an_allocation_or_an_exception(make_core, name):
    # Counts and values in stored metadata are bounded by the bytes present
    # and by the format before anything is built from them; what does not
    # decode is a ValueError, which every reader turns into a miss.
    blob = GARBLED_META[name]
    with pytest.raises(ValueError):
        decode_meta(blob)
    core = make_core(2)
    assert core.store.put(encode_key(ekey(1)), pattern(S, 1), meta=blob)
    assert core.exists_many([ekey(1)]) == [True]
    assert core.reserve_reads([ekey(1)], prefix_only=False) == ([], [False])
    assert core.reserve_reads([ekey(1)], prefix_only=True) == ([], [False])
    dst = kv_obj((2, 4, 64), 0.0)
    assert core.load_many_into([ekey(1)], [dst]) == [False]
    assert core.entries() == []
    assert core.report_status()["borrowed_slot_count"] == 0
    release(dst)


def test_positions_up_to_the_format_limit_round_trip():
    longest = torch.arange(0, 2 * POSITIONS_MAX, 2)
    assert decode_meta(encode_meta(None, None, None, longest)).cached_positions.tolist() == longest.tolist()
    with pytest.raises(ValueError):
        encode_meta(None, None, None, torch.arange(POSITIONS_MAX + 1))


def test_load_many_into_refuses_small_multi_tensor_and_missing(make_core):
    core = make_core(2)
    obj = kv_obj((2, 4, 64), 2.0)
    assert core.put_one(ekey(1), obj) is True
    small = kv_obj((2, 4, 63), 9.0)  # 1008 bytes < 1024
    before = obj_bytes(small)
    multi = multi_obj()
    miss = kv_obj((2, 4, 64), 7.0)
    assert core.load_many_into([ekey(1), ekey(1), ekey(2)], [small, multi, miss]) == [False, False, False]
    assert obj_bytes(small) == before
    assert torch.all(miss.tensor == 7.0)
    assert core.report_status()["active_read_count"] == 0
    release(obj, small, multi, miss)


# -- 8. close waits for copies in flight ----------------------------------------------


def test_close_waits_for_unfinalized_reservations(make_core):
    core = make_core(2)
    obj = byte_obj(S, 70)
    assert core.put_one(ekey(1), obj) is True
    reserved = threading.Event()
    finish = threading.Event()
    seen = {}

    def reader():
        rs, hits = core.reserve_reads([ekey(1)], prefix_only=False)
        reserved.set()
        finish.wait(10)
        # close has begun but must not have unmapped anything yet
        seen["bytes"] = ctypes.string_at(core.base_ptr + rs[0].offset, S)
        core.finalize_reads(rs, set())

    closed = threading.Event()
    t_reader = threading.Thread(target=reader)
    t_reader.start()
    assert reserved.wait(5)
    t_close = threading.Thread(target=lambda: (core.close(), closed.set()))
    t_close.start()
    assert wait_until(core.is_closing)
    assert not closed.is_set() and t_close.is_alive()
    status = core.report_status()
    assert (status["closing"], status["active_read_count"]) == (True, 1)

    # new operations while close waits get LMCache's closing results
    other = byte_obj(S, 71)
    assert core.put_many([ekey(2)], [other]) == [False]
    assert core.put_one(ekey(2), other) is False
    assert core.exists_many([ekey(1)]) == [False]
    assert core.reserve_reads([ekey(1)], prefix_only=False) == ([], [False])
    assert core.snapshot_keys() == []
    assert core.put_reserved_from_ptr(
        ekey(3), other.data_ptr, S, torch.Size([S]), torch.uint8, MemoryFormat.KV_2LTD, None
    ) is DaxPutFromPtrResult.CLOSED
    assert not closed.is_set()

    finish.set()
    t_reader.join(5)
    t_close.join(5)
    assert closed.is_set()
    assert seen["bytes"] == pattern(S, 70)
    assert core.base_ptr == 0
    release(obj, other)


def test_operations_after_close_give_closed_results(make_core):
    core = make_core(2)
    obj = byte_obj(S, 80)
    assert core.put_one(ekey(1), obj) is True
    assert core.exists_many([ekey(1)], lock=True) == [True]
    core.close()
    keys = [ekey(1), ekey(2)]
    assert core.put_many(keys, [obj, obj]) == [False, False]
    assert core.put_one(ekey(3), obj) is False
    assert core.exists_many(keys) == [False, False]
    assert core.exists_many(keys, lock=True) == [False, False]
    assert core.reserve_reads(keys, prefix_only=False) == ([], [False, False])
    assert core.reserve_reads(keys, prefix_only=True) == ([], [False, False])
    assert core.reserve_reads_for_keys(keys) == []
    assert core.load_many_into([ekey(1)], [obj]) == [False]
    assert core.snapshot_keys() == []
    assert core.entries() == []
    assert core.delete_many(keys) == [False, False]
    assert core.unlock_many(keys) is None
    assert core.has_inflight(ekey(1)) is False
    assert core.usage() == (0.0, 0.0)
    assert core.can_shrink_to(2) is False
    assert core.put_reserved_from_ptr(
        ekey(4), obj.data_ptr, S, torch.Size([S]), torch.uint8, MemoryFormat.KV_2LTD, None
    ) is DaxPutFromPtrResult.CLOSED
    status = core.report_status()
    assert status == {
        "is_healthy": False,
        "device_path": core.device_path,
        "max_dax_size_bytes": 2 * S,
        "slot_bytes": S,
        "max_slots": 2,
        "live_slot_count": 0,
        "locked_key_count": 0,
        "borrowed_slot_count": 0,
        "active_read_count": 0,
        "active_write_count": 0,
        "closing": True,
        "supports_restart_recovery": False,
    }
    core.close()
    release(obj)


def test_put_reserved_from_ptr_results(make_core):
    core = make_core(1)
    obj = byte_obj(S, 90)
    args = (torch.Size([S]), torch.uint8, MemoryFormat.KV_2LTD, torch.tensor([1, 2]))
    put = core.put_reserved_from_ptr
    assert put(ekey(1), obj.data_ptr, 0, *args) is DaxPutFromPtrResult.INVALID
    assert put(ekey(1), obj.data_ptr, S + 1, *args) is DaxPutFromPtrResult.INVALID
    assert put(ekey(1), 0, S, *args) is DaxPutFromPtrResult.INVALID
    assert put(ekey(1), obj.data_ptr, S, *args) is DaxPutFromPtrResult.INSERTED
    assert put(ekey(1), obj.data_ptr, S, *args) is DaxPutFromPtrResult.ALREADY_EXISTS
    assert put(ekey(2), obj.data_ptr, S, *args) is DaxPutFromPtrResult.NO_SPACE
    r, rs = reserve_one(core, ekey(1))
    core.finalize_reads(rs, set())
    assert (r.shape, r.dtype, r.fmt, r.cached_positions.tolist()) == (
        torch.Size([S]),
        torch.uint8,
        MemoryFormat.KV_2LTD,
        [1, 2],
    )
    assert stored_bytes(core, ekey(1)) == pattern(S, 90)
    release(obj)


# -- 11. capacity, report_status, usage ------------------------------------------------


@pytest.mark.parametrize("slots", [1, 3, 16])
def test_file_of_n_slots_holds_n_entries(tmp_path, slots):
    path = make_device(tmp_path / "dax.bin", slots * S)
    core = DaxCore(device_path=path, max_dax_size_bytes=slots * S, slot_bytes=S)
    objs = [byte_obj(S, i) for i in range(slots + 1)]
    try:
        assert core.max_slots == slots
        assert os.path.getsize(path) > slots * S  # the slot headers go on top
        results = core.put_many([ekey(i) for i in range(slots + 1)], objs)
        assert results == [True] * slots + [False]
        assert core.report_status()["live_slot_count"] == slots
        assert core.usage() == (1.0, 1.0)
        for i in range(slots):
            assert stored_bytes(core, ekey(i)) == pattern(S, i)
    finally:
        core.close()
        release(*objs)


def test_report_status_and_usage_values(make_core):
    core = make_core(4)
    objs = [byte_obj(S, i) for i in range(3)]
    status = core.report_status()
    assert status == {
        "is_healthy": True,
        "device_path": core.device_path,
        "max_dax_size_bytes": 4 * S,
        "slot_bytes": S,
        "max_slots": 4,
        "live_slot_count": 0,
        "locked_key_count": 0,
        "borrowed_slot_count": 0,
        "active_read_count": 0,
        "active_write_count": 0,
        "closing": False,
        "supports_restart_recovery": False,
    }
    assert core.usage() == (0.0, 0.0)
    assert core.put_many([ekey(i) for i in range(3)], objs) == [True] * 3
    # key 0 locked twice, key 1 once: two locked keys
    assert core.exists_many([ekey(0), ekey(1), ekey(7)], lock=True) == [True, True, False]
    assert core.exists_many([ekey(0)], lock=True) == [True]
    reservations, _ = core.reserve_reads([ekey(2)], prefix_only=False)
    assert core.delete_many([ekey(2)]) == [True]
    status = core.report_status()
    assert {k: status[k] for k in ("live_slot_count", "locked_key_count", "borrowed_slot_count", "active_read_count")} == {
        "live_slot_count": 3,
        "locked_key_count": 2,
        "borrowed_slot_count": 1,
        "active_read_count": 1,
    }
    assert core.usage() == (0.75, 0.5)
    # locked keys survive a plain delete, not a forced one
    assert core.delete_many([ekey(0), ekey(1)]) == [False, False]
    core.unlock_many([ekey(0), ekey(1)])
    assert core.report_status()["locked_key_count"] == 1
    assert core.delete_many([ekey(0), ekey(1)]) == [False, True]
    assert core.delete_many([ekey(0)], force=True) == [True]
    assert core.report_status()["locked_key_count"] == 0
    core.unlock_many([ekey(0)])  # never below zero, no error
    assert core.usage() == (0.25, 0.0)
    core.finalize_reads(reservations, set())
    status = core.report_status()
    assert (status["live_slot_count"], status["borrowed_slot_count"], status["active_read_count"]) == (0, 0, 0)
    assert core.usage() == (0.0, 0.0)
    release(*objs)


# -- keys longer than the library holds -------------------------------------------------


def test_keys_too_long_for_the_library_miss_and_never_raise(make_core, caplog):
    import logging

    core = make_core(4)
    long_key = CacheEngineKey("test_model", 1, 0, 9, torch.bfloat16, request_configs={"lmcache.tag.user": "u" * 500})
    objs = [byte_obj(S, i) for i in range(3)]
    keys = [ekey(1), long_key, ekey(2)]
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert core.put_many(keys, objs) == [True, False, True]
        assert core.put_one(long_key, objs[1]) is False
        assert core.put_one(long_key, objs[1], writer=lambda *a: None) is False
        assert core.put_reserved_from_ptr(
            long_key, objs[1].data_ptr, S, torch.Size([S]), torch.uint8, MemoryFormat.KV_2LTD, None
        ) is DaxPutFromPtrResult.INVALID
    skipped = [r for r in caplog.records if "above libdaxkv's key limit of 512 bytes" in r.getMessage()]
    assert len(skipped) == 4 and all(r.levelno == logging.WARNING for r in skipped)
    assert core.exists_many([long_key]) == [False]
    assert core.exists_many(keys) == [True, False, True]
    assert core.exists_many(keys, lock=True) == [True, False, True]
    core.unlock_many(keys)
    assert core.report_status()["locked_key_count"] == 0
    assert core.has_inflight(long_key) is False
    assert core.prefix_hits(keys) == 1 and core.prefix_hits([long_key]) == 0
    reservations, hits = core.reserve_reads(keys, prefix_only=False)
    assert hits == [True, False, True] and [r.result_index for r in reservations] == [0, 2]
    core.finalize_reads(reservations, set())
    reservations, hits = core.reserve_reads(keys, prefix_only=True)
    assert hits == [True, False, False] and [r.result_index for r in reservations] == [0]
    core.finalize_reads(reservations, set())
    leases = core.lease_entries(keys, prefix_only=False)
    assert leases.index == [0, 2]
    core.release_entries(leases)
    leases = core.lease_entries([long_key, ekey(1)], prefix_only=True)
    assert len(leases) == 0
    targets = [byte_obj(S, 50 + i) for i in range(3)]
    assert core.load_many_into(keys, targets) == [True, False, True]
    assert obj_bytes(targets[2]) == pattern(S, 2)
    assert core.delete_many([long_key]) == [False]
    assert core.delete_many(keys) == [True, False, True]
    assert core.report_status()["live_slot_count"] == 0
    release(*objs, *targets)


# -- metadata the library cannot hold ----------------------------------------------------


def test_metadata_larger_than_meta_bytes_is_a_failed_write_not_a_full_arena(make_core, caplog):
    import logging
    import random

    core = make_core(2)
    obj, other = byte_obj(S, 3), byte_obj(S, 4)
    # 300 positions in no progression: about 1 KiB encoded
    obj.metadata.cached_positions = torch.tensor(sorted(random.Random(0).sample(range(1_000_000), 300)))
    for writer in (None, lambda offset, o, size: None):
        with pytest.raises(RuntimeError) as info:
            core.put_one(ekey(1), obj, writer=writer)
        assert "No free slots" not in str(info.value)
        assert "larger than meta_bytes (512 bytes); raise the meta_bytes option" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert core.put_many([ekey(1), ekey(2)], [obj, other]) == [False, True]
    assert any("larger than meta_bytes" in r.getMessage() for r in caplog.records)
    assert core.report_status()["live_slot_count"] == 1
    release(obj, other)


# Token positions that the metadata encoding cannot hold exactly: a 2-D
# tensor, a 0-d tensor, fractional float positions (0.5, 1.5), a NaN, an
# infinity, complex positions, a list holding a str.
UNSTORABLE_POSITIONS = {
    "2-d": torch.zeros(2, 3, dtype=torch.long),
    "0-d": torch.tensor(5),
    "fractional": torch.tensor([0.5, 1.5, 2.5]),
    "nan": torch.tensor([1.0, float("nan")]),
    "inf": torch.tensor([float("inf")]),
    "complex": torch.tensor([1 + 2j]),
    "list-with-str": [1, "x"],
}


@pytest.mark.parametrize("name", list(UNSTORABLE_POSITIONS))
def test_positions_the_metadata_cannot_hold_fail_that_write_only(make_core, name, caplog):
    import logging

    core = make_core(4)
    bad, good = byte_obj(S, 3), byte_obj(S, 4)
    bad.metadata.cached_positions = UNSTORABLE_POSITIONS[name]
    with pytest.raises(ValueError):
        encode_meta(None, None, None, UNSTORABLE_POSITIONS[name])
    # A batch stores its other keys; the bad one is a logged failure, never
    # stored with positions other than its own, never an exception.
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert core.put_many([ekey(1), ekey(2)], [bad, good]) == [False, True]
    assert any("metadata cannot be stored" in r.getMessage() for r in caplog.records)
    for writer in (None, lambda offset, o, size: None):
        with pytest.raises(RuntimeError) as info:
            core.put_one(ekey(1), bad, writer=writer)
        assert "metadata cannot be stored" in str(info.value)
    assert core.exists_many([ekey(1), ekey(2)]) == [False, True]
    assert core.report_status()["live_slot_count"] == 1
    assert core.report_status()["active_write_count"] == 0
    assert not core.has_inflight(ekey(1))
    release(bad, good)


def test_integral_float_positions_come_back_exactly(make_core):
    core = make_core(2)
    obj = byte_obj(S, 3)
    obj.metadata.cached_positions = torch.tensor([0.0, 3.0, -7.0, 2.0**40], dtype=torch.float64)
    assert core.put_many([ekey(1)], [obj]) == [True]
    r, rs = reserve_one(core, ekey(1))
    core.finalize_reads(rs, set())
    assert r.cached_positions.dtype == torch.float64
    assert r.cached_positions.tolist() == [0.0, 3.0, -7.0, 2.0**40]
    release(obj)


# Entries whose recorded layout does not hold their value: LMCache's own
# DaxBackend (on this core, the drop-in) allocates reservation.shape and
# dtype, then copies reservation.size bytes into it. Tried: a value of a
# slot under a layout of 32 bytes (put_reserved_from_ptr, which LMCache's
# core accepts, and stored directly); a layout of 2**40 bfloat16 values for
# a 64-byte value, a layout of one byte more than a slot, a value of 33
# bytes under a layout of 32, layouts whose element count wraps in 64 bits.
def _layout_cases(core):
    obj = byte_obj(S, 7)
    assert core.put_reserved_from_ptr(
        ekey(1), obj.data_ptr, S, torch.Size([2, 1, 8]), torch.bfloat16, MemoryFormat.KV_T2D, None
    ) is DaxPutFromPtrResult.INSERTED
    for i, (shape, dtype, size) in enumerate(
        [([2**40], torch.bfloat16, 64), ([S + 1], torch.uint8, S), ([2, 1, 8], torch.bfloat16, 33),
         # element counts that wrap in 64 bits (torch.Size.numel() gives 4 and 0)
         ([2**62 + 1, 4], torch.uint8, 4), ([2**32, 2**32], torch.uint8, 0)],
        start=2,
    ):
        assert core.store.put(encode_key(ekey(i)), pattern(size, i), meta=encode_meta(torch.Size(shape), dtype, MemoryFormat.KV_T2D))
    # and one that is fine: a value smaller than its layout (a narrowed object)
    assert core.store.put(encode_key(ekey(9)), pattern(16, 9), meta=encode_meta(torch.Size([2, 1, 8]), torch.bfloat16, MemoryFormat.KV_T2D))
    assert core.report_status()["live_slot_count"] == 7
    release(obj)
    return [ekey(i) for i in range(1, 7)]


def test_reservations_never_hold_more_than_their_layout_allocates(make_core):
    core = make_core(8)
    bad = _layout_cases(core)
    for prefix_only in (False, True):
        rs, hits = core.reserve_reads(bad + [ekey(9)], prefix_only=prefix_only)
        core.finalize_reads(rs, set())  # first: a failed check must not leave close() waiting
        assert hits == [False] * len(bad) + [not prefix_only]
        assert [r.key for r in rs] == ([] if prefix_only else [ekey(9)])
    leases = core.lease_entries(bad + [ekey(9)], prefix_only=False)
    core.release_entries(leases)
    assert leases.index == [len(bad)]
    assert core.report_status()["borrowed_slot_count"] == 0
    assert core.report_status()["active_read_count"] == 0


# A reservation or a set of leases finalized twice (an error path that
# finalizes in its handler and again in a finally). LMCache's core logs an
# underflow; daxkv's released the library's lease handles twice, a
# use-after-free that crashed the process or, once the handle's memory
# served another reader's lease, ended that reader's lease under it. Run in
# a child process, so that a crash is a failed test rather than the end of
# the run. Tried: finalize_reads twice (with another reader's reservation
# of the same key taken in between), release_entries twice.
_DOUBLE_FINALIZE = r"""
import os, sys, ctypes, torch
from daxkv.lmcache import DaxCore
from dk_helpers import byte_obj, ekey, make_device, pattern
S = 1024
path = make_device(os.path.join(sys.argv[1], "dax.bin"), 16 * S)
core = DaxCore(device_path=path, max_dax_size_bytes=8 * S, slot_bytes=S)
assert core.put_many([ekey(1), ekey(2)], [byte_obj(S, 1), byte_obj(S, 2)]) == [True, True]
first, _ = core.reserve_reads([ekey(1)], prefix_only=False)
core.finalize_reads(first, set())
other, _ = core.reserve_reads([ekey(1)], prefix_only=False)  # another reader
core.finalize_reads(first, set())  # again: must leave the other reader's lease alone
status = core.report_status()
assert (status["borrowed_slot_count"], status["active_read_count"]) == (1, 1), status
assert core.delete_many([ekey(1)], force=True) == [True]
assert core.put_many([ekey(3)], [byte_obj(S, 3)]) == [True]  # must not take the borrowed slot
assert ctypes.string_at(core.base_ptr + other[0].offset, S) == pattern(S, 1)
core.finalize_reads(other, set())
leases = core.lease_entries([ekey(2)], prefix_only=False)
core.release_entries(leases)
core.release_entries(leases)
status = core.report_status()
assert (status["borrowed_slot_count"], status["active_read_count"]) == (0, 0), status
core.close()
print("survived")
"""


def test_finalizing_twice_neither_crashes_nor_ends_another_readers_lease(tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run(
        [sys.executable, "-c", _DOUBLE_FINALIZE, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.strip().endswith("survived")


@pytest.mark.parametrize("size", [-1, -(2**63), 2**64 + 5])
def test_objects_reporting_sizes_no_slot_holds(make_core, size, caplog):
    # A negative size passed the "larger than a slot" check, went to the
    # library as a huge unsigned one and came back as "metadata larger than
    # meta_bytes"; as a destination, a negative or a past-64-bit size raised
    # OverflowError out of load_many_into for the whole batch.
    import logging

    core = make_core(4)
    src = byte_obj(S, 3)
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert core.put_many([ekey(1)], [SizedAs(src, size)]) == [False]
        assert core.put_one(ekey(1), SizedAs(src, size)) is False
    assert not [r for r in caplog.records if "meta_bytes" in r.getMessage()]
    assert core.report_status()["live_slot_count"] == 0
    assert core.put_many([ekey(2)], [src]) == [True]
    dst, other = byte_obj(S, 0), byte_obj(S, 0)
    got = core.load_many_into([ekey(2), ekey(2)], [SizedAs(dst, size), other])
    # A destination past 64 bits takes the entry (it is no larger than a
    # slot); a negative one takes nothing. The other item loads either way.
    assert got == [size > 0, True]
    assert obj_bytes(dst) == (pattern(S, 3) if size > 0 else pattern(S, 0))
    assert obj_bytes(other) == pattern(S, 3)
    release(src, dst, other)
