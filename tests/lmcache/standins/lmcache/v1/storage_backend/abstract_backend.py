# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.storage_backend.abstract_backend``:
``StorageBackendInterface``, ``AllocatorBackendInterface`` and
``StoragePluginInterface`` with LMCache's abstract methods and default
implementations (docstrings shortened)."""

# Standard
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Union
import abc
import asyncio

# Third Party
import torch

# First Party
from lmcache import torch_device_type
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.memory_management import (
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
)
from lmcache.v1.metadata import LMCacheMetadata

if TYPE_CHECKING:
    # First Party
    from lmcache.v1.storage_backend import LocalCPUBackend


class StorageBackendInterface(metaclass=abc.ABCMeta):
    def __init__(self, dst_device: str = torch_device_type):
        """:raise: RuntimeError if the device is not valid"""
        torch.device(dst_device)
        self.dst_device = dst_device

    @abc.abstractmethod
    def contains(self, key: CacheEngineKey, pin: bool = False) -> bool: ...

    @abc.abstractmethod
    def exists_in_put_tasks(self, key: CacheEngineKey) -> bool: ...

    @abc.abstractmethod
    def batched_submit_put_task(
        self,
        keys: Sequence[CacheEngineKey],
        objs: List[MemoryObj],
        transfer_spec: Any = None,
        on_complete_callback: Optional[Callable[[CacheEngineKey], None]] = None,
    ) -> Union[List[Future], None]: ...

    async def async_batched_submit_put_task(
        self,
        keys: Sequence[CacheEngineKey],
        objs: List[MemoryObj],
        transfer_spec: Any = None,
        on_complete_callback: Optional[Callable[[CacheEngineKey], None]] = None,
    ) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def get_blocking(self, key: CacheEngineKey) -> Optional[MemoryObj]: ...

    def get_non_blocking(
        self, key: CacheEngineKey, location: Optional[str] = None
    ) -> Optional[Future]:
        raise NotImplementedError

    async def batched_async_contains(
        self, lookup_id: str, keys: List[CacheEngineKey], pin: bool = False
    ) -> int:
        raise NotImplementedError

    async def batched_get_non_blocking(
        self, lookup_id: str, keys: list[CacheEngineKey], transfer_spec: Any = None
    ) -> list[MemoryObj]:
        raise NotImplementedError

    def batched_get_blocking(
        self, keys: List[CacheEngineKey]
    ) -> List[Optional[MemoryObj]]:
        return [self.get_blocking(key) for key in keys]

    @abc.abstractmethod
    def pin(self, key: CacheEngineKey) -> bool: ...

    @abc.abstractmethod
    def unpin(self, key: CacheEngineKey) -> bool: ...

    @abc.abstractmethod
    def remove(self, key: CacheEngineKey, force: bool = True) -> bool: ...

    def batched_remove(self, keys: list[CacheEngineKey], force: bool = True) -> int:
        num_removed = 0
        for key in keys:
            num_removed += self.remove(key, force=force)
        return num_removed

    @abc.abstractmethod
    def get_allocator_backend(self) -> "AllocatorBackendInterface": ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def batched_contains(self, keys: List[CacheEngineKey], pin: bool = False) -> int:
        hit_chunks = 0
        for key in keys:
            if not self.contains(key, pin):
                break
            hit_chunks += 1
        return hit_chunks

    def touch_cache(self) -> None:
        raise NotImplementedError

    def cancel_request(self, req_id: str) -> None:
        return


class AllocatorBackendInterface(StorageBackendInterface):
    """A storage backend that can allocate memory objects itself."""

    @abc.abstractmethod
    def initialize_allocator(
        self, config: LMCacheEngineConfig, metadata: LMCacheMetadata
    ) -> MemoryAllocatorInterface: ...

    @abc.abstractmethod
    def get_memory_allocator(self) -> MemoryAllocatorInterface: ...

    @abc.abstractmethod
    def allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        eviction: bool = True,
        busy_loop: bool = True,
    ) -> Optional[MemoryObj]: ...

    @abc.abstractmethod
    def batched_allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        eviction: bool = True,
        busy_loop: bool = True,
    ) -> Optional[list[MemoryObj]]: ...

    def calculate_chunk_budget(self) -> int:
        raise NotImplementedError


class StoragePluginInterface(StorageBackendInterface):
    """Base of storage backends loaded from configuration
    (``storage_plugins`` + ``extra_config['storage_plugin.<name>.*']``)."""

    def __init__(
        self,
        dst_device: str = torch_device_type,
        config: Optional[LMCacheEngineConfig] = None,
        metadata: Optional[LMCacheMetadata] = None,
        local_cpu_backend: Optional["LocalCPUBackend"] = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ):
        super().__init__(dst_device=dst_device)
        self.config = config
        self.metadata = metadata
        self.local_cpu_backend = local_cpu_backend
        self.loop = loop


# Alias for backwards compatibility
ConfigurableStorageBackendInterface = StoragePluginInterface
