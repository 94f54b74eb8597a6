"""Single-key operations, configuration, statistics and the loader."""

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import daxkv
from daxkv import _lib

from conftest import MiB, SLOT, open_store


def test_version_is_known():
    major, minor, _ = _lib.split_version(daxkv.version_number())
    assert (major, minor) in _lib.KNOWN_VERSIONS
    assert daxkv.version() == "%d.%d.%d" % _lib.split_version(daxkv.version_number())


def test_round_trip_bytes_and_str_keys(store):
    assert store.put(b"k1", b"hello") is True
    assert store.get(b"k1") == b"hello"
    # A str key is its UTF-8 bytes: both spellings name the same entry.
    assert store.put("ключ", b"v") is True
    assert store.get("ключ".encode()) == b"v"
    assert store.contains("k1") and "k1" in store
    assert store.get(b"missing") is None
    assert store.get(b"missing", b"dflt") == b"dflt"


def test_put_existing_reports_existed_and_keeps_value(store):
    assert store.put(b"k", b"first")
    assert store.put(b"k", b"second") is False
    assert store.get(b"k") == b"first"
    assert store.put(b"k", b"third", replace=True) is True
    assert store.get(b"k") == b"third"


def test_buffer_kinds(store):
    np = pytest.importorskip("numpy")
    arr = np.arange(1000, dtype=np.float32)
    values = {
        b"bytes": b"abc" * 100,
        b"bytearray": bytearray(b"xyz" * 50),
        b"memoryview": memoryview(b"0123456789")[2:8],
        b"numpy": arr,
        b"numpy-2d": np.ones((4, 8), dtype=np.int64),
        b"empty": b"",
    }
    for k, v in values.items():
        assert store.put(k, v), k
    for k, v in values.items():
        assert store.get(k) == bytes(memoryview(v).cast("B")) if isinstance(v, np.ndarray) else store.get(k) == bytes(v)
    out = np.zeros(1000, dtype=np.float32)
    assert store.get_into(b"numpy", out) == arr.nbytes
    assert np.array_equal(out, arr)


def test_raw_address_put_and_get(store):
    import ctypes

    src = ctypes.create_string_buffer(b"raw-bytes-at-an-address", 23)
    assert store.put(b"raw", (ctypes.addressof(src), 23))
    dst = ctypes.create_string_buffer(64)
    assert store.get_into(b"raw", (ctypes.addressof(dst), 64)) == 23
    assert dst.raw[:23] == b"raw-bytes-at-an-address"


def test_get_into_too_small_reports_needed(store):
    store.put(b"k", b"x" * 100)
    with pytest.raises(daxkv.BufferTooSmall) as ei:
        store.get_into(b"k", bytearray(10))
    assert ei.value.needed == 100
    assert ei.value.errno == errno.ENOBUFS
    assert store.get_into(b"k", bytearray(100)) == 100
    assert store.get_into(b"nope", bytearray(10)) is None


def test_value_larger_than_slot(store):
    with pytest.raises(daxkv.TooBig) as ei:
        store.put(b"big", bytes(SLOT + 1))
    assert ei.value.errno == errno.E2BIG
    assert ei.value.message  # the library's detail, not just strerror
    assert not store.contains(b"big")


def test_metadata_larger_than_meta_bytes(store):
    # A single put reports its own failure whether or not it carries
    # metadata: TooBig, as for an oversize value, not a one-item BatchError.
    limit = store.stats().meta_bytes
    with pytest.raises(daxkv.TooBig) as ei:
        store.put(b"m", b"v", meta=bytes(limit + 1))
    assert not isinstance(ei.value, daxkv.BatchError)
    assert ei.value.errno == errno.E2BIG
    assert not store.contains(b"m")
    assert store.put(b"m", b"v", meta=bytes(limit))
    with store.lease(b"m") as lease:
        assert lease.meta == bytes(limit)


