# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``LocalCPUBackend``: the L1 CPU hot cache and the
allocator backend that other backends (DaxBackend among them) allocate
their read buffers from.

Kept from LMCache: the hot cache with an LRU policy (``OrderedDict``;
``can_evict`` objects are evicted oldest first), ``allocate`` /
``batched_allocate`` with the default format chosen from the layerwise and
blending settings and the evict-and-retry loop (``busy_loop`` retries every
``local_cpu.evict_retry_interval_ms`` until ``local_cpu.evict_max_wait_ms``,
0 meaning forever), the put/get/pin/remove calls, and
``get_full_chunk_size_bytes`` computed from the metadata's KV shape.

Left out: the background evictor thread (it only pre-empts the same
eviction the allocate loop does), the controller message sender, KV events,
Prometheus metrics and the stats monitor; ``initialize_allocator`` makes a
plain ``MixedMemoryAllocator`` (no NUMA, paged, NIXL or io_uring variants).
"""

# Standard
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable, List, Optional, Sequence, Union
import threading
import time

# Third Party
import torch

# First Party
from lmcache import torch_device_type
from lmcache.logging import init_logger
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.memory_allocators.mixed_memory_allocator import MixedMemoryAllocator
from lmcache.v1.memory_management import (
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
    dtype_itemsize,
)
from lmcache.v1.metadata import LMCacheMetadata
from lmcache.v1.storage_backend.abstract_backend import AllocatorBackendInterface

logger = init_logger(__name__)


class _LRUCachePolicy:
    """LMCache's LRU cache policy: an ordered mapping, oldest first."""

    def init_mutable_mapping(self) -> "OrderedDict[CacheEngineKey, MemoryObj]":
        return OrderedDict()

    def update_on_hit(self, key, cache_dict) -> None:
        cache_dict.move_to_end(key)

    def update_on_put(self, key) -> None:
        pass

    def update_on_force_evict(self, key) -> None:
        pass

    def get_evict_candidates(self, cache_dict, num_candidates: int = 1) -> list:
        evict_keys = []
        for key, cache in cache_dict.items():
            if not cache.can_evict:
                continue
            evict_keys.append(key)
            if len(evict_keys) == num_candidates:
                break
        return evict_keys


def get_cache_policy(name: str) -> _LRUCachePolicy:
    if name != "LRU":
        raise NotImplementedError(f"cache policy {name!r} is not stood in (only LRU)")
    return _LRUCachePolicy()


