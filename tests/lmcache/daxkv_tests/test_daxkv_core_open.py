# SPDX-License-Identifier: Apache-2.0
"""Opening a daxkv.lmcache.DaxCore: LMCache's errors for bad arguments and
unusable devices, nothing created or changed by a failed open, no
descriptor leaked, and LMCache's capacity when an arena is opened again
with another size.

Bad inputs tried here:

* device_path "", None and 5 (a TypeError, as LMCache's os.open raises);
  slot_bytes 1000.5 (refused; LMCache opens); and beside LMCache's own core,
  device_path b"" and " ", max_dax_size_bytes 4096.0, 4096.5, "4096",
  True, None and 2**70, slot_bytes 1024.0, "1024", True and 1000;
  max_dax_size_bytes 0 and -1; slot_bytes 0 and
  -5; max_dax_size_bytes smaller than one slot (on an existing file, and on
  a missing path, which LMCache reports as an open failure first);
* a path that does not exist; a 4 KiB file (holding bytes) opened with
  8 KiB; a directory; a file of 64 KiB of random bytes; a file holding a
  persistent daxkv arena reopened, persistent, with another slot size;
* an arena reopened with max_dax_size_bytes larger (within the room it was
  laid out for) and smaller than before, volatile and persistent, and
  smaller than the entries a persistent arena holds (the oldest go).
"""

# Standard
import logging
import os

# Third Party
import pytest

# First Party
import conftest
from daxkv.lmcache import DaxCore, DaxCoreError
from dk_helpers import byte_obj, ekey, load_lmcache_core, make_device, open_fds, pattern, release, sha256_file

S = 1024


class _Watch:
    """Snapshot of the directory and of the open descriptors around a failed
    open."""

    def __init__(self, directory):
        self.directory = directory
        self.listing = sorted(os.listdir(directory))
        self.fds = open_fds()

    def check(self):
        assert sorted(os.listdir(self.directory)) == self.listing
        assert open_fds() == self.fds


def _open(path, size, slot=S, **kw):
    return DaxCore(device_path=str(path), max_dax_size_bytes=size, slot_bytes=slot, **kw)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(device_path="", max_dax_size_bytes=4 * S, slot_bytes=S), "device_path must be a non-empty string"),
        (dict(device_path=None, max_dax_size_bytes=4 * S, slot_bytes=S), "device_path must be a non-empty string"),
        (dict(max_dax_size_bytes=0, slot_bytes=S), "max_dax_size_bytes must be > 0"),
        (dict(max_dax_size_bytes=-1, slot_bytes=S), "max_dax_size_bytes must be > 0"),
        (dict(max_dax_size_bytes=4 * S, slot_bytes=0), "slot_bytes must be > 0"),
        (dict(max_dax_size_bytes=4 * S, slot_bytes=-5), "slot_bytes must be > 0"),
        (dict(max_dax_size_bytes=S - 1, slot_bytes=S), "configured arena does not fit even one slot"),
    ],
)
def test_bad_arguments_raise_lmcache_value_errors(tmp_path, kwargs, message):
    path = make_device(tmp_path / "dax.bin", 4 * S, b"keep")
    digest = sha256_file(path)
    kwargs = dict(kwargs)
    kwargs.setdefault("device_path", path)
    watch = _Watch(tmp_path)
    with pytest.raises(ValueError) as info:
        DaxCore(**kwargs)
    assert str(info.value) == message
    watch.check()
    assert sha256_file(path) == digest and os.path.getsize(path) == 4 * S


def test_missing_path_is_a_runtime_error_and_is_not_created(tmp_path):
    path = str(tmp_path / "absent.bin")
    # LMCache opens before it sizes the slots, and before any size can be
    # refused: a size no arena of these slots addresses (2**40 and more)
    # was a ValueError "invalid DAX arena configuration".
    for size in (4 * S, S - 1, 2**40, 2**62):
        watch = _Watch(tmp_path)
        with pytest.raises(RuntimeError) as info:
            _open(path, size)
        assert str(info.value) == (
            f"Failed to open dax device {path}: [Errno 2] No such file or directory: '{path}'"
        )
        assert not os.path.exists(path)
        watch.check()


def test_file_smaller_than_max_dax_size_is_refused_untouched(tmp_path):
    path = make_device(tmp_path / "small.bin", 4 * S, pattern(100, 3))
    digest = sha256_file(path)
    watch = _Watch(tmp_path)
    with pytest.raises(RuntimeError) as info:
        _open(path, 8 * S)
    assert str(info.value) == (
        f"max_dax_size_bytes ({8 * S} bytes) exceeds device capacity ({4 * S} bytes)"
    )
    watch.check()
    assert os.path.getsize(path) == 4 * S and sha256_file(path) == digest


