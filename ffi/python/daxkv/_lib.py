"""Loading libdaxkv and declaring its C ABI for ctypes.

Every function of include/daxkv.h is declared here with explicit argtypes and
restype: without them ctypes would truncate 64-bit pointers and sizes to C int.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
from typing import Iterator, List, Optional, Tuple

SONAME = "libdaxkv.so.0"

#: (major, minor) versions of the C ABI this package was written against. A
#: library with any other major/minor is refused: with major 0, a minor
#: release may change semantics, and a later major changes the ABI.
KNOWN_VERSIONS = frozenset({(0, 1)})

KEY_MAX = 512
EXISTED = 1
E_BASE = -10000
E_CORRUPT = -10001
E_FOREIGN = -10002

REPLACE = 1 << 0
FORCE = 1 << 1
PREFIX = 1 << 2
PIN = 1 << 3

LOG_ERR = 3
LOG_WARNING = 4
LOG_INFO = 6
LOG_DEBUG = 7

# Operations of daxkv_submit.
OP_PUT = 1
OP_GET = 2
OP_CONTAINS = 3
OP_REMOVE = 4
OPS = {OP_PUT: "put", OP_GET: "get", OP_CONTAINS: "contains", OP_REMOVE: "remove"}

# Device states of the pool (daxkv_hotplug_result.state).
DEV_ACTIVE = 0
DEV_DRAINING = 1
DEV_MIGRATING = 2
DEV_RESIZING = 3
DEV_REMOVING = 4
DEV_REMOVED = 5
DEV_MISSING = 6
DEV_STATES = {
    DEV_ACTIVE: "active",
    DEV_DRAINING: "draining",
    DEV_MIGRATING: "migrating",
    DEV_RESIZING: "resizing",
    DEV_REMOVING: "removing",
    DEV_REMOVED: "removed",
    DEV_MISSING: "missing",
}

# Modes of daxkv_device_remove and daxkv_device_resize.
MIGRATE = 1
EVICT = 2
DRAIN = 3
HOTPLUG_MODES = {"migrate": MIGRATE, "evict": EVICT, "drain": DRAIN}

# daxkv_cuda_register: cudaHostRegisterPortable|Mapped instead of Default.
CUDA_MAPPED = 1 << 4

HIST_BUCKETS = 24
HIST_NS_UNIT = 1000
HIST_BYTES_UNIT = 4096


class Item(ctypes.Structure):
    """struct daxkv_item."""

    _fields_ = [
        ("key", ctypes.c_void_p),
        ("key_len", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("meta", ctypes.c_void_p),
        ("meta_len", ctypes.c_size_t),
        ("status", ctypes.c_int),
    ]


#: Field offsets in units of the item's 8-byte words and 4-byte ints; the
#: batch code fills item arrays through strided memoryviews for speed.
ITEM_WORDS = ctypes.sizeof(Item) // 8
ITEM_INTS = ctypes.sizeof(Item) // 4
W_KEY = Item.key.offset // 8
W_KEY_LEN = Item.key_len.offset // 8
W_DATA = Item.data.offset // 8
W_LEN = Item.len.offset // 8
W_META = Item.meta.offset // 8
W_META_LEN = Item.meta_len.offset // 8
I_STATUS = Item.status.offset // 4

assert ctypes.sizeof(Item) % 8 == 0 and ctypes.sizeof(ctypes.c_void_p) == 8, (
    "the batch fast path assumes an LP64 platform"
)


class Histogram(ctypes.Structure):
    """struct daxkv_histogram."""

    _fields_ = [
        ("count", ctypes.c_uint64),
        ("sum", ctypes.c_uint64),
        ("bucket", ctypes.c_uint64 * HIST_BUCKETS),
    ]


#: The daxkv_stats members appended after the first layout: a library that
#: predates them fills only the prefix it knows (they stay zero).
STATS_APPENDED_COUNTERS = ("copy_faults", "batches", "async_submitted", "async_completed", "async_cancelled")
STATS_HISTOGRAMS = ("put_latency", "get_latency", "batch_latency", "item_bytes")
STATS_APPENDED_AFTER_HISTOGRAMS = ("slots_leased",)


class Stats(ctypes.Structure):
    """struct daxkv_stats (struct_size first)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("devices", ctypes.c_uint32),
    ] + [
        (name, ctypes.c_uint64)
        for name in (
            "slot_bytes",
            "meta_bytes",
            "capacity_bytes",
            "slots_total",
            "slots_used",
            "slots_free",
            "entries",
            "entries_pinned",
            "slots_inflight",
            "slots_pending_free",
            "leases_active",
            "hits",
            "misses",
            "puts",
            "puts_existed",
            "puts_failed",
            "removes",
            "evictions",
            "bytes_written",
            "bytes_read",
            "verify_failures",
            "recovered_entries",
            "recovery_dropped_torn",
            "recovery_dropped_corrupt",
            "recovery_dropped_stale",
            "recovery_usec",
        )
        + STATS_APPENDED_COUNTERS
    ] + [(name, Histogram) for name in STATS_HISTOGRAMS] + [
        (name, ctypes.c_uint64) for name in STATS_APPENDED_AFTER_HISTOGRAMS
    ]


