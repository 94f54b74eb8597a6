"""The device pool: device_add / device_remove / device_resize /
device_wait_drained / pool_status, on file arenas.

Bad inputs covered here:
  - any hotplug call on a store opened without hotplug=1: PermissionDenied (EPERM)
  - an unknown device path: NotFound
  - an empty path or one with a NUL byte: InvalidArgument
  - an unknown mode name ("shred"): InvalidArgument; a mode of the wrong
    type (1.5, None): TypeError; an unknown mode number (99): InvalidArgument
  - a negative or too large size: InvalidArgument; a size of the wrong type: TypeError
  - "drain" for resize: InvalidArgument (the library's refusal)
  - a timeout < 0, NaN or "1" for device_wait_drained: InvalidArgument;
    an infinite or huge one (inf, 1e300) waits without limit
  - wait_drained on a device that is not draining: InvalidArgument
  - removing the only device (holding an entry) with migrate: NoSpace
  - removing a device with pinned entries without force: Busy
  - a forced removal or shrink of a device this thread leases from: Deadlock
  - adding an active device again with another size: Busy
  - every call after close: Shutdown
"""

import errno
import os

import pytest

import daxkv
from conftest import SLOT, SLOTS, MiB

SIZE = SLOTS * SLOT + 8 * MiB


def pool(tmp_path, n=1, **kw):
    opts = dict(slot_bytes=SLOT, hotplug=1)
    opts.update(kw)
    return daxkv.Store(devices=[(str(tmp_path / f"dev{i}"), SIZE) for i in range(n)], **opts)


def values(n, tag=b""):
    return {f"key{i}".encode(): tag + os.urandom(1000 + 37 * i) for i in range(n)}


def dev_row(status, path):
    return next(d for d in status["devices"] if d["device_path"] == str(path))


