# SPDX-License-Identifier: Apache-2.0
"""Lossless key serialisation (daxkv.lmcache.keys) and its use by DaxCore:
keys LMCache tells apart are different entries, every key type decodes
back to an equal object of the same type, and the stored encodings are
fixed (restart recovery reads them).

Bad inputs tried here:

* keys of unknown types: 1.5, None, 7, (1, 2), object();
* keys too long once encoded: 512 bytes of bytes (513 encoded), a 600
  character str, an ObjectKey with a 600-byte and a 70000-byte chunk hash,
  a CacheEngineKey with a 70000-character model name;
* stored bytes that no key encodes to: empty, an unknown tag (0x09), a
  bare CacheEngineKey tag, a truncated CacheEngineKey, a truncated
  ObjectKey, a str key with invalid UTF-8, a CacheEngineKey whose tags are
  not a JSON list of pairs ("[1]", "{}" and "[[1]]"), whose dtype name is
  not a torch dtype ("Tensor"), whose int hash is not hex, an ObjectKey,
  a CacheEngineKey and a LayerCacheEngineKey followed by extra bytes;
* chunk hashes that are integers of another type: numpy int64 3, -1 and
  2**62, numpy uint64 2**63, a 0-d torch int64 tensor (each must encode as
  the int it equals, whatever was encoded before, and never as that many
  zero bytes); a str chunk hash; an ObjectKey with an int chunk hash (3,
  which must not be taken for b"\\0\\0\\0");
* lone surrogates (as json.loads gives them) in a str key, a model name, a
  tag value and a cache salt, beside the replacement character and the
  character a surrogate pair stands for;
* stored keys of a registered type whose decoder raises KeyError,
  RuntimeError or AssertionError;
* a tag value that is a tuple holding a tuple and an empty tuple (must
  decode to an equal, hashable key);
* integer fields past 64 bits: worker_id 2**64, world_size -2**63 - 1,
  layer_id 2**63, kv_rank 2**64, object_group_id 2**63 (never stored, a
  miss, no exception from the core).
"""

# Standard
import logging
import struct

# Third Party
import numpy as np
import pytest
import torch

# First Party
from daxkv.lmcache import DaxCore, decode_key, encode_key
from daxkv.lmcache import keys as keys_module
from daxkv.lmcache.keys import KeyNotStorable, KeyTooLong
from dk_helpers import NamedKey, byte_obj, ekey, make_device, obj_bytes, pattern, register_named_key, release
from lmcache.utils import CacheEngineKey, LayerCacheEngineKey
from lmcache.v1.distributed.api import ObjectKey

S = 256

BASE_OBJECT = dict(chunk_hash=b"\x01\x02", model_name="llama", kv_rank=0, object_group_id=0, cache_salt="")


@pytest.fixture
def core(tmp_path):
    path = make_device(tmp_path / "dax.bin", 16 * S)
    c = DaxCore(device_path=path, max_dax_size_bytes=16 * S, slot_bytes=S)
    yield c
    c.close()


def _distinct_entries(core, a, b):
    """a and b are stored as two entries, each loading its own bytes."""
    assert a != b
    assert encode_key(a) != encode_key(b)
    objs = [byte_obj(S, 1), byte_obj(S, 2)]
    assert core.put_many([a, b], objs) == [True, True]
    assert core.report_status()["live_slot_count"] == 2
    dst = [byte_obj(S, 0), byte_obj(S, 0)]
    assert core.load_many_into([a, b], dst) == [True, True]
    assert [obj_bytes(d) for d in dst] == [pattern(S, 1), pattern(S, 2)]
    assert set(core.snapshot_keys()) == {a, b}
    release(*objs, *dst)