class Completion(ctypes.Structure):
    """struct daxkv_completion."""

    _fields_ = [
        ("tag", ctypes.c_uint64),
        ("op", ctypes.c_int),
        ("result", ctypes.c_int),
    ]


class HotplugResult(ctypes.Structure):
    """daxkv_hotplug_result (struct_size first)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("state", ctypes.c_uint32),
        ("device_index", ctypes.c_int32),
        ("reserved0", ctypes.c_uint32),
    ] + [
        (name, ctypes.c_uint64)
        for name in (
            "moved_keys",
            "moved_bytes",
            "deleted_keys",
            "source_slots_freed",
            "old_size_bytes",
            "new_size_bytes",
            "evicted_keys",
        )
    ]


class DeviceInfo(ctypes.Structure):
    """daxkv_device_info (struct_size first)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("numa_node", ctypes.c_int32),
        ("target_node", ctypes.c_int32),
        ("reserved0", ctypes.c_uint32),
        ("size", ctypes.c_uint64),
        ("align", ctypes.c_uint64),
        ("path", ctypes.c_char * 256),
        ("name", ctypes.c_char * 32),
    ]


class LeaseItem(ctypes.Structure):
    """struct daxkv_lease_item (daxkv_lease_batch)."""

    _fields_ = [
        ("key", ctypes.c_void_p),
        ("key_len", ctypes.c_size_t),
        ("lease", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("meta", ctypes.c_void_p),
        ("meta_len", ctypes.c_size_t),
        ("slot", ctypes.c_uint64),
        ("generation", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("device_id", ctypes.c_uint32),
        ("status", ctypes.c_int),
    ]


#: LeaseItem's fields in 8-byte words (and the status in 4-byte ints), for
#: reading its columns through strided memoryviews.
LEASE_WORDS = ctypes.sizeof(LeaseItem) // 8
LEASE_INTS = ctypes.sizeof(LeaseItem) // 4
LW = {name: getattr(LeaseItem, name).offset // 8 for name, _ in LeaseItem._fields_}
LI_STATUS = LeaseItem.status.offset // 4


class SlotInfo(ctypes.Structure):
    """daxkv_slot_info (struct_size first)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device_id", ctypes.c_uint32),
        ("slot", ctypes.c_uint64),
        ("generation", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("payload_base", ctypes.c_void_p),
    ]


class DeviceLayout(ctypes.Structure):
    """daxkv_device_layout (struct_size first)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device_id", ctypes.c_uint32),
        ("state", ctypes.c_uint32),
        ("device_index", ctypes.c_int32),
        ("slot_bytes", ctypes.c_uint64),
        ("layout_slots", ctypes.c_uint64),
        ("usable_slots", ctypes.c_uint64),
        ("used_end", ctypes.c_uint64),
        ("arena_bytes", ctypes.c_uint64),
        ("data_offset", ctypes.c_uint64),
        ("payload_base", ctypes.c_void_p),
    ]


class KeyInfo(ctypes.Structure):
    """daxkv_key_info (struct_size first)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device_id", ctypes.c_uint32),
        ("key", ctypes.c_void_p),
        ("key_len", ctypes.c_size_t),
        ("meta", ctypes.c_void_p),
        ("meta_len", ctypes.c_size_t),
        ("value_len", ctypes.c_uint64),
        ("slot", ctypes.c_uint64),
        ("seq", ctypes.c_uint64),
        ("pins", ctypes.c_uint32),
        ("leases", ctypes.c_uint32),
    ]


KINDS = {0: "devdax", 1: "file", 2: "memory"}
MODES = {0: "none", 1: "devdax", 2: "system-ram"}

LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_sz = ctypes.c_size_t
_psz = ctypes.POINTER(ctypes.c_size_t)
_int = ctypes.c_int
_uint = ctypes.c_uint
_str = ctypes.c_char_p
_items = ctypes.POINTER(Item)

# name: (restype, argtypes)
PROTOTYPES = {
    "daxkv_version_number": (_uint, []),
    "daxkv_version_string": (_str, []),
    "daxkv_strerror": (_str, [_int]),
    "daxkv_errmsg": (_str, []),
    "daxkv_set_log_fn": (None, [LOG_FN, _int, _p]),
    "daxkv_config_new": (_int, [_pp]),
    "daxkv_config_free": (None, [_p]),
    "daxkv_config_set": (_int, [_p, _str, _str]),
    "daxkv_config_add_device": (_int, [_p, _str, ctypes.c_uint64]),
    "daxkv_config_from_json": (_int, [_pp, _str]),
    "daxkv_open": (_int, [_pp, _p]),
    "daxkv_shutdown": (_int, [_p]),
    "daxkv_close": (None, [_p]),
    "daxkv_put": (_int, [_p, _p, _sz, _p, _sz, _uint]),
    "daxkv_get": (_int, [_p, _p, _sz, _p, _sz, _psz]),
    "daxkv_contains": (_int, [_p, _p, _sz]),
    "daxkv_remove": (_int, [_p, _p, _sz, _uint]),
    "daxkv_pin": (_int, [_p, _p, _sz]),
    "daxkv_unpin": (_int, [_p, _p, _sz]),
    "daxkv_put_batch": (_int, [_p, _items, _sz, _uint]),
    "daxkv_get_batch": (_int, [_p, _items, _sz, _uint]),
    "daxkv_contains_batch": (_int, [_p, _items, _sz, _uint]),
    "daxkv_remove_batch": (_int, [_p, _items, _sz, _uint]),
    "daxkv_unpin_batch": (_int, [_p, _items, _sz, _uint]),
    "daxkv_lease_acquire": (_int, [_p, _p, _sz, _pp]),
    "daxkv_lease_data": (_p, [_p]),
    "daxkv_lease_size": (_sz, [_p]),
    "daxkv_lease_meta": (_p, [_p, _psz]),
    "daxkv_lease_release": (None, [_p]),
    "daxkv_lease_batch": (_int, [_p, ctypes.POINTER(LeaseItem), _sz, _uint]),
    "daxkv_lease_read_batch": (_int, [_p, _pp, _items, _sz, _uint]),
    "daxkv_reserve": (_int, [_p, _p, _sz, _sz, _pp]),
    "daxkv_reserve_meta": (_int, [_p, _p, _sz, _sz, _p, _sz, _pp, _pp]),
    "daxkv_reservation_data": (_p, [_p]),
    "daxkv_reservation_size": (_sz, [_p]),
    "daxkv_reservation_set_meta": (_int, [_p, _p, _sz]),
    "daxkv_commit": (_int, [_p]),
    "daxkv_abort": (None, [_p]),
    "daxkv_stats": (_int, [_p, ctypes.POINTER(Stats)]),
    "daxkv_status_json": (_int, [_p, _p, _sz, _psz]),
    "daxkv_memcpy_batch": (_int, [_pp, _pp, _psz, _sz, _uint]),
}

# Functions added to the header after the first 0.1 symbol set: declared
# when the loaded library has them, reported as NotSupported otherwise.
OPTIONAL_PROTOTYPES = {
    "daxkv_list_devices": (_int, [ctypes.POINTER(DeviceInfo), _sz, _psz]),
    "daxkv_probe": (_int, [_str, ctypes.POINTER(DeviceInfo)]),
    "daxkv_submit": (_int, [_p, _int, _items, _sz, _uint, ctypes.c_uint64]),
    "daxkv_event_fd": (_int, [_p]),
    "daxkv_poll": (_int, [_p, ctypes.POINTER(Completion), _sz]),
    "daxkv_stats_prometheus": (_int, [_p, _p, _sz, _psz]),
    "daxkv_device_add": (_int, [_p, _str, ctypes.c_uint64]),
    "daxkv_device_remove": (_int, [_p, _str, _int, _uint, ctypes.POINTER(HotplugResult)]),
    "daxkv_device_resize": (
        _int,
        [_p, _str, ctypes.c_uint64, _int, _uint, ctypes.POINTER(HotplugResult)],
    ),
    "daxkv_device_wait_drained": (_int, [_p, _str, _int]),
    "daxkv_pool_status_json": (_int, [_p, _p, _sz, _psz]),
    "daxkv_lease_slot": (_int, [_p, ctypes.POINTER(SlotInfo)]),
    "daxkv_reservation_slot": (_int, [_p, ctypes.POINTER(SlotInfo)]),
    "daxkv_device_describe": (_int, [_p, _str, ctypes.POINTER(DeviceLayout)]),
    "daxkv_cursor_open": (_int, [_p, _str, _pp]),
    "daxkv_cursor_next": (_int, [_p, ctypes.POINTER(KeyInfo)]),
    "daxkv_cursor_close": (None, [_p]),
    # A running store's statistics, by the path of one of its devices.
    "daxkv_stats_peek": (_int, [_str, ctypes.POINTER(Stats)]),
    "daxkv_status_peek": (_int, [_str, _p, _sz, _psz]),
    "daxkv_stats_prometheus_peek": (_int, [_str, _p, _sz, _psz]),
    # GPU transfers: item data are device pointers, the stream a cudaStream_t.
    "daxkv_cuda_available": (_int, []),
    "daxkv_cuda_register": (_int, [_p, _uint]),
    "daxkv_cuda_unregister": (_int, [_p]),
    "daxkv_get_batch_cuda": (_int, [_p, _items, _sz, _p, _uint]),
    "daxkv_put_batch_cuda": (_int, [_p, _items, _sz, _p, _uint]),
}


class LibraryError(ImportError):
    """libdaxkv could not be found, or the one found is not usable."""


def _source_tree_candidates() -> Iterator[pathlib.Path]:
    """Build-tree libraries near this package, for running from a checkout.

    The package lives in <top>/ffi/python/daxkv; an in-tree build puts the
    library in <top>/lib/.libs, an out-of-tree one in <top>/<builddir>/lib/.libs.
    """
    here = pathlib.Path(__file__).resolve().parent
    top = here.parent.parent.parent
    if not (top / "include" / "daxkv.h").is_file():
        return
    for build in ("", "build", "_build", "builddir", "build-debug", "build-release"):
        yield top / build / "lib" / ".libs" / SONAME


def candidates() -> List[str]:
    """Paths tried in order: $DAXKV_LIBRARY, a source-tree build, the SONAME."""
    out: List[str] = []
    env = os.environ.get("DAXKV_LIBRARY")
    if env:
        p = pathlib.Path(env)
        # Accept the library itself or a directory holding it (lib/.libs).
        out.append(str(p / SONAME) if p.is_dir() else str(p))
        return out  # an explicit choice is never silently overridden
    out.extend(str(c) for c in _source_tree_candidates() if c.is_file())
    out.append(SONAME)  # the dynamic linker's search: ld.so.cache, LD_LIBRARY_PATH
    return out


def split_version(number: int) -> Tuple[int, int, int]:
    return number // 10000, (number // 100) % 100, number % 100


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as exc:
            raise LibraryError(f"{lib._name}: missing symbol {name}") from exc
        fn.restype = restype
        fn.argtypes = argtypes
    for name, (restype, argtypes) in OPTIONAL_PROTOTYPES.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes


def load(path: Optional[str] = None) -> ctypes.CDLL:
    """Load and check libdaxkv. Raises LibraryError with every path tried."""
    tried = []
    for cand in [path] if path else candidates():
        try:
            lib = ctypes.CDLL(cand)
        except OSError as exc:
            tried.append(f"{cand}: {exc}")
            continue
        _declare(lib)
        number = lib.daxkv_version_number()
        major, minor, _ = split_version(number)
        if (major, minor) not in KNOWN_VERSIONS:
            known = ", ".join(f"{a}.{b}" for a, b in sorted(KNOWN_VERSIONS))
            raise LibraryError(
                f"{cand}: libdaxkv {lib.daxkv_version_string().decode()} is not a version "
                f"this binding knows ({known}); refusing to use it"
            )
        return lib
    raise LibraryError("libdaxkv not found; tried:\n  " + "\n  ".join(tried))
