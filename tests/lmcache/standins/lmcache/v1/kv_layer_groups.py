# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.kv_layer_groups``: the manager that
buckets a model's KV layers into kernel groups by the identity
``(kv_size, num_heads, head_size, block_size, engine_group_idx, dtype,
engine_kv_format)`` and groups kernel groups into object groups.

LMCache reads each layer's geometry through format-aware accessors in its
GPU connector utilities; only the ``NL_X_TWO_NB_BS_NH_HS`` layout (one
``[2, num_blocks, block_size, num_heads, head_size]`` tensor per layer) is
stood in, and other layouts raise ``NotImplementedError``.  Engine group
infos (hybrid models) and sliding windows are left out: every layer is in
engine group 0 and every kernel group is full attention, so there is one
object group.
"""

# Future
from __future__ import annotations

# Standard
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

# Third Party
import torch

# First Party
from lmcache.logging import init_logger
from lmcache.lmcache_native import is_mla
import lmcache.c_ops as lmc_ops

logger = init_logger(__name__)


class KernelGroupIdentity(NamedTuple):
    kv_size: int
    num_heads: int
    head_size: int
    block_size: int
    engine_group_idx: int
    dtype: torch.dtype
    engine_kv_format: "lmc_ops.EngineKVFormat"


LayerGroupIdentity = KernelGroupIdentity


def _layer_geometry(
    kv_caches, fmt: "lmc_ops.EngineKVFormat", idx: int
) -> tuple[int, int, int, int, int, torch.dtype]:
    """(kv_size, num_blocks, block_size, num_heads, head_size, dtype) of layer idx."""
    if fmt != lmc_ops.EngineKVFormat.NL_X_TWO_NB_BS_NH_HS:
        raise NotImplementedError(f"layout accessors for {fmt} are not stood in")
    tensor = kv_caches[idx]
    if tensor.dim() != 5 or tensor.shape[0] != 2:
        raise ValueError(
            f"layer {idx}: expected a [2, NB, BS, NH, HS] tensor, got {tuple(tensor.shape)}"
        )
    _, nb, bs, nh, hs = (int(d) for d in tensor.shape)
    return 2, nb, bs, nh, hs, tensor.dtype


def group_layers_by_identity(
    kv_caches,
    engine_kv_formats: "Sequence[lmc_ops.EngineKVFormat]",
) -> list[tuple[LayerGroupIdentity, list[int]]]:
    """Partition layer indices by identity, ordered by first layer index."""
    groups: dict[LayerGroupIdentity, list[int]] = defaultdict(list)
    for idx, layer_format in enumerate(engine_kv_formats):
        kv_size, _, bs, nh, hs, dt = _layer_geometry(kv_caches, layer_format, idx)
        mla = is_mla(layer_format)
        identity = LayerGroupIdentity(
            kv_size=1 if mla else kv_size,
            num_heads=1 if mla else nh,
            head_size=hs,
            block_size=bs,
            engine_group_idx=0,
            dtype=dt,
            engine_kv_format=layer_format,
        )
        groups[identity].append(idx)
    return sorted(groups.items(), key=lambda kv: kv[1][0])


@dataclass
class KernelGroupInfo:
    """A set of KV layers that share one transfer-kernel launch."""

    layer_indices: list[int]
    shape_desc: "lmc_ops.PageBufferShapeDesc"
    dtype: torch.dtype
    engine_kv_format: "lmc_ops.EngineKVFormat | None" = None
    tokens_per_block: int = 0
    engine_group_idx: int = 0
    sw_size_tokens: int = -1

    @property
    def num_layers(self) -> int:
        return len(self.layer_indices)

    @property
    def hidden_dim_size(self) -> int:
        return self.shape_desc.nh * self.shape_desc.hs

    @property
    def slots_per_block(self) -> int:
        return self.shape_desc.bs


KVLayerGroupInfo = KernelGroupInfo


@dataclass
class ObjectGroupInfo:
    """Kernel groups whose KV caches are stored in the same memory object."""

    kernel_group_indices: list[int] = field(default_factory=list)
    sw_size_chunks: int = -1


class KVLayerGroupsManager:
    """Partition a model's KV layers into transfer-kernel dispatch units."""

    def __init__(
        self,
        kv_caches,
        engine_kv_formats: "Sequence[lmc_ops.EngineKVFormat]",
        engine_group_infos: Sequence = (),
        lmcache_tokens_per_chunk: int = 256,
        separate_object_groups: bool = True,
    ) -> None:
        if engine_group_infos:
            raise NotImplementedError("engine group infos are not stood in")
        self._kernel_groups: list[KernelGroupInfo] = []
        self._object_groups: list[ObjectGroupInfo] = []
        self._lmcache_tokens_per_chunk = lmcache_tokens_per_chunk
        if len(engine_kv_formats) == 0:
            logger.debug("No KV caches available, skipping KV layer groups building")
            return

        for identity, indices in group_layers_by_identity(kv_caches, engine_kv_formats):
            _, nb, _, _, _, _ = _layer_geometry(
                kv_caches, identity.engine_kv_format, indices[0]
            )
            shape_desc = lmc_ops.PageBufferShapeDesc(
                kv_size=identity.kv_size,
                nl=len(indices),
                nb=nb,
                bs=identity.block_size,
                nh=identity.num_heads,
                hs=identity.head_size,
                element_size=kv_caches[indices[0]].element_size(),
                block_stride_elems=None,
            )
            self._kernel_groups.append(
                KernelGroupInfo(
                    layer_indices=indices,
                    shape_desc=shape_desc,
                    dtype=identity.dtype,
                    engine_kv_format=identity.engine_kv_format,
                    tokens_per_block=identity.block_size,
                    engine_group_idx=identity.engine_group_idx,
                )
            )
        # All kernel groups are full attention here: one object group.
        self._object_groups = [
            ObjectGroupInfo(kernel_group_indices=list(range(len(self._kernel_groups))))
        ]
        logger.info(
            "KV layer groups: ---\n%s\n---",
            "\n".join(repr(g) for g in self._kernel_groups),
        )

    @property
    def kernel_groups(self) -> list[KernelGroupInfo]:
        return self._kernel_groups

    @property
    def kv_layer_groups(self) -> list[KernelGroupInfo]:
        """Outdated alias for ``kernel_groups``."""
        return self._kernel_groups

    @property
    def num_kernel_groups(self) -> int:
        return len(self._kernel_groups)

    @property
    def num_groups(self) -> int:
        """Outdated alias for ``num_kernel_groups``."""
        return len(self._kernel_groups)

    @property
    def object_groups(self) -> list[ObjectGroupInfo]:
        return self._object_groups

    @property
    def num_object_groups(self) -> int:
        return len(self._object_groups)

    def get_shape_desc(self, kernel_group_idx: int) -> "lmc_ops.PageBufferShapeDesc":
        return self._kernel_groups[kernel_group_idx].shape_desc
