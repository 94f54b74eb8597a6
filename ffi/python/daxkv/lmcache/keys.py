"""Lossless byte encodings of LMCache's keys.

libdaxkv keys are byte strings (at most 512 bytes). LMCache indexes its DAX
tier by objects: ``CacheEngineKey`` (and ``LayerCacheEngineKey``) in the
storage backend, ``ObjectKey`` in the MP L2 adapter. Every identifying field
is encoded, so two keys that LMCache tells apart never share an entry, and
a key read back from a device (restart recovery) decodes to an object equal
to the one that was stored.

An encoding is a tag byte followed by the fields:

    0x01 bytes           the key itself
    0x02 str             UTF-8 (lone surrogates as surrogatepass writes them)
    0x03 CacheEngineKey  model, world size, worker id, chunk hash, dtype, tags
    0x04 LayerCacheEngineKey   the same and the layer id
    0x05 ObjectKey       chunk hash, model, kv rank, object group, cache salt

Two keys share an encoding exactly when LMCache's index (a dict) takes them
for one key. A field is written in the form of its value's class under
Python's equality: an integral float, a bool or a numpy integer as the int
it equals, a numpy float as the float it equals; so equal keys of other
field types find each other's entries. What no encoding can tell apart is
refused: an unhashable key and a subclass of LMCache's key classes
(TypeError), a NaN tag value (KeyNotStorable, a miss).

Other key types can be added with :func:`register_key_type`.
"""

from __future__ import annotations

import json
import operator
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

__all__ = [
    "encode_key",
    "encode_keys",
    "encode_keys_partial",
    "decode_key",
    "register_key_type",
    "KeyTooLong",
    "KeyNotStorable",
    "KEY_MAX",
]

KEY_MAX = 512

_TAG_BYTES = 0x01
_TAG_STR = 0x02
_TAG_ENGINE_KEY = 0x03
_TAG_LAYER_KEY = 0x04
_TAG_OBJECT_KEY = 0x05

_U16 = struct.Struct("<H")
_I64 = struct.Struct("<q")


class KeyNotStorable(ValueError):
    """A key of a known type that libdaxkv cannot hold: its encoding would
    be too long (KeyTooLong), or an integer field does not fit the 64 bits
    the encoding gives it. Such a key is never stored, so it is a miss."""


class KeyTooLong(KeyNotStorable):
    """A key whose encoding is longer than libdaxkv's key limit (KEY_MAX
    bytes): the library cannot hold it. ``length`` is the encoded length
    (for a field past a 16-bit length, a lower bound)."""

    def __init__(self, message: str, length: int) -> None:
        super().__init__(message)
        self.length = length


class _FieldOutOfRange(ValueError):
    """An integer key field outside the signed 64 bits it is stored in."""


class _NotAKeyValue(ValueError):
    """A field value that no stored key can stand for (a NaN tag value)."""


class _EarlierTagEncoding(ValueError):
    """Stored bytes of a CacheEngineKey whose tags are in a form that
    earlier versions wrote and no key encodes to now."""


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _as_int(v: Any, what: str) -> int:
    """The int that LMCache's equality takes an integer field for: the
    field itself for an int of any type (a bool, a numpy or torch integer),
    and for a float or another number equal to an int and hashed alike
    (1.0 == 1), that int. TypeError for anything else."""
    i = _int_of(v)
    if i is not None:
        return i
    f = _float_equal_to(v)
    if f is not None and f.is_integer():
        return int(f)
    raise TypeError(f"{what} of type {type(v).__name__} is not an integer")


def _int_of(v: Any) -> Optional[int]:
    # The int an integer of any type (bool, numpy, torch) stands for.
    t = type(v)
    if t.__name__ == "bool_" and t.__module__ == "numpy":
        # numpy warns when its bools are taken as indices; they equal 0 and
        # 1 all the same.
        return int(bool(v))
    try:
        return operator.index(v)
    except TypeError:
        return None


