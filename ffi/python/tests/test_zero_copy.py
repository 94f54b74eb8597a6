"""Leases (zero-copy reads) and reservations (zero-copy writes)."""

import ctypes
import errno
import gc
import os

import pytest

import daxkv

from conftest import open_store


def test_lease_is_read_only_view(store):
    store.put(b"k", b"payload")
    with store.lease(b"k") as lease:
        assert len(lease) == 7 and lease.size == 7
        v = lease.data
        assert bytes(v) == b"payload"
        assert v.readonly
        with pytest.raises(TypeError):
            v[0] = 0
        del v  # a view held past release() would hold the lease too
    with pytest.raises(ValueError):
        lease.data
    assert lease.released
    lease.release()  # idempotent


@pytest.mark.parametrize("how", ["lease", "lease_many"])
def test_nothing_a_lease_hands_out_writes_the_entry(store, how):
    # A lease reads the entry in place: its data view, the view's obj, their
    # casts and numpy arrays of them are read-only. The ctypes array under
    # them (data.obj.obj) is what every view's buffer holds, so that none
    # outlives the lease; like slot().address, it writes, and is documented
    # as not to be written.
    np = pytest.importorskip("numpy")
    store.put(b"k", b"payload")
    lease = store.lease(b"k") if how == "lease" else store.lease_many([b"k"])[0]
    with lease:
        view = lease.data
        for buf in (view, view.cast("B"), view.cast("B").cast("c"), view.obj, view.obj.cast("c")):
            assert memoryview(buf).readonly, type(buf)
            with pytest.raises(TypeError):
                ctypes.c_char.from_buffer(buf)
            with pytest.raises(TypeError):
                memoryview(buf)[0:1] = b"X"
        assert isinstance(view.obj.obj, ctypes.Array)
        del view, buf
        arr = np.frombuffer(lease.data, dtype=np.uint8)
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr.flags.writeable = True
        del arr
        assert lease.tobytes() == b"payload"
    assert store.get(b"k") == b"payload"


@pytest.mark.parametrize("route", ["slice of obj", "view of obj", "cast of obj", "slice of obj.obj"])
def test_a_view_made_from_the_data_views_obj_keeps_the_lease(store, route):
    # Views made from data.obj rather than from data (a slice, a memoryview
    # of it, a cast) hold the lease too. The obj used to be a view that owned
    # nothing: its slices kept nothing alive, release() ended the lease under
    # them, and they read the bytes of whatever took the slot next (or
    # faulted after close).
    store.put(b"k", b"A" * 4096)
    base = store.stats().leases_active
    lease = store.lease(b"k")
    obj = lease.data.obj
    part = {
        "slice of obj": lambda: obj[0:16],
        "view of obj": lambda: memoryview(obj)[0:16],
        "cast of obj": lambda: obj.cast("c")[0:16],
        "slice of obj.obj": lambda: memoryview(obj.obj)[0:16],
    }[route]()
    del obj
    lease.release()
    assert store.stats().leases_active == base + 1
    store.remove(b"k")
    for i in range(4):
        store.put(b"other%d" % i, b"B" * 4096)
    assert part.tobytes() == b"A" * 16
    del part
    gc.collect()
    assert store.stats().leases_active == base


def test_a_data_view_its_holder_released_is_replaced(store):
    # `with lease.data as view` releases the view at the end of the block
    # (memoryview's own context manager); the lease is still held, and its
    # data is a new view.
    store.put(b"k", b"payload")
    with store.lease(b"k") as lease:
        with lease.data as view:
            assert bytes(view) == b"payload"
        assert not lease.released
        assert bytes(lease.data) == b"payload" and lease.tobytes() == b"payload"
        assert bytes(lease) == b"payload"
    assert lease.released
    with pytest.raises(ValueError):
        lease.data


def test_lease_counts_and_release(store):
    store.put(b"k", b"v")
    base = store.stats().leases_active
    lease = store.lease(b"k")
    assert store.stats().leases_active == base + 1
    lease.release()
    gc.collect()
    assert store.stats().leases_active == base


