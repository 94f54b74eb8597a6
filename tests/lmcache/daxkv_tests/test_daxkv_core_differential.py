# SPDX-License-Identifier: Apache-2.0
"""Differential random test: daxkv.lmcache.DaxCore against LMCache's own
``lmcache.v1.storage_backend.dax.core.DaxCore`` (imported from the tree the
conftest assembles from LMCache's sources; skipped without them).

Each seed builds one core of each kind on its own small file (a few slots,
so that "full" happens often) and drives both with the same random sequence
of the calls LMCache's ``DaxBackend`` and ``dax`` L2 adapter make, comparing
every observable result after each call. A failure names the seed, the step
and the call; ``DAXKV_DIFF_SEED=N`` replays seed N alone and
``DAXKV_DIFF_SEEDS=N`` runs seeds 0..N-1 (default 24, ~120 steps each).

Calls and inputs tried:

* keys: CacheEngineKeys with and without request tags, or ObjectKeys with
  and without a cache salt or an object group;
* put_many of 1-3 keys (a repeat in the list included) with single-tensor
  objects of 0 bytes up to a slot (uint8, int32, float16, bfloat16, float32;
  1-D and 2-D shapes; every MemoryFormat; no positions, a progression, or a
  few scattered int64 positions), objects one element past a slot, and
  two-tensor objects;
* put_one without a writer, and with a writer (as DaxBackend passes one)
  that copies; that copies half and raises; or that, while the write is
  in flight, makes nested calls on the same key, copying before or after
  them, and then returns or raises. The nested calls: exists_many (with
  and without lock), has_inflight, put_many, put_one (with and without a
  writer), put_reserved_from_ptr, reserve_reads, delete_many plain and
  forced (once or twice), snapshot_keys, report_status, can_shrink_to,
  and a put_many of another key (which must not get the writer's slot);
* put_reserved_from_ptr from a stored object (as the adapter's migration
  passes a reservation's fields), with size 0, size past a slot, and
  source pointer 0;
* exists_many with and without lock, unlock_many (also of keys never
  locked), delete_many plain and forced of present, absent, locked,
  borrowed and repeated keys;
* reserve_reads (prefix_only both ways) and reserve_reads_for_keys,
  finalized at once or held over later calls (up to three at a time, so
  that deletes hit borrowed slots), load_many_into with destinations
  exactly large enough, larger, one byte too small, and two-tensor;
* snapshot_keys (and the drop-in's entries() against LMCache's recorded
  sizes and metadata), usage, report_status, can_shrink_to, remap growing,
  shrinking, to 0 bytes, below one slot and past the file's size;
* the adapter's migration to a second core of the same kind (3 slots):
  reserve_reads_for_keys on the source, put_reserved_from_ptr from the
  source's arena into the target, finalize_reads, delete_many of the moved
  keys (plain or forced), with the target sometimes full and sometimes
  already holding the key; the target's entries, bytes and counters after;
* empty key lists, and keys and objects of different lengths;
* a growing remap, and close, on another thread while reads are held: the
  calls made while it waits, that it waits until the last finalize_reads,
  and what it returns;
* close, then every call again, and a second close.

Compared: return values, exception types (by their built-in base class:
the drop-in may raise a subclass of what LMCache raises, which callers
catching LMCache's type still catch), bytes read back through reservations
and load_many_into, shapes, dtypes, formats and positions, key sets, usage
and the report_status counters. Not compared, deliberately (documented in
docs/lmcache-integration.md): which slot an entry gets (slot ids, offsets and
generations), and so whether a shrink fits; each core's can_shrink_to is
checked against its own placement instead (_check_shrink, and after each
nested call in a writer), where a write cancelled by a forced delete stops
counting for LMCache's can_shrink_to at once and for the drop-in's when its
writer returns. The ``supports_restart_recovery`` field is False for both
(a volatile core).
"""

# Standard
import ctypes
import enum
import os
import random
import threading
import time

# Third Party
import pytest
import torch