def test_remove_pin_unpin(store):
    store.put(b"k", b"v")
    store.pin(b"k")
    store.pin(b"k")
    with pytest.raises(daxkv.Busy) as ei:
        store.remove(b"k")
    assert ei.value.errno == errno.EBUSY
    assert store.unpin(b"k") and store.unpin(b"k")
    assert store.unpin(b"k") is False  # never below zero
    assert store.remove(b"k") is True
    assert store.remove(b"k") is False
    with pytest.raises(daxkv.NotFound):
        store.pin(b"k")


def test_forced_remove_of_pinned(store):
    store.put(b"k", b"v")
    store.pin(b"k")
    assert store.remove(b"k", force=True)
    assert not store.contains(b"k")


def test_mapping_protocol(store):
    store[b"a"] = b"1"
    store[b"a"] = b"2"  # __setitem__ replaces
    assert store[b"a"] == b"2"
    del store[b"a"]
    with pytest.raises(KeyError):
        store[b"a"]
    with pytest.raises(daxkv.NotFound):
        del store[b"a"]


def test_lru_eviction_makes_room(store):
    n = store.stats().slots_total
    for i in range(n + 3):
        assert store.put(b"k%d" % i, b"v%d" % i)
    st = store.stats()
    assert st.evictions >= 3
    assert store.get(b"k%d" % (n + 2)) == b"v%d" % (n + 2)
    assert not store.contains(b"k0")


def test_full_arena_without_eviction(nstore):
    n = nstore.stats().slots_total
    for i in range(n):
        nstore.put(b"k%d" % i, b"v")
    with pytest.raises(daxkv.NoSpace) as ei:
        nstore.put(b"one-too-many", b"v")
    assert ei.value.errno == errno.ENOSPC
    assert nstore.contains(b"k0")


def test_stats_counts(store):
    before = store.stats()
    assert before.slot_bytes == SLOT and before.slots_total >= 1
    assert before.capacity_bytes == before.slots_total * before.slot_bytes
    store.put(b"a", b"12345")
    store.get(b"a")
    store.get_into(b"zz", bytearray(1))
    st = store.stats()
    assert st.entries == before.entries + 1
    assert st.puts == before.puts + 1
    assert st.misses >= before.misses + 1
    assert st.slots_used + st.slots_free == st.slots_total
    d = st.as_dict()
    assert d["entries"] == st.entries and "recovery_usec" in d


def test_status_json(store):
    store.put(b"a", b"1")
    text = store.status_json()
    assert isinstance(json.loads(text), dict)
    assert store.status() == json.loads(store.status_json())


def test_restart_recovers_entries(tmp_path):
    with open_store(tmp_path, durability="process") as s:
        s.put(b"persist", b"across-open")
    with open_store(tmp_path, durability="process") as s:
        assert s.get(b"persist") == b"across-open"
        assert s.stats().recovered_entries >= 1


def test_devices_list_and_from_json(tmp_path):
    p = tmp_path / "dev0"
    with daxkv.Store(devices=[(str(p), 8 * MiB + 4 * MiB)], slot_bytes="1MiB") as s:
        assert s.stats().devices == 1
        s.put(b"x", b"y")
    cfg = json.dumps({"device_path": str(tmp_path / "dev1"), "max_dax_size_gb": 0.015625, "slot_bytes": SLOT})
    with daxkv.Store.from_json(cfg) as s:
        assert s.put(b"x", b"y")
        assert s.stats().slot_bytes == SLOT


def test_a_device_size_may_be_any_integer_type_and_nothing_else(tmp_path):
    # Bad input: sizes -1, 2**64, 1.0, "8MiB", True; numpy and torch
    # integers are integers (their message said "must be an integer, got
    # 8388608").
    import numpy as np

    for size in (np.int64(8 * MiB), np.uint32(8 * MiB)):
        with daxkv.Store(path="mem:", size=size, slot_bytes=SLOT) as s:
            assert s.stats().slots_free > 0
    for size in (-1, 2**64, 1.0, "8MiB", True):
        with pytest.raises(daxkv.InvalidArgument, match=r"device size must be an integer in 0 \.\. 2\*\*64-1"):
            daxkv.Store(path=str(tmp_path / "d"), size=size, slot_bytes=SLOT)
    assert os.listdir(tmp_path) == []