def _float_equal_to(v: Any) -> Optional[float]:
    # The float that Python's == and hash take v for, if any: a dict keyed by
    # either finds the other.
    if isinstance(v, float):
        return float(v)
    if isinstance(v, (str, bytes, bytearray, memoryview)):
        return None  # float() parses them, but no number equals them
    try:
        try:
            f = float(v)
        except TypeError:
            # A complex number with no imaginary part equals its real part.
            if v.imag != 0:
                return None
            f = float(v.real)
        same = bool(f == v) and hash(f) == hash(v)
    except Exception:
        return None
    return f if same else None


def _put_i64(out: bytearray, *values: Any) -> None:
    for v in values:
        if type(v) is not int:
            v = _as_int(v, "an integer key field")
        if not _I64_MIN <= v <= _I64_MAX:
            raise _FieldOutOfRange(v)
        out += _I64.pack(v)


def _bytes_field(h: Any, what: str) -> bytes:
    # bytes(x) of an integer is x zero bytes: only byte strings are taken.
    if isinstance(h, (bytes, bytearray, memoryview)):
        return bytes(h)
    raise TypeError(f"{what} of type {type(h).__name__} is not bytes")


class _FieldTooLong(ValueError):
    """A key field longer than a 16-bit length can say (the key is far
    over KEY_MAX anyway)."""


# Strings are UTF-8, lone surrogates included (json.loads gives them for a
# "\ud800" escape, so a request can carry one in a cache salt): with
# surrogatepass they take the three bytes strict UTF-8 never produces, so
# every str has its own encoding and decodes back to itself.
_UTF8, _SURROGATES = "utf-8", "surrogatepass"


def _put_str(out: bytearray, s: str, what: str = "a string key field") -> None:
    if type(s) is not str and not isinstance(s, str):
        raise TypeError(f"{what} of type {type(s).__name__} is not str")
    _put_blob(out, s.encode(_UTF8, _SURROGATES))


def _get_str(b: bytes, pos: int) -> Tuple[str, int]:
    (n,) = _U16.unpack_from(b, pos)
    pos += 2
    return b[pos : pos + n].decode(_UTF8, _SURROGATES), pos + n


def _put_blob(out: bytearray, b: bytes) -> None:
    if len(b) > 0xFFFF:
        raise _FieldTooLong(len(b))
    out += _U16.pack(len(b))
    out += b


def _get_blob(b: bytes, pos: int) -> Tuple[bytes, int]:
    (n,) = _U16.unpack_from(b, pos)
    pos += 2
    return bytes(b[pos : pos + n]), pos + n


def _dtype_name(dtype: Any) -> str:
    # "torch.bfloat16" -> "bfloat16"; getattr(torch, name) gives it back.
    return str(dtype).rpartition(".")[2]


def _torch_dtype(name: str) -> Any:
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown torch dtype {name!r} in a stored key")
    return dtype


# -- CacheEngineKey -----------------------------------------------------------


def _encode_engine_key(key: Any, tag: int) -> bytes:
    out = bytearray((tag,))
    _put_str(out, key.model_name, "model_name")
    _put_i64(out, key.world_size, key.worker_id)
    h = key.chunk_hash
    if isinstance(h, (bytes, bytearray, memoryview)):
        out.append(1)
        _put_blob(out, bytes(h))
    else:
        # An integer of any kind (a numpy or torch integer, an integral
        # float) is encoded as the int it equals, as LMCache's equality and
        # hashing see it. Arbitrary precision, signed: hex digits keep
        # every bit.
        try:
            if type(h) is not int:
                h = _as_int(h, "chunk_hash")
        except TypeError:
            raise TypeError(
                f"chunk_hash of type {type(h).__name__} is neither an integer nor bytes"
            ) from None
        out.append(0)
        _put_str(out, format(h, "x"))
    _put_str(out, _dtype_name(key.dtype))
    tags = key.tags
    _put_str(out, _tags_text(tags) if tags else "")
    if tag == _TAG_LAYER_KEY:
        _put_i64(out, key.layer_id)
    return bytes(out)