def test_lease_many_gives_what_single_leases_give(store):
    store.put(b"a", b"first")
    store.put(b"b", b"second")
    leases = store.lease_many([b"a", b"missing", "b"])
    assert [bytes(x.data) if x else None for x in leases] == [b"first", None, b"second"]
    assert store.stats().leases_active == 2
    for x in leases:
        if x:
            x.release()
    assert store.stats().leases_active == 0
    # prefix: the run before the first miss; an empty batch.
    head = store.lease_many([b"a", b"missing", b"b"], prefix=True)
    assert len(head) == 1 and bytes(head[0].data) == b"first"
    head[0].release()
    assert store.lease_many([]) == []
    # A bad key fails its item: BatchError, the good leases released with it.
    with pytest.raises(daxkv.BatchError) as ei:
        store.lease_many([b"a", b"x" * 513])
    assert ei.value.statuses[1] == -errno.EINVAL
    del ei
    gc.collect()
    assert store.stats().leases_active == 0
    with pytest.raises(TypeError):
        store.lease_many(b"a")  # a lone key, not a sequence


@pytest.mark.parametrize("call", ["daxkv_lease_acquire", "daxkv_lease_batch", "daxkv_reserve"])
def test_an_interrupt_right_after_a_lease_or_reservation_is_taken_leaks_nothing(store, monkeypatch, call):
    # KeyboardInterrupt (Python runs signal handlers right after a call
    # returns) between the library handing over a lease or a reservation
    # and its Python object existing: the lease was held, or the key left
    # in flight, until the process ended. Now the handle's claim ends it.
    from daxkv import _library

    store.put(b"k", b"v" * 100)
    lib = _library.library()
    real = getattr(lib, call)

    def interrupted(*args):
        rc = real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(lib, call, interrupted)
    with pytest.raises(KeyboardInterrupt):
        if call == "daxkv_lease_acquire":
            store.lease(b"k")
        elif call == "daxkv_lease_batch":
            store.lease_many([b"k", b"absent", b"k"])
        else:
            store.reserve(b"new", 100)
    monkeypatch.setattr(lib, call, real)
    gc.collect()
    st = store.stats()
    assert st.leases_active == 0 and st.slots_inflight == 0
    with store.reserve(b"new", 10) as r:  # the key is not in flight
        r.data[:] = b"x" * 10
    assert store.get(b"new") == b"x" * 10
    with store.lease(b"k") as lease:
        assert lease.tobytes() == b"v" * 100


@pytest.mark.parametrize("ending", ["commit", "lease release"])
def test_an_interrupt_as_a_lease_or_reservation_ends_leaves_it_to_end_again(store, monkeypatch, ending):
    # KeyboardInterrupt raised just before the library's commit or release
    # call: the handle was already marked finished, so nothing ended it
    # again; the lease was held, or the key left in flight (EEXIST to a new
    # reservation, EBUSY to a remove), until the process ended. Now the
    # mark and the call are one step: interrupted before it, the handle is
    # as it was.
    from daxkv import _zero_copy

    store.put(b"k", b"v" * 100)
    real = _zero_copy.library
    fired = []

    def interrupted():
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt
        return real()

    r = store.reserve(b"new", 4) if ending == "commit" else None
    lease = store.lease(b"k") if ending == "lease release" else None
    if r is not None:
        r.data[:] = b"abcd"
    monkeypatch.setattr(_zero_copy, "library", interrupted)
    with pytest.raises(KeyboardInterrupt):
        if r is not None:
            r.commit()
        else:
            lease.release()
    monkeypatch.setattr(_zero_copy, "library", real)
    if r is not None:
        r.commit()  # the reservation is still open: committing again works
        assert store.get(b"new") == b"abcd"
    else:
        del lease
    gc.collect()
    st = store.stats()
    assert st.leases_active == 0 and st.slots_inflight == 0
    assert store.remove(b"k") and store.remove(b"new") == (ending == "commit")


