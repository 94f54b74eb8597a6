"""Bad inputs are rejected with the right exception, never a crash."""

import errno
import pickle

import pytest

import daxkv

from conftest import MiB, open_store


@pytest.mark.parametrize("bad", [None, 42, 3.5, object(), ["list"], ("t",)])
def test_key_of_wrong_type(store, bad):
    with pytest.raises(TypeError):
        store.put(bad, b"v")
    with pytest.raises(TypeError):
        store.contains(bad)


def test_empty_key(store):
    with pytest.raises(daxkv.InvalidArgument) as ei:
        store.put(b"", b"v")
    assert ei.value.errno == errno.EINVAL
    assert ei.value.message
    with pytest.raises(daxkv.InvalidArgument):
        store.contains("")


def test_key_length_limit(store):
    longest = b"k" * daxkv.KEY_MAX
    assert store.put(longest, b"v")
    assert store.get(longest) == b"v"
    with pytest.raises((daxkv.TooBig, daxkv.InvalidArgument)) as ei:
        store.put(longest + b"k", b"v")
    assert ei.value.errno in (errno.E2BIG, errno.EINVAL)
    # In a batch the same key fails only its own item.
    with pytest.raises(daxkv.BatchError) as bi:
        store.contains_many([b"ok", longest + b"k"])
    assert bi.value.statuses[0] == 0 and bi.value.statuses[1] < 0


@pytest.mark.parametrize("bad", [None, 12, "text", [1, 2], object()])
def test_value_of_wrong_type(store, bad):
    with pytest.raises(TypeError):
        store.put(b"k", bad)
    assert not store.contains(b"k")


def test_read_only_destination(store):
    store.put(b"k", b"v")
    with pytest.raises(TypeError, match="writable"):
        store.get_into(b"k", b"immutable")
    with pytest.raises(TypeError):
        store.get_many_into([b"k"], [memoryview(bytearray(4)).toreadonly()])


def test_non_contiguous_buffers(store):
    np = pytest.importorskip("numpy")
    a = np.arange(100, dtype=np.int64)[::2]
    with pytest.raises(TypeError, match="contiguous"):
        store.put(b"k", a)
    store.put(b"k", b"x" * 8)
    with pytest.raises(TypeError):
        store.get_into(b"k", np.zeros(10, dtype=np.int64)[::2])


def test_null_address_pairs(store):
    with pytest.raises(daxkv.InvalidArgument):
        store.put(b"k", (0, 16))
    with pytest.raises(daxkv.InvalidArgument):
        store.get_many_into_ptr([b"k"], [0], [16])
    with pytest.raises(daxkv.InvalidArgument):
        store.put(b"k", (-5, 1))
    with pytest.raises(TypeError):
        store.put(b"k", (1, 2, 3))
    with pytest.raises(TypeError):
        store.put(b"k", ("addr", 3))
    # A NULL address with zero length is a valid empty value.
    assert store.put(b"empty", (0, 0))
    assert store.get(b"empty") == b""


def test_single_key_where_a_list_is_expected(store):
    with pytest.raises(TypeError, match="sequence of keys"):
        store.contains_many(b"abc")
    with pytest.raises(TypeError):
        store.remove_many("abc")


def test_closed_store(tmp_path):
    s = open_store(tmp_path)
    s.put(b"k", b"v")
    s.close()
    calls = [
        lambda: s.put(b"k", b"v"),
        lambda: s.get(b"k"),
        lambda: s.get_into(b"k", bytearray(4)),
        lambda: s.contains(b"k"),
        lambda: s.remove(b"k"),
        lambda: s.pin(b"k"),
        lambda: s.unpin(b"k"),
        lambda: s.put_many([b"k"], [b"v"]),
        lambda: s.get_many_into([b"k"], [bytearray(1)]),
        lambda: s.contains_many([b"k"]),
        lambda: s.contains_many([]),
        lambda: s.remove_many([b"k"]),
        lambda: s.lease(b"k"),
        lambda: s.reserve(b"k", 1),
        lambda: s.stats(),
        lambda: s.status_json(),
        lambda: s.shutdown(),
    ]
    for call in calls:
        with pytest.raises(daxkv.Shutdown):
            call()


@pytest.mark.parametrize(
    "opts,cls",
    [
        (dict(slot_bytes="1MiB", no_such_option="1"), daxkv.InvalidArgument),
        (dict(slot_bytes="one megabyte"), daxkv.InvalidArgument),
        (dict(slot_bytes="1MiB", eviction="sometimes"), daxkv.InvalidArgument),
        (dict(slot_bytes="1MiB", durability="forever"), daxkv.InvalidArgument),
        (dict(slot_bytes="1MiB", on_mismatch="shrug"), daxkv.InvalidArgument),
        (dict(slot_bytes="1MiB", verify="maybe"), daxkv.InvalidArgument),
    ],
)
def test_bad_configuration(tmp_path, opts, cls):
    with pytest.raises(cls) as ei:
        daxkv.Store(path=str(tmp_path / "a"), size=16 * MiB, **opts)
    # The message names the offending key or value.
    bad_key = [k for k in opts if k != "slot_bytes"] or ["slot_bytes"]
    assert bad_key[0] in ei.value.message or str(opts[bad_key[0]]) in ei.value.message


def test_missing_slot_bytes_and_devices(tmp_path):
    with pytest.raises(daxkv.DaxKVError):
        daxkv.Store(path=str(tmp_path / "a"), size=16 * MiB)
    with pytest.raises(daxkv.DaxKVError):
        daxkv.Store(slot_bytes="1MiB")  # no device at all