def _decode_engine_key(b: bytes, layer: bool) -> Any:
    from lmcache.utils import CacheEngineKey, LayerCacheEngineKey

    model, pos = _get_str(b, 1)
    world_size, worker_id = struct.unpack_from("<qq", b, pos)
    pos += 16
    kind = b[pos]
    pos += 1
    if kind == 0:
        hex_hash, pos = _get_str(b, pos)
        chunk_hash: Any = int(hex_hash, 16)
    else:
        chunk_hash, pos = _get_blob(b, pos)
    dtype_name, pos = _get_str(b, pos)
    tags_text, pos = _get_str(b, pos)
    request_configs = None
    if tags_text:
        pairs = json.loads(tags_text)
        # What the encoder writes: a non-empty list of [name, value] pairs.
        if not isinstance(pairs, list) or not pairs or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs
        ):
            raise ValueError(f"malformed stored key (tags {tags_text!r} are not name, value pairs)")
        request_configs = {"lmcache.tag." + k: _hashable(v) for k, v in pairs}
        # Earlier versions wrote some tag values in a form of their own
        # (true, 1.0, NaN) where the key now has the form of every value
        # equal to it. No lookup of the key finds such an entry, and no
        # delete of it removes it: it is not listed as that key. (Only tags
        # changed form; the other fields are written as they always were.)
        tags = tuple((k[len("lmcache.tag."):], v) for k, v in request_configs.items())
        try:
            text: Optional[str] = _tags_text(tags)
        except (TypeError, ValueError):  # NaN; a JSON object of an unhashable key
            text = None
        if len(tags) != len(pairs) or text != tags_text:
            raise _EarlierTagEncoding(
                f"stored key in an earlier encoding of its tags ({tags_text!r}): no lookup finds it"
            )
    args = dict(
        model_name=model,
        world_size=world_size,
        worker_id=worker_id,
        chunk_hash=chunk_hash,
        dtype=_torch_dtype(dtype_name),
        request_configs=request_configs,
    )
    if layer:
        (layer_id,) = struct.unpack_from("<q", b, pos)
        _check_end(b, pos + 8)
        return LayerCacheEngineKey(layer_id=layer_id, **args)
    _check_end(b, pos)
    return CacheEngineKey(**args)


def _tags_text(tags: Any) -> str:
    # Tags are compared as a tuple of (name, value) pairs, in order. Their
    # values are what the request configuration held (strings, numbers,
    # booleans, tuples of them); JSON writes each value in the form of its
    # class under Python's equality, so keys LMCache finds equal have one
    # text and keys it tells apart have different ones.
    return json.dumps([[name, _tag_value(v)] for name, v in tags])


# Decimal digits of an int this wide make the tags alone longer than a key.
_TAG_INT_BITS_MAX = 1700


def _tag_value(v: Any) -> Any:
    """The JSON form of a tag value: the same for every value equal to it
    (and hashed alike, as a dict needs), different for every other.

    Strings, None and ints are written as they are (the encoding of
    earlier versions). Numbers that equal an int (True, 1.0, -0.0, numpy
    integers and floats) are written as that int; other floats as
    themselves (a float's repr is exact); tuples element by element. NaN
    equals no other NaN (LMCache's index finds such a key only through the
    very same object), so no encoding can find it again: KeyNotStorable.
    Other types (bytes, frozensets, lists) have no JSON form here:
    TypeError."""
    t = type(v)
    if t is str or v is None:
        return v
    if t is int:
        return v if v.bit_length() <= _TAG_INT_BITS_MAX else _tag_int(v)
    if t is float:
        return _tag_float(v)
    if t is tuple:
        return [_tag_value(x) for x in v]
    if isinstance(v, str):
        return v
    if isinstance(v, tuple):
        return [_tag_value(x) for x in v]
    i = _int_of(v)
    if i is not None:
        return _tag_int(i)
    f = _float_equal_to(v)
    if f is None:
        raise TypeError(f"a tag value of type {t.__name__} cannot be stored in a key")
    return _tag_float(f)


