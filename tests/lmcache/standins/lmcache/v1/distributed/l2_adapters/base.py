# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.distributed.l2_adapters.base``:
``L2AdapterInterface`` with its listener registration, the centralized byte
accounting by cache salt (``_notify_keys_stored`` / ``_notify_keys_deleted``,
clamped at zero), ``get_usage`` returning ``AdapterUsage`` snapshots, and
``supports_global_eviction`` (true when a positive capacity was declared).
Abstract-method docstrings are shortened."""

# Future
from __future__ import annotations

# Standard
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping
import threading

if TYPE_CHECKING:
    # First Party
    from lmcache.native_storage_ops import Bitmap

# First Party
from lmcache.logging import init_logger
from lmcache.v1.distributed.api import KeyListPage, ObjectKey
from lmcache.v1.distributed.internal_api import L2AdapterListener, L2StoreResult
from lmcache.v1.memory_management import MemoryObj

logger = init_logger(__name__)

L2TaskId = int

_EMPTY_BY_CACHE_SALT: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True)
class AdapterUsage:
    """Usage report of an L2 adapter (an immutable snapshot)."""

    total_bytes_used: int
    """Aggregate bytes across all cache_salt buckets."""

    total_capacity_bytes: int
    """Maximum capacity; ``0`` means unknown / no global eviction."""

    bytes_by_cache_salt: Mapping[str, int] = field(
        default_factory=lambda: _EMPTY_BY_CACHE_SALT
    )
    """Bytes used per ``cache_salt`` (read-only; only positive entries)."""

    @property
    def usage_fraction(self) -> float:
        """Aggregate usage in [0, 1]; ``-1.0`` when capacity is unknown."""
        if self.total_capacity_bytes <= 0:
            return -1.0
        return self.total_bytes_used / self.total_capacity_bytes


class L2AdapterInterface(ABC):
    """Non-blocking store / lookup-and-lock / load interface of an L2 adapter,
    signalling completions through three distinct event fds."""

    def __init__(self, max_capacity_bytes: int = 0) -> None:
        self._listeners: list[L2AdapterListener] = []
        self._max_capacity_bytes: int = max_capacity_bytes
        self._total_bytes_used: int = 0
        self._bytes_by_cache_salt: dict[str, int] = {}
        self._usage_lock = threading.Lock()

    # Event fds (each must be distinct)

    @abstractmethod
    def get_store_event_fd(self) -> int: ...

    @abstractmethod
    def get_lookup_and_lock_event_fd(self) -> int: ...

    @abstractmethod
    def get_load_event_fd(self) -> int: ...

    # Store

    @abstractmethod
    def submit_store_task(self, keys: list[ObjectKey], objects: list[MemoryObj]) -> L2TaskId: ...

    @abstractmethod
    def pop_completed_store_tasks(self) -> dict[L2TaskId, L2StoreResult]: ...

    # Lookup and lock

    @abstractmethod
    def submit_lookup_and_lock_task(self, keys: list[ObjectKey]) -> L2TaskId: ...

    @abstractmethod
    def query_lookup_and_lock_result(self, task_id: L2TaskId) -> Bitmap | None: ...

    @abstractmethod
    def submit_unlock(self, keys: list[ObjectKey]) -> None: ...

    # Load

    @abstractmethod
    def submit_load_task(self, keys: list[ObjectKey], objects: list[MemoryObj]) -> L2TaskId: ...

    @abstractmethod
    def query_load_result(self, task_id: L2TaskId) -> Bitmap | None: ...

    # Listeners and byte accounting

    def register_listener(self, listener: L2AdapterListener) -> None:
        """Register a listener to receive L2 adapter events."""
        self._listeners.append(listener)

    def _notify_keys_stored(self, keys: list[ObjectKey], sizes: list[int]) -> None:
        """Account ``sizes`` to the keys' cache salts, then notify listeners
        (outside the lock)."""
        delta: dict[str, int] = {}
        total_delta = 0
        for key, size in zip(keys, sizes, strict=True):
            delta[key.cache_salt] = delta.get(key.cache_salt, 0) + size
            total_delta += size
        with self._usage_lock:
            self._total_bytes_used += total_delta
            for salt, d in delta.items():
                self._bytes_by_cache_salt[salt] = self._bytes_by_cache_salt.get(salt, 0) + d
        for listener in self._listeners:
            listener.on_l2_keys_stored(keys, sizes)

    def _notify_keys_accessed(self, keys: list[ObjectKey]) -> None:
        for listener in self._listeners:
            listener.on_l2_keys_accessed(keys)

    def _notify_keys_deleted(self, keys: list[ObjectKey], sizes: list[int]) -> None:
        """Subtract ``sizes`` (clamped at zero; empty salt buckets removed),
        then notify listeners."""
        delta: dict[str, int] = {}
        total_delta = 0
        for key, size in zip(keys, sizes, strict=True):
            delta[key.cache_salt] = delta.get(key.cache_salt, 0) + size
            total_delta += size
        with self._usage_lock:
            self._total_bytes_used -= total_delta
            if self._total_bytes_used < 0:
                logger.warning(
                    "L2 adapter byte accounting underflow: "
                    "_total_bytes_used dropped to %d after deleting %d "
                    "keys (total size %d). Clamping to 0; this indicates "
                    "an accounting bug (double-delete or size mismatch) "
                    "in the adapter.",
                    self._total_bytes_used,
                    len(keys),
                    total_delta,
                )
                self._total_bytes_used = 0
            for salt, d in delta.items():
                new_total = self._bytes_by_cache_salt.get(salt, 0) - d
                if new_total <= 0:
                    self._bytes_by_cache_salt.pop(salt, None)
                else:
                    self._bytes_by_cache_salt[salt] = new_total
        for listener in self._listeners:
            listener.on_l2_keys_deleted(keys)

    # Eviction

    @property
    def supports_global_eviction(self) -> bool:
        return self._max_capacity_bytes > 0

    def delete(self, keys: list[ObjectKey]) -> None:
        """Delete objects (default: no-op; evicting adapters override)."""
        return None

    def list_l2_keys(
        self,
        model_name: str | None = None,
        page_size: int = 500,
        cursor: str | None = None,
    ) -> KeyListPage:
        raise NotImplementedError(f"{type(self).__name__} does not implement list_l2_keys")

    def get_usage(self) -> AdapterUsage:
        """Totals kept by the notify helpers, as a detached snapshot."""
        with self._usage_lock:
            per_salt_snapshot = {
                k: v for k, v in self._bytes_by_cache_salt.items() if v > 0
            }
            return AdapterUsage(
                total_bytes_used=self._total_bytes_used,
                total_capacity_bytes=self._max_capacity_bytes,
                bytes_by_cache_salt=MappingProxyType(per_salt_snapshot),
            )

    # Cleanup and status

    @abstractmethod
    def close(self) -> None: ...

    def report_status(self) -> dict:
        return {
            "is_healthy": True,
            "extra_warning": "report_status is not implemented and runs default impl",
        }