# The storm runs in a child process: an interrupt that lands in an except
# clause escapes every handler, and in pytest's own process it ended the
# whole run. The child never closes its store (a close waits its 5 s for a
# call an interrupt broke off, README "Lifetimes").
_INTERRUPT_STORM = r"""
import gc, json, os, signal, time
import daxkv

store = daxkv.Store(path="mem:", size=24 << 20, slot_bytes=1 << 20)
store.put(b"k", b"v" * 100)
end = time.monotonic() + 1.0
count = {"interrupts": 0, "rounds": 0}


def tick(*_):
    if time.monotonic() > end:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)  # the last one
        return
    raise KeyboardInterrupt


def rounds():
    while time.monotonic() < end:
        try:
            count["rounds"] += 1
            with store.lease(b"k") as lease:
                lease.tobytes()
            with store.reserve(b"r%d" % count["rounds"], 10) as r:
                r.data[:] = b"y" * 10
        except KeyboardInterrupt:
            count["interrupts"] += 1
        except daxkv.NoSpace:
            pass


signal.signal(signal.SIGALRM, tick)
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
while time.monotonic() < end + 0.05:  # an interrupt outside the try
    try:
        rounds()
    except KeyboardInterrupt:
        count["interrupts"] += 1
signal.setitimer(signal.ITIMER_REAL, 0, 0)
gc.collect()
st = store.stats()
print(json.dumps(dict(count, leases_active=st.leases_active, slots_inflight=st.slots_inflight)), flush=True)
os._exit(0)
"""