def test_eperm_without_hotplug(tmp_path):
    with daxkv.Store(path=str(tmp_path / "dev0"), size=SIZE, slot_bytes=SLOT) as s:
        calls = [
            lambda: s.device_add(str(tmp_path / "dev1"), SIZE),
            lambda: s.device_remove(str(tmp_path / "dev0")),
            lambda: s.device_resize(str(tmp_path / "dev0"), SIZE // 2),
        ]
        for call in calls:
            with pytest.raises(daxkv.PermissionDenied) as ei:
                call()
            assert ei.value.errno == errno.EPERM
        st = s.pool_status()
        assert st["hotplug_enabled"] is False and st["num_devices"] == 1


def test_pool_status_fields(tmp_path):
    with pool(tmp_path, 2) as s:
        st = s.pool_status()
        assert st["hotplug_enabled"] is True and st["is_healthy"] is True
        assert st["num_devices"] == 2 and st["slot_bytes"] == SLOT
        assert st["total_capacity_bytes"] > 0 and st["total_used_bytes"] == 0
        rows = st["devices"]
        assert [d["index"] for d in rows] == [0, 1]
        for i, d in enumerate(rows):
            assert d["device_path"] == str(tmp_path / f"dev{i}")
            assert d["state"] == "active"
            for field in ("device_id", "max_dax_size_bytes", "max_slots", "live_slot_count",
                          "locked_key_count", "borrowed_slot_count"):
                assert isinstance(d[field], int), field
        assert isinstance(s.pool_status_json(), str)


def test_add_then_remove_migrate_keeps_every_byte(tmp_path):
    vals = values(12)
    with pool(tmp_path, 1) as s:
        assert s.put_many(list(vals), list(vals.values())) == [True] * len(vals)
        dev1 = tmp_path / "dev1"
        s.device_add(str(dev1), SIZE)
        s.device_add(str(dev1), SIZE)  # the same device and size again: nothing to do
        assert s.pool_status()["num_devices"] == 2
        assert s.stats().devices == 2
        r = s.device_remove(str(tmp_path / "dev0"), "migrate")
        assert isinstance(r, daxkv.HotplugResult)
        assert r.state == "removed" and r.state_code == daxkv.DEV_REMOVED
        assert r.device_index == 0
        assert r.moved_keys == len(vals)
        assert r.moved_bytes == sum(map(len, vals.values()))
        assert r.deleted_keys == 0 and r.source_slots_freed == len(vals)
        assert r.evicted_keys == 0  # the destination had room
        assert r.old_size_bytes > 0 and r.new_size_bytes == 0
        for k, v in vals.items():
            assert s.get(k) == v
        row = dev_row(s.pool_status(), dev1)
        assert row["state"] == "active" and row["live_slot_count"] == len(vals)
        assert dev_row(s.pool_status(), tmp_path / "dev0")["state"] == "removed"
        # the remaining device takes new entries
        assert s.put(b"after", b"x" * 10) and s.get(b"after") == b"x" * 10
    # the bytes are on dev1's arena: a store on it alone recovers them
    with daxkv.Store(path=str(dev1), size=SIZE, slot_bytes=SLOT) as s2:
        for k, v in vals.items():
            assert s2.get(k) == v


def test_remove_evict_deletes(tmp_path):
    vals = values(5)
    with pool(tmp_path, 2) as s:
        s.put_many(list(vals), list(vals.values()))
        before = {d["device_path"]: d["live_slot_count"] for d in s.pool_status()["devices"]}
        r = s.device_remove(str(tmp_path / "dev0"), mode=daxkv.EVICT)
        assert r.deleted_keys == before[str(tmp_path / "dev0")] and r.moved_keys == 0
        left = [k for k in vals if k in s]
        assert len(left) == len(vals) - r.deleted_keys
        for k in left:
            assert s.get(k) == vals[k]


def test_drain_and_wait_drained(tmp_path):
    with pool(tmp_path, 2) as s:
        dev0 = str(tmp_path / "dev0")
        vals = values(6)
        s.put_many(list(vals), list(vals.values()))
        on0 = dev_row(s.pool_status(), dev0)["live_slot_count"]
        assert on0 > 0  # least-used placement spreads entries
        r = s.device_remove(dev0, "drain")
        assert r.state == "draining" and r.state_code == daxkv.DEV_DRAINING
        assert dev_row(s.pool_status(), dev0)["state"] == "draining"
        assert s.device_wait_drained(dev0, timeout=0.05) is False  # entries remain
        for i in range(20):  # new entries go elsewhere
            s.put(f"new{i}".encode(), b"n")
        assert dev_row(s.pool_status(), dev0)["live_slot_count"] == on0
        s.remove_many(list(vals))
        assert s.device_wait_drained(dev0, timeout=5) is True
        assert s.device_wait_drained(dev0) is True
        assert s.device_wait_drained(dev0, timeout=float("inf")) is True  # no limit
        assert s.device_wait_drained(dev0, timeout=1e300) is True
        assert dev_row(s.pool_status(), dev0).get("drained") is True
        with pytest.raises(daxkv.InvalidArgument):
            s.device_wait_drained(str(tmp_path / "dev1"), timeout=0)  # not draining


def test_resize_shrink_and_grow(tmp_path):
    with pool(tmp_path, 1) as s:
        dev0 = str(tmp_path / "dev0")
        vals = values(10)
        s.put_many(list(vals), list(vals.values()))
        full = dev_row(s.pool_status(), dev0)["max_dax_size_bytes"]
        r = s.device_resize(dev0, full // 2 + SLOT, "migrate")
        assert r.state == "active" and r.old_size_bytes == full
        assert 0 < r.new_size_bytes < full
        for k, v in vals.items():
            assert s.get(k) == v
        with pytest.raises(daxkv.Busy):
            s.device_resize(dev0, 2 * SLOT, "evict")  # would drop keys: only with force
        r = s.device_resize(dev0, full)
        assert r.new_size_bytes == full
        with pytest.raises(daxkv.NoSpace):
            s.device_resize(dev0, full * 4)


def test_busy_pinned_and_force(tmp_path):
    with pool(tmp_path, 2) as s:
        dev0 = str(tmp_path / "dev0")
        vals = values(6)
        s.put_many(list(vals), list(vals.values()))
        assert s.contains_many(list(vals), pin=True) == [True] * len(vals)
        with pytest.raises(daxkv.Busy):
            s.device_remove(dev0, "migrate")
        assert dev_row(s.pool_status(), dev0)["state"] == "active"  # nothing changed
        r = s.device_remove(dev0, "migrate", force=True)
        assert r.state == "removed"
        assert s.stats().entries_pinned == len(vals)  # pins moved with the entries
        for k, v in vals.items():
            assert s.get(k) == v


def test_forced_change_of_a_device_this_thread_leases_from_is_deadlock(tmp_path):
    # It would wait for the leases, held by the thread that waits.
    with pool(tmp_path, 2) as s:
        dev0 = str(tmp_path / "dev0")
        vals = values(6)
        s.put_many(list(vals), list(vals.values()))
        leases = [s.lease(k) for k in vals]  # some of them on dev0
        with pytest.raises(daxkv.Deadlock) as ei:
            s.device_remove(dev0, "migrate", force=True)
        assert ei.value.errno == errno.EDEADLK and "lease" in ei.value.message
        with pytest.raises(daxkv.Deadlock):
            s.device_resize(dev0, SLOT, "migrate", force=True)
        assert dev_row(s.pool_status(), dev0)["state"] == "active"  # nothing changed
        for lease in leases:
            lease.release()
        r = s.device_remove(dev0, "migrate", force=True)
        assert r.state == "removed"
        for k, v in vals.items():
            assert s.get(k) == v


def test_bad_inputs(tmp_path):
    with pool(tmp_path, 1) as s:
        dev0 = str(tmp_path / "dev0")
        s.put(b"k", b"v")  # an entry with nowhere to go
        bad = [
            (daxkv.NotFound, lambda: s.device_remove(str(tmp_path / "nope"))),
            (daxkv.NotFound, lambda: s.device_resize(str(tmp_path / "nope"), SIZE // 2)),
            (daxkv.NotFound, lambda: s.device_wait_drained(str(tmp_path / "nope"), 0)),
            (daxkv.InvalidArgument, lambda: s.device_add("")),
            (daxkv.InvalidArgument, lambda: s.device_remove("a\0b")),
            (daxkv.InvalidArgument, lambda: s.device_remove(dev0, "shred")),
            (TypeError, lambda: s.device_remove(dev0, 1.5)),
            (TypeError, lambda: s.device_remove(dev0, None)),
            (daxkv.InvalidArgument, lambda: s.device_remove(dev0, 99)),
            (daxkv.InvalidArgument, lambda: s.device_add(str(tmp_path / "x"), -1)),
            (daxkv.InvalidArgument, lambda: s.device_resize(dev0, 2**64)),
            (TypeError, lambda: s.device_resize(dev0, "1MiB")),
            (daxkv.InvalidArgument, lambda: s.device_resize(dev0, SIZE // 2, "drain")),
            (daxkv.InvalidArgument, lambda: s.device_wait_drained(dev0, -1)),
            (daxkv.InvalidArgument, lambda: s.device_wait_drained(dev0, 0)),
            (daxkv.InvalidArgument, lambda: s.device_wait_drained(dev0, float("inf"))),
            (daxkv.InvalidArgument, lambda: s.device_wait_drained(dev0, float("nan"))),
            (daxkv.InvalidArgument, lambda: s.device_wait_drained(dev0, "1")),
            (daxkv.NoSpace, lambda: s.device_remove(dev0, "migrate")),
            (daxkv.Busy, lambda: s.device_add(dev0, SIZE // 2)),
        ]
        for exc, call in bad:
            with pytest.raises(exc):
                call()
        assert dev_row(s.pool_status(), dev0)["state"] == "active"
        assert s.get(b"k") == b"v"
    for call in (
        lambda: s.device_add(str(tmp_path / "dev1"), SIZE),
        lambda: s.device_remove(dev0),
        lambda: s.device_resize(dev0, SIZE),
        lambda: s.device_wait_drained(dev0, 0),
        s.pool_status,
    ):
        with pytest.raises(daxkv.Shutdown):
            call()


def test_constants():
    assert (daxkv.MIGRATE, daxkv.EVICT, daxkv.DRAIN) == (1, 2, 3)
    assert [daxkv.DEV_ACTIVE, daxkv.DEV_DRAINING, daxkv.DEV_MIGRATING, daxkv.DEV_RESIZING,
            daxkv.DEV_REMOVING, daxkv.DEV_REMOVED, daxkv.DEV_MISSING] == list(range(7))
    assert (daxkv.OP_PUT, daxkv.OP_GET, daxkv.OP_CONTAINS, daxkv.OP_REMOVE) == (1, 2, 3, 4)