def _tag_float(f: float) -> Any:
    if f != f:
        raise _NotAKeyValue("a NaN tag value, which equals no other NaN")
    if f.is_integer():
        return _tag_int(int(f))
    return f


def _tag_int(i: int) -> int:
    if i.bit_length() > _TAG_INT_BITS_MAX:
        # json would write it (up to Python's limit on digits), but the key
        # could not hold it.
        raise _FieldTooLong(KEY_MAX + 1)
    return i


def _hashable(v: Any) -> Any:
    # JSON writes a tuple as a list. A key LMCache can index (hashable)
    # holds tuples, never lists, so a list read back was a tuple.
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


def _check_end(b: bytes, pos: int) -> None:
    # The fields must use the encoding exactly: truncated bytes (a length
    # past the end) and trailing bytes are not a key this codec wrote.
    if pos != len(b):
        raise ValueError(f"malformed stored key (its fields take {pos} of its {len(b)} bytes)")


# -- ObjectKey ----------------------------------------------------------------


def _encode_object_key(key: Any, tag: int) -> bytes:
    out = bytearray((tag,))
    _put_blob(out, _bytes_field(key.chunk_hash, "ObjectKey chunk_hash"))
    _put_str(out, key.model_name, "model_name")
    _put_i64(out, key.kv_rank, getattr(key, "object_group_id", 0))
    _put_str(out, getattr(key, "cache_salt", ""), "cache_salt")
    return bytes(out)


def _decode_object_key(b: bytes) -> Any:
    from lmcache.v1.distributed.api import ObjectKey

    chunk_hash, pos = _get_blob(b, 1)
    model, pos = _get_str(b, pos)
    kv_rank, group = struct.unpack_from("<qq", b, pos)
    pos += 16
    salt, pos = _get_str(b, pos)
    _check_end(b, pos)
    return ObjectKey(
        chunk_hash=chunk_hash,
        model_name=model,
        kv_rank=kv_rank,
        object_group_id=group,
        cache_salt=salt,
    )


# -- dispatch -----------------------------------------------------------------

# LMCache's key classes are recognised by module and name, so that this
# module imports nothing of LMCache until a stored key is decoded.
_KNOWN: Dict[Tuple[str, str], Tuple[int, Callable[[Any, int], bytes]]] = {
    ("lmcache.utils", "CacheEngineKey"): (_TAG_ENGINE_KEY, _encode_engine_key),
    ("lmcache.utils", "LayerCacheEngineKey"): (_TAG_LAYER_KEY, _encode_engine_key),
    ("lmcache.v1.distributed.api", "ObjectKey"): (_TAG_OBJECT_KEY, _encode_object_key),
}
_DECODERS: Dict[int, Callable[[bytes], Any]] = {
    _TAG_BYTES: lambda b: bytes(b[1:]),
    _TAG_STR: lambda b: b[1:].decode(_UTF8, _SURROGATES),
    _TAG_ENGINE_KEY: lambda b: _decode_engine_key(b, False),
    _TAG_LAYER_KEY: lambda b: _decode_engine_key(b, True),
    _TAG_OBJECT_KEY: _decode_object_key,
}
# type -> encoder, filled on first sight of each type.
_ENCODERS: Dict[type, Callable[[Any], bytes]] = {
    bytes: lambda k: b"\x01" + k,
    str: lambda k: b"\x02" + k.encode(_UTF8, _SURROGATES),
}


def register_key_type(
    cls: Type[Any], tag: int, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
) -> None:
    """Teach the codec another key type: encode(key) gives the body, decode
    (body) gives the key back. Tags 0x20..0xff are free for this."""
    if not 0x20 <= tag <= 0xFF or tag in _DECODERS:
        raise ValueError(f"tag {tag:#x} is taken or outside 0x20..0xff")
    tb = bytes((tag,))
    _ENCODERS[cls] = lambda k: tb + encode(k)
    _DECODERS[tag] = lambda b: decode(bytes(b[1:]))