def test_a_path_object_or_bytes_opens_as_lmcache_opens_it(tmp_path):
    # LMCache's core hands device_path to os.open, which takes any path.
    path = make_device(tmp_path / "dax.bin", 4 * S)
    import pathlib

    for given in (pathlib.Path(path), os.fsencode(path)):
        core = DaxCore(device_path=given, max_dax_size_bytes=4 * S, slot_bytes=S)
        try:
            assert core.device_path is given
            # LMCache's report_status gives back the object it was given too.
            assert core.report_status()["device_path"] is given
            obj = byte_obj(S, 7)
            assert core.put_many([ekey(1)], [obj]) == [True]
            release(obj)
            assert core.exists_many([ekey(1)]) == [True]
        finally:
            core.close()
    watch = _Watch(tmp_path)
    with pytest.raises(TypeError):
        DaxCore(device_path=5, max_dax_size_bytes=4 * S, slot_bytes=S)
    watch.check()


PATH = object()  # the test's 8 KiB device file
ARGUMENTS = [
    dict(device_path=5),
    dict(device_path=b""),
    dict(device_path=" "),
    dict(max_dax_size_bytes=4096.0),
    dict(max_dax_size_bytes=4096.5),
    dict(max_dax_size_bytes="4096"),
    dict(max_dax_size_bytes=True),
    dict(max_dax_size_bytes=None),
    dict(max_dax_size_bytes=2**70),
    dict(slot_bytes=1024.0),
    dict(slot_bytes="1024"),
    dict(slot_bytes=True),
    dict(slot_bytes=1000),
]


def _outcome(core_class, directory, change):
    """How core_class takes the arguments: ("opened", its max_slots) or the
    error's family and its message up to the cause it quotes, with the
    device's path as P."""
    directory.mkdir()
    path = make_device(directory / "d.bin", 8 * S)
    kwargs = dict(device_path=path, max_dax_size_bytes=4 * S, slot_bytes=S)
    kwargs.update(change)
    try:
        core = core_class(**kwargs)
    except Exception as exc:  # the families LMCache's callers tell apart
        family = next(c for c in (TypeError, ValueError, RuntimeError) if isinstance(exc, c))
        return family.__name__, str(exc).replace(path, "P").split(": ")[0]
    try:
        return "opened", int(core.max_slots)
    finally:
        core.close()


@pytest.mark.parametrize("change", ARGUMENTS, ids=repr)
def test_odd_arguments_end_as_lmcache_ends_them(tmp_path, change):
    # LMCache's own DaxCore (the reference) checks little and lets os.open,
    # fstat and mmap refuse the rest: each argument here opens both with
    # the same slots, or is refused by both with an error of the same
    # family (TypeError, ValueError, RuntimeError), and but for a TypeError
    # the same message up to the cause it quotes.
    if conftest.LMCACHE_TREE is None:
        pytest.skip(f"LMCache's DaxCore is not available ({conftest.L2_UNAVAILABLE})")
    lmcache_core = load_lmcache_core(conftest.LMCACHE_TREE).DaxCore
    want = _outcome(lmcache_core, tmp_path / "lmcache", change)
    got = _outcome(DaxCore, tmp_path / "daxkv", change)
    if want[0] == "TypeError":
        assert got[0] == "TypeError"
    else:
        assert got == want


def test_a_fractional_slot_size_is_refused_where_lmcache_opens(tmp_path):
    # LMCache's core opens with slot_bytes 1000.5 and computes fractional
    # slot offsets later; no slot can be laid out that way, so the drop-in
    # refuses it at once, with nothing created or changed.
    path = make_device(tmp_path / "d.bin", 8 * S)
    digest = sha256_file(path)
    watch = _Watch(tmp_path)
    with pytest.raises(TypeError, match="slot_bytes"):
        DaxCore(device_path=path, max_dax_size_bytes=4 * S, slot_bytes=1000.5)
    watch.check()
    assert sha256_file(path) == digest


def test_directory_is_refused_as_lmcache_does(tmp_path):
    path = tmp_path / "adir"
    path.mkdir()
    watch = _Watch(tmp_path)
    with pytest.raises(RuntimeError) as info:
        _open(path, 4 * S)
    # LMCache: "Failed to open dax device <path>: [Errno 21] Is a directory: ..."
    assert str(info.value).startswith(f"Failed to open dax device {path}: ")
    assert "directory" in str(info.value)
    watch.check()
    assert os.listdir(path) == []