class LocalCPUBackend(AllocatorBackendInterface):
    """The CPU hot cache and allocator backend."""

    def __init__(
        self,
        config: LMCacheEngineConfig,
        metadata: Optional[LMCacheMetadata] = None,
        dst_device: str = torch_device_type,
        lmcache_worker: Optional[Any] = None,
        memory_allocator: Optional[MemoryAllocatorInterface] = None,
        global_kvclient: Optional[Any] = None,
    ):
        super().__init__(dst_device if torch.cuda.is_available() else "cpu")
        self.cache_policy = get_cache_policy(config.cache_policy)
        self.hot_cache = self.cache_policy.init_mutable_mapping()
        self.use_hot = config.local_cpu
        assert metadata is not None or memory_allocator is not None
        self.memory_allocator = (
            self.initialize_allocator(config, metadata)  # type: ignore[arg-type]
            if memory_allocator is None
            else memory_allocator
        )
        self.lmcache_worker = lmcache_worker
        self.instance_id = config.lmcache_instance_id
        self.cpu_lock = threading.Lock()
        self.layerwise = config.use_layerwise
        self.enable_blending = config.enable_blending
        self.config = config
        self.metadata = metadata
        self.global_kvclient = global_kvclient
        self.keys_in_request: List[CacheEngineKey] = []
        self.evict_retry_interval_ms = max(
            1,
            int(config.get_extra_config_value("local_cpu.evict_retry_interval_ms", 100)),
        )
        self.evict_max_wait_ms = max(
            0, int(config.get_extra_config_value("local_cpu.evict_max_wait_ms", 0))
        )
        self.evict_batch_candidates = max(
            1, int(config.get_extra_config_value("local_cpu.evict_batch_candidates", 16))
        )

    def __str__(self):
        return self.__class__.__name__

    def contains(self, key: CacheEngineKey, pin: bool = False) -> bool:
        with self.cpu_lock:
            if key not in self.hot_cache:
                return False
            if pin:
                self.hot_cache[key].pin()
                self.keys_in_request.append(key)
            return True

    def touch_cache(self):
        with self.cpu_lock:
            for key in reversed(self.keys_in_request):
                self.cache_policy.update_on_hit(key, self.hot_cache)
            self.keys_in_request = []

    def exists_in_put_tasks(self, key: CacheEngineKey) -> bool:
        return False

    def submit_put_task(
        self,
        key: CacheEngineKey,
        memory_obj: MemoryObj,
        on_complete_callback: Optional[Callable[[CacheEngineKey], None]] = None,
    ) -> Optional[Future]:
        with self.cpu_lock:
            if key in self.hot_cache:
                return None
            memory_obj.ref_count_up()
            self.hot_cache[key] = memory_obj
            self.cache_policy.update_on_put(key)
        if on_complete_callback is not None:
            try:
                on_complete_callback(key)
            except Exception as e:
                logger.warning("on_complete_callback failed for key %s: %s", key, e)
        return None

    def batched_submit_put_task(
        self,
        keys: Sequence[CacheEngineKey],
        memory_objs: List[MemoryObj],
        transfer_spec: Any = None,
        on_complete_callback: Optional[Callable[[CacheEngineKey], None]] = None,
    ) -> None:
        if not self.use_hot:
            return
        for key, memory_obj in zip(keys, memory_objs, strict=False):
            self.submit_put_task(key, memory_obj, on_complete_callback=on_complete_callback)

    def get_blocking(self, key: CacheEngineKey) -> Optional[MemoryObj]:
        with self.cpu_lock:
            if key not in self.hot_cache:
                return None
            memory_obj = self.hot_cache[key]
            memory_obj.ref_count_up()
            return memory_obj

    async def batched_get_non_blocking(
        self, lookup_id: str, keys: list[CacheEngineKey], transfer_spec: Any = None
    ) -> list[MemoryObj]:
        mem_objs = []
        with self.cpu_lock:
            for key in keys:
                mem_obj = self.hot_cache[key]
                mem_obj.ref_count_up()
                mem_objs.append(mem_obj)
        return mem_objs

    async def batched_async_contains(
        self, lookup_id: str, keys: List[CacheEngineKey], pin: bool = False
    ) -> int:
        num_hit_chunks = 0
        with self.cpu_lock:
            for key in keys:
                if key not in self.hot_cache:
                    return num_hit_chunks
                if pin:
                    self.hot_cache[key].pin()
                    self.keys_in_request.append(key)
                num_hit_chunks += 1
        return num_hit_chunks

    def pin(self, key: CacheEngineKey) -> bool:
        with self.cpu_lock:
            if key not in self.hot_cache:
                return False
            self.hot_cache[key].pin()
            return True

    def unpin(self, key: CacheEngineKey) -> bool:
        with self.cpu_lock:
            if key not in self.hot_cache:
                return False
            self.hot_cache[key].unpin()
            return True

    def remove(self, key: CacheEngineKey, force: bool = True) -> bool:
        if force:
            with self.cpu_lock:
                memory_obj = self.hot_cache.pop(key, None)
                if memory_obj is None:
                    return False
                self.cache_policy.update_on_force_evict(key)
        else:
            memory_obj = self.hot_cache.pop(key, None)
            if memory_obj is None:
                return False
        memory_obj.ref_count_down()
        return True

    def batched_remove(self, keys: list[CacheEngineKey], force: bool = True) -> int:
        if not keys:
            return 0
        removed: list[MemoryObj] = []
        if force:
            with self.cpu_lock:
                for key in keys:
                    memory_obj = self.hot_cache.pop(key, None)
                    if memory_obj is None:
                        continue
                    self.cache_policy.update_on_force_evict(key)
                    removed.append(memory_obj)
        else:
            for key in keys:
                memory_obj = self.hot_cache.pop(key, None)
                if memory_obj is not None:
                    removed.append(memory_obj)
        for memory_obj in removed:
            memory_obj.ref_count_down()
        return len(removed)

    def initialize_allocator(
        self, config: LMCacheEngineConfig, metadata: Optional[LMCacheMetadata] = None
    ) -> MemoryAllocatorInterface:
        return MixedMemoryAllocator(int(config.max_local_cpu_size * 1024**3))

    def _evict_once(self, num_candidates: int, layer_batch_size: Optional[int] = None):
        if not self.use_hot:
            return 0, 0
        with self.cpu_lock:
            evict_keys = self.cache_policy.get_evict_candidates(
                self.hot_cache, num_candidates=num_candidates
            )
            detached: list[MemoryObj] = []
            for evict_key in evict_keys:
                keys = (
                    evict_key.split_layers(layer_batch_size)
                    if layer_batch_size is not None
                    else [evict_key]
                )
                for key in keys:
                    memory_obj = self.hot_cache.get(key)
                    if memory_obj is None:
                        self.cache_policy.update_on_force_evict(key)
                        continue
                    if not memory_obj.can_evict:
                        continue
                    self.hot_cache.pop(key, None)
                    self.cache_policy.update_on_force_evict(key)
                    detached.append(memory_obj)
        for memory_obj in detached:
            memory_obj.ref_count_down()
        return len(detached), len(evict_keys)

    def _wait_for_retry(self, started_at: float, busy_loop: bool) -> bool:
        if not busy_loop:
            logger.debug("Not busy looping because we are not immediately able to evict")
            return False
        elapsed_ms = (time.monotonic() - started_at) * 1000
        if self.evict_max_wait_ms > 0 and elapsed_ms >= self.evict_max_wait_ms:
            logger.warning(
                "Stop waiting for local cpu eviction after %.2fms (max=%dms)",
                elapsed_ms,
                self.evict_max_wait_ms,
            )
            return False
        wait_seconds = self.evict_retry_interval_ms / 1000.0
        logger.warning(
            "No eviction candidates found in local cpu backend. "
            "Local cpu memory is under pressure. Waiting for %.3f seconds.",
            wait_seconds,
        )
        time.sleep(wait_seconds)
        return True

    def _default_fmt(self) -> MemoryFormat:
        if self.layerwise:
            return MemoryFormat.KV_2TD if self.enable_blending else MemoryFormat.KV_T2D
        return MemoryFormat.KV_2LTD

    def allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        fmt: Optional[MemoryFormat] = None,
        eviction: bool = True,
        busy_loop: bool = True,
    ) -> Optional[MemoryObj]:
        """Allocate a memory object, evicting from the hot cache if needed."""
        if fmt is None:
            fmt = self._default_fmt()
        memory_obj = self.memory_allocator.allocate(shapes, dtypes, fmt)
        if memory_obj is not None or not eviction:
            return memory_obj
        started_at = time.monotonic()
        while True:
            evicted_count, _ = self._evict_once(self.evict_batch_candidates)
            if evicted_count == 0 and not self._wait_for_retry(started_at, busy_loop):
                break
            memory_obj = self.memory_allocator.allocate(shapes, dtypes, fmt)
            if memory_obj is not None:
                break
        return memory_obj

    def batched_allocate(
        self,
        shapes: Union[torch.Size, list[torch.Size]],
        dtypes: Union[torch.dtype, list[torch.dtype]],
        batch_size: int,
        fmt: Optional[MemoryFormat] = None,
        eviction: bool = True,
        busy_loop: bool = True,
    ) -> Optional[List[MemoryObj]]:
        """Allocate ``batch_size`` equal objects, evicting if needed."""
        if fmt is None:
            fmt = self._default_fmt()
        memory_objs = self.memory_allocator.batched_allocate(shapes, dtypes, batch_size, fmt)
        if memory_objs is not None or not eviction:
            return memory_objs
        started_at = time.monotonic()
        while True:
            evicted_count, _ = self._evict_once(
                self.evict_batch_candidates, layer_batch_size=batch_size
            )
            if evicted_count == 0 and not self._wait_for_retry(started_at, busy_loop):
                break
            memory_objs = self.memory_allocator.batched_allocate(
                shapes, dtypes, batch_size, fmt
            )
            if memory_objs is not None:
                break
        return memory_objs

    def get_full_chunk_size_bytes(self) -> int:
        """Bytes of one full LMCache chunk for this rank."""
        assert self.metadata is not None, "metadata required for chunk budget calculation"
        chunk_tokens = self.config.chunk_size
        # [num_layers, kv_size, chunk_size, num_heads, head_size]
        kv_shape = self.metadata.kv_shape
        num_layers, kv_size = kv_shape[0], kv_shape[1]
        hidden_dim = kv_shape[3] * kv_shape[4]
        dtype_size = dtype_itemsize(self.metadata.kv_dtype)
        if self.layerwise:
            return chunk_tokens * kv_size * hidden_dim * dtype_size
        return kv_size * num_layers * chunk_tokens * hidden_dim * dtype_size

    def calculate_chunk_budget(self) -> int:
        total_memory = int(self.config.max_local_cpu_size * 1024**3)
        chunk_bytes = self.get_full_chunk_size_bytes()
        assert hasattr(self.memory_allocator, "align_bytes")
        alignment = self.memory_allocator.align_bytes
        aligned_chunk_bytes = ((chunk_bytes + alignment - 1) // alignment) * alignment
        return total_memory // aligned_chunk_bytes

    def get_keys(self) -> List[CacheEngineKey]:
        with self.cpu_lock:
            return list(self.hot_cache.keys())

    def clear(self) -> int:
        if not self.use_hot:
            return 0
        clear_keys = []
        num_cleared_tokens = 0
        with self.cpu_lock:
            for key, memory_obj in self.hot_cache.items():
                if not memory_obj.can_evict:
                    continue
                clear_keys.append(key)
                num_cleared_tokens += memory_obj.get_num_tokens()
        self.batched_remove(clear_keys)
        return num_cleared_tokens

    def get_allocator_backend(self):
        return self

    def get_memory_allocator(self):
        return self.memory_allocator

    def close(self) -> None:
        self.clear()
        self.memory_allocator.close()
