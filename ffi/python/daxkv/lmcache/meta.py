"""The per-entry metadata LMCache keeps with a DAX entry, as stored bytes.

LMCache's core records, for every entry, the tensor shape, dtype, memory
format and (optionally) the cached token positions. libdaxkv stores them in
the entry's slot header, so that they are read back with the value and
recovered with it after a restart. The encoding is compact (a 256-token
chunk's positions usually take a few bytes) and decodes to LMCache's own
types: ``torch.Size``, ``torch.dtype``, ``MemoryFormat`` and a tensor.

    byte 0      version (1)
    byte 1      flags: 1 shape, 2 dtype, 4 fmt, 8 positions
    [fmt]       length-prefixed MemoryFormat member name
    [dtype]     length-prefixed torch dtype name ("bfloat16")
    [shape]     ndim, then each dimension as an unsigned varint
    [positions] dtype name, count (varint, at most POSITIONS_MAX), kind:
                0 an arithmetic progression (start, step as signed
                varints), 1 the values as signed varint deltas

Stored bytes are not trusted: a count larger than the bytes that follow can
hold, or than POSITIONS_MAX, is malformed metadata (ValueError) rather than
a reason to build a list that large.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

__all__ = ["EntryMeta", "encode_meta", "decode_meta", "DEFAULT_META_BYTES", "POSITIONS_MAX"]

#: Metadata capacity a DaxCore asks its store for: a 4-D shape, dtype and
#: format take about 30 bytes; positions of a 256-token chunk in one
#: progression about 10, and in the worst case (scattered 64-bit positions)
#: 10 bytes each.
DEFAULT_META_BYTES = 512

#: Most token positions one entry's metadata holds: they are the positions
#: of the tokens of one chunk (256 in LMCache's default configuration). A
#: progression encodes any count in a few bytes, so without a limit a
#: garbled or crafted count would have the decoder build a list of billions.
POSITIONS_MAX = 1 << 20

_VERSION = 1
_F_SHAPE, _F_DTYPE, _F_FMT, _F_POS = 1, 2, 4, 8


class EntryMeta(NamedTuple):
    """What LMCache's DiskCacheMetadata holds besides the size."""

    shape: Any  # torch.Size or None
    dtype: Any  # torch.dtype or None
    fmt: Any  # MemoryFormat or None
    cached_positions: Any  # torch.Tensor or None


def _uvarint(out: bytearray, v: int) -> None:
    if v < 0:
        raise ValueError(f"negative dimension {v}")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _svarint(out: bytearray, v: int) -> None:
    # Zigzag, any size.
    _uvarint(out, (v << 1) if v >= 0 else ((-v << 1) - 1))


def _read_uvarint(b: bytes, pos: int) -> Tuple[int, int]:
    v = shift = 0
    while True:
        c = b[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, pos
        shift += 7
        if shift > 640:
            raise ValueError("varint too long")


def _read_svarint(b: bytes, pos: int) -> Tuple[int, int]:
    z, pos = _read_uvarint(b, pos)
    return (z >> 1) if not z & 1 else -((z + 1) >> 1), pos


def _put_name(out: bytearray, name: str) -> None:
    b = name.encode("ascii")
    if len(b) > 255:
        raise ValueError(f"name {name!r} too long")
    out.append(len(b))
    out += b


def _get_name(b: bytes, pos: int) -> Tuple[str, int]:
    n = b[pos]
    return b[pos + 1 : pos + 1 + n].decode("ascii"), pos + 1 + n


def _dtype_name(dtype: Any) -> str:
    return str(dtype).rpartition(".")[2]


def _position(v: Any) -> int:
    # The decoder builds the positions back from ints in the stored dtype:
    # a value that is not an integer (0.5, NaN, a complex) would come back
    # as another value, so it is refused rather than truncated.
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"cached position {v!r} is not an integer")
        return int(v)
    return operator.index(v)


def _encode_positions(out: bytearray, pos: Any) -> None:
    if hasattr(pos, "dim") and pos.dim() != 1:
        raise ValueError("cached_positions must be one-dimensional")
    values: List[int] = [_position(v) for v in (pos.tolist() if hasattr(pos, "tolist") else pos)]
    if len(values) > POSITIONS_MAX:
        # Refused here so that every blob written also decodes.
        raise ValueError(f"{len(values)} cached positions, more than {POSITIONS_MAX}")
    _put_name(out, _dtype_name(pos.dtype) if hasattr(pos, "dtype") else "int64")
    _uvarint(out, len(values))
    if len(values) >= 2:
        step = values[1] - values[0]
        progression = all(values[i + 1] - values[i] == step for i in range(len(values) - 1))
    else:
        step, progression = 0, True
    if progression:
        out.append(0)
        _svarint(out, values[0] if values else 0)
        _svarint(out, step)
        return
    out.append(1)
    prev = 0
    for v in values:
        _svarint(out, v - prev)
        prev = v


