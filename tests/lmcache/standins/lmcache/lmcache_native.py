# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.lmcache_native`` C++ extension (the
device-independent native module), reduced to what the DAX code and its
tests use: ``Bitmap``, the ``EngineKVFormat`` enum (alias ``GPUKVFormat``),
``TransferDirection`` and the format predicates.

LMCache builds these with pybind11 from its C++ sources; here they are pure
Python with the same names, arguments and semantics:

* ``Bitmap(size)`` / ``Bitmap(size, prefix_bits)``; ``set``/``clear`` of an
  index at or beyond ``size`` are no-ops and ``test`` of one returns False;
  ``count_leading_ones``/``count_leading_zeros`` count from index 0; ``&``
  and ``|`` truncate to the smaller size; ``~`` flips the ``size`` bits;
  ``repr`` is the '1'/'0' string from index 0.
"""

# Standard
import enum
from typing import Iterable, Sequence


class EngineKVFormat(enum.Enum):
    """Layout of an inference engine's paged KV cache (names as in LMCache;
    the numeric values of the C++ enum are not part of the contract)."""

    NB_NL_TWO_BS_NH_HS = 0
    NL_X_TWO_NB_BS_NH_HS = 1
    NL_X_NB_TWO_BS_NH_HS = 2
    NL_X_NB_BS_HS = 3
    TWO_X_NL_X_NBBS_NH_HS = 4
    NL_X_NBBS_ONE_HS = 5
    NL_X_TWO_NB_NH_BS_HS = 6
    NL_X_NB_TWO_NH_BS_HS = 7
    NB_NL_TWO_NH_BS_HS = 8
    TWO_X_NL_X_NB_BS_NH_HS = 9
    NL_X_NB_NH_BS_TWO_HS = 10
    NL_X_NB_BS_NH_TWO_HS = 11
    NL_X_NB_NH_BS_CS = 12
    NL_X_NB_BS_NH_CS = 13
    NL_X_NB_BSV_BSS = 14


GPUKVFormat = EngineKVFormat


class TransferDirection(enum.Enum):
    H2D = 0
    D2H = 1


# The MLA layouts: one latent head and no separate K/V axis.
_MLA_FORMATS = frozenset({EngineKVFormat.NL_X_NB_BS_HS, EngineKVFormat.NL_X_NBBS_ONE_HS})


def is_mla(format: EngineKVFormat) -> bool:  # noqa: A002 (LMCache's argument name)
    """Return whether the format is an MLA variant (single latent KV head)."""
    return format in _MLA_FORMATS


def is_layer_list(format: EngineKVFormat) -> bool:  # noqa: A002
    """Return whether the format stores one list entry per layer."""
    return format.name.startswith("NL_X_")


class Bitmap:
    """A fixed-size bitmap of per-key success flags."""

    __slots__ = ("_size", "_bits")

    def __init__(self, size: int, prefix_bits: int = 0) -> None:
        if size < 0:
            raise TypeError("size must be a non-negative integer")
        self._size = int(size)
        self._bits = bytearray(self._size)
        for i in range(min(int(prefix_bits), self._size)):
            self._bits[i] = 1

    def size(self) -> int:
        return self._size

    def set(self, index: int) -> None:
        if 0 <= index < self._size:
            self._bits[index] = 1

    def clear(self, index: int) -> None:
        if 0 <= index < self._size:
            self._bits[index] = 0

    def test(self, index: int) -> bool:
        if 0 <= index < self._size:
            return bool(self._bits[index])
        return False

    def popcount(self) -> int:
        return sum(self._bits)

    def count_leading_zeros(self) -> int:
        n = 0
        for b in self._bits:
            if b:
                break
            n += 1
        return n

    def count_leading_ones(self) -> int:
        n = 0
        for b in self._bits:
            if not b:
                break
            n += 1
        return n

    def highest_set_bit(self) -> int:
        for i in range(self._size - 1, -1, -1):
            if self._bits[i]:
                return i
        return -1

    def _combine(self, other: "Bitmap", op) -> "Bitmap":
        out = Bitmap(min(self._size, other._size))
        for i in range(out._size):
            out._bits[i] = op(self._bits[i], other._bits[i])
        return out

    def __and__(self, other: "Bitmap") -> "Bitmap":
        return self._combine(other, lambda a, b: a & b)

    def __or__(self, other: "Bitmap") -> "Bitmap":
        return self._combine(other, lambda a, b: a | b)

    def __invert__(self) -> "Bitmap":
        out = Bitmap(self._size)
        for i in range(self._size):
            out._bits[i] = 1 - self._bits[i]
        return out

    def get_indices_list(self) -> list:
        return [i for i, b in enumerate(self._bits) if b]

    def get_indices_set(self) -> set:
        return {i for i, b in enumerate(self._bits) if b}

    def batched_set(self, indices: Iterable[int]) -> None:
        for i in indices:
            self.set(i)

    def set_range(self, start: int, end: int) -> None:
        for i in range(max(0, start), min(end, self._size)):
            self._bits[i] = 1

    def gather(self, items: Sequence) -> list:
        return [items[i] for i in self.get_indices_list() if i < len(items)]

    def __repr__(self) -> str:
        return "".join("1" if b else "0" for b in self._bits)