def test_device_too_small(tmp_path):
    with pytest.raises((daxkv.NoSpace, daxkv.InvalidArgument)):
        daxkv.Store(path=str(tmp_path / "tiny"), size=4096, slot_bytes="1MiB")


def test_option_types_and_nul_bytes(tmp_path):
    with pytest.raises(TypeError):
        daxkv.Store(path=str(tmp_path / "a"), size=16 * MiB, slot_bytes=1.5)
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.Store(path=str(tmp_path / "a"), size=16 * MiB, slot_bytes="1MiB\0x")
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.Store(path=str(tmp_path / "a\0b"), size=16 * MiB, slot_bytes="1MiB")
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.Store(path=str(tmp_path / "a"), size=-1, slot_bytes="1MiB")
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.Store(size=16 * MiB, slot_bytes="1MiB")  # size without path


@pytest.mark.parametrize("text", ["", "{", "[]", '{"device_path": 5}', "not json"])
def test_bad_json(text):
    with pytest.raises(daxkv.DaxKVError):
        daxkv.Store.from_json(text)


def test_bad_json_type():
    with pytest.raises(TypeError):
        daxkv.Store.from_json({"device_path": "x"})


def test_reserve_bad_sizes(store):
    with pytest.raises(TypeError):
        store.reserve(b"k", "10")
    with pytest.raises(daxkv.InvalidArgument):
        store.reserve(b"k", -1)
    with pytest.raises(daxkv.TooBig):
        store.reserve(b"k", store.stats().slot_bytes + 1)


def test_error_attributes_and_hierarchy(store):
    try:
        store.pin(b"absent")
    except daxkv.NotFound as e:
        assert isinstance(e, daxkv.DaxKVError) and isinstance(e, KeyError)
        assert e.code == -errno.ENOENT and e.errno == errno.ENOENT
        assert e.op == "daxkv_pin"
        assert e.strerror == daxkv.strerror(e.code)
        assert "daxkv_pin" in str(e) and "ENOENT" in str(e)
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is daxkv.NotFound and again.code == e.code and again.message == e.message
    else:
        pytest.fail("pin of a missing key succeeded")


def test_error_class_mapping():
    assert daxkv.error_class(-errno.ENOSPC) is daxkv.NoSpace
    assert daxkv.error_class(-10001) is daxkv.Corrupt
    assert daxkv.error_class(-10002) is daxkv.Foreign
    assert daxkv.error_class(-errno.EPERM) is daxkv.PermissionDenied
    assert daxkv.error_class(-9999) is daxkv.DaxKVError
    e = daxkv.Foreign(-10002, "foreign arena")
    assert e.errno is None and "DAXKV_E_FOREIGN" in str(e)


def _documented_errno_names():
    """Every "-ENAME" the C header and the man pages name."""
    import pathlib
    import re

    top = pathlib.Path(__file__).resolve().parents[3]
    texts = [(top / "include" / "daxkv.h").read_text()]
    texts += [p.read_text() for p in sorted((top / "docs" / "man").iterdir())]
    return {m for t in texts for m in re.findall(r"-(E[A-Z][A-Z0-9]+)\b", t)}


def test_every_documented_code_has_a_class_of_its_own():
    # Bad input: every error code the C ABI documents, and codes it does
    # not (-9999, -4095). A documented code must raise a class of its own,
    # which keeps the code, pickles, and prints the code's name.
    names = _documented_errno_names()
    assert {"ENOENT", "EPROTO", "EAGAIN", "ETIMEDOUT"} <= names, names
    for name in sorted(names):
        code = -getattr(errno, name)
        cls = daxkv.error_class(code)
        assert cls is not daxkv.DaxKVError, f"-{name} is documented but has no class of its own"
        e = cls(code, "detail", "daxkv_op")
        assert e.code == code and e.errno == -code and e.message == "detail"
        assert name in str(e)
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is cls and again.code == code
    for code in (-9999, -4095):
        assert daxkv.error_class(code) is daxkv.DaxKVError
        assert daxkv.DaxKVError(code).code == code


def test_paths_that_cannot_be_followed_raise_bad_path(tmp_path):
    # Bad input: a symlink loop, a path through a regular file, a 300-byte
    # name (plain DaxKVError before: the codes had no class), and a /proc
    # file (-ESPIPE "cannot size" before: -ENODEV as daxkv_open(3) says).
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "plain").write_bytes(b"")
    for path, code in ((tmp_path / "a", errno.ELOOP), (tmp_path / "plain" / "x", errno.ENOTDIR),
                       (tmp_path / ("n" * 300), errno.ENAMETOOLONG)):
        with pytest.raises(daxkv.BadPath) as ei:
            daxkv.Store(path=str(path), size=4 << 20, slot_bytes="64KiB")
        assert ei.value.errno == code and isinstance(ei.value, OSError)
    with pytest.raises(daxkv.NoDevice, match="not a file that can hold an arena"):
        daxkv.Store(path="/proc/self/status", size=4 << 20, slot_bytes="64KiB")


def test_foreign_device_is_refused(tmp_path):
    p = tmp_path / "foreign"
    p.write_bytes(b"this is not a daxkv arena" * 1000000)
    with pytest.raises(daxkv.Foreign):
        daxkv.Store(path=str(p), size=0, slot_bytes="1MiB")
    # The bytes are untouched.
    assert p.read_bytes()[:25] == b"this is not a daxkv arena"