def test_devices_of_the_wrong_shape_are_refused(tmp_path, monkeypatch):
    # A lone path given as devices= was iterated character by character,
    # each character opened as a device path (relative to the working
    # directory); a pair of the wrong length raised from the call's
    # argument binding.
    monkeypatch.chdir(tmp_path)
    bad = [
        str(tmp_path / "dev0"),
        b"ab",
        [(str(tmp_path / "dev0"), 8 * MiB, 5)],
        [(str(tmp_path / "dev0"),)],
        [None],
        5,
    ]
    for devices in bad:
        with pytest.raises(TypeError):
            daxkv.Store(devices=devices, slot_bytes="1MiB")
    assert os.listdir(tmp_path) == []


def test_devices_may_be_a_mapping_of_paths_to_sizes_or_lists_of_two(tmp_path):
    # A dict was iterated for its paths alone: every size was dropped ("mem:
    # needs a size"), and a [path, size] list was refused.
    for devices in ({"mem:": 8 * MiB}, [["mem:", 8 * MiB]], {str(tmp_path / "d"): 8 * MiB}):
        with daxkv.Store(devices=devices, slot_bytes=SLOT) as s:
            assert s.stats().slots_total > 0


@pytest.mark.parametrize("call", ["daxkv_open", "daxkv_cursor_open"])
def test_an_interrupt_right_after_an_open_leaks_nothing(tmp_path, monkeypatch, call):
    # KeyboardInterrupt (Python runs signal handlers right after a call
    # returns) between the library opening a store, or a key cursor, and
    # Python holding it: nothing ever closed it, and every later open of
    # the arena in the process was Busy ("already open in this process").
    from daxkv import _library

    lib = _library.library()
    real = getattr(lib, call)

    def interrupted(*args):
        real(*args)
        raise KeyboardInterrupt

    s = open_store(tmp_path) if call == "daxkv_cursor_open" else None
    if s is not None:
        s.put(b"k", b"v")
    monkeypatch.setattr(lib, call, interrupted)
    with pytest.raises(KeyboardInterrupt):
        if s is None:
            open_store(tmp_path)
        else:
            list(s.keys())
    monkeypatch.setattr(lib, call, real)
    if s is not None:
        s.close()
    with open_store(tmp_path) as again:
        again.put(b"x", b"y")


def test_a_second_close_returns_once_the_store_is_freed(tmp_path):
    # close() from two threads while a call is in flight: the second saw
    # the handle cleared by the first and returned at once, before the
    # store was freed, and a reopen of its arena then was Busy.
    import threading

    s = open_store(tmp_path)
    s._enter()  # a call in flight, as another thread's put would be
    first = threading.Thread(target=s.close)
    first.start()
    while not s.closed:
        time.sleep(0.001)
    leave = threading.Timer(0.2, s._leave)
    leave.start()
    s.close()
    assert s._freed.is_set()
    with open_store(tmp_path) as again:
        again.put(b"x", b"y")
    first.join()
    leave.join()


def test_strerror_of_a_code_past_a_c_int_is_unknown():
    # The code was cut to a C int: 2**40 was described as "success" and
    # 2**32 - 2 as "not found".
    for code in (2**40, 2**32 - 2, -(2**31) - 1):
        assert daxkv.strerror(code) == "unknown error"
    assert daxkv.strerror(-errno.ENOENT) == daxkv.strerror(-2)


def test_context_manager_closes(tmp_path):
    with open_store(tmp_path) as s:
        s.put(b"a", b"b")
    assert s.closed
    with pytest.raises(daxkv.Shutdown):
        s.get(b"a")
    s.close()  # idempotent


