"""Caller memory and keys, as the C calls take them.

A buffer (anything with the buffer protocol, or an (address, length) pair)
becomes an address without being copied, its export held while the
library may use it (_Buffers); a key (bytes or str) becomes bytes (_key,
_keys). Every module that hands caller memory or keys to the library goes
through here; nothing here needs the library or a store.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import operator
import re
from typing import Any, Iterable, List, Optional, Tuple, Union

from . import _lib
from .errors import InvalidArgument

Key = Union[bytes, str, bytearray, memoryview]
#: Anything with the buffer protocol, or an (address, length) pair such as
#: (tensor.data_ptr(), tensor.numel() * tensor.element_size()).
Buffer = Any

KEY_MAX = _lib.KEY_MAX

# ---------------------------------------------------------------------------
# Buffers: addresses of caller memory without copying it.


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 1
# With the format asked for, a buffer of Python objects (numpy's dtype
# object, a ctypes py_object array: format 'O') can be told apart from raw
# bytes: copying into it would overwrite object pointers, and copying out of
# it would store them. A memoryview gives its format only with its shape
# (PyBUF_ND: a C-contiguous buffer, as the simple request also demands).
_PyBUF_FORMAT = 4
_PyBUF_ND = 8
_FLAGS_READ = _PyBUF_ND | _PyBUF_FORMAT
_FLAGS_WRITE = _PyBUF_WRITABLE | _PyBUF_ND | _PyBUF_FORMAT
# PyObject_GetBuffer is the only standard way to get the address of a
# read-only buffer (bytes, a read-only numpy array): ctypes' from_buffer
# refuses those, and from_buffer_copy would copy.
_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None

_c_char_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof

# Address of a bytes object's payload relative to id(): bytes are immutable
# and never move, so the hot paths skip the buffer protocol for them.
_probe = b"daxkv"
_BYTES_OFFSET = ctypes.cast(ctypes.c_char_p(_probe), ctypes.c_void_p).value - id(_probe)
del _probe


def _label(what: str, index: Optional[int]) -> str:
    return what if index is None else f"{what}[{index}]"


def _pair_ints(addr: Any, length: Any) -> Optional[Tuple[int, int]]:
    """An (address, length) pair's integers: ints and integer types such
    as numpy's (operator.index), as memcpy_batch's lengths take them; not
    bool, which int() would take as 0 or 1 bytes. None if not integers."""
    if type(addr) is int and type(length) is int:
        return addr, length
    if isinstance(addr, bool) or isinstance(length, bool):
        return None
    try:
        return operator.index(addr), operator.index(length)
    except TypeError:
        return None


class _Buffers:
    """Addresses of a list of buffers, held (exports acquired) until close().

    Holding the export matters: a bytearray cannot be resized and a numpy
    array cannot be reallocated while the library copies into it.
    """

    __slots__ = ("views", "keep")

    def __init__(self) -> None:
        self.views: List[_PyBuffer] = []
        self.keep: List[Any] = []

    def add(self, obj: Buffer, writable: bool, what: str, index: Optional[int] = None) -> Tuple[int, int]:
        """The address and length of obj, its export held until close().
        An error names it what, or what[index] (formatted only then: a
        batch adds thousands of buffers)."""
        t = type(obj)
        if t is bytes and not writable:
            self.keep.append(obj)
            return id(obj) + _BYTES_OFFSET, len(obj)
        if t is bytearray and obj:
            # ctypes' from_buffer holds a writable export as long as the
            # object it returns lives (kept until close): the same hold as
            # PyObject_GetBuffer below, at a quarter of its cost.
            head = _c_char_from_buffer(obj)
            self.keep.append(head)
            return _addressof(head), len(obj)
        if t is tuple:
            if len(obj) != 2:
                raise TypeError(f"{_label(what, index)}: an address pair must be (address, length)")
            pair = _pair_ints(*obj)
            if pair is None:
                raise TypeError(f"{_label(what, index)}: address and length must be integers")
            addr, length = pair
            if addr <= 0 and length > 0:
                raise InvalidArgument(-_errno.EINVAL, f"{_label(what, index)}: NULL address with length {length}")
            if addr < 0 or length < 0 or addr >= 1 << 64 or length >= 1 << 63:
                raise InvalidArgument(-_errno.EINVAL, f"{_label(what, index)}: address or length out of range")
            return addr, length
        if obj is None:
            raise TypeError(f"{_label(what, index)}: expected a buffer or an (address, length) pair, got None")
        view = _PyBuffer()
        try:
            _get_buffer(obj, ctypes.byref(view), _FLAGS_WRITE if writable else _FLAGS_READ)
        except (BufferError, ValueError) as exc:  # numpy says ValueError
            kind = "a writable contiguous" if writable else "a contiguous"
            raise TypeError(f"{_label(what, index)}: expected {kind} buffer, got {t.__name__}: {exc}") from None
        except TypeError:
            raise TypeError(
                f"{_label(what, index)}: expected a buffer or an (address, length) pair, got {t.__name__}"
            ) from None
        if view.format and b"O" in view.format and (_holds_objects(view.format) or _ctypes_objects(obj)):
            _release_buffer(ctypes.byref(view))
            raise TypeError(
                f"{_label(what, index)}: expected a buffer of bytes, got {t.__name__} of Python "
                f"objects (format {view.format.decode('ascii', 'replace')!r})"
            )
        self.views.append(view)
        return view.buf or 0, view.len

    def add_many(self, objs: Iterable[Buffer], writable: bool, what: str) -> Tuple[List[int], List[int]]:
        """add() of each of objs, the i-th named what[i]: their addresses
        and their lengths."""
        add = self.add
        pairs = [add(obj, writable, what, i) for i, obj in enumerate(objs)]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def close(self) -> None:
        for v in self.views:
            _release_buffer(ctypes.byref(v))
        self.views.clear()
        self.keep.clear()

    def __enter__(self) -> "_Buffers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_FIELD_NAMES = re.compile(rb":[^:]*:")


_CData = ctypes.Structure.__mro__[1]  # ctypes' base of every C data type


def _ctypes_type_holds_objects(tp: Any, depth: int = 0) -> bool:
    """Whether a ctypes type holds a py_object anywhere (fields of
    structures and unions, elements of arrays, nested)."""
    if depth > 64 or not isinstance(tp, type):
        return False
    if getattr(tp, "_type_", None) == "O":  # py_object and its subclasses
        return True
    fields = getattr(tp, "_fields_", None)
    if fields:
        return any(_ctypes_type_holds_objects(f[1], depth + 1) for f in fields if len(f) > 1)
    if issubclass(tp, ctypes.Array):
        return _ctypes_type_holds_objects(tp._type_, depth + 1)
    return False


def _ctypes_objects(obj: Any) -> bool:
    """Whether obj (or what the memoryviews it is made of export) is a
    ctypes object that holds Python objects. Its format cannot say so for
    sure: ctypes puts field names in it as they are, colons and all, and
    names such as 'p:q' pair the format's colons across fields, hiding an
    'O' between two of them from _holds_objects."""
    while isinstance(obj, memoryview):
        obj = obj.obj
    return isinstance(obj, _CData) and _ctypes_type_holds_objects(type(obj))


def _holds_objects(fmt: bytes) -> bool:
    """Whether a buffer format (struct syntax, PEP 3118) has an object
    code 'O' anywhere, field names (':name:') left out. ctypes puts a
    field's name in the format as it is, colons and all, and a name with a
    colon in it pairs the others wrongly (a field named 'p:' hid the 'O'
    of the next one between two names): a format whose colons cannot be
    paired as names ('::', or an odd count) is taken to hold objects
    wherever it has an 'O' at all."""
    if b"O" not in fmt:
        return False
    if b"::" in fmt or fmt.count(b":") % 2:
        return True
    return b"O" in _FIELD_NAMES.sub(b"", fmt)


def _key(k: Key) -> bytes:
    t = type(k)
    if t is bytes:
        return k
    if t is str:
        return k.encode("utf-8")
    if isinstance(k, (bytes, bytearray, memoryview)):
        return bytes(k)
    if isinstance(k, str):
        return str(k).encode("utf-8")
    raise TypeError(f"key must be bytes or str, got {t.__name__}")


def _keys(keys: Iterable[Key]) -> List[bytes]:
    if isinstance(keys, (bytes, str)):
        # A lone key would otherwise be iterated as single characters.
        raise TypeError("expected a sequence of keys, got a single key")
    return [k if type(k) is bytes else _key(k) for k in keys]
