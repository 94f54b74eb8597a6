# SPDX-License-Identifier: Apache-2.0
"""Concurrent stress test of daxkv.lmcache.DaxCore, with LMCache's own
``lmcache.v1.storage_backend.dax.core.DaxCore`` (imported unchanged from the
tree the conftest assembles from LMCache's sources; skipped without them)
run under the same workload as the control.

Several threads share two cores of one kind (LMCache's own, or the
drop-in: the adapter's two devices) and make the calls LMCache's
``DaxBackend`` and ``dax`` L2 adapter make at the same time:

* put_one with a writer that copies into ``base_ptr + offset`` (the
  backend's store), at times in two halves with a thread switch between
  them, at times failing half way (a copy error);
* put_many of one key (the adapter's store);
* eviction under space pressure: when a store finds no free slot, a
  delete_many of a few committed keys, plain (the adapter's delete) or
  forced (the backend's remove);
* delete_many plain and forced of random keys, with repeats;
* reserve_reads (prefix_only both ways) and reserve_reads_for_keys, the
  bytes read twice around a thread switch, then finalize_reads (the
  backend's restores, the adapter's migration source);
* load_many_into of several keys (the adapter's load);
* the adapter's migration between its two devices (a second core):
  reserve_reads_for_keys on the source, put_reserved_from_ptr into the
  target from the source's arena, finalize_reads, a plain delete_many of
  the moved keys on the source;
* remap growing or shrinking a core by a slot (the adapter's resize);
* exists_many with lock=True, held over later calls and released by
  unlock_many (the adapter's lookup-and-lock), and without a lock;
  has_inflight (the backend's contains and exists_in_put_tasks);
* snapshot_keys, usage, report_status (and the drop-in's entries());
* close at the end, while a read reservation is held.

Interleavings differ between the cores and between runs, so the test
checks invariants rather than results call by call:

* a read (a reservation's bytes, load_many_into's destination) returns
  exactly what one put of that key wrote: each value carries its key and
  a version, its bytes, layout and positions derive from both, and a
  version counts once its put has begun;
* no read returns the value of a put that stored nothing (a full arena,
  a failed copy, a write cancelled by a forced delete);
* a reservation's bytes do not change until finalize_reads, whatever is
  deleted or stored meanwhile;
* no call raises what LMCache's core never raises for it (put_one: a
  RuntimeError for a full arena or a failed copy; nothing else raises);
  prefix reads are prefixes; a failed copy always raises;
* no deadlock: every thread ends within a generous bound, or the test
  fails with every thread's stack (faulthandler);
* after the threads end: no write in flight; the committed keys are the
  same by exists_many, snapshot_keys, reserve_reads and (drop-in) entries(),
  and hold valid values; report_status and usage count exactly them, with
  no read, write, borrow or lock left; the drop-in's library holds no
  lease, reservation, pin or slot waiting to be freed;
* close waits for a held reservation, whose bytes stay intact, and every
  call afterwards is a no-op.

The workload is a function of the seed (each thread has its own random
sequence), the interleaving is not. Seeds are printed;
``DAXKV_CONCURRENT_SEED=N`` runs seed N alone and
``DAXKV_CONCURRENT_SEEDS=N`` runs seeds 0..N-1 (default 3).
"""

# Standard
import ctypes
import faulthandler
import os
import random
import struct
import sys
import threading
import time
import traceback

# Third Party
import pytest
import torch

# First Party
import conftest
from daxkv.lmcache import DaxCore as DaxkvCore
from dk_helpers import load_lmcache_core, make_device, wait_until
from lmcache.utils import CacheEngineKey
from lmcache.v1.memory_allocators.ad_hoc_memory_allocator import AdHocMemoryAllocator
from lmcache.v1.memory_management import MemoryFormat

if conftest.LMCACHE_TREE is None:
    pytest.skip(f"LMCache's DaxCore is not available ({conftest.L2_UNAVAILABLE})", allow_module_level=True)


_LMC = load_lmcache_core(conftest.LMCACHE_TREE)

S = 512  # slot bytes
SLOTS = 5
OTHER_SLOTS = 3  # the migration target's
GROW = 2  # slots remap may grow a core by
KEYS = 8  # more keys than slots: stores find the arena full
THREADS = 4
OPS = 150  # per thread
HEADER = struct.Struct("<QQ")  # key index, version
# A thread that has not ended by then is taken as hung (a bound, not a
# measure: a run takes a second or two).
HANG_S = 120.0