def test_close_of_a_store_with_a_call_counted_in_flight_for_good_returns(tmp_path, monkeypatch, caplog):
    # An interrupt (KeyboardInterrupt) between a call's counting in and its
    # try block leaves it counted in flight for good; close() and the exit
    # handler waited for it without end. Now close() waits a while, then
    # leaves the handle to the last call to leave (none here: it stays
    # until the process ends) and returns; the store is closed all the same.
    import logging
    import time

    from daxkv import _store

    monkeypatch.setattr(_store, "_CLOSE_WAIT_S", 0.2)
    s = open_store(tmp_path)
    s.put(b"a", b"b")
    next(s._entered)  # what the interrupted call left behind
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="daxkv"):
        s.close()
    assert time.monotonic() - t0 < 5
    assert "calls counted in flight" in caplog.text
    assert s.closed
    with pytest.raises(daxkv.Shutdown):
        s.get(b"a")
    s.close()  # idempotent


def test_shutdown_refuses_new_calls(store):
    store.put(b"a", b"b")
    store.shutdown()
    with pytest.raises(daxkv.Shutdown) as ei:
        store.put(b"c", b"d")
    assert ei.value.errno == errno.ESHUTDOWN


def test_memcpy_batch():
    srcs = [bytes([i]) * (1000 + i) for i in range(8)]
    dsts = [bytearray(len(s)) for s in srcs]
    daxkv.memcpy_batch(dsts, srcs)
    assert [bytes(d) for d in dsts] == srcs
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.memcpy_batch([bytearray(1)], [b"too long"])
    with pytest.raises(TypeError):
        daxkv.memcpy_batch([b"read-only"], [b"x"])
    # A length must be an int: 2.5, "2", True and None were once taken as
    # int(length) and copied (2.5 as 2, True as 1) or raised from int().
    dst = bytearray(4)
    for length in (2.5, "2", True, None):
        with pytest.raises(TypeError):
            daxkv.memcpy_batch([dst], [b"abcd"], [length])
    assert dst == bytearray(4)
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.memcpy_batch([dst], [b"abcd"], [-1])


def test_memcpy_batch_refuses_ranges_that_write_what_another_touches():
    # The ranges run on different threads in no set order: one destination
    # given twice, or a destination that another range reads, is refused
    # whole and nothing is copied. One source read twice is fine.
    buf = bytearray(b"\0" * 64)
    with pytest.raises(daxkv.InvalidArgument, match="overlap"):
        daxkv.memcpy_batch([buf, buf], [b"a" * 64, b"b" * 64])
    src = bytearray(b"s" * 64)
    view = memoryview(src)
    with pytest.raises(daxkv.InvalidArgument, match="overlap"):
        daxkv.memcpy_batch([buf, view[8:16]], [src, b"x" * 8])
    assert buf == bytearray(64) and src == bytearray(b"s" * 64)
    a, b = bytearray(64), bytearray(64)
    daxkv.memcpy_batch([a, b], [src, src])
    assert a == src and b == src


def test_a_boolean_option_goes_only_where_a_boolean_goes(tmp_path):
    # True was passed as "1": meta_bytes=True opened a store with one byte
    # of metadata per entry, stats_interval=False one that never published.
    for name in ("meta_bytes", "stats_interval", "workers", "grow_limit", "verify"):
        with pytest.raises(daxkv.InvalidArgument, match=name):
            open_store(tmp_path, **{name: True})
    s = open_store(tmp_path, hotplug=True, create=True)
    s.put(b"k", b"v")
    assert s.get(b"k") == b"v"
    s.close()


def test_log_callback_can_be_set_and_cleared():
    seen = []
    daxkv.set_log_callback(lambda lvl, msg: seen.append((lvl, msg)), daxkv.LOG_DEBUG)
    daxkv.set_log_callback(None)
    assert all(isinstance(m, str) for _, m in seen)