def test_foreign_data_is_refused_untouched(tmp_path):
    data = os.urandom(64 * 1024)
    path = make_device(tmp_path / "foreign.bin", len(data), data)
    digest = sha256_file(path)
    watch = _Watch(tmp_path)
    with pytest.raises(RuntimeError) as info:
        _open(path, 8 * S)
    assert isinstance(info.value, DaxCoreError)
    assert str(info.value).startswith(f"Failed to open dax device {path}: ")
    assert "holds data that is not a daxkv arena" in str(info.value)
    watch.check()
    assert os.path.getsize(path) == len(data) and sha256_file(path) == digest


def test_persistent_arena_reopened_with_another_slot_size_is_refused(tmp_path):
    path = make_device(tmp_path / "dax.bin", 16 * S)
    obj = byte_obj(S, 5)
    core = _open(path, 8 * S, persist_enabled=True)
    assert core.put_one(ekey(1), obj) is True
    core.close()
    digest, size = sha256_file(path), os.path.getsize(path)
    watch = _Watch(tmp_path)
    with pytest.raises(RuntimeError) as info:
        _open(path, 8 * S, slot=2 * S, persist_enabled=True)
    assert isinstance(info.value, DaxCoreError)
    assert str(info.value).startswith(f"Failed to open dax device {path}: ")
    assert "holds a daxkv arena of another layout" in str(info.value)
    watch.check()
    assert (sha256_file(path), os.path.getsize(path)) == (digest, size)
    core = _open(path, 8 * S, persist_enabled=True)
    try:
        assert core.snapshot_keys() == [ekey(1)]
    finally:
        core.close()
    release(obj)


# -- capacity on a reopen -----------------------------------------------------------------


@pytest.mark.parametrize("persist", [False, True])
def test_reopen_with_another_size_gives_lmcache_capacity(tmp_path, persist):
    """LMCache's max_slots is max_dax_size_bytes // slot_bytes on every open;
    an arena reopened larger (within its room) or smaller follows it."""
    path = make_device(tmp_path / "dax.bin", 8 * S)
    objs = [byte_obj(S, i) for i in range(9)]
    core = _open(path, 4 * S, persist_enabled=persist)
    assert core.max_slots == 4
    assert core.put_many([ekey(0), ekey(1)], objs[:2]) == [True, True]
    core.close()

    for slots in (8, 2, 3):
        core = _open(path, slots * S, persist_enabled=persist)
        try:
            assert (core.max_slots, core.arena_bytes, len(core.arena_view)) == (slots, slots * S, slots * S)
            kept = sorted(k.chunk_hash for k in core.snapshot_keys())
            assert kept == ([0, 1] if persist else [])
            for k in kept:
                rs, _ = core.reserve_reads([ekey(k)], prefix_only=False)
                core.finalize_reads(rs, set())
                assert [r.slot_id < slots for r in rs] == [True]
            fresh = [ekey(10 + i) for i in range(slots + 1 - len(kept))]
            results = core.put_many(fresh, objs[: len(fresh)])
            assert results == [True] * (slots - len(kept)) + [False]
            assert core.report_status()["live_slot_count"] == slots
            assert core.delete_many(fresh) == results
        finally:
            core.close()
    release(*objs)


def test_persistent_reopen_smaller_than_its_entries_keeps_the_newest(tmp_path, caplog):
    # An arena grown at run time (remap) and reopened with the configuration
    # it started with: the open was refused ("holds 3 entries, more than
    # the 2 slots"), and the server could not start until its configuration
    # was edited. It is a cache: the oldest entries that do not fit go, and
    # the log says so.
    path = make_device(tmp_path / "dax.bin", 4 * S)  # room to grow into
    objs = [byte_obj(S, i) for i in range(3)]
    core = _open(path, 2 * S, persist_enabled=True)
    core.remap(4 * S)
    for i in range(3):  # one at a time: commit order is key order
        assert core.put_many([ekey(i)], [objs[i]]) == [True]
    core.close()
    watch = _Watch(tmp_path)
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        core = _open(path, 2 * S, persist_enabled=True)
    try:
        assert "holds 3 entries, more than the 2 slots it is configured for: removing the 1 oldest" in caplog.text
        assert core.max_slots == 2
        assert sorted(k.chunk_hash for k in core.snapshot_keys()) == [1, 2]
        for i in (1, 2):
            rs, _ = core.reserve_reads([ekey(i)], prefix_only=False)
            try:
                assert bytes(core.arena_view[rs[0].slot_id * S:(rs[0].slot_id + 1) * S]) == bytes(objs[i].byte_array)
            finally:
                core.finalize_reads(rs, set())
    finally:
        core.close()
    watch.check()
    release(*objs)