def _encoder_for(t: type) -> Callable[[Any], bytes]:
    for klass in t.__mro__:
        known = _KNOWN.get((klass.__module__, klass.__name__))
        if known is not None:
            if klass is not t:
                # LMCache's keys equal only keys of their exact type: the
                # subclass's keys would share the entries of the class's.
                raise TypeError(
                    f"cannot store a key of type {t.__module__}.{t.__qualname__}: it is a "
                    f"subclass of LMCache's {klass.__name__}, whose keys are never equal to "
                    "it, and the encoding has no room for its type "
                    "(daxkv.lmcache.keys.register_key_type adds it)"
                )
            tag, fn = known
            return lambda k, tag=tag, fn=fn: fn(k, tag)
        enc = _ENCODERS.get(klass)
        if enc is not None and klass is not object:
            return enc
    raise TypeError(
        f"cannot store a key of type {t.__module__}.{t.__qualname__}: libdaxkv's LMCache "
        "integration knows bytes, str, CacheEngineKey, LayerCacheEngineKey and ObjectKey "
        "(daxkv.lmcache.keys.register_key_type adds others)"
    )


# Encodings of recently used keys: LMCache looks the same keys up, locks,
# loads and unlocks them in turn, and a dict hit (the key's own hash, as
# LMCache's index pays) costs a tenth of encoding the fields again. Equal
# keys have equal encodings, so equality-based caching is exact.
_recent: Dict[Any, bytes] = {}
_RECENT_MAX = 1 << 16
# The same, by object identity (each entry holds its key, so the id is not
# reused while the entry lives): LMCache passes the same key objects from
# lookup to load to unlock, and the identity lookup skips the key's own
# __hash__ (a Python method over five or six fields for LMCache's keys). It
# relies on keys not being mutated once used, which LMCache's own dicts
# keyed by them rely on too.
_by_id: Dict[int, Tuple[Any, bytes]] = {}


def encode_key(key: Any) -> bytes:
    """The key's bytes in the store. Raises TypeError for an unknown type (a
    subclass of LMCache's key classes included), an unhashable key or a
    field of a type the encoding has no room for, KeyTooLong (a
    KeyNotStorable, a ValueError) for a key longer than 512 bytes once
    encoded, and KeyNotStorable for an integer field past 64 bits or a NaN
    tag value."""
    e = _by_id.get(id(key))
    if e is not None and e[0] is key:
        return e[1]
    try:
        hit = _recent.get(key)
    except TypeError:
        _check_hashable(key)
        # Hashable, but comparing it with a cached key of the same hash
        # raised (numpy's int64 == Decimal does): encode it afresh.
        hit = None
    if hit is None:
        hit = _encode(key)
        if len(_recent) >= _RECENT_MAX:
            _recent.clear()
        try:
            _recent[key] = hit
        except TypeError:
            pass
    if len(_by_id) >= _RECENT_MAX:
        _by_id.clear()
    _by_id[id(key)] = (key, hit)
    return hit


def _check_hashable(key: Any) -> None:
    try:
        hash(key)
    except TypeError as exc:
        # LMCache indexes its tier by the key's hash: an unhashable key (a
        # list in a tag value) is no key there, and its encoding would be
        # that of a different key (the same tag holding a tuple).
        raise TypeError(
            f"cannot store an unhashable key of type {type(key).__qualname__} ({exc})"
        ) from None


def encode_keys(keys: Any) -> List[bytes]:
    """encode_key of each key, in order."""
    get = _by_id.get
    out: List[bytes] = []
    add = out.append
    for k in keys:
        e = get(id(k))
        add(e[1] if e is not None and e[0] is k else encode_key(k))
    return out