# First Party
import conftest
from daxkv.lmcache import DaxCore as DaxkvCore
from dk_helpers import load_lmcache_core, make_device, wait_until
from lmcache.utils import CacheEngineKey
from lmcache.v1.distributed.api import ObjectKey
from lmcache.v1.memory_allocators.ad_hoc_memory_allocator import AdHocMemoryAllocator
from lmcache.v1.memory_management import MemoryFormat

if conftest.LMCACHE_TREE is None:
    pytest.skip(f"LMCache's DaxCore is not available ({conftest.L2_UNAVAILABLE})", allow_module_level=True)


_LMC = load_lmcache_core(conftest.LMCACHE_TREE)

S = 256  # slot bytes
SLOTS = 5  # initial slots
ROOM = 12  # slots of room in each file (remap grows into it)
TARGET_SLOTS = 3  # slots of the migration target
_ALLOC = AdHocMemoryAllocator(device="cpu")
_DTYPES = [torch.uint8, torch.int32, torch.float16, torch.bfloat16, torch.float32]
_FMTS = list(MemoryFormat)


def _esize(dtype):
    return torch.empty((), dtype=dtype).element_size()


# -- inputs ------------------------------------------------------------------------


def _keys(rng, n):
    """n distinct keys of one kind: the backend's CacheEngineKeys (some with
    request tags, which their equality includes) or the adapter's
    ObjectKeys (some with a cache salt or another object group)."""
    if rng.random() < 0.5:
        return [
            CacheEngineKey(
                "m", 1, 0, 1000 + i // 2, torch.bfloat16,
                request_configs={"lmcache.tag.user": "u"} if i % 2 else {},
            )
            for i in range(n)
        ]
    return [
        ObjectKey(
            chunk_hash=bytes([i // 3, 7]) * 4, model_name="m", kv_rank=0,
            object_group_id=1 if i % 3 == 1 else 0, cache_salt="s" if i % 3 == 2 else "",
        )
        for i in range(n)
    ]


def _positions(rng):
    r = rng.random()
    if r < 0.6:
        return None
    if r < 0.8:
        a = rng.randrange(0, 4096)
        return torch.arange(a, a + rng.randrange(1, 64), dtype=torch.int64)
    return torch.tensor(sorted(rng.sample(range(100000), rng.randrange(1, 8))), dtype=torch.int64)


def _obj(rng, *, oversize=False):
    """A single-tensor MemoryObj of random layout, size at most a slot (one
    element past it when oversize), filled with random bytes."""
    dtype = rng.choice(_DTYPES)
    es = _esize(dtype)
    if oversize:
        n = S // es + 1
    elif rng.random() < 0.03:
        n = 0  # an empty tensor: stored and read back as 0 bytes
    else:
        n = rng.randrange(1, S // es + 1)
    shape = [2, n // 2] if n % 2 == 0 and rng.random() < 0.5 else [n]
    obj = _ALLOC.allocate([torch.Size(shape)], [dtype], fmt=rng.choice(_FMTS))
    size = obj.get_size()
    if size:
        ctypes.memmove(obj.data_ptr, bytes(rng.getrandbits(8) for _ in range(size)), size)
    obj.metadata.cached_positions = _positions(rng)
    return obj


def _multi():
    return _ALLOC.allocate([torch.Size([2, 4]), torch.Size([2, 4])], [torch.uint8, torch.uint8])


def _dest(rng, need):
    """A destination for load_many_into: (size or 'multi', fill byte)."""
    r = rng.random()
    if r < 0.1:
        return ("multi", 0)
    if r < 0.25 and need > 1:
        return (need - 1, rng.randrange(256))
    return (need + rng.choice([0, 0, 1, 17]), rng.randrange(256))


def _make_dest(spec):
    size, fill = spec
    if size == "multi":
        return _multi()
    obj = _ALLOC.allocate([torch.Size([size])], [torch.uint8])
    ctypes.memset(obj.data_ptr, fill, size)
    return obj


# -- observations ------------------------------------------------------------------


def _exc(e):
    """An exception by its first built-in class (DaxCoreError is a
    RuntimeError, as LMCache's core raises)."""
    for cls in type(e).__mro__:
        if cls.__module__ == "builtins":
            return ("raises", cls.__name__)
    return ("raises", type(e).__name__)


def _pos(p):
    if p is None:
        return None
    return (str(p.dtype), p.tolist())


def _reservation(core, r):
    return (
        r.result_index,
        r.key,
        r.size,
        tuple(r.shape),
        r.dtype,
        r.fmt,
        _pos(r.cached_positions),
        ctypes.string_at(core.base_ptr + r.offset, r.size),
    )


_STATUS_FIELDS = (
    "is_healthy",
    "max_dax_size_bytes",
    "slot_bytes",
    "max_slots",
    "live_slot_count",
    "locked_key_count",
    "borrowed_slot_count",
    "active_read_count",
    "active_write_count",
    "closing",
    "supports_restart_recovery",
)


def _status(core):
    st = core.report_status()
    return {k: st[k] for k in _STATUS_FIELDS}


class Mismatch(AssertionError):
    pass


class Side:
    """One core and what the sequence holds on it (read reservations)."""

    def __init__(self, name, core):
        self.name = name
        self.core = core
        self.held = []  # reservations lists not finalized yet, in order

    def finalize_all(self):
        while self.held:
            self.core.finalize_reads(self.held.pop(0), set())


def _call(fn, *args, **kw):
    """fn's result, its exception as _exc gives it; a DaxPutFromPtrResult by
    name (each module has its own enum class)."""
    try:
        out = fn(*args, **kw)
    except Exception as e:  # compared, never swallowed
        return _exc(e)
    if isinstance(out, enum.Enum):
        return ("result", type(out).__name__, out.name)
    return out


# -- the calls ---------------------------------------------------------------------


class Sequence_:
    def __init__(self, seed, tmp_path):
        self.seed = seed
        self.rng = random.Random(seed)
        self.keys = _keys(self.rng, 2 * SLOTS + 2)
        self.sides = []
        for name, cls in (("lmcache", _LMC.DaxCore), ("daxkv", DaxkvCore)):
            path = make_device(os.path.join(tmp_path, f"{name}-{seed}.bin"), ROOM * S)
            self.sides.append(Side(name, cls(device_path=path, max_dax_size_bytes=SLOTS * S, slot_bytes=S)))
            # A second device of the same kind: the adapter's migration
            # target (put_reserved_from_ptr from the first one's arena).
            tpath = make_device(os.path.join(tmp_path, f"{name}-{seed}-target.bin"), TARGET_SLOTS * S)
            self.sides[-1].target = cls(device_path=tpath, max_dax_size_bytes=TARGET_SLOTS * S, slot_bytes=S)
        self.step = 0
        self.what = ""
        self.keep = []  # source objects (alive for the whole sequence)

    # Each op takes its inputs from self.rng once, then runs on both sides.
    def both(self, run, tolerate=None):
        outs = [run(side) for side in self.sides]
        if outs[0] != outs[1] and not (tolerate and tolerate(*outs)):
            raise Mismatch(
                f"seed {self.seed} (replay: DAXKV_DIFF_SEED={self.seed}) step {self.step} {self.what}:\n"
                f"  lmcache: {outs[0]!r}\n  daxkv:   {outs[1]!r}"
            )
        return outs

    def pick(self, lo=1, hi=3):
        return [self.rng.choice(self.keys) for _ in range(self.rng.randint(lo, hi))]

    def src(self):
        r = self.rng.random()
        obj = _multi() if r < 0.05 else _obj(self.rng, oversize=r < 0.12)
        self.keep.append(obj)
        return obj

    # -- writes
    def op_put_many(self):
        keys = self.pick()
        objs = [self.src() for _ in keys]
        self.what = f"put_many({keys}, sizes={[o.get_size() for o in objs]})"
        self.both(lambda s: _call(s.core.put_many, keys, objs))

    def op_put_one(self):
        key = self.rng.choice(self.keys)
        obj = self.src()
        mode = self.rng.choice(
            ["none", "copy", "copy", "raise", "nested", "nested", "nested_raise", "nested_then_copy"]
        )
        nested = []
        if mode.startswith("nested"):
            pool = [
                "exists", "exists_lock", "has_inflight", "put_many_same", "put_one_same",
                "from_ptr_same", "reserve_same", "delete_plain", "delete_force", "delete_force",
                "delete_force_twice", "snapshot", "status", "put_many_other", "put_one_writer_same",
            ]
            nested = [self.rng.choice(pool) for _ in range(self.rng.randint(1, 4))]
            other, other_obj = self.rng.choice(self.keys), self.src()
        self.what = f"put_one({key}, size={obj.get_size()}, writer={mode}, nested={nested})"

        def run(side):
            core = side.core
            trace = []

            def copy(offset, o, size):
                ctypes.memmove(core.base_ptr + offset, o.data_ptr, size)

            def writer(offset, o, size):
                trace.append(("writer", size))
                if mode == "raise":
                    ctypes.memmove(core.base_ptr + offset, o.data_ptr, size // 2)
                    raise ValueError("copy failed")
                if mode != "nested_then_copy":
                    copy(offset, o, size)
                cancelled = False
                for n in nested:
                    got = self._nested(side, n, key, obj, other, other_obj)
                    trace.append((n, got))
                    cancelled = cancelled or (n.startswith("delete_force") and got[0] is True)
                    # The writer's slot is its own until it returns (no other
                    # key gets it: see nested_then_copy), but once a forced
                    # delete cancelled the write, LMCache's can_shrink_to no
                    # longer counts that slot while the drop-in counts it
                    # until the writer returns (documented as a difference
                    # of timing: a shrink waits for every write anyway).
                    counted = not (cancelled and side.name == "lmcache")
                    trace.append(("shrink", self._shrink_consistent(side, offset // S if counted else None)))
                if mode == "nested_then_copy":
                    # Copied after the nested calls: a slot handed to another
                    # key meanwhile would show in that key's bytes.
                    copy(offset, o, size)
                if mode == "nested_raise":
                    raise ValueError("copy failed after the nested calls")

            result = _call(core.put_one, key, obj, writer=None if mode == "none" else writer)
            return result, trace

        self.both(run)

    def _nested(self, side, n, key, obj, other, other_obj):
        core = side.core
        if n == "exists":
            return _call(core.exists_many, [key])
        if n == "exists_lock":
            return _call(core.exists_many, [key], lock=True)
        if n == "has_inflight":
            return core.has_inflight(key)
        if n == "put_many_same":
            return _call(core.put_many, [key], [obj])
        if n == "put_one_same":
            return _call(core.put_one, key, obj)
        if n == "put_one_writer_same":
            called = []
            return _call(core.put_one, key, obj, writer=lambda o, m, size: called.append(size)), called
        if n == "from_ptr_same":
            m = obj.metadata
            return _call(
                core.put_reserved_from_ptr, key, obj.data_ptr, obj.get_size(), m.shape, m.dtype, m.fmt,
                m.cached_positions,
            )
        if n == "reserve_same":
            rs, hits = core.reserve_reads([key], prefix_only=False)
            core.finalize_reads(rs, set())
            return hits
        if n == "delete_plain":
            return _call(core.delete_many, [key])
        if n == "delete_force":
            return _call(core.delete_many, [key], force=True)
        if n == "delete_force_twice":
            return _call(core.delete_many, [key, key], force=True)
        if n == "snapshot":
            return set(core.snapshot_keys())
        if n == "status":
            return _status(core), core.usage()
        if n == "put_many_other":
            return _call(core.put_many, [other], [other_obj])
        raise AssertionError(n)

    def op_from_ptr(self):
        key = self.rng.choice(self.keys)
        obj = self.src()
        if len(obj.get_shapes()) > 1:
            return
        m = obj.metadata
        size, ptr = obj.get_size(), obj.data_ptr
        r = self.rng.random()
        if r < 0.05:
            size = 0
        elif r < 0.1:
            size = S + 1
        elif r < 0.15:
            ptr = 0
        self.what = f"put_reserved_from_ptr({key}, size={size}, ptr={'0' if not ptr else 'obj'})"
        self.both(
            lambda s: _call(
                s.core.put_reserved_from_ptr, key, ptr, size, m.shape, m.dtype, m.fmt, m.cached_positions
            )
        )

    def op_edges(self):
        """Empty lists and lists of different lengths."""
        key = self.rng.choice(self.keys)
        obj = self.src()
        prefix = self.rng.random() < 0.5
        self.what = f"empty and mismatched lists ({key})"

        def run(side):
            c = side.core
            rs, hits = c.reserve_reads([], prefix_only=prefix)
            return [
                _call(c.put_many, [], []),
                _call(c.put_many, [key, key], [obj]),
                _call(c.put_many, [], [obj]),
                _call(c.load_many_into, [key], []),
                _call(c.load_many_into, [], []),
                _call(c.exists_many, [], lock=True),
                _call(c.delete_many, [], force=True),
                _call(c.unlock_many, []),
                (rs, hits),
                _call(c.reserve_reads_for_keys, []),
                _call(c.finalize_reads, [], set()),
            ]

        self.both(run)

    def op_migrate(self):
        """The adapter's migration of keys to another device: reserve them
        on the source, put_reserved_from_ptr each reservation into the
        target from the source's arena, finalize, then delete the moved
        keys from the source (forced or not); sometimes the target drops
        keys first (to make room)."""
        keys = self.pick(1, 3)
        force = self.rng.random() < 0.5
        drop = self.pick(1, 3) if self.rng.random() < 0.4 else []
        self.what = f"migrate({keys}, force={force}, target drops {drop})"

        def run(side):
            src, dst = side.core, side.target
            out = [_call(dst.delete_many, drop, force=True)]
            rs = src.reserve_reads_for_keys(keys)
            moved = []
            try:
                for r in rs:
                    res = _call(
                        dst.put_reserved_from_ptr, r.key, src.base_ptr + r.offset, r.size, r.shape, r.dtype, r.fmt,
                        r.cached_positions,
                    )
                    out.append((r.key, res))
                    if res == ("result", "DaxPutFromPtrResult", "INSERTED"):
                        moved.append(r.key)
            finally:
                src.finalize_reads(rs, set(moved))
            out.append(_call(src.delete_many, moved, force=force))
            trs = dst.reserve_reads_for_keys(dst.snapshot_keys())
            try:
                out.append(sorted((_reservation(dst, r)[2:] for r in trs), key=repr))
            finally:
                dst.finalize_reads(trs, set())
            out.append((_status(dst), dst.usage()))
            return out

        self.both(run)

    # -- lookups and locks
    def op_exists(self):
        keys = self.pick(1, 4)
        lock = self.rng.random() < 0.5
        self.what = f"exists_many({keys}, lock={lock})"
        self.both(lambda s: _call(s.core.exists_many, keys, lock=lock))

    def op_unlock(self):
        keys = self.pick(1, 3)
        self.what = f"unlock_many({keys})"
        self.both(lambda s: _call(s.core.unlock_many, keys))

    def op_delete(self):
        keys = self.pick(1, 4)
        force = self.rng.random() < 0.4
        self.what = f"delete_many({keys}, force={force})"
        self.both(lambda s: _call(s.core.delete_many, keys, force=force))

    # -- reads
    def op_reserve(self):
        keys = self.pick(1, 4)
        kind = self.rng.choice(["prefix", "holes", "for_keys"])
        hold = self.rng.random() < 0.35 and len(self.sides[0].held) < 3
        self.what = f"reserve_reads({keys}, {kind}, hold={hold})"

        def run(side):
            if kind == "for_keys":
                rs = side.core.reserve_reads_for_keys(keys)
                hits = None
            else:
                rs, hits = side.core.reserve_reads(keys, prefix_only=kind == "prefix")
            out = (hits, [_reservation(side.core, r) for r in rs])
            if hold and rs:
                side.held.append(rs)
            else:
                side.core.finalize_reads(rs, {r.key for r in rs})
            return out

        self.both(run)

    def op_finalize(self):
        if not self.sides[0].held:
            return
        i = self.rng.randrange(len(self.sides[0].held))
        self.what = f"finalize_reads(held #{i})"
        # The held bytes are still the entry's own until now, even if it was
        # deleted meanwhile.
        self.both(lambda s: [_reservation(s.core, r) for r in s.held[i]])
        for s in self.sides:
            s.core.finalize_reads(s.held.pop(i), set())

    def op_load(self):
        keys = self.pick(1, 3)
        need = [self._stored_size(k) for k in keys]
        specs = [_dest(self.rng, n or self.rng.randrange(1, S + 1)) for n in need]
        self.what = f"load_many_into({keys}, dests={specs})"

        def run(side):
            dests = [_make_dest(sp) for sp in specs]
            self.keep.extend(dests)
            result = _call(side.core.load_many_into, keys, dests)
            got = []
            for d in dests:
                if len(d.get_shapes()) > 1:
                    got.append("multi")
                else:
                    got.append((ctypes.string_at(d.data_ptr, d.get_size()), _pos(d.metadata.cached_positions)))
            return result, got

        self.both(run)

    def _stored_size(self, key):
        """The size stored under key (LMCache's side), None when absent."""
        core = self.sides[0].core
        rs, _ = core.reserve_reads([key], prefix_only=False)
        try:
            return rs[0].size if rs else None
        finally:
            core.finalize_reads(rs, set())

    # -- capacity and views
    def op_snapshot(self):
        self.what = "snapshot_keys()"
        # Compared as a set of equal keys and a length (no repeats), not by
        # order or repr: LMCache's list is in its dict's order, and the
        # drop-in's keys are decoded from the arena, equal (hash and ==) to
        # the stored ones; a CacheEngineKey without tags comes back with
        # request_configs None (a field LMCache's key equality ignores,
        # as LMCache's own CacheEngineKey.from_string gives).
        self.both(lambda s: (lambda ks: (set(ks), len(ks)))(s.core.snapshot_keys()))
        # daxkv's entries() (its restart accounting) against what LMCache's
        # core records for each committed key.
        want = {}
        lmc = self.sides[0].core
        rs = lmc.reserve_reads_for_keys(lmc.snapshot_keys())
        try:
            for r in rs:
                want[r.key] = (r.size, tuple(r.shape), r.dtype, r.fmt, _pos(r.cached_positions))
        finally:
            lmc.finalize_reads(rs, set())
        got = {
            k: (size, tuple(m.shape), m.dtype, m.fmt, _pos(m.cached_positions))
            for k, size, m in self.sides[1].core.entries()
        }
        if got != want:
            raise Mismatch(f"seed {self.seed} step {self.step} entries():\n  lmcache: {want!r}\n  daxkv:   {got!r}")

    def op_status(self):
        self.what = "report_status(), usage()"
        self.both(lambda s: (_status(s.core), s.core.usage()))
        self._check_shrink()

    def _shrink_consistent(self, side, writing_slot):
        """Whether side's can_shrink_to agrees with its own placement while
        a write into writing_slot is in flight."""
        return self._used_and_shrink(side, () if writing_slot is None else {writing_slot})[1]

    def _used_and_shrink(self, side, extra=()):
        """(slots side's core uses, whether can_shrink_to(n) is True exactly
        when n > 0 and every one of them lies below n)."""
        core = side.core
        rs = core.reserve_reads_for_keys(list(core.snapshot_keys()))
        try:
            used = {r.slot_id for r in rs} | {r.slot_id for held in side.held for r in held} | set(extra)
        finally:
            core.finalize_reads(rs, set())
        ok = all(
            core.can_shrink_to(n) == (n > 0 and all(slot < n for slot in used))
            for n in range(0, core.max_slots + 2)
        )
        return used, ok

    def _check_shrink(self):
        """can_shrink_to against each core's own placement: True exactly when
        no committed or borrowed slot lies at or above the limit (which
        slots those are is each core's choice)."""
        for side in self.sides:
            core = side.core
            rs = core.reserve_reads_for_keys(list(core.snapshot_keys()))
            try:
                used = {r.slot_id for r in rs} | {r.slot_id for held in side.held for r in held}
            finally:
                core.finalize_reads(rs, set())
            for n in range(0, core.max_slots + 2):
                want = n > 0 and all(slot < n for slot in used)
                got = core.can_shrink_to(n)
                if got != want:
                    raise Mismatch(
                        f"seed {self.seed} step {self.step}: {side.name}.can_shrink_to({n}) is {got}, "
                        f"its used slots are {sorted(used)}"
                    )

    def op_remap(self):
        r = self.rng.random()
        if r < 0.05:
            size = 0
        elif r < 0.1:
            size = S - 1
        elif r < 0.2:
            size = (ROOM + 2) * S
        else:
            size = self.rng.randrange(1, ROOM - 1) * S + self.rng.choice([0, 0, 17])
        self.what = f"remap({size}) ({size // S} slots)"
        for s in self.sides:  # remap waits for reads to end
            s.finalize_all()
        fits = [s.core.can_shrink_to(size // S) for s in self.sides]

        def tolerate(a, b):
            # Where the entries lie differs by design: a shrink that fits one
            # core's placement and not the other's succeeds on one side only.
            # Otherwise both must match.
            return fits[0] != fits[1] and a == (None if fits[0] else ("raises", "ValueError")) and b == (
                None if fits[1] else ("raises", "ValueError")
            )

        before = [s.core.arena_bytes for s in self.sides]
        outs = self.both(lambda s: _call(s.core.remap, size), tolerate)
        if outs[0] != outs[1]:
            # The side whose shrink went through grows back (always allowed),
            # so that both go on with the same number of slots.
            for s, out, old in zip(self.sides, outs, before):
                if out is None:
                    s.core.remap(old)
        self.both(lambda s: (s.core.max_slots, s.core.arena_bytes))

    def _while_blocked(self, name, call, during, after_each=None):
        """call() on a thread while this thread holds read reservations
        (close and remap wait for them): what the calls in during() give
        meanwhile, whether call is still waiting after each finalize_reads
        but the last, and whether it returned (in time) after the last."""

        def run(side):
            box = {}

            def body():
                box["out"] = _call(call, side.core)

            t = threading.Thread(target=body, daemon=True)
            t.start()
            out = []
            try:
                if name == "close":
                    wait_until(side.core.is_closing, 5.0)
                time.sleep(0.02)
                out.append(("waiting", t.is_alive()))
                out.append(during(side))
            finally:
                while side.held:
                    side.core.finalize_reads(side.held.pop(0), set())
                    if side.held:
                        time.sleep(0.01)
                        out.append(("still waiting", t.is_alive()))
                t.join(10.0)
            out.append(("returned", not t.is_alive(), box.get("out")))
            return out

        self.both(run)

    def op_remap_while_reading(self):
        """A growing remap while reads are reserved: it waits for them."""
        if not self.sides[0].held:
            return
        size = self.rng.randrange(self.sides[0].core.max_slots, ROOM - 1) * S
        key, obj = self.rng.choice(self.keys), self.src()
        self.what = f"remap({size}) while {len(self.sides[0].held)} reads are held"

        def during(side):
            c = side.core
            return [
                _call(c.put_many, [key], [obj]),
                _call(c.exists_many, [key]),
                _status(c),
                _call(c.usage),
            ]

        self._while_blocked("remap", lambda c: c.remap(size), during)
        self.both(lambda s: (s.core.max_slots, s.core.arena_bytes))

    def op_close_midway(self):
        """close(), every call after it, a second close."""
        self.what = "close() and calls after it"
        key = self.rng.choice(self.keys)
        obj = _obj(self.rng)
        self.keep.append(obj)
        if self.sides[0].held and self.rng.random() < 0.7:
            self.what = f"close() while {len(self.sides[0].held)} reads are held"
            victims = self.pick(1, 3)

            def during(side):
                # While close waits: no new reads or writes; deletes,
                # unlocks and the finalize_reads of the held reads go on.
                c = side.core
                dest = _make_dest((S, 0))
                self.keep.append(dest)
                return [
                    c.is_closing(),
                    _call(c.put_many, [key], [obj]),
                    _call(c.put_one, key, obj),
                    _call(c.exists_many, [key], lock=True),
                    _call(lambda: c.reserve_reads([key], prefix_only=False)[1]),
                    _call(c.load_many_into, [key], [dest]),
                    _call(c.snapshot_keys),
                    _call(c.unlock_many, victims),
                    _call(c.delete_many, victims),
                    _call(c.delete_many, victims, force=True),
                    _call(c.usage),
                    _status(c),
                ]

            self._while_blocked("close", lambda c: c.close(), during)
        for s in self.sides:
            s.finalize_all()

        def run(side):
            c = side.core
            m = obj.metadata
            out = [_call(c.close), c.is_closing()]
            out.append(_call(c.put_many, [key], [obj]))
            out.append(_call(c.put_one, key, obj))
            out.append(
                _call(c.put_reserved_from_ptr, key, obj.data_ptr, obj.get_size(), m.shape, m.dtype, m.fmt, None)
            )
            out.append(_call(c.exists_many, [key], lock=True))
            out.append(_call(c.exists_many, [key]))
            out.append(_call(lambda: c.reserve_reads([key], prefix_only=False)[1]))
            out.append(_call(c.reserve_reads_for_keys, [key]))
            dest = _make_dest((S, 0))
            self.keep.append(dest)
            out.append(_call(c.load_many_into, [key], [dest]))
            out.append(_call(c.delete_many, [key], force=True))
            out.append(_call(c.unlock_many, [key]))
            out.append(_call(c.snapshot_keys))
            out.append(_call(c.usage))
            out.append(_call(c.can_shrink_to, 1))
            out.append(_call(c.remap, S))
            out.append(_call(c.has_inflight, key))
            st = c.report_status()
            out.append((st["is_healthy"], st["closing"], st["active_read_count"], st["active_write_count"]))
            out.append(_call(c.close))
            return out

        self.both(run)

    OPS = [
        ("op_put_many", 14),
        ("op_put_one", 14),
        ("op_from_ptr", 5),
        ("op_exists", 10),
        ("op_unlock", 6),
        ("op_delete", 10),
        ("op_reserve", 10),
        ("op_finalize", 5),
        ("op_load", 8),
        ("op_snapshot", 4),
        ("op_status", 4),
        ("op_remap", 3),
        ("op_edges", 1),
        ("op_remap_while_reading", 1),
        ("op_migrate", 4),
    ]

    def run(self, steps):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        try:
            for self.step in range(steps):
                getattr(self, self.rng.choices(names, weights)[0])()
                # The cheap views after every call, so that a divergence is
                # caught at the call that made it.
                self.what = f"(after) snapshot/status"
                self.both(lambda s: (set(s.core.snapshot_keys()), _status(s.core), s.core.usage()))
            self.step = steps
            self.op_close_midway()
        finally:
            for s in self.sides:
                try:
                    s.finalize_all()
                finally:
                    s.core.close()
                    s.target.close()
            for obj in self.keep:
                if obj.get_ref_count() > 0:
                    obj.ref_count_down()


def _seeds():
    one = os.environ.get("DAXKV_DIFF_SEED")
    if one is not None:
        return [int(one)]
    return list(range(int(os.environ.get("DAXKV_DIFF_SEEDS", "24"))))


@pytest.mark.parametrize("seed", _seeds())
def test_daxkv_core_matches_lmcache_core(seed, tmp_path):
    Sequence_(seed, tmp_path).run(int(os.environ.get("DAXKV_DIFF_STEPS", "120")))
