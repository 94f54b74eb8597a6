# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.storage_backend`` package module:
``storage_plugin_launcher`` (the loader of configured third-party storage
backends) and ``is_gpu_worker``, as in LMCache.  ``CreateStorageBackends``
(which builds LMCache's other backends) is left out."""

# Standard
from collections import OrderedDict
from typing import Optional
import asyncio
import importlib

# First Party
from lmcache.logging import init_logger
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.metadata import LMCacheMetadata
from lmcache.v1.storage_backend.abstract_backend import StorageBackendInterface
from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend

logger = init_logger(__name__)

__all__ = ["LocalCPUBackend", "is_gpu_worker", "storage_plugin_launcher"]


def is_gpu_worker(metadata: LMCacheMetadata) -> bool:
    """Whether the role is a worker and an accelerator is available."""
    # Third Party
    import torch

    return metadata.role != "scheduler" and torch.cuda.is_available()


def storage_plugin_launcher(
    config: LMCacheEngineConfig,
    metadata: LMCacheMetadata,
    loop: asyncio.AbstractEventLoop,
    local_cpu_backend: Optional[LocalCPUBackend],
    dst_device: str,
    storage_backends: "OrderedDict[str, StorageBackendInterface]",
) -> None:
    """Load the storage backends named in ``config.storage_plugins``.

    For each name, ``extra_config['storage_plugin.<name>.module_path']`` and
    ``['storage_plugin.<name>.class_name']`` select the class, which is
    constructed with ``config``, ``dst_device``, ``metadata``,
    ``local_cpu_backend`` and ``loop`` and stored under the name.  A plugin
    that fails to load or construct is logged and skipped.
    """
    storage_plugins = set(config.storage_plugins) if config.storage_plugins else set()
    if storage_plugins and not config.extra_config:
        logger.warning(
            "storage_plugins=%s is set but extra_config is empty; "
            "plugin settings must be provided under extra_config, e.g. "
            "extra_config.storage_plugin.<name>.module_path/class_name",
            sorted(storage_plugins),
        )
        return
    if not config.extra_config:
        return

    for storage_plugin in storage_plugins:
        try:
            module_path = config.extra_config.get(
                f"storage_plugin.{storage_plugin}.module_path"
            )
            class_name = config.extra_config.get(
                f"storage_plugin.{storage_plugin}.class_name"
            )
            if not module_path or not class_name:
                logger.warning(f"Backend {storage_plugin} missing module_path or class_name")
                continue
            module = importlib.import_module(module_path)
            backend_class = getattr(module, class_name)
            backend_instance = backend_class(
                config=config,
                dst_device=dst_device,
                metadata=metadata,
                local_cpu_backend=local_cpu_backend,
                loop=loop,
            )
            storage_backends[storage_plugin] = backend_instance
            logger.info(f"Created dynamic backend: {storage_plugin}")
        except Exception as e:
            logger.error(f"Failed to create backend {storage_plugin}: {str(e)}")
