"""Statistics: the Stats snapshot and its histograms, the status JSON and
the Prometheus text, of an open store or of one running elsewhere.

_StatsCalls (Store.stats, status_json, status, stats_prometheus) is mixed
into Store; stats_peek, status_peek and stats_prometheus_peek read what a
running store publishes, without opening it. _read_text, the loop around
every (buf, cap, &needed) call, serves the pool's JSON as well.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _lib
from ._library import _error, _optional, library
from .errors import InvalidArgument


@dataclasses.dataclass(frozen=True)
class Histogram:
    """A snapshot of struct daxkv_histogram: latencies (ns) or sizes (bytes).

    ``buckets[i]`` counts the values v with bounds[i-1] < v <= bounds[i]
    (not cumulative); the last bound is None (no upper limit).
    """

    count: int
    sum: int
    buckets: Tuple[int, ...]
    unit: int  # bound of bucket 0: 1000 (ns) or 4096 (bytes)

    @property
    def bounds(self) -> List[Optional[int]]:
        n = len(self.buckets)
        return [self.unit << i for i in range(n - 1)] + [None]

    @property
    def mean(self) -> Optional[float]:
        return self.sum / self.count if self.count else None


def _histogram(h: "_lib.Histogram", unit: int) -> Histogram:
    return Histogram(count=h.count, sum=h.sum, buckets=tuple(h.bucket), unit=unit)


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of struct daxkv_stats.

    The members after recovery_usec (copy_faults ... slots_leased) were
    appended to the C struct later; a library that predates them leaves
    them zero.
    """

    devices: int
    slot_bytes: int
    meta_bytes: int
    capacity_bytes: int
    slots_total: int
    slots_used: int
    slots_free: int
    entries: int
    entries_pinned: int
    slots_inflight: int
    slots_pending_free: int
    leases_active: int
    hits: int
    misses: int
    puts: int
    puts_existed: int
    puts_failed: int
    removes: int
    evictions: int
    bytes_written: int
    bytes_read: int
    verify_failures: int
    recovered_entries: int
    recovery_dropped_torn: int
    recovery_dropped_corrupt: int
    recovery_dropped_stale: int
    recovery_usec: int
    copy_faults: int = 0
    batches: int = 0
    async_submitted: int = 0
    async_completed: int = 0
    async_cancelled: int = 0
    put_latency: Optional[Histogram] = None  # ns per daxkv_put
    get_latency: Optional[Histogram] = None  # ns per daxkv_get
    batch_latency: Optional[Histogram] = None  # ns per put or get batch
    item_bytes: Optional[Histogram] = None  # bytes per value stored or copied out
    slots_leased: int = 0  # slots with at least one lease

    def as_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


def _stats(st: "_lib.Stats") -> Stats:
    hist = {
        name: _histogram(getattr(st, name), _lib.HIST_BYTES_UNIT if name == "item_bytes" else _lib.HIST_NS_UNIT)
        for name in _lib.STATS_HISTOGRAMS
    }
    return Stats(**{f.name: getattr(st, f.name) for f in dataclasses.fields(Stats) if f.name not in hist}, **hist)


def _read_text(fn: Callable[[Any, int, Any], int], op: str) -> str:
    # The *_json / prometheus calls, fn(buf, cap, &needed): grow the buffer
    # when the text grew between the size query and the copy.
    needed = ctypes.c_size_t(0)
    cap = 4096
    while True:
        buf = ctypes.create_string_buffer(cap)
        rc = fn(buf, cap, ctypes.byref(needed))
        if rc == -_errno.ENOBUFS and needed.value > cap:
            cap = needed.value  # the state grew between calls: retry
            continue
        if rc < 0:
            raise _error(rc, op)
        return buf.value.decode("utf-8")


class _StatsCalls:
    """Store's statistics and status methods (mixed into Store, which
    provides _enter, _leave and _text)."""

    def stats(self) -> Stats:
        """Counters and capacity (struct daxkv_stats)."""
        st = _lib.Stats()
        st.struct_size = ctypes.sizeof(st)
        h = self._enter()
        try:
            rc = library().daxkv_stats(h, ctypes.byref(st))
            if rc < 0:
                raise _error(rc, "daxkv_stats")
        finally:
            self._leave()
        return _stats(st)

    def status_json(self) -> str:
        """The store's state as a JSON string."""
        return self._text(library().daxkv_status_json, "daxkv_status_json")

    def stats_prometheus(self) -> str:
        """Counters, gauges and histograms in the Prometheus text format
        (0.0.4; names prefixed daxkv_, latencies in seconds)."""
        return self._text(_optional("daxkv_stats_prometheus"), "daxkv_stats_prometheus")

    def status(self) -> Dict[str, Any]:
        """status_json(), parsed."""
        return json.loads(self.status_json())


# ---------------------------------------------------------------------------
# A running store's statistics, read without opening it: an open store
# publishes them every stats_interval ms (configuration key, default 1000;
# 0 publishes nothing) into a page file in $DAXKV_STATS_DIR (default
# /dev/shm), found by the path of any of its devices. NotFound when no
# running store publishes for the path (none has it open, its
# stats_interval is 0, it died, or the path does not exist);
# InvalidArgument for an empty path or "mem:", which no other process can
# name.


def _peek_path(path: Any, op: str) -> bytes:
    import os

    p = os.fsencode(path)
    if b"\0" in p:
        raise InvalidArgument(-_errno.EINVAL, "device path contains a NUL byte", op)
    return p  # empty: the library's own InvalidArgument, with its message


def stats_peek(path: Union[str, bytes, "os.PathLike[str]"]) -> Stats:
    """The statistics the running store holding the device at path last
    published (at most its stats_interval old), from this process or
    another. Members a publisher of an older library lacked are zero."""
    p = _peek_path(path, "daxkv_stats_peek")
    fn = _optional("daxkv_stats_peek")
    st = _lib.Stats()
    st.struct_size = ctypes.sizeof(st)
    rc = fn(p, ctypes.byref(st))
    if rc < 0:
        raise _error(rc, "daxkv_stats_peek")
    return _stats(st)


def status_peek(path: Union[str, bytes, "os.PathLike[str]"]) -> Dict[str, Any]:
    """That store's status (as Store.status()) with a "publisher" entry:
    pid, store_id (the uuid of its first device's arena, also the store
    label of its Prometheus samples) and published_unix_ns."""
    p = _peek_path(path, "daxkv_status_peek")
    fn = _optional("daxkv_status_peek")
    return json.loads(_read_text(lambda buf, cap, needed: fn(p, buf, cap, needed), "daxkv_status_peek"))


def stats_prometheus_peek(path: Union[str, bytes, "os.PathLike[str]"]) -> str:
    """That store's statistics in the Prometheus text format (as
    Store.stats_prometheus()), every sample labelled with the store's id."""
    p = _peek_path(path, "daxkv_stats_prometheus_peek")
    fn = _optional("daxkv_stats_prometheus_peek")
    return _read_text(lambda buf, cap, needed: fn(p, buf, cap, needed), "daxkv_stats_prometheus_peek")
