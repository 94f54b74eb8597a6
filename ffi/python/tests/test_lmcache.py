"""The LMCache DaxCore drop-in, against faithful fakes of LMCache objects."""

import ctypes
import threading

import numpy as np
import pytest

import daxkv
from daxkv.lmcache import DaxCore, DaxPutFromPtrResult, key_to_bytes

from conftest import MiB
from lmcache_fakes import CacheEngineKey, MemoryFormat, MemoryObj, ObjectKey

SLOT = 1 * MiB


@pytest.fixture
def core(tmp_path):
    c = DaxCore(str(tmp_path / "dax"), 16 * MiB + 8 * MiB, SLOT)
    yield c
    c.close()


def ckey(i, model="llama"):
    return CacheEngineKey("vllm", model, 1, 0, 0xABC000 + i)


def obj(i, n=64):
    o = MemoryObj((2, n), dtype=np.float16, fill=i)
    o.metadata.cached_positions = list(range(i, i + 4))
    return o


def test_key_serialisation():
    k = ckey(1)
    assert key_to_bytes(k) == k.to_string().encode()
    ok = ObjectKey(b"\x01\x02", "m", 3, "salt")
    b = key_to_bytes(ok)
    assert b"0102" in b and b"kv_rank=3" in b and b"salt" in b
    assert key_to_bytes(ObjectKey(b"\x01\x02", "m", 4)) != b  # rank matters
    assert key_to_bytes("s") == b"s" and key_to_bytes(b"b") == b"b"
    with pytest.raises(TypeError):
        key_to_bytes(12345)


def test_put_exists_load(core):
    keys = [ckey(i) for i in range(4)]
    objs = [obj(i) for i in range(4)]
    assert core.put_many(keys, objs) == [True] * 4
    # Already present counts as success, as in LMCache.
    assert core.put_many(keys[:1], [obj(9)]) == [True]
    assert core.exists_many(keys + [ckey(99)]) == [True] * 4 + [False]
    outs = [MemoryObj((2, 64)) for _ in range(5)]
    assert core.load_many_into(keys + [ckey(99)], outs) == [True] * 4 + [False]
    for i in range(4):
        assert np.array_equal(outs[i].tensor, objs[i].tensor)


def test_object_keys(core):
    keys = [ObjectKey(bytes([i]) * 8, "m", 0) for i in range(3)]
    assert core.put_many(keys, [obj(i) for i in range(3)]) == [True] * 3
    assert core.exists_many(keys) == [True] * 3
    assert core.exists_many([ObjectKey(bytes([0]) * 8, "m", 1)]) == [False]