def _decode_positions(b: bytes, pos: int) -> Tuple[Any, int]:
    import torch

    name, pos = _get_name(b, pos)
    count, pos = _read_uvarint(b, pos)
    if count > POSITIONS_MAX:
        raise ValueError(f"{count} cached positions, more than {POSITIONS_MAX}")
    kind = b[pos]
    pos += 1
    if kind == 1 and count > len(b) - pos:
        # Each value's delta takes at least one byte.
        raise ValueError(f"{count} cached positions in {len(b) - pos} bytes")
    if kind == 0:
        start, pos = _read_svarint(b, pos)
        step, pos = _read_svarint(b, pos)
        values = [start + i * step for i in range(count)]
    elif kind == 1:
        values = []
        prev = 0
        for _ in range(count):
            d, pos = _read_svarint(b, pos)
            prev += d
            values.append(prev)
    else:
        raise ValueError(f"unknown positions encoding {kind}")
    return torch.tensor(values, dtype=getattr(torch, name)), pos


def encode_meta(shape: Any, dtype: Any, fmt: Any, cached_positions: Any = None) -> bytes:
    """The stored bytes of an entry's metadata (any field may be None).
    ValueError for metadata the encoding cannot hold exactly (positions
    that are not a one-dimensional sequence of integers, a negative
    dimension, more than 255 dimensions, a name that is not ASCII)."""
    try:
        return _encode_meta(shape, dtype, fmt, cached_positions)
    except (TypeError, OverflowError, AttributeError, UnicodeEncodeError) as exc:
        raise ValueError(f"metadata the encoding cannot hold ({exc})") from exc


def _encode_meta(shape: Any, dtype: Any, fmt: Any, cached_positions: Any) -> bytes:
    out = bytearray((_VERSION, 0))
    flags = 0
    if fmt is not None:
        flags |= _F_FMT
        _put_name(out, fmt.name)
    if dtype is not None:
        flags |= _F_DTYPE
        _put_name(out, _dtype_name(dtype))
    if shape is not None:
        flags |= _F_SHAPE
        dims = list(shape)
        if len(dims) > 255:
            raise ValueError("shape has more than 255 dimensions")
        out.append(len(dims))
        for d in dims:
            _uvarint(out, int(d))
    if cached_positions is not None:
        flags |= _F_POS
        _encode_positions(out, cached_positions)
    out[1] = flags
    return bytes(out)


# Decoded metadata by blob: most entries of a deployment share a handful of
# layouts, and the torch objects are immutable in practice (LMCache's core
# hands out the same objects for every read of an entry, too).
_decoded: Dict[bytes, EntryMeta] = {}
_DECODED_MAX = 4096


def decode_meta(blob: bytes) -> EntryMeta:
    """LMCache's types back from stored bytes. An empty blob (an entry stored
    by something other than this integration) gives all None; bytes that do
    not decode raise ValueError."""
    hit = _decoded.get(blob)
    if hit is not None:
        return hit
    if not blob:
        return EntryMeta(None, None, None, None)
    try:
        meta = _decode(blob)
    except (IndexError, UnicodeDecodeError, KeyError, TypeError, AttributeError, OverflowError, RuntimeError) as exc:
        # RuntimeError and OverflowError: torch refusing a dimension or a
        # position that does not fit its type (an int8 position of 500, a
        # value past 64 bits) or a dtype it cannot build a tensor of.
        raise ValueError(f"malformed entry metadata ({exc})") from exc
    if meta.cached_positions is None:
        # A tensor is mutable: only position-free metadata is shared.
        if len(_decoded) >= _DECODED_MAX:
            _decoded.clear()
        _decoded[bytes(blob)] = meta
    return meta


def _decode(b: bytes) -> EntryMeta:
    import torch
    from lmcache.v1.memory_management import MemoryFormat

    if b[0] != _VERSION:
        raise ValueError(f"entry metadata version {b[0]} is not 1")
    flags = b[1]
    pos = 2
    fmt = dtype = shape = positions = None
    if flags & _F_FMT:
        name, pos = _get_name(b, pos)
        fmt = MemoryFormat[name]
    if flags & _F_DTYPE:
        name, pos = _get_name(b, pos)
        dtype = getattr(torch, name)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {name!r}")
    if flags & _F_SHAPE:
        ndim = b[pos]
        pos += 1
        dims = []
        for _ in range(ndim):
            d, pos = _read_uvarint(b, pos)
            if d >= 1 << 63:
                # torch.Size takes it, then fails wherever it is used.
                raise ValueError(f"dimension {d} does not fit 64 bits")
            dims.append(d)
        shape = torch.Size(dims)
    if flags & _F_POS:
        positions, pos = _decode_positions(b, pos)
    if pos != len(b):
        raise ValueError("trailing bytes after entry metadata")
    return EntryMeta(shape, dtype, fmt, positions)


def meta_of(obj: Any) -> Optional[bytes]:
    """Encoded metadata of a MemoryObj as LMCache's core records it (from
    obj.metadata)."""
    m = obj.metadata
    return encode_meta(m.shape, m.dtype, m.fmt, m.cached_positions)
