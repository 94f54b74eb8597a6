# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``store_policy`` module of the storage controllers:
the store-policy registry with the ``default`` and ``skip_l1`` policies, and
``AdapterDescriptor``, the lightweight record (index, config, derived type
name) that policies and the storage manager use to tell adapters apart."""

# Standard
from abc import ABC, abstractmethod
from dataclasses import dataclass

# First Party
from lmcache.v1.distributed.api import ObjectKey
from lmcache.v1.distributed.l2_adapters.config import (
    L2AdapterConfigBase,
    get_type_name_for_config,
)


@dataclass(frozen=True)
class AdapterDescriptor:
    """Descriptor of one L2 adapter for store decisions."""

    index: int
    """Position in the L2 adapters list."""

    config: L2AdapterConfigBase
    """The adapter's configuration object."""

    @property
    def type_name(self) -> str:
        """Registered adapter type name, by reverse lookup of the config."""
        return get_type_name_for_config(self.config)


L2AdapterDescriptor = AdapterDescriptor


class StorePolicy(ABC):
    """Which adapters each stored key goes to, and which keys leave L1."""

    @abstractmethod
    def select_store_targets(
        self, keys: list[ObjectKey], adapters: list[AdapterDescriptor]
    ) -> dict[int, list[ObjectKey]]: ...

    @abstractmethod
    def select_l1_deletions(self, keys: list[ObjectKey]) -> list[ObjectKey]: ...


_STORE_POLICY_REGISTRY: dict[str, type[StorePolicy]] = {}


def register_store_policy(name: str, policy_cls: type[StorePolicy]) -> None:
    if name in _STORE_POLICY_REGISTRY:
        raise ValueError(f"Store policy already registered: {name!r}")
    _STORE_POLICY_REGISTRY[name] = policy_cls


def get_registered_store_policies() -> list[str]:
    return list(_STORE_POLICY_REGISTRY)


def create_store_policy(name: str) -> StorePolicy:
    if name not in _STORE_POLICY_REGISTRY:
        known = ", ".join(sorted(_STORE_POLICY_REGISTRY)) or "(none)"
        raise ValueError(f"Unknown store policy {name!r}. Known: {known}")
    return _STORE_POLICY_REGISTRY[name]()


class DefaultStorePolicy(StorePolicy):
    """Store all keys to all adapters; never delete from L1."""

    def select_store_targets(self, keys, adapters):
        key_list = list(keys)
        return {ad.index: key_list for ad in adapters}

    def select_l1_deletions(self, keys):
        return []


class BufferOnlyStorePolicy(DefaultStorePolicy):
    """Store all keys to all adapters, then delete them from L1."""

    def select_l1_deletions(self, keys):
        return list(keys)


register_store_policy("default", DefaultStorePolicy)
register_store_policy("skip_l1", BufferOnlyStorePolicy)
