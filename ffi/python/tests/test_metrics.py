"""The stats members appended to struct daxkv_stats, the histograms, and
stats_prometheus()."""

import re

import pytest

import daxkv
from daxkv import _lib


def test_histograms_and_counters(store):
    store.put(b"a", b"x" * 5000)
    assert store.get_into(b"a", bytearray(8192)) == 5000
    store.put_many([b"b", b"c"], [b"y" * 10, b"z" * 10])
    st = store.stats()
    for name in ("put_latency", "get_latency", "batch_latency", "item_bytes"):
        h = getattr(st, name)
        assert isinstance(h, daxkv.Histogram)
        assert len(h.buckets) == _lib.HIST_BUCKETS == len(h.bounds)
        assert sum(h.buckets) == h.count
        assert h.bounds[-1] is None
    assert st.put_latency.count >= 1 and st.get_latency.count >= 1
    assert st.batch_latency.count >= 1 and st.batches >= 1
    assert st.put_latency.unit == 1000 and st.item_bytes.unit == 4096
    assert st.item_bytes.bounds[:2] == [4096, 8192]
    # 5000 bytes fall in (4 KiB, 8 KiB]; the 10-byte values in the first bucket
    assert st.item_bytes.buckets[1] >= 2 and st.item_bytes.buckets[0] >= 2
    assert st.item_bytes.sum >= 5000 * 2 + 20
    assert st.put_latency.mean > 0
    assert st.copy_faults == 0 and st.async_cancelled == 0
    d = st.as_dict()
    assert d["put_latency"]["count"] == st.put_latency.count


def test_empty_histogram_mean(store):
    assert store.stats().put_latency.mean is None


def test_stats_prometheus(store):
    store.put(b"a", b"v")
    store.get_into(b"a", bytearray(4))
    text = store.stats_prometheus()
    assert isinstance(text, str) and text.endswith("\n")
    names = set(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M))
    assert ("daxkv_devices", "gauge") in names
    assert all(n.startswith("daxkv_") for n, _ in names)
    assert any(kind == "histogram" for _, kind in names)
    assert any(kind == "counter" for _, kind in names)
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^daxkv_\w+(\{[^}]*\})? [-+0-9.eE]+|[-+]?Inf|NaN$', line), line
    store.close()
    with pytest.raises(daxkv.Shutdown):
        store.stats_prometheus()
