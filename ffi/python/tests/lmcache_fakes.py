"""Faithful stand-ins for the LMCache objects the DaxCore surface sees.

LMCache cannot be installed here; these reproduce the attributes and
methods that LMCache's DaxCore and its callers use: CacheEngineKey (non-MP,
serialised by to_string()), ObjectKey (MP, identified by its fields), and
MemoryObj (get_size/get_shapes/get_dtype/get_memory_format, a data_ptr
property and a metadata record with shape, dtype, fmt, cached_positions).
"""

import dataclasses
import enum
from typing import Any, List, Optional, Tuple

import numpy as np


class MemoryFormat(enum.Enum):
    UNDEFINED = 0
    KV_2LTD = 1
    KV_T2D = 2
    KV_MLA_FMT = 3


@dataclasses.dataclass(frozen=True)
class CacheEngineKey:
    fmt: str
    model_name: str
    world_size: int
    worker_id: int
    chunk_hash: int
    dtype: str = "bfloat16"

    def to_string(self) -> str:
        return f"{self.fmt}@{self.model_name}@{self.world_size}@{self.worker_id}@{self.chunk_hash:x}@{self.dtype}"


@dataclasses.dataclass(frozen=True)
class ObjectKey:
    chunk_hash: bytes
    model_name: str
    kv_rank: int
    cache_salt: Optional[str] = None


@dataclasses.dataclass
class MemoryObjMetadata:
    shape: Tuple[int, ...]
    dtype: Any
    address: int
    phy_size: int
    ref_count: int = 1
    pin_count: int = 0
    fmt: MemoryFormat = MemoryFormat.KV_2LTD
    shapes: Optional[List[Tuple[int, ...]]] = None
    dtypes: Optional[List[Any]] = None
    cached_positions: Optional[Any] = None


class MemoryObj:
    """A tensor-backed memory object; numpy stands in for torch."""

    def __init__(self, shape, dtype=np.float16, fmt=MemoryFormat.KV_2LTD, fill=None, shapes=None):
        self.tensor = np.zeros(shape, dtype=dtype)
        if fill is not None:
            self.tensor[...] = fill
        self.metadata = MemoryObjMetadata(
            shape=tuple(shape),
            dtype=np.dtype(dtype).name,
            address=self.tensor.ctypes.data,
            phy_size=self.tensor.nbytes,
            fmt=fmt,
            shapes=shapes,
        )

    @property
    def data_ptr(self) -> int:
        return self.tensor.ctypes.data

    @property
    def byte_array(self) -> memoryview:
        return memoryview(self.tensor).cast("B")

    def get_size(self) -> int:
        return self.tensor.nbytes

    def get_shape(self):
        return self.metadata.shape

    def get_shapes(self):
        return self.metadata.shapes or [self.metadata.shape]

    def get_dtype(self):
        return self.metadata.dtype

    def get_memory_format(self):
        return self.metadata.fmt

    def ref_count_down(self) -> None:
        self.metadata.ref_count -= 1
