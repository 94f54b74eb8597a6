# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.c_ops`` (its CUDA/C++ extension), reduced
to what the DAX code and its tests call.

LMCache's ``alloc_pinned_ptr`` allocates page-locked host memory with
``cudaHostAlloc``; there is no CUDA here, so it maps anonymous, page-aligned
memory with ``mmap`` through ctypes (reserved lazily, like a large pinned
arena that is only partly touched).  ``free_pinned_ptr`` unmaps it.
``batched_memcpy`` copies each (src, dst, size) triple with ``memmove``
(ctypes releases the GIL for the call, as LMCache's binding does).
``PageBufferShapeDesc`` is the plain record LMCache's kernels take.
"""

# Standard
from dataclasses import dataclass
from typing import Optional, Sequence
import ctypes
import mmap
import threading

# First Party
from lmcache.lmcache_native import EngineKVFormat, GPUKVFormat, TransferDirection

__all__ = [
    "EngineKVFormat",
    "GPUKVFormat",
    "TransferDirection",
    "PageBufferShapeDesc",
    "alloc_pinned_ptr",
    "free_pinned_ptr",
    "batched_memcpy",
]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)

_sizes_lock = threading.Lock()
_sizes: dict[int, int] = {}


@dataclass
class PageBufferShapeDesc:
    kv_size: int
    nl: int
    nb: int
    bs: int
    nh: int
    hs: int
    element_size: int
    block_stride_elems: Optional[int] = None


def alloc_pinned_ptr(size: int, flags: int = 0) -> int:
    """Allocate ``size`` bytes of host memory and return its address."""
    del flags
    if size <= 0:
        raise RuntimeError(f"alloc_pinned_ptr: invalid size {size}")
    ptr = _libc.mmap(
        None,
        size,
        mmap.PROT_READ | mmap.PROT_WRITE,
        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE,
        -1,
        0,
    )
    if ptr is None or ptr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise RuntimeError(f"alloc_pinned_ptr: mmap of {size} bytes failed (errno {err})")
    with _sizes_lock:
        _sizes[ptr] = size
    return ptr


def free_pinned_ptr(ptr: int) -> None:
    """Release memory returned by :func:`alloc_pinned_ptr`."""
    with _sizes_lock:
        size = _sizes.pop(int(ptr), None)
    if size is None:
        raise RuntimeError(f"free_pinned_ptr: {ptr:#x} was not allocated here")
    if _libc.munmap(ctypes.c_void_p(ptr), size) != 0:
        raise RuntimeError(f"free_pinned_ptr: munmap failed (errno {ctypes.get_errno()})")


def batched_memcpy(
    src_ptrs: Sequence[int], dst_ptrs: Sequence[int], sizes: Sequence[int]
) -> None:
    """Copy ``sizes[i]`` bytes from ``src_ptrs[i]`` to ``dst_ptrs[i]``."""
    if not (len(src_ptrs) == len(dst_ptrs) == len(sizes)):
        raise ValueError("src_ptrs, dst_ptrs and sizes must have the same length")
    for src, dst, size in zip(src_ptrs, dst_ptrs, sizes):
        ctypes.memmove(ctypes.c_void_p(dst), ctypes.c_void_p(src), size)
