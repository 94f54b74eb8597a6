# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.distributed.l2_adapters`` package
module: built-in adapter modules (``*_l2_adapter``) are discovered with
``pkgutil`` and registered for deferred import; ``create_l2_adapter`` goes
through the factory registry."""

# Standard
import pkgutil

# First Party
from lmcache.v1.distributed.internal_api import L1MemoryDesc
from lmcache.v1.distributed.l2_adapters.base import L2AdapterInterface
from lmcache.v1.distributed.l2_adapters.config import L2AdapterConfigBase
from lmcache.v1.distributed.l2_adapters.factory import (
    add_pending_module,
    create_l2_adapter_from_registry,
)

for _finder, _module_name, _ispkg in pkgutil.iter_modules(__path__):
    if _module_name.endswith("_l2_adapter"):
        add_pending_module(f"{__name__}.{_module_name}")


def create_l2_adapter(
    config: L2AdapterConfigBase,
    l1_memory_desc: L1MemoryDesc | None = None,
) -> L2AdapterInterface:
    """Create an L2 adapter from its config via the factory registry."""
    return create_l2_adapter_from_registry(config, l1_memory_desc=l1_memory_desc)


__all__ = [
    "L2AdapterInterface",
    "L2AdapterConfigBase",
    "create_l2_adapter",
]