def encode_keys_partial(
    keys: Any, too_long: Optional[List[Tuple[int, "KeyNotStorable"]]] = None
) -> Tuple[List[bytes], Optional[List[int]]]:
    """The encodings of the keys libdaxkv can hold, and None when that is
    every key, else the positions in keys of those encodings: a key longer
    than KEY_MAX once encoded (or another KeyNotStorable) is left out, (its
    position, the exception) going to too_long when given. TypeError for an
    unknown key type."""
    try:
        return encode_keys(keys), None
    except KeyNotStorable:
        pass
    out: List[bytes] = []
    pos: List[int] = []
    for i, k in enumerate(keys):
        try:
            kb = encode_key(k)
        except KeyNotStorable as exc:
            if too_long is not None:
                too_long.append((i, exc))
            continue
        out.append(kb)
        pos.append(i)
    return out, pos


def _encode(key: Any) -> bytes:
    enc = _ENCODERS.get(type(key))
    if enc is None:
        enc = _encoder_for(type(key))
        _ENCODERS[type(key)] = enc
    try:
        b = enc(key)
    except _FieldTooLong as exc:
        raise KeyTooLong(
            f"a key of type {type(key).__name__} has a field of {exc.args[0]} bytes, "
            f"above the limit of {KEY_MAX}",
            exc.args[0],
        ) from None
    except _FieldOutOfRange as exc:
        raise KeyNotStorable(
            f"a key of type {type(key).__name__} has the integer {_int_for_message(exc.args[0])} "
            "in a field stored in 64 bits"
        ) from None
    except _NotAKeyValue as exc:
        raise KeyNotStorable(f"a key of type {type(key).__name__} has {exc.args[0]}") from None
    if len(b) > KEY_MAX:
        raise KeyTooLong(
            f"key {_key_for_message(key)} is {len(b)} bytes once encoded, above the limit of "
            f"{KEY_MAX}",
            len(b),
        )
    return b


# Python converts ints of more than 4300 digits to str only by raising
# ValueError, which no caller takes for a key that cannot be stored.


def _int_for_message(i: int) -> str:
    return str(i) if i.bit_length() <= 256 else f"of {i.bit_length()} bits"


def _key_for_message(key: Any) -> str:
    try:
        return repr(key)
    except ValueError:
        return f"of type {type(key).__name__}"


def stored_in_an_earlier_encoding(b: bytes) -> bool:
    """Whether stored bytes are those of a CacheEngineKey (or
    LayerCacheEngineKey) whose tags earlier versions wrote in a form that no
    key encodes to now (true, 1.0, NaN): no lookup finds such an entry and no
    delete removes it."""
    if not b or b[0] not in (_TAG_ENGINE_KEY, _TAG_LAYER_KEY):
        return False
    try:
        # Only tags changed form: skip to them (model, world size and worker
        # id, chunk hash, dtype) and decode no key without any.
        (n,) = _U16.unpack_from(b, 1)
        pos = 1 + 2 + n + 16 + 1
        for _ in range(3):  # the chunk hash, the dtype name, the tags
            (n,) = _U16.unpack_from(b, pos)
            pos += 2 + n
        if n == 0:
            return False
        decode_key(b)
    except struct.error:
        return False
    except _EarlierTagEncoding:
        return True
    except ValueError:
        return False
    return False


def decode_key(b: bytes) -> Any:
    """The key object an encoding stands for. ValueError for bytes that no
    known type encodes to."""
    if not b:
        raise ValueError("empty key")
    dec: Optional[Callable[[bytes], Any]] = _DECODERS.get(b[0])
    if dec is None:
        raise ValueError(f"key with unknown type tag {b[0]:#x}")
    try:
        return dec(b)
    except ValueError:
        raise
    except Exception as exc:
        # Stored bytes are not trusted, and a decoder registered by an
        # application may fail on what an earlier version of it stored:
        # whatever it raises, the bytes are not a key (restart recovery
        # skips them rather than failing).
        raise ValueError(f"malformed stored key ({type(exc).__name__}: {exc})") from exc