_ALLOC = AdHocMemoryAllocator(device="cpu")
_DTYPES = [torch.uint8, torch.float16, torch.int32]
_FMTS = list(MemoryFormat)
_FULL = "No free slots available; eviction required"


def _seeds():
    one = os.environ.get("DAXKV_CONCURRENT_SEED")
    if one is not None:
        return [int(one)]
    return list(range(int(os.environ.get("DAXKV_CONCURRENT_SEEDS", "3"))))


# -- values ------------------------------------------------------------------------


def _layout(ki, version):
    """(shape, dtype, fmt, positions) of a key's version: at least the header,
    at most a slot."""
    r = random.Random(ki * 1_000_003 + version)
    dtype = _DTYPES[r.randrange(len(_DTYPES))]
    es = torch.empty((), dtype=dtype).element_size()
    n = r.randrange((HEADER.size + es - 1) // es, S // es + 1)
    shape = [2, n // 2] if n % 2 == 0 and r.random() < 0.5 else [n]
    positions = None
    if r.random() < 0.3:
        a = r.randrange(4096)
        positions = list(range(a, a + r.randrange(1, 32)))
    return torch.Size(shape), dtype, _FMTS[r.randrange(len(_FMTS))], positions


def _size(shape, dtype):
    n = 1
    for d in shape:
        n *= d
    return n * torch.empty((), dtype=dtype).element_size()


def _value(ki, version):
    shape, dtype, _, _ = _layout(ki, version)
    size = _size(shape, dtype)
    body = random.Random(ki * 7_000_001 + version).randbytes(size - HEADER.size)
    return HEADER.pack(ki, version) + body


def _make_obj(ki, version):
    shape, dtype, fmt, positions = _layout(ki, version)
    obj = _ALLOC.allocate([shape], [dtype], fmt=fmt)
    data = _value(ki, version)
    ctypes.memmove(obj.data_ptr, data, len(data))
    obj.metadata.cached_positions = None if positions is None else torch.tensor(positions, dtype=torch.int64)
    return obj


def _positions(p):
    return None if p is None else [int(x) for x in p.tolist()]


class Broken(AssertionError):
    pass


class Run:
    """Two cores of a kind (the adapter's devices: the second one is the
    target of migrations), the keys, and what the threads have begun to
    write (the versions a read may return)."""

    def __init__(self, kind, seed, tmp_path):
        self.kind, self.seed = kind, seed
        cls = _LMC.DaxCore if kind == "lmcache" else DaxkvCore
        self.cores = []
        for name, slots in (("main", SLOTS), ("other", OTHER_SLOTS)):
            # Room for remap to grow into.
            path = make_device(os.path.join(tmp_path, f"{kind}-{seed}-{name}.bin"), (slots + GROW) * S)
            self.cores.append(cls(device_path=path, max_dax_size_bytes=slots * S, slot_bytes=S))
        self.core = self.cores[0]
        self.keys = [CacheEngineKey("m", 1, 0, 7000 + i, torch.bfloat16) for i in range(KEYS)]
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.versions = [set() for _ in self.keys]
        # (key index, version) of the puts that stored nothing (a full
        # arena, a failed or cancelled copy), and of every value read.
        self.dead = set()
        self.read = set()
        self.lock = threading.Lock()
        self.errors = []

    def fail(self, what):
        raise Broken(f"{self.kind} core, seed {self.seed} (replay: DAXKV_CONCURRENT_SEED={self.seed}): {what}")

    def stored_nothing(self, key, obj):
        ki, version = HEADER.unpack_from(ctypes.string_at(obj.data_ptr, HEADER.size))
        with self.lock:
            self.dead.add((ki, version))

    def begin_put(self, ki, version):
        with self.lock:
            self.versions[ki].add(version)
        return _make_obj(ki, version)

    def check(self, key, data, size, shape=None, dtype=None, fmt=None, positions=None, what=""):
        """data (bytes read of key) is what a put of key wrote, its layout
        and positions that put's."""
        ki = self.index[key]
        if size < HEADER.size:
            self.fail(f"{what}: {key} read {size} bytes, shorter than any value written")
        got_ki, version = HEADER.unpack_from(data)
        with self.lock:
            begun = version in self.versions[ki]
            self.read.add((got_ki, version))
        if got_ki != ki or not begun:
            self.fail(f"{what}: {key} read the value of key {got_ki} version {version}, never put for it")
        want = _value(ki, version)
        if size != len(want) or bytes(data[:size]) != want:
            self.fail(f"{what}: {key} version {version}: {size} bytes read differ from the {len(want)} written")
        w_shape, w_dtype, w_fmt, w_pos = _layout(ki, version)
        if shape is not None and (tuple(shape), dtype, fmt) != (tuple(w_shape), w_dtype, w_fmt):
            self.fail(
                f"{what}: {key} version {version}: layout {shape} {dtype} {fmt}, "
                f"written {w_shape} {w_dtype} {w_fmt}"
            )
        if _positions(positions) != w_pos:
            self.fail(f"{what}: {key} version {version}: positions {_positions(positions)}, written {w_pos}")

    def check_reservations(self, core, reservations, what):
        """Check reserved entries; their bytes, to compare later."""
        base = core.base_ptr
        out = []
        for r in reservations:
            data = ctypes.string_at(base + r.offset, r.size)
            self.check(r.key, data, r.size, r.shape, r.dtype, r.fmt, r.cached_positions, what)
            out.append(data)
        return out


# -- one thread's calls ---------------------------------------------------------------


class Worker:
    def __init__(self, run, tid):
        self.run, self.tid = run, tid
        self.rng = random.Random(run.seed * 1000 + tid)
        self.core = run.core
        self.version = tid << 32
        self.locked = []  # (core, key) locked by exists_many(lock=True), not unlocked yet
        self.op = ""

    def key(self):
        return self.rng.choice(self.run.keys)

    def keys(self, lo=1, hi=4):
        return [self.key() for _ in range(self.rng.randint(lo, hi))]

    def new_obj(self, key):
        self.version += 1
        return self.run.begin_put(self.run.index[key], self.version)

    def evict(self, core):
        """What LMCache's controllers do when a store finds no room: delete
        a few committed keys (the adapter's plain delete, the backend's
        forced remove)."""
        present = core.snapshot_keys()
        victims = self.rng.sample(present, min(len(present), self.rng.randint(1, 2)))
        if victims:
            core.delete_many(victims, force=self.rng.random() < 0.5)

    def put_one(self):
        core = self.core
        key = self.key()
        obj = self.new_obj(key)
        mode = self.rng.choice(["copy", "copy", "halves", "halves", "fail"])
        wrote = []

        def writer(offset, memory_obj, size):
            # base_ptr as the write begins, as LMCache's backend reads it
            # (remap moves LMCache's mapping; no remap runs during a write).
            base = core.base_ptr
            wrote.append(size)
            if mode == "copy":
                ctypes.memmove(base + offset, memory_obj.data_ptr, size)
                return
            half = size // 2
            ctypes.memmove(base + offset, memory_obj.data_ptr, half)
            time.sleep(0)  # let the other threads run in the middle of the copy
            if mode == "fail":
                raise OSError("copy failed half way")
            ctypes.memmove(base + offset + half, memory_obj.data_ptr + half, size - half)

        try:
            if core.put_one(key, obj, writer=writer) is False and wrote:
                self.run.stored_nothing(key, obj)  # cancelled by a forced delete
        except RuntimeError as exc:
            self.run.stored_nothing(key, obj)
            msg = str(exc)
            if msg == _FULL:
                if wrote:
                    self.run.fail(f"put_one of {key} found no slot after its writer ran")
                self.evict(core)
            elif not (mode == "fail" and wrote and msg.startswith(f"DAX write failed for key {key}: ")):
                raise
        else:
            if mode == "fail" and wrote:
                self.run.fail(f"put_one of {key} returned although its writer raised")
        finally:
            obj.ref_count_down()

    def put_many(self):
        key = self.key()
        obj = self.new_obj(key)
        try:
            ok = self.core.put_many([key], [obj])
            if ok == [False]:
                self.run.stored_nothing(key, obj)
                self.evict(self.core)  # full: LMCache's adapter evicts by usage
            elif ok != [True]:
                self.run.fail(f"put_many of one key returned {ok}")
        finally:
            obj.ref_count_down()

    def delete(self):
        keys = self.keys(1, 3)
        out = self.core.delete_many(keys, force=self.rng.random() < 0.5)
        if len(out) != len(keys) or not all(isinstance(x, bool) for x in out):
            self.run.fail(f"delete_many({keys}) returned {out}")

    def reserve(self):
        core = self.core
        keys = self.keys(1, 5)
        how = self.rng.choice(["prefix", "all", "for_keys"])
        if how == "for_keys":
            reservations = core.reserve_reads_for_keys(keys)
            hits = None
        else:
            reservations, hits = core.reserve_reads(keys, prefix_only=how == "prefix")
        try:
            idx = [r.result_index for r in reservations]
            if hits is not None:
                if [i for i, h in enumerate(hits) if h] != idx or len(hits) != len(keys):
                    self.run.fail(f"reserve_reads({keys}): hits {hits}, reservations at {idx}")
                if how == "prefix" and idx != list(range(len(idx))):
                    self.run.fail(f"reserve_reads({keys}, prefix_only=True) reserved {idx}")
            if any(r.key != keys[r.result_index] for r in reservations) or idx != sorted(set(idx)):
                self.run.fail(f"reserve_reads({keys}) reserved {[(r.result_index, r.key) for r in reservations]}")
            first = self.run.check_reservations(core, reservations, f"reserve_reads({how})")
            time.sleep(0)
            if self.rng.random() < 0.5:
                # Deleted and stored over while reserved: the bytes stay.
                core.delete_many([r.key for r in reservations], force=True)
                self.put_one()
            again = [ctypes.string_at(core.base_ptr + r.offset, r.size) for r in reservations]
            if again != first:
                self.run.fail(f"reserved bytes of {[r.key for r in reservations]} changed before finalize_reads")
        finally:
            core.finalize_reads(reservations, {r.key for r in reservations})

    def migrate(self):
        """The adapter's migration of keys from one device to another:
        reserve on the source, put_reserved_from_ptr into the target,
        finalize, delete the moved keys from the source (plain)."""
        source, target = self.run.cores if self.rng.random() < 0.7 else self.run.cores[::-1]
        keys = list(dict.fromkeys(self.keys(1, 3)))
        reservations = source.reserve_reads_for_keys(keys)
        moved = []
        try:
            self.run.check_reservations(source, reservations, "reserve_reads_for_keys (migration)")
            for r in reservations:
                got = target.put_reserved_from_ptr(
                    r.key, source.base_ptr + r.offset, r.size, r.shape, r.dtype, r.fmt, r.cached_positions
                ).name
                if got in ("INSERTED", "ALREADY_EXISTS"):
                    moved.append(r.key)
                elif got == "NO_SPACE":
                    self.evict(target)
                elif got not in ("INFLIGHT", "COPY_FAILED"):
                    # COPY_FAILED: a forced delete of the key on the target
                    # cancelled the copy (LMCache's core says so too).
                    self.run.fail(f"put_reserved_from_ptr of {r.key} ({r.size} bytes) gave {got}")
        finally:
            source.finalize_reads(reservations, set(moved))
        if moved:
            source.delete_many(moved, force=False)

    def load(self):
        keys = self.keys(1, 4)
        objs = [_ALLOC.allocate([torch.Size([S])], [torch.uint8]) for _ in keys]
        try:
            for o in objs:
                ctypes.memset(o.data_ptr, 0xA5, S)
                o.metadata.cached_positions = None
            out = self.core.load_many_into(keys, objs)
            if len(out) != len(keys):
                self.run.fail(f"load_many_into({keys}) returned {out}")
            for key, o, ok in zip(keys, objs, out):
                if ok:
                    data = ctypes.string_at(o.data_ptr, S)
                    ki, version = HEADER.unpack_from(data)
                    size = len(_value(ki, version)) if ki == self.run.index[key] else S
                    self.run.check(key, data, size, positions=o.metadata.cached_positions, what="load_many_into")
        finally:
            for o in objs:
                o.ref_count_down()

    def lock_keys(self):
        keys = self.keys(1, 3)
        hits = self.core.exists_many(keys, lock=True)
        if len(hits) != len(keys):
            self.run.fail(f"exists_many({keys}, lock=True) returned {hits}")
        self.locked.extend((self.core, k) for k, h in zip(keys, hits) if h)

    def unlock_keys(self):
        if self.locked:
            n = self.rng.randint(1, len(self.locked))
            done, self.locked = self.locked[:n], self.locked[n:]
            for core in self.run.cores:
                keys = [k for c, k in done if c is core]
                if keys:
                    core.unlock_many(keys)

    def remap(self):
        """A device resized through reconfigure: grow by a slot (within the
        file), or shrink by one when can_shrink_to says it fits."""
        core = self.core
        n = core.max_slots
        if self.rng.random() < 0.5 and n < (SLOTS if core is self.run.core else OTHER_SLOTS) + GROW:
            new = n + 1
        elif n > 1 and core.can_shrink_to(n - 1):
            new = n - 1
        else:
            return
        try:
            core.remap(new * S)
        except ValueError as exc:
            # Filled above the new end since can_shrink_to, or grown and
            # filled by another thread since max_slots was read: LMCache's
            # own answer then.
            if str(exc) != "new DAX arena would cut off live slots":
                raise

    def lookups(self):
        core = self.core
        keys = self.keys(1, 4)
        hits = core.exists_many(keys)
        if len(hits) != len(keys):
            self.run.fail(f"exists_many({keys}) returned {hits}")
        for k in keys:
            core.has_inflight(k)
        present = core.snapshot_keys()
        if len(set(present)) != len(present) or not set(present) <= set(self.run.keys):
            self.run.fail(f"snapshot_keys() returned {present}")
        used, after = core.usage()
        if not 0.0 <= after <= used <= 1.0:
            self.run.fail(f"usage() returned {(used, after)}")
        st = core.report_status()
        if st["live_slot_count"] > SLOTS + GROW or st["active_read_count"] < 0 or st["active_write_count"] < 0:
            self.run.fail(f"report_status() returned {st}")
        if hasattr(core, "entries"):
            for key, size, _ in core.entries():
                if key not in self.run.index or not HEADER.size <= size <= S:
                    self.run.fail(f"entries() listed {key} of {size} bytes")

    OPS = [
        ("put_one", 6), ("put_many", 3), ("delete", 3), ("reserve", 4), ("migrate", 2), ("load", 2),
        ("lock_keys", 2), ("unlock_keys", 2), ("remap", 1), ("lookups", 2),
    ]

    def __call__(self):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        try:
            for _ in range(OPS):
                self.op = self.rng.choices(names, weights)[0]
                # Mostly the first device, as the adapter's placement would.
                self.core = self.run.cores[0] if self.rng.random() < 0.75 else self.run.cores[1]
                getattr(self, self.op)()
            self.op = "unlock at the end"
            self.locked, done = [], self.locked
            for core in self.run.cores:
                keys = [k for c, k in done if c is core]
                if keys:
                    core.unlock_many(keys)
        except BaseException:  # reported by the test, with the seed
            self.run.errors.append(f"thread {self.tid} in {self.op}:\n{traceback.format_exc()}")


# -- the test ------------------------------------------------------------------------


def _join(threads, run, what):
    for t in threads:
        t.join(HANG_S)
        if t.is_alive():
            faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
            run.fail(f"{what}: a thread did not end within {HANG_S:.0f} s (stacks dumped above)")


def _quiescent(run, core):
    """The invariants of a core once every thread has ended."""
    keys = run.keys
    inflight = [k for k in keys if core.has_inflight(k)]
    if inflight:
        run.fail(f"writes still in flight once every thread ended: {inflight}")
    present = [k for k in keys if core.exists_many([k]) == [True]]
    if sorted(core.snapshot_keys(), key=run.index.get) != present:
        run.fail(f"snapshot_keys() {core.snapshot_keys()} but exists_many finds {present}")
    if core.exists_many(keys) != [k in present for k in keys]:
        run.fail(f"exists_many of every key {core.exists_many(keys)}, one by one {present}")
    reservations, hits = core.reserve_reads(keys, prefix_only=False)
    try:
        if [k for k, h in zip(keys, hits) if h] != present:
            run.fail(f"reserve_reads hits {hits}, present {present}")
        run.check_reservations(core, reservations, "reserve_reads after the threads")
        read = {r.key: (r.size, tuple(r.shape), r.dtype, r.fmt) for r in reservations}
    finally:
        core.finalize_reads(reservations, set())
    if hasattr(core, "entries"):
        listed = {k: (size, meta) for k, size, meta in core.entries()}
        if set(listed) != set(present):
            run.fail(f"entries() lists {sorted(listed, key=run.index.get)}, present {present}")
        for k, (size, meta) in listed.items():
            got = (size, tuple(meta.shape), meta.dtype, meta.fmt)
            if got != read[k]:
                run.fail(f"entries() gives {k} as {got}, a read as {read[k]}")
    st = core.report_status()
    expect = {
        "live_slot_count": len(present),
        "locked_key_count": 0,
        "borrowed_slot_count": 0,
        "active_read_count": 0,
        "active_write_count": 0,
        "closing": False,
        "is_healthy": True,
    }
    got = {k: st[k] for k in expect}
    if got != expect:
        run.fail(f"report_status() {got} once every thread ended, expected {expect}")
    n = core.max_slots
    if core.usage() != (len(present) / n, len(present) / n):
        run.fail(f"usage() {core.usage()} with {len(present)} of {n} slots committed")
    if hasattr(core, "store"):
        stats = core.store.stats()
        left = {
            "entries": stats.entries,
            "entries_pinned": stats.entries_pinned,
            "slots_inflight": stats.slots_inflight,
            "slots_pending_free": stats.slots_pending_free,
            "leases_active": stats.leases_active,
            "slots_leased": stats.slots_leased,
        }
        want = dict.fromkeys(left, 0)
        want["entries"] = len(present)
        if left != want:
            run.fail(f"the library holds {left} once every thread ended, expected {want}")
    return present


def _nothing_read_that_was_not_stored(run):
    both = run.read & run.dead
    if both:
        run.fail(f"read values (key index, version) whose puts stored nothing: {sorted(both)}")


def _close_while_reading(run):
    """close() on another thread while a reservation is held: it waits for
    finalize_reads, the bytes stay meanwhile, and every call is then a no-op."""
    core = run.core
    present = [k for k in run.keys if core.exists_many([k]) == [True]]
    if not present:
        obj = run.begin_put(0, 1 << 62)
        try:
            assert core.put_one(run.keys[0], obj) is True
        finally:
            obj.ref_count_down()
        present = [run.keys[0]]
    reservations, _ = core.reserve_reads(present[:1], prefix_only=False)
    before = run.check_reservations(core, reservations, "reserve_reads before close")
    closer = threading.Thread(target=core.close, daemon=True)
    closer.start()
    if not wait_until(core.is_closing, HANG_S):
        run.fail("close() never began")
    obj = run.begin_put(0, (1 << 62) + 1)
    try:
        if core.put_one(run.keys[0], obj) is not False or core.put_many([run.keys[0]], [obj]) != [False]:
            run.fail("a put while close waits stored something")
    finally:
        obj.ref_count_down()
    if core.reserve_reads(present, prefix_only=False) != ([], [False] * len(present)):
        run.fail("reserve_reads while close waits reserved something")
    if not closer.is_alive():
        run.fail("close() returned while a read reservation was held")
    after = [ctypes.string_at(core.base_ptr + r.offset, r.size) for r in reservations]
    if after != before:
        run.fail("reserved bytes changed while close waited")
    core.finalize_reads(reservations, set())
    _join([closer], run, "close")
    if core.exists_many(present) != [False] * len(present) or core.snapshot_keys() != []:
        run.fail("a closed core still reports keys")
    if core.delete_many(present, force=True) != [False] * len(present):
        run.fail("a closed core deleted keys")
    if not core.report_status()["closing"] or not core.is_closing():
        run.fail("a closed core does not say it is closing")
    core.close()


@pytest.mark.parametrize("seed", _seeds())
@pytest.mark.parametrize("kind", ["lmcache", "daxkv"])
def test_concurrent_calls_keep_the_invariants(kind, seed, tmp_path):
    print(f"seed {seed} on the {kind} core (replay: DAXKV_CONCURRENT_SEED={seed})")
    faulthandler.dump_traceback_later(3 * HANG_S, exit=True, file=sys.__stderr__)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: more interleavings
    run = Run(kind, seed, tmp_path)
    try:
        workers = [Worker(run, tid) for tid in range(THREADS)]
        threads = [threading.Thread(target=w, name=f"worker-{w.tid}", daemon=True) for w in workers]
        for t in threads:
            t.start()
        _join(threads, run, "workers")
        if run.errors:
            raise Broken(
                f"{kind} core, seed {seed} (replay: DAXKV_CONCURRENT_SEED={seed}):\n" + "\n".join(run.errors)
            )
        for core in run.cores:
            _quiescent(run, core)
        _nothing_read_that_was_not_stored(run)
        run.cores[1].close()
        _close_while_reading(run)
    finally:
        sys.setswitchinterval(interval)
        faulthandler.cancel_dump_traceback_later()
        for core in run.cores:
            core.close()