def test_interrupts_at_any_moment_leak_no_lease_or_reservation():
    # A timer raises KeyboardInterrupt every half millisecond for a second
    # while leases and reservations are taken and ended in with-blocks.
    # Before the release, commit and abort calls were made one step with
    # their marks (_finish_handle), this left 40 to 80 leases held and keys
    # in flight a second. What remains is the window of a handle ended by
    # its owner's finalizer (the with-block broken off before release()
    # did it): an interrupt landing inside weakref.finalize's own Python
    # code loses that release, up to about one interrupt in a hundred here
    # (0 to 10 of 600 to 1,200 interrupts, over runs on a machine idle and
    # busy; README, "Lifetimes"). The bound is 2 %, under the 4 to 8 % lost
    # before.
    import json
    import subprocess
    import sys

    for _ in range(3):  # a child that an interrupt ended outside its handlers runs again
        child = subprocess.run([sys.executable, "-c", _INTERRUPT_STORM], capture_output=True, text=True,
                               timeout=120)
        if child.returncode == 0:
            break
    else:
        pytest.fail(f"three storms ended by an interrupt outside their handlers: {child.stderr[-2000:]}")
    r = json.loads(child.stdout.splitlines()[-1])
    assert r["interrupts"] > 100, r
    assert r["leases_active"] + r["slots_inflight"] <= max(3, r["interrupts"] // 50), r


def test_lease_miss(store):
    with pytest.raises(daxkv.NotFound) as ei:
        store.lease(b"nope")
    assert ei.value.errno == errno.ENOENT


def test_lease_survives_remove_and_overwrite(store):
    store.put(b"k", b"A" * 4096)
    with store.lease(b"k") as lease:
        store.remove(b"k")
        store.put(b"k", b"B" * 4096)
        # The slot is not reused while leased: the old bytes are intact.
        assert lease.tobytes() == b"A" * 4096
    assert store.get(b"k") == b"B" * 4096


def test_lease_outlives_store_close(tmp_path):
    s = open_store(tmp_path)
    s.put(b"k", b"still here after close")
    lease = s.lease(b"k")
    view = lease.data
    s.close()
    assert bytes(view) == b"still here after close"
    lease.release()
    assert bytes(view) == b"still here after close"  # view still holds it


def test_lease_copies_after_close_read_in_place(tmp_path):
    # tobytes() and meta() copy through the library while the store is
    # open; once it is closed they read the leased bytes where they are.
    s = open_store(tmp_path)
    s.put(b"k", b"value bytes", meta=b"its meta")
    lease = s.lease(b"k")
    assert lease.tobytes() == b"value bytes" and lease.meta == b"its meta"
    s.close()
    assert lease.tobytes() == b"value bytes" and lease.meta == b"its meta"
    lease.release()


def _cut_payloads(path):
    """Cut the arena file at its first payload (its data_offset, read from
    superblock A): every value faults, the slot headers do not."""
    with open(path, "rb") as f:
        f.seek(72)
        os.truncate(path, int.from_bytes(f.read(8), "little"))


@pytest.mark.parametrize("read", ["get", "getitem", "get_many", "tobytes", "bytes", "meta_cut_headers"])
def test_copies_out_of_a_faulting_entry_raise_media_error_with_sigbus_handle(tmp_path, read):
    # The arena file is cut under the open store. With sigbus=handle
    # get_into raised MediaError, but get, store[k] and get_many (which copy
    # through a lease) and a lease's tobytes() and meta read the bytes in
    # Python: SIGBUS ended the process. They copy through the library now
    # (daxkv_lease_read_batch): MediaError, the entry dropped.
    path = str(tmp_path / "arena")
    s = open_store(tmp_path, sigbus="handle")
    try:
        s.put(b"k", b"v" * 5000, meta=b"m" * 40)
        with s.lease(b"k") as lease:  # lease.meta also faults on the headers
            if read == "meta_cut_headers":
                os.truncate(path, 8192)
            else:
                _cut_payloads(path)
            with pytest.raises((daxkv.MediaError, daxkv.BatchError)) as ei:
                if read == "get":
                    s.get(b"k")
                elif read == "getitem":
                    s[b"k"]
                elif read == "get_many":
                    s.get_many([b"k"])
                elif read == "tobytes":
                    lease.tobytes()
                elif read == "bytes":
                    bytes(lease)
                else:
                    lease.meta
            if read == "get_many":  # per item, after the others
                assert isinstance(ei.value.errors[0], daxkv.MediaError)
            else:
                assert isinstance(ei.value, daxkv.MediaError)
            # The error kept (ei) keeps no lease of the call's: get() held
            # the one it took for as long as its MediaError was kept.
            assert s.stats().leases_active == 1  # this test's own
        assert s.contains(b"k") is False
        assert s.stats().copy_faults == 1
    finally:
        s.close()


def test_derived_views_keep_the_lease(store):
    np = pytest.importorskip("numpy")
    store.put(b"k", np.arange(16, dtype=np.int32))
    base = store.stats().leases_active
    lease = store.lease(b"k")
    arr = np.frombuffer(lease.data, dtype=np.int32)
    part = lease.data[4:8]
    lease.release()
    # Views exported before release stay valid: the C lease is held until
    # the last of them is gone, so nothing points at reusable memory.
    assert store.stats().leases_active == base + 1
    assert arr.tolist() == list(range(16))
    assert bytes(part) == bytes(np.arange(16, dtype=np.int32))[4:8]
    del arr, part
    gc.collect()
    assert store.stats().leases_active == base


def test_a_data_view_held_elsewhere_keeps_the_lease(store):
    # release() can invalidate the data view only while nothing else refers
    # to it: a variable, or a tensor of torch.frombuffer, which keeps the
    # view object and no export of its buffer. Such a view stays valid,
    # holding the lease, until its last holder lets go.
    store.put(b"k", b"A" * 4096)
    base = store.stats().leases_active
    with store.lease(b"k") as lease:
        view = lease.data
    assert lease.released and store.stats().leases_active == base + 1
    store.remove(b"k")
    store.put(b"other", b"B" * 4096)
    assert bytes(view) == b"A" * 4096  # its slot was not handed out again
    del view
    gc.collect()
    assert store.stats().leases_active == base


def test_a_torch_tensor_of_a_lease_keeps_it_past_release_and_close(tmp_path):
    torch = pytest.importorskip("torch")
    s = open_store(tmp_path, slot_bytes="64KiB", size=1 << 20, eviction="none")
    s.put(b"a", b"A" * 4096)
    with pytest.warns(UserWarning, match="not writable"):
        with s.lease(b"a") as lease:
            t = torch.frombuffer(lease.data, dtype=torch.uint8)
    assert s.stats().leases_active == 1
    s.remove(b"a")
    with pytest.raises(daxkv.NoSpace):  # every free slot taken: a's would be among them
        for i in range(64):
            s.put(b"b%d" % i, b"B" * 4096)
    assert bytes(t[:4].tolist()) == b"AAAA"
    s.close()
    assert bytes(t[-4:].tolist()) == b"AAAA"  # still mapped: the lease holds it
    del t
    gc.collect()


def test_reservation_commit(store):
    with store.reserve(b"r", 1000) as r:
        assert r.size == 1000
        assert not store.contains(b"r")  # in flight until commit
        assert store.put(b"r", b"other") is False  # in flight counts as existing
        r.data[:] = b"z" * 1000
    assert r.done
    assert store.get(b"r") == b"z" * 1000
    with pytest.raises(ValueError):
        r.data
    with pytest.raises(ValueError):
        r.commit()


def test_reservation_abort_on_exception(store):
    with pytest.raises(RuntimeError):
        with store.reserve(b"r", 10) as r:
            r.data[:4] = b"half"
            raise RuntimeError("copy failed")
    assert not store.contains(b"r")
    assert store.put(b"r", b"fresh")  # the key is free again


def test_reservation_with_meta(store):
    with store.reserve(b"r", 3, meta=b"m") as r:
        r.data[:] = b"abc"
    with store.lease(b"r") as lease:
        assert lease.meta == b"m" and lease.tobytes() == b"abc"


def test_reserve_existing_key(store):
    store.put(b"k", b"v")
    with pytest.raises(daxkv.Exists):
        store.reserve(b"k", 4)
    r = store.reserve(b"fly", 4)
    with pytest.raises(daxkv.Exists):
        store.reserve(b"fly", 4)
    r.abort()


def test_commit_refused_while_views_alive(store):
    r = store.reserve(b"r", 8)
    part = r.data[0:4]
    part[:] = b"1234"
    with pytest.raises(BufferError):
        r.commit()
    assert not r.done
    del part
    r.data[4:] = b"5678"
    r.commit()
    assert store.get(b"r") == b"12345678"


def test_commit_refused_while_anything_taken_from_data_can_write(store):
    # The writable routes into a reservation's slot (the array behind its
    # data, numpy): commit waits until none is left, so nothing writes
    # into the entry once it is visible.
    np = pytest.importorskip("numpy")
    r = store.reserve(b"r", 8)
    r.data[:] = b"12345678"
    behind = r.data.obj
    with pytest.raises(BufferError):
        r.commit()
    del behind
    arr = np.frombuffer(r.data, dtype=np.uint8)
    assert arr.flags.writeable
    with pytest.raises(BufferError):
        r.commit()
    del arr
    gc.collect()
    r.commit()
    with pytest.raises(ValueError):
        r.data
    assert store.get(b"r") == b"12345678"


def test_a_data_view_released_by_its_holder_does_not_block_commit(store):
    # `with r.data as d` releases d at the end of the block: it can write no
    # more, so it does not hold the commit back, though the name d still
    # refers to it; data is then a new view.
    r = store.reserve(b"r", 8)
    with r.data as d:
        d[:] = b"12345678"
    assert bytes(r.data) == b"12345678"
    with r.data as d:
        d[0:1] = b"X"
    r.commit()
    assert store.get(b"r") == b"X2345678"
    del d


def test_a_block_whose_commit_is_refused_aborts_the_reservation(store):
    # A with block that ends without an exception commits; where the commit
    # is refused (a view of the data is still alive), the block aborts, as
    # one that raised does, instead of leaving the key in flight until the
    # Reservation object is collected.
    with pytest.raises(BufferError):
        with store.reserve(b"r", 8) as r:
            r.data[:] = b"12345678"
            part = r.data[0:4]
    assert r.done
    del part  # the deferred abort happens here
    gc.collect()
    assert not store.contains(b"r") and store.stats().slots_inflight == 0
    assert store.put(b"r", b"again")
    assert store.get(b"r") == b"again"


def test_a_torch_tensor_of_a_reservation_blocks_commit_and_defers_abort(store):
    # torch.frombuffer keeps the data view itself, no export of it: it is a
    # live view all the same, which could write after a commit or into a
    # slot an abort handed back.
    torch = pytest.importorskip("torch")
    r = store.reserve(b"k", 8)
    t = torch.frombuffer(r.data, dtype=torch.uint8)
    t[:] = ord("K")
    with pytest.raises(BufferError, match="torch.frombuffer"):
        r.commit()
    assert not r.done and not store.contains(b"k")
    del t
    r.commit()
    assert store.get(b"k") == b"K" * 8
    r = store.reserve(b"q", 8)
    t = torch.frombuffer(r.data, dtype=torch.uint8)
    r.abort()
    assert store.put(b"q", b"x") is False  # still in flight while t can write
    t[:] = ord("!")
    del t
    gc.collect()
    assert store.put(b"q", b"x") is True


def test_abort_with_live_view_is_deferred(store):
    r = store.reserve(b"r", 8)
    part = r.data[:]
    r.abort()
    # Still in flight: the slot cannot be handed out while `part` can write.
    assert store.put(b"r", b"x") is False
    part[:] = b"harmless"
    del part
    gc.collect()
    assert store.put(b"r", b"x") is True


def test_forced_remove_cancels_reservation(store):
    r = store.reserve(b"r", 4)
    r.data[:] = b"data"
    assert store.remove(b"r", force=True)
    with pytest.raises(daxkv.Cancelled) as ei:
        r.commit()
    assert ei.value.errno == errno.ECANCELED
    assert not store.contains(b"r")


def test_remove_in_flight_without_force_is_busy(store):
    r = store.reserve(b"r", 4)
    with pytest.raises(daxkv.Busy):
        store.remove(b"r")
    r.abort()


def test_commit_after_close(tmp_path):
    s = open_store(tmp_path)
    r = s.reserve(b"r", 4)
    r.data[:] = b"late"
    s.close()
    with pytest.raises(daxkv.Shutdown):
        r.commit()
    assert r.done


def test_zero_length_reservation_and_lease(store):
    with store.reserve(b"empty", 0) as r:
        assert len(r.data) == 0
    with store.lease(b"empty") as lease:
        assert lease.tobytes() == b""


class _RacingLibrary:
    """The library, with the C lease or reservation released or aborted
    by another thread just as an accessor enters its C call; records the
    release/abort instead of letting the accessor use a freed handle."""

    def __init__(self, real, racing_call, finish, other_thread):
        self.real, self.racing_call, self.finish, self.other_thread = real, racing_call, finish, other_thread
        self.finished = []

    def __getattr__(self, name):
        fn = getattr(self.real, name)
        if name == self.finish:

            def finish(h):
                self.finished.append(h)
                fn(h)

            return finish
        if name == self.racing_call:

            def call(h, *args):
                import gc
                import threading

                t = threading.Thread(target=self.other_thread)
                t.start()
                t.join()
                gc.collect()
                assert not self.finished, f"{self.finish} ran while {name} was in flight"
                return fn(h, *args)

            return call
        return fn


def test_lease_meta_keeps_the_lease_while_another_thread_releases_it(store, monkeypatch):
    # release() on another thread dropped the last reference to the array
    # whose finalizer releases the C lease while meta was inside
    # daxkv_lease_meta: a use after free of the lease.
    from daxkv import _zero_copy

    store.put(b"k", b"v" * 100, meta=b"m" * 20)
    lease = store.lease(b"k")
    racing = _RacingLibrary(_zero_copy.library(), "daxkv_lease_meta", "daxkv_lease_release", lease.release)
    monkeypatch.setattr(_zero_copy, "library", lambda: racing)
    assert lease.meta == b"m" * 20
    assert lease.released and len(racing.finished) == 1


def test_reservation_set_meta_keeps_the_slot_while_another_thread_aborts(store, monkeypatch):
    from daxkv import _zero_copy

    r = store.reserve(b"k", 100)
    racing = _RacingLibrary(_zero_copy.library(), "daxkv_reservation_set_meta", "daxkv_abort", r.abort)
    monkeypatch.setattr(_zero_copy, "library", lambda: racing)
    r.set_meta(b"m" * 20)
    assert r.done and len(racing.finished) == 1
    assert store.get(b"k") is None
