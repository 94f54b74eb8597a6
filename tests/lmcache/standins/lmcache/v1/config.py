# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.config`` (``LMCacheEngineConfig``).

LMCache generates the config class from a table of several hundred settings
(``_CONFIG_DEFINITIONS``: name -> type, default, env name) and builds it with
``from_defaults(**kwargs)``, which takes each setting from ``kwargs`` or its
default (unknown keyword arguments are ignored).  Only the settings read by
the code under test are in the table here, with LMCache's defaults.
"""

# Standard
from dataclasses import dataclass, fields
from typing import Any, Optional

# First Party
from lmcache.logging import init_logger

logger = init_logger(__name__)

# name -> default (the subset of LMCache's settings this harness needs)
_CONFIG_DEFINITIONS: dict[str, dict[str, Any]] = {
    "chunk_size": {"type": int, "default": 256},
    "local_cpu": {"type": bool, "default": True},
    "max_local_cpu_size": {"type": float, "default": 5.0},
    "local_cpu_use_hugepages": {"type": bool, "default": False},
    "reserve_local_cpu_size": {"type": float, "default": 0.0},
    "local_disk": {"type": Optional[str], "default": None},
    "max_local_disk_size": {"type": float, "default": 0.0},
    "remote_url": {"type": Optional[str], "default": None},
    "remote_storage_plugins": {"type": Optional[list], "default": None},
    "use_layerwise": {"type": bool, "default": False},
    "enable_blending": {"type": bool, "default": False},
    "enable_p2p": {"type": bool, "default": False},
    "enable_pd": {"type": bool, "default": False},
    "cache_policy": {"type": str, "default": "LRU"},
    "lmcache_instance_id": {"type": str, "default": "lmcache_default_instance"},
    "storage_plugins": {"type": Optional[list], "default": None},
    "extra_config": {"type": Optional[dict], "default": None},
}


@dataclass
class LMCacheEngineConfig:
    chunk_size: int
    local_cpu: bool
    max_local_cpu_size: float
    local_cpu_use_hugepages: bool
    reserve_local_cpu_size: float
    local_disk: Optional[str]
    max_local_disk_size: float
    remote_url: Optional[str]
    remote_storage_plugins: Optional[list]
    use_layerwise: bool
    enable_blending: bool
    enable_p2p: bool
    enable_pd: bool
    cache_policy: str
    lmcache_instance_id: str
    storage_plugins: Optional[list]
    extra_config: Optional[dict]

    @classmethod
    def from_defaults(cls, **kwargs) -> "LMCacheEngineConfig":
        """Create configuration from defaults, overridden by ``kwargs``."""
        values = {
            name: kwargs.get(name, spec["default"])
            for name, spec in _CONFIG_DEFINITIONS.items()
        }
        return cls(**values).log_config()

    def log_config(self) -> "LMCacheEngineConfig":
        logger.info(
            "LMCache Configuration: %s",
            {f.name: getattr(self, f.name) for f in fields(self)},
        )
        return self

    def get_extra_config_value(self, key: str, default_value: Any = None) -> Any:
        if self.extra_config is not None:
            return self.extra_config.get(key, default_value)
        return default_value