def test_log_callback_may_close_the_store_whose_call_logs(tmp_path):
    # The library hands a call's log events to the callback on the
    # caller's thread before the call returns, and lets the callback close
    # the store. close() there once waited for the calls in flight, its own
    # thread's among them: the thread hung for ever.
    import threading

    s = daxkv.Store(devices=[(str(tmp_path / "a"), 8 * MiB)], slot_bytes="1MiB", hotplug=1)
    seen = []

    def close_on_add(level, msg):
        seen.append(msg)
        if "added" in msg:
            s.close()

    daxkv.set_log_callback(close_on_add, daxkv.LOG_INFO)
    try:
        adder = threading.Thread(target=lambda: s.device_add(str(tmp_path / "b"), 8 * MiB), daemon=True)
        adder.start()
        adder.join(10)
        assert not adder.is_alive(), "close() from the log callback waited for its own call"
    finally:
        daxkv.set_log_callback(None)
    assert any("added" in m for m in seen)
    assert s.closed
    with pytest.raises(daxkv.Shutdown):
        s.contains(b"k")
    s.close()  # idempotent


def _compile_fake_lib(tmp_path, number, string):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a library with another version")
    src = tmp_path / "fake.c"
    syms = "".join(f"void {name}(void) {{}}\n" for name in _lib.PROTOTYPES if not name.startswith("daxkv_version"))
    src.write_text(
        f"unsigned daxkv_version_number(void) {{ return {number}; }}\n"
        f'const char *daxkv_version_string(void) {{ return "{string}"; }}\n' + syms
    )
    out = tmp_path / "libdaxkv.so.0"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


@pytest.mark.parametrize("number,string", [(10000, "1.0.0"), (200, "0.2.0")])
def test_loader_refuses_unknown_version(tmp_path, number, string):
    lib = _compile_fake_lib(tmp_path, number, string)
    with pytest.raises(daxkv.LibraryError, match="not a version this binding knows"):
        _lib.load(str(lib))
    # Through the environment, as a user would point at it, in a fresh process.
    env = dict(os.environ, DAXKV_LIBRARY=str(lib))
    code = "import daxkv\ntry:\n daxkv.version()\nexcept daxkv.LibraryError as e:\n print('refused', e)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert "refused" in out.stdout, out.stderr


def test_loader_reports_every_path_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("DAXKV_LIBRARY", str(tmp_path / "nowhere.so"))
    with pytest.raises(daxkv.LibraryError, match="nowhere.so"):
        _lib.load()


def test_loader_takes_a_directory(monkeypatch):
    # DAXKV_LIBRARY may name lib/.libs itself; the SONAME is appended.
    loaded = daxkv.library()._name
    monkeypatch.setenv("DAXKV_LIBRARY", os.path.dirname(os.path.abspath(loaded)) or ".")
    assert _lib.candidates() == [os.path.join(os.path.dirname(os.path.abspath(loaded)), _lib.SONAME)]


def test_probe_and_list_devices(tmp_path):
    try:
        devs = daxkv.list_devices()
    except daxkv.NotSupported:
        pytest.skip("the library predates daxkv_list_devices")
    assert all(d.kind == "devdax" for d in devs)
    p = tmp_path / "arena"
    with open_store(tmp_path):
        pass  # creates the file arena
    info = daxkv.probe(str(p))
    assert info.kind == "file" and info.path == str(p) and info.size > 0
    assert daxkv.probe("mem:").kind == "memory"
    with pytest.raises(daxkv.NotFound):
        daxkv.probe(str(tmp_path / "absent"))
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.probe("bad\0path")


def test_address_pairs_take_numpy_integers_and_refuse_bool(store):
    # Pointer and length columns often come from numpy arrays; memcpy_batch
    # took their integers, the batches refused them. A bool is no length:
    # True was taken as a 1-byte value.
    np = pytest.importorskip("numpy")
    src = np.frombuffer(b"numpy-ints", dtype=np.uint8)
    addrs = np.array([src.ctypes.data], dtype=np.uint64)
    lens = np.array([src.nbytes], dtype=np.int64)
    assert store.put_many_ptr([b"n"], addrs, lens) == [True]
    assert store.get(b"n") == b"numpy-ints"
    with pytest.raises(TypeError, match="integers"):
        store.put_many_ptr([b"b"], [src.ctypes.data], [True])
    assert store.get(b"b") is None
