"""A prometheus_client collector of daxkv statistics.

    from prometheus_client import start_http_server
    from daxkv.prometheus import StoreCollector

    StoreCollector(store).register()               # a Store of this process
    StoreCollector("/dev/dax0.0").register()       # a store running elsewhere
    start_http_server(9400)

Needs prometheus_client (Debian: python3-prometheus-client, PyPI:
prometheus-client); the rest of daxkv does not, so this module is only
imported on request.

A source is a Store, read with Store.stats() and Store.status(), or the
path of a device of a store running in any process, read with stats_peek()
and status_peek() (the statistics that store publishes every
stats_interval ms) without opening or disturbing it: an exporter process
can watch stores it does not own. The families, their names, types and
help texts are those of the library's own Prometheus text
(Store.stats_prometheus(), daxkv_stats_prometheus), and every sample
carries the same store="<uuid>" label (per-device gauges a device label
too), so a series is the same whichever way a store is scraped.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
except ImportError as exc:
    raise ImportError(
        "daxkv.prometheus needs prometheus_client (Debian: apt-get install python3-prometheus-client; "
        "PyPI: pip install prometheus-client)"
    ) from exc

from ._stats import Stats, stats_peek, status_peek
from ._store import Store
from .errors import NotFound, Shutdown

Source = Union[Store, str, bytes, "os.PathLike[str]"]

# The library's families in its order and words (lib/store/metrics.cpp):
# (name without "daxkv_", type, help, Stats member).
_SCALARS: Tuple[Tuple[str, str, str, str], ...] = (
    ("devices", "gauge", "Devices in the store's pool.", "devices"),
    ("slot_bytes", "gauge", "Capacity of one slot in bytes.", "slot_bytes"),
    ("capacity_bytes", "gauge", "Value capacity of all slots in bytes.", "capacity_bytes"),
    ("slots", "gauge", "Slots in all arenas.", "slots_total"),
    ("slots_used", "gauge", "Slots committed, in flight, waiting for leases or quarantined.", "slots_used"),
    ("slots_free", "gauge", "Free slots.", "slots_free"),
    ("slots_inflight", "gauge", "Slots being written.", "slots_inflight"),
    ("slots_pending_free", "gauge", "Slots freed once their last lease is released.", "slots_pending_free"),
    ("entries", "gauge", "Committed keys.", "entries"),
    ("entries_pinned", "gauge", "Committed keys with at least one pin.", "entries_pinned"),
    ("leases_active", "gauge", "Leases held.", "leases_active"),
    ("slots_leased", "gauge", "Slots with at least one lease.", "slots_leased"),
    ("hits_total", "counter", "Reads that found their key and gave its bytes.", "hits"),
    ("misses_total", "counter", "Reads that did not find their key.", "misses"),
    ("puts_total", "counter", "Committed puts.", "puts"),
    ("puts_existed_total", "counter", "Puts that found the key present or in flight.", "puts_existed"),
    ("puts_failed_total", "counter", "Puts that failed or were refused.", "puts_failed"),
    ("removes_total", "counter", "Entries removed by callers.", "removes"),
    ("evictions_total", "counter", "Entries evicted.", "evictions"),
    ("written_bytes_total", "counter", "Value bytes committed.", "bytes_written"),
    ("read_bytes_total", "counter", "Value bytes copied out.", "bytes_read"),
    ("verify_failures_total", "counter", "Values that failed their checksum on read.", "verify_failures"),
    (
        "copy_faults_total",
        "counter",
        "Copies, slot header and superblock accesses that faulted (SIGBUS); a faulting slot is quarantined.",
        "copy_faults",
    ),
    ("recovered_entries", "gauge", "Entries recovered when the store was opened.", "recovered_entries"),
    ("batches_total", "counter", "Put and get batch calls, synchronous and submitted.", "batches"),
    ("async_submitted_total", "counter", "Batches queued by daxkv_submit.", "async_submitted"),
    ("async_completed_total", "counter", "Submitted batches that ran.", "async_completed"),
    ("async_cancelled_total", "counter", "Submitted batches cancelled by shutdown.", "async_cancelled"),
)

# (name, help, Stats member, scale): latencies are counted in nanoseconds
# and exposed in seconds; sizes stay bytes (scale None: integer bounds).
_HISTOGRAMS: Tuple[Tuple[str, str, str, Optional[float]], ...] = (
    ("put_latency_seconds", "Latency of daxkv_put.", "put_latency", 1e-9),
    ("get_latency_seconds", "Latency of daxkv_get.", "get_latency", 1e-9),
    ("batch_latency_seconds", "Latency of put and get batches.", "batch_latency", 1e-9),
    ("item_bytes", "Size of each value stored or copied out.", "item_bytes", None),
)

# (name, help, member of a status JSON "devices" row).
_DEVICE_GAUGES: Tuple[Tuple[str, str, str], ...] = (
    ("device_slots", "Usable slots of the device.", "slots"),
    ("device_slots_free", "Free slots of the device.", "slots_free"),
)

#: Every family name the collector can produce (with the "daxkv_" prefix).
FAMILIES: Tuple[str, ...] = tuple(
    "daxkv_" + n for n in [s[0] for s in _SCALARS] + [h[0] for h in _HISTOGRAMS] + [d[0] for d in _DEVICE_GAUGES]
)

_STORE_LABEL = re.compile(r'\{store="((?:[^"\\]|\\.)*)"')


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _le(bound: int, scale: Optional[float]) -> str:
    # The bucket bounds as the library prints them ("%.9g" of seconds,
    # integral bytes): another spelling of the same bound would be another
    # series to Prometheus.
    return str(bound) if scale is None else "%.9g" % (bound * scale)


class _Snapshot:
    __slots__ = ("store_id", "stats", "devices")

    def __init__(self, store_id: str, stats: Stats, devices: List[Tuple[str, str, int, int]]) -> None:
        self.store_id = store_id
        self.stats = stats
        self.devices = devices  # (path, device_index or "", slots, slots_free)


def _count(v: Any) -> int:
    # A count of a status as the library reads one for its own Prometheus
    # text: 0 unless an integer a uint64 holds. A status read from a page
    # may hold anything there (a string, null, a negative or a float), and
    # one that cannot be read must not fail the scrape of every store.
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64 else 0


def _path_bytes(path: Any) -> Optional[bytes]:
    """A device path as the status JSON gives it (a string, or the list of
    its bytes when it is not UTF-8) as bytes; None for anything else."""
    if isinstance(path, str):
        return path.encode("utf-8", "surrogateescape")
    if isinstance(path, list) and all(type(b) is int and 0 <= b < 256 for b in path):
        return bytes(path)
    return None


def _device_label(path: bytes) -> str:
    """The library's device label value for a path: its UTF-8 text, but for
    a backslash, doubled, and a byte that is not part of well-formed UTF-8
    or is a control character (newline aside), written as the text \\xNN; one
    label per path, as the library's own Prometheus text has."""
    out = []
    for ch in path.decode("utf-8", "surrogateescape"):
        c = ord(ch)
        if 0xDC80 <= c <= 0xDCFF:  # a byte that is not UTF-8
            out.append("\\x%02x" % (c - 0xDC00))
        elif ch == "\\":
            out.append("\\\\")
        elif ch != "\n" and (c < 0x20 or 0x7F <= c <= 0x9F):
            out.extend("\\x%02x" % b for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def _device_rows(status: Dict[str, Any]) -> List[Tuple[str, str, int, int]]:
    """(label, index, slots, slots_free) per device. Devices of one path
    (two mem: devices of a pool) are told apart as the library's own text
    tells them: a device_index label, "1", "2", in the pool's order ("" for
    a path no other device has)."""
    rows = []
    # Absent when a huge status was cut; a page's status may hold anything
    # (a page name is anyone's to plant): what is not a list of devices
    # names none, and the scrape goes on, as the library's text does.
    devices = status.get("devices")
    for d in devices if isinstance(devices, list) else ():
        path = _path_bytes(d.get("path")) if isinstance(d, dict) else None
        if path is not None:
            rows.append((_device_label(path), "", _count(d.get("slots")), _count(d.get("slots_free"))))
    named: Dict[str, int] = {}
    for label, _, _, _ in rows:
        named[label] = named.get(label, 0) + 1
    seen: Dict[str, int] = {}
    for i, (label, _, slots, free) in enumerate(rows):
        if named[label] > 1:
            seen[label] = seen.get(label, 0) + 1
            rows[i] = (label, str(seen[label]), slots, free)
    return rows


class _StoreSource:
    """A Store of this process. Its id is read once from the library's own
    exposition: it is fixed when the store opens (the uuid of the first
    device's arena then) and not part of the status JSON."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.store_id: Optional[str] = None

    def key(self) -> Any:
        return self.store

    def snapshot(self) -> Optional[_Snapshot]:
        try:
            status = self.store.status()
            if self.store_id is None:
                m = _STORE_LABEL.search(self.store.stats_prometheus())
                if m is not None:
                    self.store_id = _unescape(m.group(1))
                else:  # a library older than the label: what it would have used
                    devs = status.get("devices") or [{}]
                    self.store_id = str(devs[0].get("uuid", ""))
            stats = self.store.stats()
            devices = _device_rows(status)
        except Shutdown:
            return None  # closed: nothing to report
        return _Snapshot(self.store_id, stats, devices)


class _PathSource:
    """The store, in any process, that holds the device at a path."""

    def __init__(self, path: Union[str, bytes, "os.PathLike[str]"]) -> None:
        self.path = os.fsdecode(path)

    def key(self) -> Any:
        return self.path

    def snapshot(self) -> Optional[_Snapshot]:
        try:
            status = status_peek(self.path)
            stats = stats_peek(self.path)
        except NotFound:
            return None  # no running store publishes for the path (now)
        return _Snapshot(str(status["publisher"]["store_id"]), stats, _device_rows(status))


def _source(obj: Source) -> Union[_StoreSource, _PathSource]:
    if isinstance(obj, Store):
        return _StoreSource(obj)
    if isinstance(obj, (str, bytes, os.PathLike)):
        return _PathSource(obj)
    raise TypeError(f"expected a daxkv.Store or a device path, got {type(obj).__name__}")


class StoreCollector:
    """The statistics of one or more stores as Prometheus metric families.

    Sources are Stores of this process and device paths of stores running
    anywhere (see the module's documentation). A closed Store, or a path
    that no running store publishes for, contributes nothing to a scrape
    (a path is looked at again at the next one); other failures propagate,
    as prometheus_client expects. A store reached through two sources
    (say, its Store and its device path) is reported once.

    One collector per registry: its describe() names every family, so a
    registry refuses a second collector of daxkv families (it would repeat
    them, which the exposition format forbids). Put every store into one
    collector instead, with add() and remove() while it is registered.

    registry: register at once (see register()); by default the collector
    is not registered.
    """

    def __init__(self, *sources: Source, registry: Any = None) -> None:
        self._lock = threading.Lock()
        self._sources: List[Union[_StoreSource, _PathSource]] = []
        self._registry: Any = None
        for s in sources:
            self.add(s)
        if registry is not None:
            self.register(registry)

    # -- sources --------------------------------------------------------------

    def add(self, source: Source) -> "StoreCollector":
        """Report one more store (a Store or a device path)."""
        src = _source(source)
        with self._lock:
            if not any(s.key() == src.key() for s in self._sources):
                self._sources.append(src)
        return self

    def remove(self, source: Source) -> None:
        """Stop reporting a source given to the constructor or to add().
        Raises KeyError when it is not one."""
        key = _source(source).key()
        with self._lock:
            for i, s in enumerate(self._sources):
                if s.key() == key:
                    del self._sources[i]
                    return
        raise KeyError(f"not a source of this collector: {source!r}")

    @property
    def sources(self) -> List[Union[Store, str]]:
        with self._lock:
            return [s.key() for s in self._sources]

    # -- registries -----------------------------------------------------------

    def register(self, registry: Any = None) -> "StoreCollector":
        """Register with registry (default prometheus_client.REGISTRY)."""
        if self._registry is not None:
            raise ValueError("the collector is registered already; unregister() it first")
        registry = prometheus_client.REGISTRY if registry is None else registry
        registry.register(self)
        self._registry = registry
        return self

    def unregister(self) -> None:
        """Remove the collector from the registry it was registered with
        (nothing happens when it is not registered)."""
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.unregister(self)

    # -- the collector protocol -----------------------------------------------

    def describe(self) -> Iterator[Any]:
        """Every family, without samples: lets a registry check names at
        registration without reading any store."""
        return self._families([])

    def collect(self) -> Iterator[Any]:
        with self._lock:
            sources = list(self._sources)
        snaps: List[_Snapshot] = []
        seen = set()
        for src in sources:
            snap = src.snapshot()
            if snap is not None and snap.store_id not in seen:
                seen.add(snap.store_id)
                snaps.append(snap)
        if not snaps:
            return iter(())
        return self._families(snaps)

    @staticmethod
    def _families(snaps: Sequence[_Snapshot]) -> Iterator[Any]:
        for name, kind, doc, member in _SCALARS:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            fam = cls("daxkv_" + name, doc, labels=["store"])
            for s in snaps:
                fam.add_metric([s.store_id], getattr(s.stats, member))
            yield fam
        for name, doc, member, scale in _HISTOGRAMS:
            fam = HistogramMetricFamily("daxkv_" + name, doc, labels=["store"])
            for s in snaps:
                h = getattr(s.stats, member)
                buckets, total = [], 0
                for i, n in enumerate(h.buckets[:-1]):
                    total += n
                    buckets.append((_le(h.unit << i, scale), total))
                buckets.append(("+Inf", total + h.buckets[-1]))
                fam.add_metric([s.store_id], buckets, h.sum if scale is None else h.sum * scale)
            yield fam
        for name, doc, member in _DEVICE_GAUGES:
            rows = [(s.store_id, d) for s in snaps for d in s.devices]
            if snaps and not rows:
                continue  # as the library: no device, no family
            fam = GaugeMetricFamily("daxkv_" + name, doc, labels=["store", "device"])
            for store_id, (path, index, slots, free) in rows:
                labels = {"store": store_id, "device": path}
                if index:
                    labels["device_index"] = index
                fam.add_sample("daxkv_" + name, labels, slots if member == "slots" else free)
            yield fam

