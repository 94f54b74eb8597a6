# SPDX-License-Identifier: Apache-2.0
"""Restart recovery of daxkv.lmcache.DaxCore.

persist_enabled=False (the default) is LMCache's behaviour: a reopened
arena is empty. persist_enabled=True keeps committed entries across close
and reopen, and across a process that exits without closing: their keys
(equal LMCache objects), sizes, torch metadata and bytes come back.

Bad inputs tried here: a volatile reopen of a persistent arena (its
entries are dropped, also for a later persistent open); an entry under a
key that no LMCache key type encodes to, written beside the integration's
(snapshot_keys and entries skip it).
"""

# Standard
import os
import subprocess
import sys
import textwrap

# Third Party
import pytest
import torch

# First Party
from daxkv.lmcache import DaxCore
from dk_helpers import byte_obj, ekey, kv_obj, make_device, obj_bytes, release
from lmcache.utils import CacheEngineKey, LayerCacheEngineKey
from lmcache.v1.distributed.api import ObjectKey
from lmcache.v1.memory_management import MemoryFormat

S = 1024
SHAPE = (2, 4, 64)  # 1024 bytes of bf16

KEYS = [
    CacheEngineKey("llama", 1, 0, 123, torch.bfloat16),
    CacheEngineKey("llama", 1, 0, b"\x00\x7b", torch.float16, request_configs={"lmcache.tag.user": "alice"}),
    LayerCacheEngineKey("llama", 1, 0, 5, torch.bfloat16, layer_id=3),
    ObjectKey(chunk_hash=b"\x01\x02", model_name="llama", kv_rank=7, object_group_id=1, cache_salt="s1"),
]
POSITIONS = [None, torch.tensor([3, 1, 2]), torch.arange(0, 16), torch.tensor([], dtype=torch.int64)]


def _core(path, **kw):
    return DaxCore(device_path=str(path), max_dax_size_bytes=8 * S, slot_bytes=S, **kw)


def _store_all(core):
    objs = []
    for i, pos in enumerate(POSITIONS):
        o = kv_obj(SHAPE, float(i + 1))
        o.metadata.cached_positions = pos
        objs.append(o)
    assert core.put_many(KEYS, objs) == [True] * len(KEYS)
    return objs


def _check_recovered(core, objs):
    keys = core.snapshot_keys()
    assert len(keys) == len(KEYS) and set(keys) == set(KEYS)
    for k in keys:
        assert type(k) is type(KEYS[KEYS.index(k)])
    entries = {k: (size, meta) for k, size, meta in core.entries()}
    assert set(entries) == set(KEYS)
    for k, pos in zip(KEYS, POSITIONS):
        size, meta = entries[k]
        assert size == S
        assert meta.shape == torch.Size(SHAPE) and type(meta.shape) is torch.Size
        assert meta.dtype == torch.bfloat16 and meta.fmt is MemoryFormat.KV_T2D
        if pos is None:
            assert meta.cached_positions is None
        else:
            assert meta.cached_positions.tolist() == pos.tolist()
    dst = [kv_obj(SHAPE, 0.0) for _ in KEYS]
    assert core.load_many_into(KEYS, dst) == [True] * len(KEYS)
    assert [obj_bytes(d) for d in dst] == [obj_bytes(o) for o in objs]
    assert [None if d.metadata.cached_positions is None else d.metadata.cached_positions.tolist() for d in dst] == [
        None if p is None else p.tolist() for p in POSITIONS
    ]
    release(*dst)


def test_volatile_by_default_reopen_finds_nothing(tmp_path):
    path = make_device(tmp_path / "dax.bin", 8 * S)
    core = _core(path)
    objs = _store_all(core)
    assert core.report_status()["supports_restart_recovery"] is False
    core.close()
    core = _core(path)
    try:
        assert core.snapshot_keys() == []
        assert core.entries() == []
        assert core.exists_many(KEYS) == [False] * len(KEYS)
        assert core.report_status()["live_slot_count"] == 0
    finally:
        core.close()
    release(*objs)


def test_persistent_entries_survive_close_and_reopen(tmp_path):
    path = make_device(tmp_path / "dax.bin", 8 * S)
    core = _core(path, persist_enabled=True)
    objs = _store_all(core)
    core.close()

    core = _core(path, persist_enabled=True)
    try:
        assert core.persist_enabled is True
        status = core.report_status()
        assert (status["supports_restart_recovery"], status["live_slot_count"]) == (True, 4)
        _check_recovered(core, objs)
        # the recovered entries behave as any: lock, delete, reuse
        assert core.exists_many([KEYS[0]], lock=True) == [True]
        assert core.delete_many([KEYS[0]]) == [False]
        core.unlock_many([KEYS[0]])
        assert core.delete_many([KEYS[0]]) == [True]
    finally:
        core.close()
    core = _core(path, persist_enabled=True)
    try:
        assert set(core.snapshot_keys()) == set(KEYS[1:])
    finally:
        core.close()
    release(*objs)


def test_volatile_reopen_drops_persistent_entries(tmp_path):
    path = make_device(tmp_path / "dax.bin", 8 * S)
    core = _core(path, persist_enabled=True)
    objs = _store_all(core)
    core.close()
    for persist in (False, True):
        core = _core(path, persist_enabled=persist)
        try:
            assert core.snapshot_keys() == []
        finally:
            core.close()
    release(*objs)


def test_persistent_entries_survive_a_process_that_never_closes(tmp_path):
    path = make_device(tmp_path / "dax.bin", 8 * S)
    here = os.path.dirname(os.path.abspath(__file__))
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = {sys.path!r}
        import torch
        from daxkv.lmcache import DaxCore
        from lmcache.utils import CacheEngineKey
        from dk_helpers import byte_obj
        core = DaxCore(device_path={str(path)!r}, max_dax_size_bytes={8 * S},
                       slot_bytes={S}, persist_enabled=True)
        keys = [CacheEngineKey("llama", 1, 0, i, torch.bfloat16) for i in range(3)]
        assert core.put_many(keys, [byte_obj({S}, i) for i in range(3)]) == [True] * 3
        sys.stdout.flush()
        os._exit(0)  # no close, no finalizers
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=here, env=dict(os.environ),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    core = _core(path, persist_enabled=True)
    try:
        assert sorted(k.chunk_hash for k in core.snapshot_keys()) == [0, 1, 2]
        for i in range(3):
            dst = byte_obj(S, 99)
            assert core.load_many_into([ekey(i, model="llama")], [dst]) == [True]
            assert obj_bytes(dst) == obj_bytes(byte_obj(S, i))
    finally:
        core.close()


def test_entries_of_unknown_keys_are_skipped(tmp_path):
    path = make_device(tmp_path / "dax.bin", 8 * S)
    core = _core(path, persist_enabled=True)
    obj = byte_obj(S, 1)
    try:
        assert core.put_one(ekey(1), obj) is True
        # written beside the integration, under keys no LMCache type encodes to
        core.store.put(b"\x09not-an-lmcache-key", b"x" * 10)
        core.store.put(b"\x05\xff", b"y" * 10)
        assert core.snapshot_keys() == [ekey(1)]
        assert [(k, n) for k, n, _ in core.entries()] == [(ekey(1), S)]
        assert core.report_status()["live_slot_count"] == 3
    finally:
        core.close()
    release(obj)
