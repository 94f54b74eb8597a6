# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``AdHocMemoryAllocator``: every ``allocate`` makes
a fresh tensor (finite random values for floating dtypes, zeros otherwise)
wrapped in a ``TensorMemoryObj`` with ``ref_count == 1``; freeing is a no-op
and batched allocation is unsupported, as in LMCache."""

# Standard
from typing import List, Optional, Union

# Third Party
import torch

# First Party
from lmcache.utils import _lmcache_nvtx_annotate
from lmcache.v1.memory_management import (
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
    MemoryObjMetadata,
    TensorMemoryObj,
)


class AdHocMemoryAllocator(MemoryAllocatorInterface):
    """A test allocator that makes a new tensor per allocation."""

    def __init__(self, device: str = "cpu") -> None:
        if not torch.cuda.is_available():
            self.device = "cpu"
        else:
            self.device = device

    @_lmcache_nvtx_annotate
    def allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        allocator_type: Optional[str] = None,
    ) -> Optional[MemoryObj]:
        shapes, dtypes = self._adapt_shapes_and_dtypes(shapes, dtypes)
        # Finite content, so round-trip torch.equal() checks cannot trip on
        # NaN bit patterns left in uninitialized memory.
        parts = [
            (
                torch.randn(shape, dtype=torch.float32, device=self.device).to(dtype)
                if dtype.is_floating_point
                else torch.zeros(shape, dtype=dtype, device=self.device)
            )
            .reshape(-1)
            .view(torch.uint8)
            for shape, dtype in zip(shapes, dtypes, strict=False)
        ]
        raw_data = (
            torch.cat(parts)
            if parts
            else torch.empty(torch.Size([0]), dtype=torch.uint8, device=self.device)
        )
        return TensorMemoryObj(
            raw_data=raw_data,
            metadata=MemoryObjMetadata(
                shape=shapes[0],
                dtype=dtypes[0],
                address=0,
                phy_size=0,
                ref_count=1,
                pin_count=0,
                fmt=fmt,
                shapes=shapes,
                dtypes=dtypes,
            ),
            parent_allocator=self,
        )

    def batched_allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        allocator_type: Optional[str] = None,
    ) -> Optional[List[MemoryObj]]:
        raise NotImplementedError(
            "Batched allocation is not supported in AdHocMemoryAllocator"
        )

    def free(self, memory_obj: MemoryObj, allocator_type: Optional[str] = None) -> None:
        pass

    def batched_free(
        self,
        memory_objs: List[MemoryObj],
        allocator_type: Optional[str] = None,
        update_stats: bool = True,
    ) -> None:
        pass

    def ref_count_up(self, memory_obj: MemoryObj) -> None:
        pass

    def ref_count_down(self, memory_obj: MemoryObj) -> None:
        pass

    def get_ref_count(self, memory_obj: MemoryObj) -> int:
        return 0

    def memcheck(self) -> bool:
        return True

    def __str__(self) -> str:
        return "AdHocMemoryAllocator"
