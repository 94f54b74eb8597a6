# SPDX-License-Identifier: Apache-2.0
"""Stand-in for the records of LMCache's ``lmcache.v1.distributed.config``:
``EvictionConfig``, ``L1MemoryManagerConfig`` (with its consistency checks),
``L1ManagerConfig`` and ``StorageManagerConfig``.

Only LMCache's StorageManager consumes these, and it is not stood in, so the
command-line parsing, the tagged multi-L1 configurations, GDS L1 and the
hybrid Device-DAX L1 inference are left out.
"""

# Standard
from dataclasses import dataclass, field
from typing import Literal
import os

# Third Party
import torch

# First Party
from lmcache.logging import init_logger
from lmcache.v1.distributed.l2_adapters.config import L2AdaptersConfig

logger = init_logger(__name__)


@dataclass
class L1MemoryManagerConfig:
    """The configuration for L1 memory manager."""

    size_in_bytes: int
    use_lazy: bool
    init_size_in_bytes: int = field(default=20 << 30)
    align_bytes: int = field(default=0x1000)
    shm_name: str = field(default_factory=lambda: f"lmcache_l1_pool_{os.getpid()}")
    use_hugepages: bool = False
    devdax_path: str | None = None
    devdax_size_in_bytes: int = 0

    def __post_init__(self):
        self.init_size_in_bytes = min(self.init_size_in_bytes, self.size_in_bytes)
        if self.devdax_path is not None:
            self.devdax_path = self.devdax_path.strip()
        if self.devdax_size_in_bytes < 0:
            raise ValueError("devdax_size_in_bytes must be >= 0")
        if self.devdax_size_in_bytes and not self.devdax_path:
            raise ValueError("devdax_size_in_bytes requires devdax_path")
        if self.devdax_path and self.use_lazy:
            raise ValueError(
                "l1-devdax-path requires lazy allocation to be disabled. "
                "Please set --no-l1-use-lazy."
            )
        if self.devdax_path and self.shm_name:
            raise ValueError(
                'l1-devdax-path requires SHM to be disabled. Please set --shm-name "".'
            )
        if self.use_hugepages and self.shm_name:
            raise ValueError(
                "l1-use-hugepages is incompatible with shared memory. "
                'Please set --shm-name "" to disable SHM when enabling hugepages.'
            )
        if self.use_hugepages and self.use_lazy:
            raise ValueError(
                "l1-use-hugepages requires eager pre-allocation and is "
                "incompatible with lazy allocation. Please set "
                "--no-l1-use-lazy when enabling hugepages."
            )
        # Lazy allocation needs memory pinning (an accelerator).
        if self.use_lazy and not torch.cuda.is_available():
            logger.warning(
                "LazyMemoryAllocator requires memory pinning which is not "
                "supported on the current backend. Disabling l1-use-lazy."
            )
            self.use_lazy = False


@dataclass
class L1ManagerConfig:
    """Special config for the L1 Object/Key manager"""

    memory_config: L1MemoryManagerConfig
    write_ttl_seconds: int = field(default=600)
    read_ttl_seconds: int = field(default=300)


@dataclass
class EvictionConfig:
    """The configuration for eviction policies (L1 and optionally L2)."""

    eviction_policy: Literal["LRU", "ARC", "IsolatedLRU", "noop"]
    trigger_watermark: float = field(default=0.8)
    eviction_ratio: float = field(default=0.2)
    extra_logging_enabled: bool = field(default=False)
    extra_logging_interval: float = field(default=10.0)


@dataclass
class StorageManagerConfig:
    """The configuration for the distributed storage manager."""

    l1_manager_config: L1ManagerConfig
    eviction_config: EvictionConfig
    l2_adapter_config: L2AdaptersConfig = field(
        default_factory=lambda: L2AdaptersConfig([])
    )
    store_policy: str = "default"
    prefetch_policy: str = "default"
    prefetch_max_in_flight: int = 8
    periodic_notifier_interval_ms: int = 5
