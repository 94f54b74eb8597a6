"""Key enumeration (Store.keys), device layouts and slot locations.

Bad inputs tried: an unknown device, an empty path, a path with a NUL byte,
a released lease, a finished reservation, a closed store.
"""

import ctypes

import pytest

import daxkv

from conftest import SLOT, SLOTS, open_store


def test_keys_lists_committed_entries_with_metadata(store, tmp_path):
    assert list(store.keys()) == []
    store.put_many([b"a", b"b", b"c"], [b"1", b"22", b"333"], metas=[b"ma", None, b"mc"])
    store.remove(b"b")
    store.pin(b"c")
    r = store.reserve(b"in-flight", 10)  # not committed: not listed
    try:
        got = {k.key: k for k in store.keys()}
    finally:
        r.abort()
    assert set(got) == {b"a", b"c"}
    assert got[b"a"].meta == b"ma" and got[b"a"].value_len == 1 and got[b"a"].pins == 0
    assert got[b"c"].meta == b"mc" and got[b"c"].value_len == 3 and got[b"c"].pins == 1
    assert got[b"a"].slot != got[b"c"].slot and got[b"c"].seq > got[b"a"].seq
    dev = str(tmp_path / "arena")
    assert {k.key for k in store.keys(dev)} == {b"a", b"c"}


def test_keys_bad_device_and_closed_store(store):
    with pytest.raises(daxkv.NotFound):
        list(store.keys("/no/such/device"))
    with pytest.raises(daxkv.InvalidArgument):
        list(store.keys(""))
    with pytest.raises(daxkv.InvalidArgument):
        list(store.keys("a\0b"))
    store.put(b"k", b"v")
    it = store.keys()
    store.close()
    with pytest.raises(daxkv.Shutdown):
        next(it)


def test_device_layout_and_slots(tmp_path):
    with open_store(tmp_path, eviction="none") as s:
        dev = str(tmp_path / "arena")
        lay = s.device_layout(dev)
        assert lay.slot_bytes == SLOT and lay.usable_slots >= SLOTS and lay.used_end == 0
        assert lay.state == "active" and lay.payload_base != 0
        s.put(b"x", b"payload")
        with s.lease(b"x") as lease:
            si = lease.slot()
            assert si.payload_base == lay.payload_base
            assert si.offset == si.slot * SLOT
            assert ctypes.string_at(si.address, 7) == b"payload"
        assert s.device_layout(dev).used_end == si.slot + 1
        with s.reserve(b"y", 4) as r:
            ri = r.slot()
            assert ri.address == si.payload_base + ri.offset and ri.slot != si.slot
            r.data[:] = b"abcd"
        with pytest.raises(ValueError):
            r.slot()  # committed: no longer a reservation
        with pytest.raises(ValueError):
            lease.slot()  # released
        with pytest.raises(daxkv.NotFound):
            s.device_layout("/not/in/pool")
        assert s.stats().slots_leased == 0
        with s.lease(b"x"), s.lease(b"x"), s.lease(b"y"):
            assert s.stats().slots_leased == 2