@pytest.mark.parametrize(
    "field, other",
    [
        ("object_group_id", 1),
        ("cache_salt", "tenant-b"),
        ("kv_rank", 1),
        ("chunk_hash", b"\x01\x03"),
        ("model_name", "mistral"),
    ],
)
def test_object_keys_differing_in_one_field_are_different_entries(core, field, other):
    a = ObjectKey(**BASE_OBJECT)
    b = ObjectKey(**{**BASE_OBJECT, field: other})
    _distinct_entries(core, a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        (
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16),
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16, request_configs={"lmcache.tag.user": "alice"}),
        ),
        (
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16, request_configs={"lmcache.tag.user": "alice"}),
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16, request_configs={"lmcache.tag.user": "bob"}),
        ),
        (
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16, request_configs={"lmcache.tag.n": 3}),
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16, request_configs={"lmcache.tag.n": "3"}),
        ),
        (
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16),
            CacheEngineKey("llama", 1, 0, b"\x00\x7b", torch.bfloat16),
        ),
        (
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16),
            CacheEngineKey("llama", 1, 0, 123, torch.float16),
        ),
        (
            CacheEngineKey("llama", 2, 0, 123, torch.bfloat16),
            CacheEngineKey("llama", 2, 1, 123, torch.bfloat16),
        ),
        (
            CacheEngineKey("llama", 1, 0, 123, torch.bfloat16),
            LayerCacheEngineKey("llama", 1, 0, 123, torch.bfloat16, layer_id=0),
        ),
        (
            LayerCacheEngineKey("llama", 1, 0, 123, torch.bfloat16, layer_id=0),
            LayerCacheEngineKey("llama", 1, 0, 123, torch.bfloat16, layer_id=1),
        ),
        (b"abc", "abc"),
        # Lone surrogates (what json.loads gives for a "\ud800" escape in a
        # request): kept apart from the replacement character and from the
        # character a surrogate pair stands for.
        ("a\udcff", "a\ufffd"),
        ("\ud83d\ude00", "\U0001f600"),
        (
            CacheEngineKey("m\ud800x", 1, 0, 1, torch.bfloat16),
            CacheEngineKey("m\ufffdx", 1, 0, 1, torch.bfloat16),
        ),
        (
            ObjectKey(chunk_hash=b"h", model_name="m", kv_rank=0, cache_salt="s\udfff"),
            ObjectKey(chunk_hash=b"h", model_name="m", kv_rank=0, cache_salt="s"),
        ),
    ],
    ids=["tags", "tag-value", "tag-type", "int-vs-bytes-hash", "dtype", "worker", "layer-vs-plain", "layer-id",
         "bytes-vs-str", "str-surrogate", "str-surrogate-pair", "model-surrogate", "salt-surrogate"],
)
def test_engine_keys_lmcache_tells_apart_are_different_entries(core, a, b):
    _distinct_entries(core, a, b)


ROUND_TRIP = [
    b"\x00raw\xff",
    "héllo wörld",
    CacheEngineKey("llama", 1, 0, 123, torch.bfloat16),
    CacheEngineKey("llama", 4, 3, -(2**70) + 5, torch.float16),
    CacheEngineKey("llama", 1, 0, b"\x00\x7b\xff", torch.float32),
    CacheEngineKey("m", 1, 0, 9, torch.bfloat16, request_configs={"lmcache.tag.user": "alice", "lmcache.tag.n": 3, "lmcache.tag.b": True, "other": 1}),
    LayerCacheEngineKey("llama", 1, 0, 5, torch.float16, layer_id=31),
    "lone \udc80 surrogate",
    CacheEngineKey("m\ud800", 1, 0, 9, torch.bfloat16, request_configs={"lmcache.tag.t": "\udfff"}),
    ObjectKey(chunk_hash=b"h", model_name="\ud800m", kv_rank=0, cache_salt="\udcff"),
    # a tuple tag value (JSON writes it as a list; it must come back a tuple)
    CacheEngineKey("m", 1, 0, 9, torch.bfloat16, request_configs={"lmcache.tag.v": (1, ("a", 2.5), ())}),
    ObjectKey(chunk_hash=b"\xde\xad\xbe\xef", model_name="llama", kv_rank=ObjectKey.ComputeKVRank(8, 3, 8, 3), object_group_id=2, cache_salt="s-1"),
]


@pytest.mark.parametrize("key", ROUND_TRIP, ids=lambda k: type(k).__name__)
def test_decode_of_encode_gives_an_equal_key_of_the_same_type(key):
    back = decode_key(encode_key(key))
    assert back == key
    assert type(back) is type(key)
    assert hash(back) == hash(key)
    if isinstance(key, CacheEngineKey):
        assert back.tags == key.tags
        assert type(back.chunk_hash) is type(key.chunk_hash)
    if isinstance(key, LayerCacheEngineKey):
        assert back.layer_id == key.layer_id


def test_stored_encodings_are_fixed():
    """The bytes restart recovery reads: any change here orphans persistent
    arenas."""
    assert encode_key(b"ab") == b"\x01ab"
    assert encode_key("é") == b"\x02\xc3\xa9"
    assert encode_key(CacheEngineKey("m", 1, 0, 123, torch.bfloat16)) == (
        b"\x03\x01\x00m" + struct.pack("<qq", 1, 0) + b"\x00\x02\x007b" + b"\x08\x00bfloat16" + b"\x00\x00"
    )
    assert encode_key(CacheEngineKey("m", 1, 0, b"\x00{", torch.bfloat16, request_configs={"lmcache.tag.u": "x"})) == (
        b"\x03\x01\x00m" + struct.pack("<qq", 1, 0) + b"\x01\x02\x00\x00{" + b"\x08\x00bfloat16"
        + b'\x0c\x00[["u", "x"]]'
    )
    assert encode_key(LayerCacheEngineKey("m", 1, 0, 1, torch.bfloat16, layer_id=2)) == (
        b"\x04\x01\x00m" + struct.pack("<qq", 1, 0) + b"\x00\x01\x001" + b"\x08\x00bfloat16" + b"\x00\x00"
        + struct.pack("<q", 2)
    )
    assert encode_key(ObjectKey(chunk_hash=b"\x01\x02", model_name="m", kv_rank=3, object_group_id=1, cache_salt="s")) == (
        b"\x05\x02\x00\x01\x02\x01\x00m" + struct.pack("<qq", 3, 1) + b"\x01\x00s"
    )


