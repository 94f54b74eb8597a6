"""GPU transfers: batches between the arena and CUDA device memory.

The library loads the CUDA runtime itself on first use (it never links
it): without a runtime the calls raise NotSupported, without a GPU
NoDevice, and everything else works unchanged. Device buffers (torch
tensors, objects with __cuda_array_interface__, pointer pairs) and streams
are duck-typed here, so that torch stays optional. The Store methods are
_CudaCalls, mixed into Store.
"""

from __future__ import annotations

import errno as _errno
import sys
from typing import Any, List, Optional, Sequence, Tuple

from . import _lib
from ._batch import _Batch, _check_lengths, _get_results, _put_results
from ._buffers import Key, _keys, _pair_ints
from ._library import _errmsg, _error, _optional, library
from .errors import InvalidArgument


def cuda_available() -> bool:
    """True if the library could load a CUDA runtime that sees a GPU."""
    fn = getattr(library(), "daxkv_cuda_available", None)
    return fn is not None and fn() == 1


def _device_buffer(obj: Any, writable: bool, what: str) -> Tuple[int, int]:
    """(device pointer, bytes) of a CUDA tensor, an object with
    __cuda_array_interface__, or a (device pointer, bytes) pair."""
    if type(obj) is tuple:
        if len(obj) != 2:
            raise TypeError(f"{what}: a device buffer pair must be (pointer, nbytes)")
        pair = _pair_ints(*obj)
        if pair is None:
            raise TypeError(f"{what}: pointer and nbytes must be integers")
        addr, length = pair
        if addr <= 0 and length > 0:
            raise InvalidArgument(-_errno.EINVAL, f"{what}: NULL pointer with nbytes {length}")
        if addr < 0 or length < 0 or addr >= 1 << 64 or length >= 1 << 63:
            raise InvalidArgument(-_errno.EINVAL, f"{what}: pointer or nbytes out of range")
        return addr, length
    # A torch tensor, duck-typed so that torch stays an optional import.
    if callable(getattr(obj, "data_ptr", None)) and callable(getattr(obj, "element_size", None)):
        if not getattr(obj, "is_cuda", False):
            raise TypeError(f"{what}: not a CUDA tensor (device {getattr(obj, 'device', '?')})")
        if not obj.is_contiguous():
            raise TypeError(f"{what}: the tensor is not contiguous")
        # A lazy conjugate or negative view shares its base's memory: its
        # bytes are the values before the conjugation or negation.
        for bit, fix in (("is_conj", "resolve_conj"), ("is_neg", "resolve_neg")):
            flag = getattr(obj, bit, None)
            if callable(flag) and flag():
                raise TypeError(f"{what}: the tensor is a lazy view whose bytes are not its values; {fix}() it first")
        return int(obj.data_ptr()), int(obj.numel()) * int(obj.element_size())
    cai = getattr(obj, "__cuda_array_interface__", None)
    if isinstance(cai, dict):
        addr, readonly = cai["data"]
        if writable and readonly:
            raise TypeError(f"{what}: the device array is read-only")
        itemsize = int(cai["typestr"][2:])
        n = 1
        for dim in cai["shape"]:
            n *= int(dim)
        strides = cai.get("strides")
        if strides is not None and n > 1:
            want = itemsize
            for dim, stride in reversed(list(zip(cai["shape"], strides))):
                if dim > 1 and stride != want:
                    raise TypeError(f"{what}: the device array is not C-contiguous")
                want *= dim
        return int(addr or 0), n * itemsize
    raise TypeError(
        f"{what}: expected a CUDA tensor or a (device pointer, nbytes) pair, got {type(obj).__name__}"
    )


def _cuda_stream(stream: Any) -> int:
    """A cudaStream_t handle: an int, a torch.cuda.Stream (.cuda_stream) or
    a CuPy stream (.ptr); None is torch's current stream when torch has
    initialized CUDA in this process (the stream its kernels write the
    tensors on), else the legacy default stream (0)."""
    if stream is None:
        torch = sys.modules.get("torch")  # never imported here: torch is optional
        cuda = getattr(torch, "cuda", None)
        initialized = getattr(cuda, "is_initialized", None)
        if initialized is not None and initialized():
            return int(cuda.current_stream().cuda_stream)
        return 0
    if isinstance(stream, bool):
        raise TypeError("stream must be a cudaStream_t handle, a stream object or None")
    if not isinstance(stream, int):
        for attr in ("cuda_stream", "ptr"):
            handle = getattr(stream, attr, None)
            if isinstance(handle, int) and not isinstance(handle, bool):
                stream = handle
                break
        else:
            raise TypeError(
                f"stream must be a cudaStream_t handle, a stream object or None, got {type(stream).__name__}"
            )
    if not 0 <= stream < 1 << 64:
        raise InvalidArgument(-_errno.EINVAL, f"stream handle out of range: {stream}")
    return stream


