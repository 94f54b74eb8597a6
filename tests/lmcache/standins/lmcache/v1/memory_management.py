# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.memory_management`` module: the
memory formats, ``MemoryObjMetadata``, the ``MemoryObj`` interface,
``TensorMemoryObj`` (a view over a flat byte tensor with reference and pin
counts), ``BytesBufferMemoryObj``, ``MemoryAllocatorInterface``, the
explicit-free-list ``AddressManager`` and the host-arena helpers.

Semantics kept from LMCache: an object starts with ``ref_count == 1``;
``ref_count_down`` to 0 (while unpinned) frees it to its parent allocator,
which invalidates it; ``tensor`` is ``raw_data[:get_size()]`` viewed with the
logical dtype and shape; ``get_tensor(i)`` slices group ``i`` by the prefix
sums of the group sizes; an object garbage-collected while still valid is
freed by ``__del__``.

Left out: the stats monitor and pin monitor hooks (observability only),
hugepage/NUMA/shared-memory arenas, GDS objects and the GPU allocation
helper.  torch 1.13 has no ``torch.dtype.itemsize``; sizes use
:func:`dtype_itemsize`, which returns the same numbers.
"""

# Standard
from dataclasses import dataclass
from enum import Enum, auto
from functools import cache, wraps
from typing import Any, List, Optional, Tuple, Union
import abc
import ctypes
import threading

# Third Party
from sortedcontainers import SortedList
import torch

# First Party
from lmcache.logging import init_logger
from lmcache.utils import _lmcache_nvtx_annotate
import lmcache.c_ops as lmc_ops

logger = init_logger(__name__)


@cache
def dtype_itemsize(dtype: torch.dtype) -> int:
    """Byte size of one element of ``dtype`` (``dtype.itemsize`` in newer torch)."""
    return torch.empty((), dtype=dtype).element_size()


def get_size_bytes(shapes: list[torch.Size], dtypes: list[torch.dtype]) -> int:
    """Total bytes of the groups ``shapes``/``dtypes`` (LMCache keeps this in
    its vLLM integration utilities)."""
    return sum(
        shape.numel() * dtype_itemsize(dtype)
        for shape, dtype in zip(shapes, dtypes, strict=True)
    )


@cache
def _get_cached_ubyte_array_type(num_bytes: int):
    return ctypes.c_ubyte * num_bytes


def synchronized(lock_attr_name):
    """Run the method while holding the lock named ``lock_attr_name``."""

    def decorator(method):
        @wraps(method)
        def wrapper(self, *args, **kwargs):
            with getattr(self, lock_attr_name):
                return method(self, *args, **kwargs)

        return wrapper

    return decorator


class MemoryFormat(Enum):
    UNDEFINED = 0
    KV_2LTD = auto()
    """[2, num_layers, num_tokens, hidden_dim]"""
    KV_T2D = auto()
    """[num_tokens, 2, hidden_dim]"""
    KV_2TD = auto()
    """[2, num_tokens, hidden_dim]"""
    BINARY = auto()
    """Compressed binary array format"""
    BINARY_BUFFER = auto()
    KV_MLA_FMT = auto()
    """[1, num_layers, num_tokens, aligned_head_size]"""
    EC_TD = auto()
    """[num_tokens, hidden_dim] (encoder cache)"""
    HS_TD = auto()
    """[num_tokens, hidden_dim] (hidden states)"""

    def token_dim(self) -> int:
        if self == MemoryFormat.KV_2LTD:
            return 2
        elif self == MemoryFormat.KV_T2D:
            return 1
        elif self == MemoryFormat.KV_MLA_FMT:
            return 2
        return 0


@dataclass
class FreeBlock:
    """Metadata class used by the memory allocators"""

    start: int
    size: int

    def can_be_coalesced(self, succ: "FreeBlock") -> bool:
        return self.start + self.size == succ.start


@dataclass
class MemoryObjMetadata:
    # The 'logical' shape of the tensor
    shape: torch.Size
    # The 'logical' dtype of the tensor
    dtype: Optional[torch.dtype]
    # The 'physical address' of the tensor
    address: int
    # The 'physical size' in bytes of the allocated memory
    phy_size: int
    # Reference count
    ref_count: int
    # lookup pins are temporary, cache controller pins are persistent
    pin_count: int = 0
    # The 'logical' format of the tensor
    fmt: MemoryFormat = MemoryFormat.UNDEFINED
    # Positions when the cache is stored
    cached_positions: Optional[torch.Tensor] = None
    # shapes and dtypes of every group
    shapes: Optional[list[torch.Size]] = None
    dtypes: Optional[list[torch.dtype]] = None

    def get_size(self) -> int:
        if self.shapes is not None and self.dtypes is not None:
            return get_size_bytes(self.shapes, self.dtypes)
        return self.shape.numel() * dtype_itemsize(self.dtype)  # type: ignore[arg-type]


class MemoryObj(metaclass=abc.ABCMeta):
    """MemoryObj interface."""

    raw_data: Any

    def __init__(self, metadata: MemoryObjMetadata):
        self.meta = metadata

    @abc.abstractmethod
    def invalidate(self): ...

    @abc.abstractmethod
    def is_valid(self): ...

    @abc.abstractmethod
    def get_size(self) -> int: ...

    @abc.abstractmethod
    def get_shape(self) -> torch.Size: ...

    def get_dtype(self) -> Optional[torch.dtype]:
        return None

    @abc.abstractmethod
    def get_shapes(self) -> list[torch.Size]: ...

    @abc.abstractmethod
    def get_dtypes(self) -> list[torch.dtype]: ...

    @abc.abstractmethod
    def get_memory_format(self) -> MemoryFormat: ...

    @abc.abstractmethod
    def get_physical_size(self) -> int: ...

    def set_used_size(self, n: int) -> None:  # noqa: B027
        """Narrow the logical size (no-op unless a subclass supports it)."""

    @abc.abstractmethod
    def pin(self) -> bool: ...

    @abc.abstractmethod
    def ref_count_up(self): ...

    @abc.abstractmethod
    def unpin(self) -> bool: ...

    @abc.abstractmethod
    def ref_count_down(self): ...

    @abc.abstractmethod
    def get_ref_count(self) -> int: ...

    @abc.abstractmethod
    def get_num_tokens(self) -> int: ...

    @property
    @abc.abstractmethod
    def metadata(self) -> MemoryObjMetadata: ...

    @property
    @abc.abstractmethod
    def tensor(self) -> Optional[torch.Tensor]: ...

    @property
    @abc.abstractmethod
    def byte_array(self) -> bytes: ...

    @property
    @abc.abstractmethod
    def data_ptr(self) -> int: ...

    @property
    @abc.abstractmethod
    def is_pinned(self) -> bool: ...

    @property
    @abc.abstractmethod
    def can_evict(self) -> bool: ...

    @property
    @abc.abstractmethod
    def raw_tensor(self) -> Optional[torch.Tensor]: ...

    @abc.abstractmethod
    def get_tensor(self, index: int) -> Optional[torch.Tensor]: ...

    @abc.abstractmethod
    def parent(self) -> Optional["MemoryAllocatorInterface"]: ...


def _allocate_cpu_memory(size: int) -> torch.Tensor:
    """A host arena of ``size`` bytes as a flat uint8 tensor (LMCache takes
    pinned memory from its extension; see ``lmcache.c_ops``)."""
    if size == 0:
        return torch.empty(0, dtype=torch.uint8)
    ptr = lmc_ops.alloc_pinned_ptr(size, 0)
    buf = (ctypes.c_uint8 * size).from_address(ptr)
    return torch.frombuffer(buf, dtype=torch.uint8)


def _free_cpu_memory(buffer: torch.Tensor) -> None:
    lmc_ops.free_pinned_ptr(buffer.data_ptr())


class TensorMemoryObj(MemoryObj):
    """Wraps a raw flat tensor with some metadata"""

    def __init__(
        self,
        raw_data: torch.Tensor,
        metadata: MemoryObjMetadata,
        parent_allocator: Optional["MemoryAllocatorInterface"],
    ):
        assert metadata.dtype is not None, "dtype must be specified for TensorMemoryObj"
        super().__init__(metadata)
        self.raw_data = raw_data
        self.valid = True
        self.lock = threading.Lock()
        self.parent_allocator = parent_allocator
        self._used_size_override: Optional[int] = None
        # Prefix sums of the group sizes: [0, size_g0, size_g0 + size_g1, ...]
        self.group_prefix_sum = [0]
        if self.meta.shapes is not None and self.meta.dtypes is not None:
            size_in_bytes = 0
            for shape, dtype in zip(self.meta.shapes, self.meta.dtypes, strict=True):
                size_in_bytes += shape.numel() * dtype_itemsize(dtype)
                self.group_prefix_sum.append(size_in_bytes)
        else:
            self.group_prefix_sum.append(self.meta.get_size())

    def __del__(self):
        # Safety net of LMCache's: free an object that is garbage-collected
        # while still valid (a missing ref_count_down somewhere).
        if getattr(self, "parent_allocator", None) is not None and self.is_valid():
            if self.meta.ref_count > 0 or self.meta.pin_count > 0:
                logger.warning(
                    "MemoryObj at %s is being garbage collected "
                    "with ref_count=%d, pin_count=%d. "
                    "This indicates ref_count_down()/unpin() was not called properly.",
                    self.meta.address,
                    self.meta.ref_count,
                    self.meta.pin_count,
                )
            self.parent_allocator.free(self)

    def invalidate(self):
        self.valid = False

    def is_valid(self):
        return self.valid

    def get_size(self) -> int:
        if self._used_size_override is not None:
            return self._used_size_override
        return self.group_prefix_sum[-1]

    def set_used_size(self, n: int) -> None:
        if n < 0 or n > self.meta.phy_size:
            raise ValueError(f"set_used_size: n={n} out of range [0, {self.meta.phy_size}]")
        with self.lock:
            self._used_size_override = n

    def get_shape(self) -> torch.Size:
        return self.meta.shape

    def get_dtype(self) -> torch.dtype:
        assert self.meta.dtype is not None
        return self.meta.dtype

    def get_shapes(self) -> list[torch.Size]:
        assert self.meta.shapes is not None
        return self.meta.shapes

    def get_dtypes(self) -> list[torch.dtype]:
        assert self.meta.dtypes is not None
        return self.meta.dtypes

    def get_memory_format(self) -> MemoryFormat:
        with self.lock:
            return self.meta.fmt

    def get_physical_size(self) -> int:
        return self.meta.phy_size

    def ref_count_up(self):
        with self.lock:
            self.meta.ref_count += 1

    def ref_count_down(self):
        with self.lock:
            self.meta.ref_count -= 1
            if self.meta.ref_count < 0:
                logger.warning(
                    f"Ref count of MemoryObj {self.meta.address}"
                    f"is negative: {self.meta.ref_count}."
                    "Double free occurred somewhere."
                    "Setting ref count back to 0 as a hack but please find the bug."
                )
                self.meta.ref_count = 0
            if (
                self.meta.ref_count == 0
                and self.parent_allocator is not None
                and self.meta.pin_count == 0
            ):
                self.parent_allocator.free(self)

    def get_ref_count(self) -> int:
        with self.lock:
            return self.meta.ref_count

    def get_num_tokens(self) -> int:
        with self.lock:
            return self.meta.shape[self.meta.fmt.token_dim()]

    def pin(self) -> bool:
        with self.lock:
            self.meta.pin_count += 1
            return True

    def unpin(self) -> bool:
        with self.lock:
            self.meta.pin_count -= 1
            if self.meta.pin_count <= 0 and self.meta.ref_count <= 0:
                if self.parent_allocator is None:
                    logger.error(
                        "Parent allocator is None when trying to free MemoryObj."
                        "This could cause memory leak"
                    )
                else:
                    self.parent_allocator.free(self)
            if self.meta.pin_count < 0:
                logger.warning(
                    f"Pin count of MemoryObj {self.meta.address}"
                    f"is negative: {self.meta.pin_count}."
                    "Double unpin occurred somewhere."
                    "Setting pin count back to 0 as a hack but please find the bug."
                )
                self.meta.pin_count = 0
            return True

    @property
    def metadata(self) -> MemoryObjMetadata:
        with self.lock:
            return self.meta

    @property
    def tensor(self) -> Optional[torch.Tensor]:
        if not self.valid:
            logger.warning("Trying to access an invalidated MemoryObj")
            return None
        assert self.meta.dtype is not None
        if self._used_size_override is not None:
            return self.raw_data[: self._used_size_override].view(torch.uint8)
        return (
            self.raw_data[: self.get_size()].view(self.meta.dtype).view(self.meta.shape)
        )

    @property
    def byte_array(self) -> memoryview:
        num_bytes = self.get_size()
        arr_type = _get_cached_ubyte_array_type(num_bytes)
        return memoryview(arr_type.from_address(self.raw_data.data_ptr()))

    @property
    def data_ptr(self) -> int:
        return self.raw_data.data_ptr()

    @property
    def is_pinned(self) -> bool:
        return self.metadata.pin_count > 0

    @property
    def can_evict(self) -> bool:
        """Evictable when not pinned and only the cache holds a reference."""
        return not self.is_pinned and self.get_ref_count() == 1

    @property
    def raw_tensor(self) -> Optional[torch.Tensor]:
        if not self.valid:
            logger.warning("Trying to access an invalidated MemoryObj")
            return None
        return self.raw_data

    def get_tensor(self, index: int) -> Optional[torch.Tensor]:
        if not self.valid:
            logger.warning("Trying to access an invalidated MemoryObj")
            return None
        assert self.meta.shapes is not None
        assert self.meta.dtypes is not None
        begin = self.group_prefix_sum[index]
        end = self.group_prefix_sum[index + 1]
        return (
            self.raw_data[begin:end]
            .view(self.meta.dtypes[index])
            .view(self.meta.shapes[index])
        )

    def parent(self) -> Optional["MemoryAllocatorInterface"]:
        return self.parent_allocator


class BytesBufferMemoryObj(MemoryObj):
    """Wraps a bytes-like buffer with some metadata"""

    def __init__(self, raw_bytes: bytes, metadata: Optional[MemoryObjMetadata] = None):
        self.raw_data = raw_bytes
        if metadata is None:
            metadata = MemoryObjMetadata(
                shape=torch.Size([len(self.raw_data), 0, 0, 0]),
                dtype=None,
                address=0,
                phy_size=0,
                ref_count=1,
                pin_count=0,
                fmt=MemoryFormat.BINARY_BUFFER,
            )
        super().__init__(metadata)
        self.valid = True

    def invalidate(self):
        self.valid = False

    def is_valid(self):
        return self.valid

    def get_size(self) -> int:
        return len(self.raw_data)

    def get_shape(self) -> torch.Size:
        return torch.Size([len(self.raw_data), 0, 0, 0])

    def get_shapes(self) -> list[torch.Size]:
        return [self.get_shape()]

    def get_dtypes(self) -> list[torch.dtype]:
        return []

    def get_memory_format(self) -> MemoryFormat:
        return self.metadata.fmt

    def get_physical_size(self) -> int:
        return self.metadata.phy_size

    def pin(self) -> bool:
        self.metadata.pin_count += 1
        return True

    def unpin(self) -> bool:
        self.metadata.pin_count -= 1
        if self.metadata.pin_count < 0:
            self.metadata.pin_count = 0
        return True

    def ref_count_up(self):
        pass

    def ref_count_down(self):
        pass

    def get_ref_count(self) -> int:
        return 1

    def get_num_tokens(self) -> int:
        return 1

    @property
    def metadata(self) -> MemoryObjMetadata:
        return self.meta

    @property
    def tensor(self) -> Optional[torch.Tensor]:
        if not self.valid:
            logger.warning("Trying to access an invalidated MemoryObj")
        return None

    @property
    def byte_array(self) -> bytes:
        return self.raw_data

    @property
    def data_ptr(self) -> int:
        return ctypes.addressof(ctypes.c_char.from_buffer(memoryview(self.raw_data)))

    @property
    def is_pinned(self) -> bool:
        return self.metadata.pin_count > 0

    @property
    def can_evict(self) -> bool:
        return not self.is_pinned

    @property
    def raw_tensor(self) -> Optional[torch.Tensor]:
        if not self.valid:
            logger.warning("Trying to access an invalidated MemoryObj")
        return None

    def get_tensor(self, index: int) -> Optional[torch.Tensor]:
        return None

    def parent(self) -> Optional["MemoryAllocatorInterface"]:
        return None


class MemoryAllocatorInterface(metaclass=abc.ABCMeta):
    @abc.abstractmethod
    def allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        fmt: MemoryFormat = MemoryFormat.UNDEFINED,
        allocator_type: Optional[str] = None,
    ) -> Optional[MemoryObj]:
        """Allocate one object; ``None`` when the allocator is full."""

    @abc.abstractmethod
    def batched_allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.UNDEFINED,
        allocator_type: Optional[str] = None,
    ) -> Optional[List[MemoryObj]]:
        """Allocate ``batch_size`` equal objects; ``None`` when full."""

    @abc.abstractmethod
    def free(self, memory_obj: MemoryObj, allocator_type: Optional[str] = None):
        """Free one object (called by ``ref_count_down``, not directly)."""

    @abc.abstractmethod
    def batched_free(
        self,
        memory_objs: List[MemoryObj],
        allocator_type: Optional[str] = None,
        update_stats: bool = True,
    ):
        """Free a list of objects."""

    def close(self):
        return

    def memcheck(self) -> bool:
        return True

    def _adapt_shapes_and_dtypes(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
    ) -> Tuple[list[torch.Size], list[torch.dtype]]:
        if isinstance(shapes, torch.Size):
            shapes = [shapes]
        if isinstance(dtypes, torch.dtype):
            dtypes = [dtypes]
        assert len(shapes) == len(dtypes), (
            f"shapes and dtypes must have the same length, "
            f"got {len(shapes)} and {len(dtypes)}, "
            f"shapes: {shapes}, dtypes: {dtypes}"
        )
        return shapes, dtypes


class AddressManager:
    """Explicit free list over a virtual address space starting at 0; every
    allocation's start and size are aligned to ``align_bytes``."""

    ALIGN_BYTES = 4096

    def __init__(self, size: int, align_bytes: int = ALIGN_BYTES):
        self._size = size
        self._align = align_bytes
        self._explicit_list: SortedList = SortedList(key=lambda x: x.start)
        self._explicit_list.add(FreeBlock(start=0, size=size))
        self._lock = threading.Lock()
        self.total_allocated_size = 0

    def compute_aligned_size(self, raw_size: int) -> int:
        return (raw_size + self._align - 1) & ~(self._align - 1)

    def _coalesce(self, curr_block, prev_block, succ_block) -> bool:
        merge_prev = prev_block is not None and prev_block.can_be_coalesced(curr_block)
        merge_succ = succ_block is not None and curr_block.can_be_coalesced(succ_block)
        if merge_prev and merge_succ:
            prev_block.size += curr_block.size + succ_block.size
            self._explicit_list.remove(succ_block)
        elif merge_prev:
            prev_block.size += curr_block.size
        elif merge_succ:
            self._explicit_list.remove(succ_block)
            succ_block.start -= curr_block.size
            succ_block.size += curr_block.size
            self._explicit_list.add(succ_block)
        return merge_prev or merge_succ

    @_lmcache_nvtx_annotate
    @synchronized("_lock")
    def allocate(self, size: int) -> tuple[int, int]:
        aligned_size = self.compute_aligned_size(size)
        for block in self._explicit_list:
            if block.size >= aligned_size:
                break
        else:
            logger.warning(
                "Failed to allocate memory block of size %d "
                "because no memory is available",
                size,
            )
            raise RuntimeError(
                f"Failed to allocate memory block of size {size} "
                "because no memory is available"
            )
        self._explicit_list.remove(block)
        if block.size > aligned_size:
            self._explicit_list.add(
                FreeBlock(start=block.start + aligned_size, size=block.size - aligned_size)
            )
        self.total_allocated_size += aligned_size
        return block.start, aligned_size

    @_lmcache_nvtx_annotate
    @synchronized("_lock")
    def batched_allocate(self, size: int, batch_size: int) -> list[tuple[int, int]]:
        aligned_size = self.compute_aligned_size(size)
        remaining = batch_size
        result: list[tuple[int, int]] = []
        to_remove: list[FreeBlock] = []
        to_add: list[FreeBlock] = []
        for block in self._explicit_list:
            if remaining <= 0:
                break
            if block.size < aligned_size:
                continue
            n = min(remaining, block.size // aligned_size)
            for i in range(n):
                result.append((block.start + i * aligned_size, aligned_size))
            remaining -= n
            to_remove.append(block)
            used = n * aligned_size
            if block.size > used:
                to_add.append(FreeBlock(start=block.start + used, size=block.size - used))
        if remaining > 0:
            logger.warning(
                "Failed to batched allocate %d memory blocks of size %d "
                "because no enough memory is available (short by %d blocks)",
                batch_size,
                size,
                remaining,
            )
            raise RuntimeError(
                f"Failed to batched allocate {batch_size} memory blocks "
                f"of size {size} because no enough memory is available"
            )
        for block in to_remove:
            self._explicit_list.remove(block)
        for block in to_add:
            self._explicit_list.add(block)
        self.total_allocated_size += aligned_size * batch_size
        return result

    @_lmcache_nvtx_annotate
    @synchronized("_lock")
    def free(self, address: int, size: int):
        new_block = FreeBlock(start=address, size=size)
        index = self._explicit_list.bisect_left(new_block)
        prev_block = self._explicit_list[index - 1] if index > 0 else None
        succ_block = (
            self._explicit_list[index] if index < len(self._explicit_list) else None
        )
        if not self._coalesce(new_block, prev_block, succ_block):
            self._explicit_list.add(new_block)
        self.total_allocated_size -= size

    def get_heap_size(self) -> int:
        return self._size

    def get_free_size(self) -> int:
        return self._size - self.total_allocated_size

    def check_consistency(self) -> bool:
        for prev, succ in zip(
            self._explicit_list[:-1], self._explicit_list[1:], strict=False
        ):
            if prev.can_be_coalesced(succ):
                return False
        total_free = sum(block.size for block in self._explicit_list)
        return total_free + self.total_allocated_size == self._size


__all__ = [
    "AddressManager",
    "BytesBufferMemoryObj",
    "FreeBlock",
    "MemoryAllocatorInterface",
    "MemoryFormat",
    "MemoryObj",
    "MemoryObjMetadata",
    "TensorMemoryObj",
    "dtype_itemsize",
    "get_size_bytes",
]
