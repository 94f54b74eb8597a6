# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``TensorMemoryAllocator``: carves aligned blocks
out of one flat tensor through an ``AddressManager``; ``allocate`` returns
``None`` when no block fits; ``free`` returns the block and invalidates the
object.  (LMCache's stats-monitor updates are left out.)"""

# Standard
from typing import List, Optional, Union

# Third Party
import torch

# First Party
from lmcache.logging import init_logger
from lmcache.utils import _lmcache_nvtx_annotate
from lmcache.v1.memory_management import (
    AddressManager,
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
    MemoryObjMetadata,
    TensorMemoryObj,
    get_size_bytes,
)

logger = init_logger(__name__)


class TensorMemoryAllocator(MemoryAllocatorInterface):
    """Implements an "explicit list" memory allocator."""

    def __init__(
        self,
        tensor: torch.Tensor,
        align_bytes: int = AddressManager.ALIGN_BYTES,
        init_address_space: int | None = None,
    ):
        self.buffer = tensor.view(torch.uint8).flatten()
        self.address_manager = AddressManager(
            self.buffer.numel() if init_address_space is None else init_address_space,
            align_bytes,
        )
        self.num_active_allocations = 0

    @property
    def total_allocated_size(self) -> int:
        return self.address_manager.total_allocated_size

    @_lmcache_nvtx_annotate
    def allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        allocator_type: Optional[str] = None,
    ) -> Optional[TensorMemoryObj]:
        shapes, dtypes = self._adapt_shapes_and_dtypes(shapes, dtypes)
        raw_size = get_size_bytes(shapes, dtypes)
        try:
            block_start, aligned_size = self.address_manager.allocate(raw_size)
        except RuntimeError:
            return None
        self.num_active_allocations += 1
        raw_data = self._get_buffer_slice(block_start, raw_size)
        return TensorMemoryObj(
            raw_data=raw_data,
            metadata=MemoryObjMetadata(
                shapes[0],
                dtypes[0],
                block_start,
                aligned_size,
                1,
                0,
                fmt,
                shapes=shapes,
                dtypes=dtypes,
            ),
            parent_allocator=self,
        )

    def _get_buffer_slice(self, start: int, size: int) -> torch.Tensor:
        return self.buffer[start : start + size]

    @_lmcache_nvtx_annotate
    def batched_allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        allocator_type: Optional[str] = None,
    ) -> Optional[List[TensorMemoryObj]]:
        """Batched allocate tensor memory objs with equal sizes."""
        shapes, dtypes = self._adapt_shapes_and_dtypes(shapes, dtypes)
        unit_raw_size = get_size_bytes(shapes, dtypes)
        unit_aligned_size = self.address_manager.compute_aligned_size(unit_raw_size)
        try:
            results = self.address_manager.batched_allocate(unit_aligned_size, batch_size)
        except RuntimeError:
            return None
        self.num_active_allocations += batch_size
        objs = []
        for address, _ in results:
            objs.append(
                TensorMemoryObj(
                    raw_data=self._get_buffer_slice(address, unit_aligned_size),
                    metadata=MemoryObjMetadata(
                        shapes[0],
                        dtypes[0],
                        address,
                        unit_aligned_size,
                        1,
                        0,
                        fmt,
                        shapes=shapes,
                        dtypes=dtypes,
                    ),
                    parent_allocator=self,
                )
            )
        return objs

    @_lmcache_nvtx_annotate
    def free(self, memory_obj: MemoryObj, allocator_type: Optional[str] = None):
        if not memory_obj.is_valid():
            return
        self.address_manager.free(memory_obj.meta.address, memory_obj.meta.phy_size)
        memory_obj.invalidate()
        self.num_active_allocations -= 1

    @_lmcache_nvtx_annotate
    def batched_free(
        self,
        memory_objs: List[MemoryObj],
        allocator_type: Optional[str] = None,
        update_stats: bool = True,
    ):
        if not memory_objs:
            return
        memory_objs.sort(key=lambda x: x.meta.address)
        for memory_obj in memory_objs:
            if not memory_obj.is_valid():
                logger.warning("Trying to free an invalidated MemoryObj")
                continue
            memory_obj.invalidate()
            self.address_manager.free(memory_obj.meta.address, memory_obj.meta.phy_size)
            self.num_active_allocations -= 1

    def memcheck(self):
        clear = True
        total_free_size = self.address_manager.get_free_size()
        if (
            total_free_size + self.address_manager.total_allocated_size
            != self.address_manager.get_heap_size()
        ):
            logger.error("Memory allocator size is inconsistent")
            clear = False
        if not self.address_manager.check_consistency():
            logger.error("Memory allocator has non-coalesced blocks")
            clear = False
        return clear

    def __str__(self):
        return "TensorMemoryAllocator"
