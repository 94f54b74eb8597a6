# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``MixedMemoryAllocator`` (the allocator LMCache's
test suite shares through its ``memory_allocator`` fixture): one host arena
with a ``TensorMemoryAllocator`` over it for the KV formats; objects it
hands out name the mixed allocator as their parent.

Left out: the paged variant (``use_paging``), hugepages, NUMA/shared-memory
arenas and the ``BINARY_BUFFER`` byte-buffer side (raises ``ValueError``
like any other unsupported format here).
"""

# Standard
from typing import List, Optional, Union
import threading

# Third Party
import torch

# First Party
from lmcache.utils import _lmcache_nvtx_annotate
from lmcache.v1.memory_allocators.tensor_memory_allocator import TensorMemoryAllocator
from lmcache.v1.memory_management import (
    AddressManager,
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
    TensorMemoryObj,
)
import lmcache.v1.memory_management as memory_management

_KV_FORMATS = (
    MemoryFormat.KV_2LTD,
    MemoryFormat.KV_2TD,
    MemoryFormat.KV_T2D,
    MemoryFormat.KV_MLA_FMT,
    MemoryFormat.EC_TD,
    MemoryFormat.HS_TD,
)


class MixedMemoryAllocator(MemoryAllocatorInterface):
    """Allocates memory in the pre-allocated host arena."""

    def __init__(
        self, size: int, use_paging: bool = False, use_hugepages: bool = False, **kwargs
    ) -> None:
        if use_paging:
            raise NotImplementedError("the paged MixedMemoryAllocator is not stood in")
        if use_hugepages:
            raise NotImplementedError("hugepage arenas are not stood in")
        self.align_bytes = kwargs.get("align_bytes", AddressManager.ALIGN_BYTES)
        if self.align_bytes <= 0 or self.align_bytes & (self.align_bytes - 1) != 0:
            raise ValueError("align_bytes must be a positive power of two")
        self.size = size
        self.buffer = memory_management._allocate_cpu_memory(size)
        self._unregistered = False
        self.pin_allocator = TensorMemoryAllocator(self.buffer, align_bytes=self.align_bytes)
        self.host_mem_lock = threading.Lock()

    @_lmcache_nvtx_annotate
    def allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        allocator_type: Optional[str] = None,
    ) -> Optional[MemoryObj]:
        if fmt not in _KV_FORMATS:
            raise ValueError(f"Unsupported memory format: {fmt}")
        with self.host_mem_lock:
            obj = self.pin_allocator.allocate(shapes, dtypes, fmt, str(self))
            if isinstance(obj, TensorMemoryObj):
                obj.parent_allocator = self
            return obj

    @_lmcache_nvtx_annotate
    def batched_allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        allocator_type: Optional[str] = None,
    ) -> Optional[List[MemoryObj]]:
        if fmt not in _KV_FORMATS:
            raise ValueError(f"Unsupported memory format: {fmt}")
        with self.host_mem_lock:
            objs = self.pin_allocator.batched_allocate(
                shapes, dtypes, batch_size, fmt, str(self)
            )
            if objs is not None:
                for obj in objs:
                    if isinstance(obj, TensorMemoryObj):
                        obj.parent_allocator = self
            return objs

    @_lmcache_nvtx_annotate
    def free(self, memory_obj: MemoryObj, allocator_type: Optional[str] = None) -> None:
        if memory_obj.meta.fmt not in _KV_FORMATS:
            raise ValueError(f"Unsupported memory format: {memory_obj.meta.fmt}")
        with self.host_mem_lock:
            self.pin_allocator.free(memory_obj)

    @_lmcache_nvtx_annotate
    def batched_free(
        self,
        memory_objs: List[MemoryObj],
        allocator_type: Optional[str] = None,
        update_stats: bool = True,
    ) -> None:
        if not memory_objs:
            return
        if memory_objs[0].meta.fmt not in _KV_FORMATS:
            raise ValueError(f"Unsupported memory format: {memory_objs[0].meta.fmt}")
        with self.host_mem_lock:
            self.pin_allocator.batched_free(memory_objs)

    def memcheck(self) -> bool:
        with self.host_mem_lock:
            return self.pin_allocator.memcheck()

    def close(self) -> None:
        """Release the owned host arena."""
        if not self._unregistered:
            if self.buffer.numel() == 0:
                return
            memory_management._free_cpu_memory(self.buffer)
            self._unregistered = True

    def __str__(self) -> str:
        return "MixedMemoryAllocator"
