# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.distributed.api``: ``ObjectKey`` (with
its validation and the test helpers ``IntHash2Bytes``/``Bytes2IntHash``),
``EncodedObjectKey``, ``KeyEntry``/``KeyListPage``, ``MemoryLayoutDesc``,
``AttnWindowDesc`` and the (deprecated) ``PrefetchRequestSpec`` with its
``TrimPolicy``/``PrefetchMode`` enums.  IPC-key conversion and the newer
prefetch task spec are left out."""

# Standard
from dataclasses import dataclass
import enum

# Third Party
import torch


@dataclass(frozen=True)
class ObjectKey:
    """The unique identifier for an object in the distributed storage manager"""

    chunk_hash: bytes
    model_name: str
    kv_rank: int
    object_group_id: int = 0
    cache_salt: str = ""

    _SALT_FORBIDDEN_CHARS = frozenset("@/\\\x00")
    _SALT_MAX_LEN = 128

    def __post_init__(self) -> None:
        if "@" in self.model_name:
            raise ValueError(f"model_name must not contain '@' (got {self.model_name!r})")
        if self.object_group_id < 0:
            raise ValueError(f"object_group_id must be >= 0 (got {self.object_group_id})")
        bad = self._SALT_FORBIDDEN_CHARS & set(self.cache_salt)
        if bad:
            raise ValueError(f"cache_salt must not contain {bad!r} (got {self.cache_salt!r})")
        if len(self.cache_salt) > self._SALT_MAX_LEN:
            raise ValueError(
                f"cache_salt exceeds max length {self._SALT_MAX_LEN} "
                f"(got {len(self.cache_salt)})"
            )

    def to_encoded_object_key(self) -> "EncodedObjectKey":
        return EncodedObjectKey(
            chunk_hash_hex=self.chunk_hash.hex(),
            model_name=self.model_name,
            kv_rank=self.kv_rank,
            object_group_id=self.object_group_id,
            cache_salt=self.cache_salt,
        )

    @staticmethod
    def IntHash2Bytes(chunk_hash: int) -> bytes:
        # NOTE: this is only used by tests
        return chunk_hash.to_bytes(4, byteorder="big")

    @staticmethod
    def Bytes2IntHash(chunk_hash: bytes) -> int:
        # NOTE: this is only used by tests
        return int.from_bytes(chunk_hash, byteorder="big") & ((1 << 64) - 1)

    @staticmethod
    def ComputeKVRank(
        world_size: int, global_rank: int, local_world_size: int, local_rank: int
    ) -> int:
        return (world_size << 24) | (global_rank << 16) | (local_world_size << 8) | local_rank


@dataclass(frozen=True)
class EncodedObjectKey:
    """Wire-format projection of :class:`ObjectKey` (hex chunk hash)."""

    chunk_hash_hex: str
    model_name: str
    kv_rank: int
    object_group_id: int = 0
    cache_salt: str = ""

    def to_object_key(self) -> ObjectKey:
        return ObjectKey(
            chunk_hash=bytes.fromhex(self.chunk_hash_hex),
            model_name=self.model_name,
            kv_rank=self.kv_rank,
            object_group_id=self.object_group_id,
            cache_salt=self.cache_salt,
        )


@dataclass(frozen=True)
class KeyEntry:
    key: EncodedObjectKey
    size_bytes: int


@dataclass(frozen=True)
class KeyListPage:
    """A page of keys returned by ``L2AdapterInterface.list_l2_keys``."""

    entries: tuple[KeyEntry, ...]
    next_page_token: str | None


@dataclass(frozen=True)
class MemoryLayoutDesc:
    """Describes the layout of a memory object"""

    shapes: list[torch.Size]
    dtypes: list[torch.dtype]

    def __post_init__(self):
        if len(self.shapes) != len(self.dtypes):
            raise ValueError("MemoryLayoutDesc: shapes and dtype must have the same length")


@dataclass(frozen=True)
class AttnWindowDesc:
    """Cross-chunk attention window per object group, in chunks; -1 means
    full attention."""

    num_chunks_in_sw: list[int]

    def __post_init__(self) -> None:
        if not self.num_chunks_in_sw:
            raise ValueError("AttnWindowDesc: at least one object group is required")
        for w in self.num_chunks_in_sw:
            if w == 0 or w < -1:
                raise ValueError(
                    "AttnWindowDesc: each window must be -1 (full attention) "
                    f"or >= 1 chunk, got {w}"
                )

    @property
    def num_object_groups(self) -> int:
        return len(self.num_chunks_in_sw)

    def is_full_attention(self, object_group_idx: int) -> bool:
        return self.num_chunks_in_sw[object_group_idx] < 0


DEFAULT_ATTN_WINDOW_DESC = AttnWindowDesc(num_chunks_in_sw=[-1])


class TrimPolicy(enum.Enum):
    """How the prefetch controller picks the retained subset of found keys."""

    PREFIX = enum.auto()
    SEGMENTED_PREFIX = enum.auto()
    SPARSE = enum.auto()


class PrefetchMode(enum.Enum):
    """The intent of a prefetch request."""

    LOOKUP = enum.auto()
    WARM = enum.auto()


@dataclass(frozen=True)
class PrefetchRequestSpec:
    """Immutable inputs of a single L2 prefetch request."""

    keys: list[ObjectKey]
    group_layout_descs: dict[int, MemoryLayoutDesc]
    num_kv_readers: int = 1
    policy: TrimPolicy = TrimPolicy.PREFIX
    attn_desc: AttnWindowDesc = DEFAULT_ATTN_WINDOW_DESC
    mode: PrefetchMode = PrefetchMode.LOOKUP

    def __post_init__(self) -> None:
        if self.num_kv_readers < 1:
            raise ValueError(
                f"PrefetchRequestSpec: num_kv_readers={self.num_kv_readers} "
                "must be >= 1 (total read locks per key)"
            )
        missing = {k.object_group_id for k in self.keys} - set(self.group_layout_descs)
        if missing:
            raise ValueError(
                "PrefetchRequestSpec: group_layout_descs must cover the object "
                f"groups of every key; missing {sorted(missing)}, got "
                f"{sorted(self.group_layout_descs)}"
            )