class _CudaCalls:
    """Store's GPU methods (mixed into Store, which provides _enter and
    _leave)."""

    def cuda_register(self, mapped: bool = False) -> None:
        """Page-lock the arena mappings for the GPU (cudaHostRegister;
        mapped=True: Portable|Mapped instead of Default), so that GPU
        copies go straight between GPU and arena. On failure nothing stays
        registered and the staged path keeps working: NotSupported (no
        runtime, or the GPU cannot register host memory), NoDevice (no
        GPU), OutOfMemory, Busy (registered with the other flags).
        Registering again with the same flags does nothing."""
        fn = _optional("daxkv_cuda_register")
        h = self._enter()
        try:
            rc = fn(h, _lib.CUDA_MAPPED if mapped else 0)
            if rc < 0:
                raise _error(rc, "daxkv_cuda_register")
        finally:
            self._leave()

    def cuda_unregister(self) -> None:
        """Unregister the arenas, after GPU reads still copying out of them.
        NotFound if they are not registered."""
        fn = _optional("daxkv_cuda_unregister")
        h = self._enter()
        try:
            rc = fn(h)
            if rc < 0:
                raise _error(rc, "daxkv_cuda_unregister")
        finally:
            self._leave()

    def _cuda_batch(
        self, name: str, keys: Sequence[Key], bufs: Sequence[Any], writable: bool, stream: Any, flags: int
    ) -> Tuple[_Batch, int]:
        kb = _keys(keys)
        _check_lengths(name, kb, bufs, "device buffers")
        pairs = [_device_buffer(b, writable, f"{'dsts' if writable else 'srcs'}[{i}]") for i, b in enumerate(bufs)]
        handle = _cuda_stream(stream)
        fn = _optional(name)
        batch = _Batch(kb)
        if kb:
            batch.set_column(_lib.W_DATA, [p[0] for p in pairs])
            batch.set_column(_lib.W_LEN, [p[1] for p in pairs])
        h = self._enter()
        try:
            # An empty batch goes to the library too: it says whether GPU
            # transfers work at all (NotSupported, NoDevice).
            rc = fn(h, batch.items if kb else None, batch.n, handle or None, flags)
            if rc < 0:
                raise _error(rc, name)
        finally:
            self._leave()
        return batch, rc

    def get_many_cuda(
        self, keys: Sequence[Key], dsts: Sequence[Any], stream: Any = None, *, prefix: bool = False
    ) -> List[Optional[int]]:
        """get_many_into into GPU memory: dsts are CUDA tensors (their
        data_ptr() and numel() * element_size() bytes), objects with
        __cuda_array_interface__, or (device pointer, capacity) pairs.

        Returns each value's length, None for a miss (with prefix=True only
        the prefix's). The bytes arrive in stream order: synchronize the
        stream before reading them on the host, and keep the destinations
        alive until then. stream: a cudaStream_t handle, a torch or CuPy
        stream, or None (torch's current stream when torch has initialized
        CUDA, else the legacy default stream). A copy CUDA refuses fails
        its item (MediaError in the BatchError) and no other."""
        batch, count = self._cuda_batch(
            "daxkv_get_batch_cuda", keys, dsts, True, stream, _lib.PREFIX if prefix else 0
        )
        if not batch.n:
            return []
        return _get_results(
            "daxkv_get_batch_cuda", batch.statuses(), batch.column(_lib.W_LEN), count if prefix else None, _errmsg
        )

    def put_many_cuda(
        self, keys: Sequence[Key], srcs: Sequence[Any], stream: Any = None, *, replace: bool = False
    ) -> List[bool]:
        """put_many from GPU memory: srcs as get_many_cuda's dsts (a
        tensor's whole contents, or a pair's nbytes). The copies are ordered
        after the work already on stream and the call returns once they are
        done. Per key, True if stored, False if it was present or in flight
        (and replace is False); failed items raise BatchError after the
        others took effect."""
        batch, _ = self._cuda_batch(
            "daxkv_put_batch_cuda", keys, srcs, False, stream, _lib.REPLACE if replace else 0
        )
        if not batch.n:
            return []
        return _put_results("daxkv_put_batch_cuda", batch.statuses(), _errmsg)