def test_put_rejections(core):
    multi = obj(0)
    multi.metadata.shapes = [(2, 64), (2, 64)]
    big = MemoryObj((SLOT // 2 + 1,), dtype=np.int16)
    ok = obj(1)
    assert core.put_many([ckey(0), ckey(1), ckey(2)], [multi, big, ok]) == [False, False, True]
    assert core.exists_many([ckey(0), ckey(1), ckey(2)]) == [False, False, True]
    with pytest.raises(ValueError, match="same length"):
        core.put_many([ckey(0)], [])
    with pytest.raises(ValueError, match="same length"):
        core.load_many_into([ckey(0)], [])


def test_full_arena_does_not_evict(core):
    n = core.max_slots
    keys = [ckey(i) for i in range(n + 1)]
    res = core.put_many(keys, [obj(i) for i in range(n + 1)])
    assert res == [True] * n + [False]
    assert core.exists_many(keys[:1]) == [True]  # nothing evicted internally
    assert core.usage()[0] == pytest.approx(1.0)


def test_lock_unlock_delete(core):
    keys = [ckey(i) for i in range(3)]
    core.put_many(keys, [obj(i) for i in range(3)])
    assert core.exists_many(keys[:2] + [ckey(77)], lock=True) == [True, True, False]
    assert core.report_status()["locked_key_count"] == 2
    # Non-forced delete leaves locked keys alone.
    assert core.delete_many(keys) == [False, False, True]
    assert core.exists_many(keys) == [True, True, False]
    assert core.unlock_many(keys[:1] + [ckey(77)]) == 1
    assert core.unlock_many(keys[:1]) == 0  # never below zero
    assert core.delete_many(keys[:1]) == [True]
    assert core.delete_many(keys[1:2], force=True) == [True]
    assert core.exists_many(keys) == [False] * 3


def test_prefix_hits(core):
    keys = [ckey(i) for i in range(5)]
    core.put_many(keys[:2] + keys[3:], [obj(i) for i in range(4)])
    assert core.prefix_hits(keys) == 2
    assert core.prefix_hits(keys, lock=True) == 2
    assert core.delete_many(keys[:2]) == [False, False]
    core.unlock_many(keys[:2])


def test_reserve_and_finalize_reads(core):
    keys = [ckey(i) for i in range(4)]
    objs = [obj(i) for i in range(4)]
    core.put_many([keys[0], keys[1], keys[3]], [objs[0], objs[1], objs[3]])
    res = core.reserve_reads(keys)
    try:
        assert [r.result_index for r in res] == [0, 1, 3]
        r0 = res[0]
        assert r0.size == objs[0].get_size()
        assert tuple(r0.shape) == (2, 64) and r0.dtype == "float16"
        assert r0.fmt == MemoryFormat.KV_2LTD.name
        assert r0.cached_positions == [0, 1, 2, 3]
        assert core.report_status()["active_read_count"] == 1
        # Delete a borrowed key: its bytes stay valid until finalize_reads.
        core.delete_many([keys[0]], force=True)
        dst = MemoryObj((2, 64))
        ctypes.memmove(dst.data_ptr, core.base_ptr + r0.offset, r0.size)
        assert np.array_equal(dst.tensor, objs[0].tensor)
    finally:
        core.finalize_reads(res)
    assert core.report_status()["active_read_count"] == 0
    prefix = core.reserve_reads(keys[1:], prefix_only=True)
    assert [r.result_index for r in prefix] == [0]
    core.finalize_reads(prefix)
    assert core.reserve_reads([ckey(50)], prefix_only=True) == []


def test_put_reserved_from_ptr(core):
    src = np.arange(128, dtype=np.int32)
    k = ckey(5)
    assert core.put_reserved_from_ptr(k, src.ctypes.data, src.nbytes, (128,), "int32", MemoryFormat.KV_T2D) \
        is DaxPutFromPtrResult.INSERTED
    assert core.put_reserved_from_ptr(k, src.ctypes.data, src.nbytes, (128,), "int32", MemoryFormat.KV_T2D) \
        is DaxPutFromPtrResult.ALREADY_EXISTS
    assert core.put_reserved_from_ptr(ckey(6), 0, 16) is DaxPutFromPtrResult.INVALID
    assert core.put_reserved_from_ptr(ckey(6), src.ctypes.data, 0) is DaxPutFromPtrResult.INVALID
    assert core.put_reserved_from_ptr(ckey(6), src.ctypes.data, SLOT + 1) is DaxPutFromPtrResult.INVALID
    out = MemoryObj((128,), dtype=np.int32)
    assert core.load_many_into([k], [out]) == [True]
    assert np.array_equal(out.tensor, src)


def test_load_into_too_small_destination(core):
    core.put_many([ckey(1)], [obj(1, n=64)])
    small = MemoryObj((2, 8))
    assert core.load_many_into([ckey(1)], [small]) == [False]


def test_two_phase_put_and_has_inflight(core):
    key = ckey(3)
    assert core.has_inflight(key) is False
    ticket = core.reserve_put(key, 256, (2, 64), "float16", MemoryFormat.KV_2LTD)
    assert ticket is not None
    assert core.has_inflight(key) is True
    assert core.exists_many([key]) == [False]  # in flight is not a hit
    assert core.reserve_put(key, 256) is None  # a second writer backs off
    assert core.put_many([key], [obj(7, n=64)]) == [True]  # in flight counts as present
    assert core.delete_many([key]) == [False]  # non-forced delete leaves it alone
    src = np.full(128, 5, dtype=np.float16)
    ctypes.memmove(ticket.dst_ptr, src.ctypes.data, 256)
    assert core.finalize_put(ticket, True) is True
    assert core.has_inflight(key) is False
    out = MemoryObj((2, 64))
    assert core.load_many_into([key], [out]) == [True]
    assert np.array_equal(out.tensor.reshape(-1), src)
    with pytest.raises(ValueError):
        core.finalize_put(ticket, True)


def test_forced_delete_cancels_inflight_write(core):
    key = ckey(4)
    ticket = core.reserve_put(key, 64, (32,), "float16", MemoryFormat.KV_2LTD)
    assert core.delete_many([key], force=True) == [True]
    assert core.finalize_put(ticket, True) is False  # cancelled: never appears
    assert core.exists_many([key]) == [False]
    assert core.has_inflight(key) is False


def test_failed_write_reclaims_slot(core):
    key = ckey(5)
    ticket = core.reserve_put(key, 64, (32,), "float16", MemoryFormat.KV_2LTD)
    assert core.finalize_put(ticket, False) is False
    assert core.exists_many([key]) == [False]
    assert core.usage()[0] == 0.0


def test_usage_and_status(core):
    cur, after = core.usage()
    assert cur == 0.0 and after == 0.0
    core.put_many([ckey(i) for i in range(4)], [obj(i) for i in range(4)])
    cur, after = core.usage()
    assert cur == pytest.approx(4 / core.max_slots)
    assert after == pytest.approx(cur)  # nothing pending free
    st = core.report_status()
    for field in ("is_healthy", "device_path", "max_dax_size_bytes", "slot_bytes", "max_slots",
                  "live_slot_count", "locked_key_count", "borrowed_slot_count", "active_read_count",
                  "active_write_count", "closing", "supports_restart_recovery"):
        assert field in st
    assert st["is_healthy"] and st["live_slot_count"] == 4 and st["slot_bytes"] == SLOT


def test_snapshot_keys(core):
    keys = [ckey(i) for i in range(5)]
    core.put_many(keys, [obj(i) for i in range(5)])
    core.delete_many(keys[:2])
    core.store.remove(key_to_bytes(keys[2]))  # behind the core's back
    assert set(core.snapshot_keys()) == set(keys[3:])


def test_closed_core_behaves_like_lmcache(core):
    core.put_many([ckey(1)], [obj(1)])
    core.close()
    core.close()  # idempotent
    assert core.put_many([ckey(2)], [obj(2)]) == [False]
    assert core.exists_many([ckey(1)]) == [False]
    assert core.load_many_into([ckey(1)], [obj(0)]) == [False]
    assert core.delete_many([ckey(1)]) == [False]
    assert core.reserve_reads([ckey(1)]) == []
    assert core.snapshot_keys() == []
    assert core.put_reserved_from_ptr(ckey(3), 1, 1) is DaxPutFromPtrResult.CLOSED
    st = core.report_status()
    assert st["is_healthy"] is False and st["closing"] is True
    with pytest.raises(RuntimeError):
        core.put_one(ckey(4), obj(4))


def test_constructor_validation(tmp_path):
    with pytest.raises(ValueError):
        DaxCore(str(tmp_path / "a"), 16 * MiB, 0)
    with pytest.raises(ValueError):
        DaxCore(str(tmp_path / "a"), 0, SLOT)
    with pytest.raises(ValueError):
        DaxCore(str(tmp_path / "a"), SLOT - 1, SLOT)


def test_put_one_raises_on_full(core):
    for i in range(core.max_slots):
        core.put_one(ckey(i), obj(i))
    with pytest.raises(RuntimeError, match="No free slots"):
        core.put_one(ckey(10**6), obj(0))


def test_hotplug_status(tmp_path):
    c = DaxCore(str(tmp_path / "dax"), 16 * MiB + 8 * MiB, SLOT, hotplug=1)
    try:
        c.put_many([ckey(1)], [obj(1)])
        st = c.hotplug_status()
        assert st["hotplug_enabled"] is True and st["is_healthy"] is True
        assert st["num_devices"] == 1 and st["slot_bytes"] == SLOT
        (dev,) = st["devices"]
        assert dev["device_path"] == str(tmp_path / "dax") and dev["live_slot_count"] == 1
        c.store.device_add(str(tmp_path / "dax2"), 16 * MiB + 8 * MiB)
        r = c.store.device_remove(str(tmp_path / "dax"), "migrate")
        assert r.moved_keys == 1
        assert c.exists_many([ckey(1)]) == [True]
        assert [d["state"] for d in c.hotplug_status()["devices"]] == ["removed", "active"]
    finally:
        c.close()
    st = c.hotplug_status()
    assert st["is_healthy"] is False and st["devices"] == []


def test_hotplug_status_disabled(core):
    st = core.hotplug_status()
    assert st["hotplug_enabled"] is False and st["num_devices"] == 1