@pytest.mark.parametrize("key", [1.5, None, 7, (1, 2), object()], ids=lambda k: type(k).__name__)
def test_unknown_key_type_is_a_type_error(core, key):
    with pytest.raises(TypeError) as info:
        encode_key(key)
    assert str(info.value) == (
        f"cannot store a key of type {type(key).__module__}.{type(key).__qualname__}: libdaxkv's "
        "LMCache integration knows bytes, str, CacheEngineKey, LayerCacheEngineKey and ObjectKey "
        "(daxkv.lmcache.keys.register_key_type adds others)"
    )
    obj = byte_obj(S, 1)
    with pytest.raises(TypeError):
        core.put_many([key], [obj])
    with pytest.raises(TypeError):
        core.exists_many([key])
    release(obj)


@pytest.mark.parametrize(
    "key, encoded_len",
    [
        (b"x" * 512, 513),
        ("y" * 600, 601),
        (ObjectKey(chunk_hash=b"z" * 600, model_name="m", kv_rank=0), 624),
        (ObjectKey(chunk_hash=b"z" * 70000, model_name="m", kv_rank=0), None),
        (CacheEngineKey("m" * 70000, 1, 0, 1, torch.bfloat16), None),
    ],
    ids=["bytes-513", "str-601", "object-624", "object-hash-70000", "engine-model-70000"],
)
def test_over_long_key_is_a_value_error(core, key, encoded_len, caplog):
    with pytest.raises(ValueError) as info:
        encode_key(key)
    assert isinstance(info.value, KeyTooLong)
    if encoded_len is not None:
        assert str(info.value).endswith(f" is {encoded_len} bytes once encoded, above the limit of 512")
        assert info.value.length == encoded_len
    else:
        assert str(info.value).endswith(", above the limit of 512")
    # The core does not raise for it: the key is not stored (logged once).
    obj = byte_obj(S, 1)
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert core.put_many([key], [obj]) == [False]
    skipped = [r for r in caplog.records if "above libdaxkv's key limit of 512 bytes" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert core.report_status()["live_slot_count"] == 0
    assert len(encode_key(b"x" * 511)) == 512  # the longest that fits
    release(obj)


def _engine_with(tags_text: bytes = b"", dtype: bytes = b"bfloat16", hash_field: bytes = b"\x00\x01\x001") -> bytes:
    return (
        b"\x03\x01\x00m" + struct.pack("<qq", 1, 0) + hash_field
        + struct.pack("<H", len(dtype)) + dtype + struct.pack("<H", len(tags_text)) + tags_text
    )


MALFORMED = {
    "empty": (b"", "empty key"),
    "unknown-tag": (b"\x09abc", "key with unknown type tag 0x9"),
    "bare-engine-tag": (b"\x03", None),
    "truncated-engine": (encode_key(CacheEngineKey("m", 1, 0, 1, torch.bfloat16))[:12], None),
    "truncated-object": (encode_key(ObjectKey(**BASE_OBJECT))[:9], None),
    "bad-utf8": (b"\x02\xff\xfe", None),
    "tags-not-pairs": (_engine_with(b"[1]"), None),
    "tags-object": (_engine_with(b"{}"), None),
    "tags-short-pair": (_engine_with(b"[[1]]"), None),
    "not-a-dtype": (_engine_with(dtype=b"Tensor"), "unknown torch dtype 'Tensor' in a stored key"),
    "hash-not-hex": (_engine_with(hash_field=b"\x00\x02\x00zz"), None),
    "object-trailing": (encode_key(ObjectKey(**BASE_OBJECT)) + b"junk", None),
    "engine-trailing": (encode_key(CacheEngineKey("m", 1, 0, 1, torch.bfloat16)) + b"\x00", None),
    "layer-trailing": (encode_key(LayerCacheEngineKey("m", 1, 0, 1, torch.bfloat16, layer_id=1)) + b"!", None),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_stored_bytes_are_a_value_error(name):
    blob, message = MALFORMED[name]
    with pytest.raises(ValueError) as info:
        decode_key(blob)
    if message is not None:
        assert str(info.value) == message


def _forget_encodings():
    """Drop the codec's caches of recent encodings, as a restarted process
    starts without them."""
    keys_module._recent.clear()
    keys_module._by_id.clear()


@pytest.mark.parametrize(
    "h",
    [np.int64(3), np.int64(-1), np.int64(2**62), np.uint64(2**63), torch.tensor(3)],
    ids=["np-3", "np-minus-1", "np-2-62", "np-u-2-63", "torch-3"],
)
def test_integer_chunk_hashes_of_other_types_encode_as_the_int_they_equal(h):
    as_int = int(h)
    _forget_encodings()
    fresh = encode_key(CacheEngineKey("m", 1, 0, h, torch.bfloat16))
    _forget_encodings()
    assert fresh == encode_key(CacheEngineKey("m", 1, 0, as_int, torch.bfloat16))
    assert decode_key(fresh) == CacheEngineKey("m", 1, 0, as_int, torch.bfloat16)


def test_numpy_chunk_hash_and_zero_bytes_hash_are_different_entries(core):
    # bytes(np.int64(3)) is b"\0\0\0": the integer hash must not share the
    # entry of the byte-string hash of three zero bytes.
    _forget_encodings()
    _distinct_entries(
        core,
        CacheEngineKey("m", 1, 0, b"\0\0\0", torch.bfloat16),
        CacheEngineKey("m", 1, 0, np.int64(3), torch.bfloat16),
    )


@pytest.mark.parametrize(
    "key",
    [
        CacheEngineKey("m", 1, 0, "abc", torch.bfloat16),
        ObjectKey(chunk_hash=3, model_name="m", kv_rank=0),
    ],
    ids=["engine-str-hash", "object-int-hash"],
)
def test_chunk_hash_of_a_type_the_encoding_cannot_hold_is_a_type_error(core, key):
    _forget_encodings()
    with pytest.raises(TypeError) as info:
        encode_key(key)
    assert "chunk_hash of type" in str(info.value)
    obj = byte_obj(S, 1)
    with pytest.raises(TypeError):
        core.put_many([key], [obj])
    assert core.report_status()["live_slot_count"] == 0
    release(obj)


@pytest.mark.parametrize(
    "key",
    [
        CacheEngineKey("m", 1, 2**64, 1, torch.bfloat16),
        CacheEngineKey("m", -(2**63) - 1, 0, 1, torch.bfloat16),
        LayerCacheEngineKey("m", 1, 0, 1, torch.bfloat16, layer_id=2**63),
        ObjectKey(chunk_hash=b"h", model_name="m", kv_rank=2**64),
        ObjectKey(chunk_hash=b"h", model_name="m", kv_rank=0, object_group_id=2**63),
    ],
    ids=["worker-2-64", "world-below-i64", "layer-2-63", "kv-rank-2-64", "group-2-63"],
)
def test_integer_fields_past_64_bits_are_never_stored_and_never_raise(core, key, caplog):
    with pytest.raises(KeyNotStorable) as info:
        encode_key(key)
    assert "stored in 64 bits" in str(info.value)
    assert not isinstance(info.value, KeyTooLong)
    obj = byte_obj(S, 1)
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert core.put_many([key], [obj]) == [False]
        assert core.put_one(key, obj) is False
    assert sum("stored in 64 bits" in r.getMessage() for r in caplog.records) == 2
    assert core.exists_many([key]) == [False]
    assert core.exists_many([key, ekey(1)], lock=True) == [False, False]
    assert core.delete_many([key]) == [False]
    core.unlock_many([key])
    assert core.reserve_reads([key], prefix_only=False) == ([], [False])
    dst = byte_obj(S, 0)
    assert core.load_many_into([key], [dst]) == [False]
    assert core.has_inflight(key) is False
    assert core.report_status()["live_slot_count"] == 0
    release(obj, dst)


def test_a_stored_key_whose_decoder_fails_is_skipped_not_raised(core, monkeypatch):
    # Stored keys are read back at restart (snapshot_keys, entries, the L2
    # adapter's recovery). A key type registered by an application whose
    # decoder no longer takes what an earlier version stored (here it raises
    # KeyError; tried also: RuntimeError, AssertionError) must make that entry
    # unlisted, not the listing fail.
    for i, error in enumerate((KeyError, RuntimeError, AssertionError)):
        tag = 0x30 + i

        def decode(body, error=error):
            raise error(body)

        register_named_key(monkeypatch, tag, decode)
        key = NamedKey(f"c{i}")
        _forget_encodings()
        obj = byte_obj(S, i)
        assert core.put_many([key, ekey(i)], [obj, byte_obj(S, 10 + i)]) == [True, True]
        with pytest.raises(ValueError):
            decode_key(encode_key(key))
        assert set(core.snapshot_keys()) == {ekey(j) for j in range(i + 1)}
        assert {k for k, _, _ in core.entries()} == {ekey(j) for j in range(i + 1)}
        release(obj)
    _forget_encodings()
