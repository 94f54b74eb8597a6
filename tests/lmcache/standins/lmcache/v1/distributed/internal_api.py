# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.distributed.internal_api``:
``L1MemoryDesc``, the ``L2AdapterListener`` callbacks and ``L2StoreResult``
(an ``int``: bytes transferred on success, -1 on failure).  The L1 listener
and eviction-action types are left out."""

# Standard
from abc import ABC, abstractmethod
from dataclasses import dataclass

# First Party
from lmcache.v1.distributed.api import ObjectKey


@dataclass(frozen=True)
class L1MemoryDesc:
    """The contiguous L1 memory arena exposed to external backends."""

    ptr: int
    size: int
    align_bytes: int
    stable_registration_size: int | None = None


class EventListener(ABC):  # noqa: B024
    pass


class L2AdapterListener(EventListener):
    """Listener for L2 adapter events."""

    @abstractmethod
    def on_l2_keys_stored(self, keys: list[ObjectKey], sizes: list[int]):
        """Keys were stored in L2; ``sizes[i]`` is the byte size of ``keys[i]``."""

    @abstractmethod
    def on_l2_keys_accessed(self, keys: list[ObjectKey]):
        """Keys were accessed (loaded) in L2."""

    @abstractmethod
    def on_l2_keys_deleted(self, keys: list[ObjectKey]):
        """Keys were deleted from L2."""


class L2StoreResult(int):
    """Result of a completed L2 store task: ``>= 0`` success (value = bytes
    transferred), ``-1`` failure."""

    def __new__(cls, success: bool, bytes_transferred: int) -> "L2StoreResult":
        if bytes_transferred < 0:
            raise ValueError(f"bytes_transferred must be >= 0, got {bytes_transferred}")
        return super().__new__(cls, bytes_transferred if success else -1)

    def is_successful(self) -> bool:
        return int(self) >= 0

    def bytes_transferred(self) -> int:
        value = int(self)
        return value if value >= 0 else 0
