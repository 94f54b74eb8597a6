# SPDX-License-Identifier: Apache-2.0
"""libdaxkv's L2 adapter under the names of LMCache's ``dax`` adapter module.

LMCache's adapter tests build ``DaxL2Adapter(DaxL2AdapterConfig(devices=
[DaxDeviceConfig(...)], slot_bytes=..., ...))``. With the harness's
``--core daxkv-l2`` this module stands where LMCache's
``lmcache.v1.distributed.l2_adapters.dax_l2_adapter`` would, so those test
bodies drive ``daxkv.lmcache.l2.DaxkvL2Adapter``: the constructor arguments
are LMCache's, everything else is daxkv's adapter as LMCache's plugin loader
builds it. Tests that reach into the internals of LMCache's adapter
(``_core``, ``_devices``, ``_key_to_device``, ``_device_lock``) are
deselected by the harness.
"""

# Standard
from dataclasses import dataclass
import os

# First Party
from daxkv.lmcache.l2 import DaxkvL2Adapter, DaxkvL2AdapterConfig
from lmcache.v1.distributed.l2_adapters.config import register_l2_adapter_type
from lmcache.v1.distributed.l2_adapters.factory import register_l2_adapter_factory


@dataclass(frozen=True)
class DaxDeviceConfig:
    """LMCache's per-device record."""

    device_path: str
    max_dax_size_gb: float

    @property
    def max_dax_size_bytes(self) -> int:
        return int(self.max_dax_size_gb * 1024**3)


class DaxL2AdapterConfig(DaxkvL2AdapterConfig):
    """daxkv's adapter config, built from LMCache's constructor arguments."""

    def __init__(
        self,
        *,
        slot_bytes: int,
        devices: list,
        hotplug_enabled: bool = False,
        num_store_workers: int = 1,
        num_lookup_workers: int = 1,
        num_load_workers: int = min(4, os.cpu_count() or 1),
    ) -> None:
        del num_store_workers, num_lookup_workers  # one engine serves all tasks
        super().__init__(
            slot_bytes=slot_bytes,
            devices=[(d.device_path, d.max_dax_size_bytes) for d in devices],
            hotplug_enabled=hotplug_enabled,
            store_options={"workers": num_load_workers},
        )


class DaxL2Adapter(DaxkvL2Adapter):
    """daxkv's adapter, unchanged."""


register_l2_adapter_type("dax", DaxL2AdapterConfig)
register_l2_adapter_factory("dax", lambda config, l1_memory_desc=None: DaxL2Adapter(config))
