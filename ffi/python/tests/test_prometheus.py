"""daxkv.prometheus.StoreCollector: a Store's statistics, and those of a
store read by its device path, as prometheus_client metric families, the
same series as the library's own Prometheus text.

Bad inputs tried here: a page (held locked, as a running store holds
its own) whose status gives a device's slots as a string, null, 1e300 and
true, and slots_free as null and -1."""

import fcntl
import json
import math
import os
import struct
import time

import pytest

prometheus_client = pytest.importorskip(
    "prometheus_client",
    reason="prometheus_client is not installed (Debian: python3-prometheus-client): daxkv.prometheus is untested",
)
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import daxkv  # noqa: E402
from conftest import MiB, SLOT, SLOTS  # noqa: E402
from daxkv.prometheus import FAMILIES, StoreCollector  # noqa: E402


def open_file_store(path, **kw):
    return daxkv.Store(path=str(path), size=SLOTS * SLOT + 8 * MiB, slot_bytes=SLOT, **kw)


def samples(text):
    """{(sample name, sorted labels): value} of an exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def types(text):
    return {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")
    }


def scrape(*sources):
    reg = CollectorRegistry()
    StoreCollector(*sources, registry=reg)
    return generate_latest(reg).decode()


def store_id(store):
    return store.stats_prometheus().split('store="', 1)[1].split('"', 1)[0]


def exercise(s):
    s.put(b"big", b"x" * 5000)
    s.put(b"small", b"y" * 10)
    assert s.get_into(b"big", bytearray(8192)) == 5000
    assert s.get_into(b"absent", bytearray(16)) is None
    s.put_many([b"b1", b"b2"], [b"1", b"2"])
    s.remove(b"small")


def test_the_same_series_as_the_library(tmp_path):
    with open_file_store(tmp_path / "arena") as s:
        exercise(s)
        ours = scrape(s)
        theirs = s.stats_prometheus()
    assert types(ours) == types(theirs)
    assert [n for n in types(ours)] == list(FAMILIES)
    mine, lib = samples(ours), samples(theirs)
    assert mine.keys() == lib.keys()
    for key, v in lib.items():
        assert math.isclose(mine[key], v, rel_tol=1e-8), key
    # The library's help texts, too.
    helps = [line for line in theirs.splitlines() if line.startswith("# HELP ")]
    assert helps == [line for line in ours.splitlines() if line.startswith("# HELP ")]


@pytest.mark.parametrize("name", [b"back\\xff.arena", b"raw\xff\xfe.arena", b"ctl\x01.arena"])
def test_odd_device_paths_have_one_label_each_as_the_library_gives_them(tmp_path, stats_dir, name):
    # A path with a backslash, bytes that are not UTF-8, a control byte:
    # the collector gives the library's own label, in the store and through
    # a peek of its page (a path that is not UTF-8 was left out of both
    # the collector's series and the library's peek). The four characters
    # \xff and the byte 0xff shared one label before backslashes were
    # doubled.
    arena = os.path.join(os.fsencode(tmp_path), name)
    with open_file_store(os.fsdecode(arena), stats_interval=10) as s:
        exercise(s)
        lib, mine = samples(s.stats_prometheus()), samples(scrape(s))
        assert mine.keys() == lib.keys()
        assert {k: v for k, v in mine.items() if k[0].startswith("daxkv_device_")} == {
            k: v for k, v in lib.items() if k[0].startswith("daxkv_device_")}
        deadline = time.monotonic() + 10
        while daxkv.stats_peek(os.fsdecode(arena)).removes < 1:
            assert time.monotonic() < deadline, "the store did not publish within 10 s"
            time.sleep(0.005)
        peeked = samples(daxkv.stats_prometheus_peek(os.fsdecode(arena)))
    devices = {dict(k[1]).get("device") for k in lib if k[0] == "daxkv_device_slots"}
    assert len(devices) == 1
    assert {dict(k[1]).get("device") for k in peeked if k[0] == "daxkv_device_slots"} == devices


def test_a_backslash_and_its_escape_are_two_labels():
    from daxkv.prometheus import _device_label

    assert _device_label(b"a\\xff") == "a\\\\xff"
    assert _device_label(b"a\xff") == "a\\xff"
    assert _device_label("é\n\x7f\u0085".encode()) == "é\n\\x7f\\xc2\\x85"


def test_families_and_values(tmp_path):
    with open_file_store(tmp_path / "arena") as s:
        exercise(s)
        st = s.stats()
        sid = store_id(s)
        text = scrape(s)
    t = types(text)
    assert t["daxkv_entries"] == "gauge"
    assert t["daxkv_puts_total"] == "counter"
    assert t["daxkv_put_latency_seconds"] == "histogram"
    assert t["daxkv_item_bytes"] == "histogram"
    v = samples(text)
    store = (("store", sid),)
    assert v[("daxkv_entries", store)] == st.entries == 3
    assert v[("daxkv_puts_total", store)] == st.puts == 4
    assert v[("daxkv_misses_total", store)] == 1
    assert v[("daxkv_removes_total", store)] == 1
    assert v[("daxkv_written_bytes_total", store)] == 5000 + 10 + 2
    assert v[("daxkv_slots", store)] == st.slots_total
    dev = (("device", str(tmp_path / "arena")), ("store", sid))
    assert v[("daxkv_device_slots", dev)] == st.slots_total
    assert v[("daxkv_device_slots_free", dev)] == st.slots_free

    # Histograms: cumulative buckets with the library's bounds, +Inf = count.
    def bucket(name, le):
        return v[(name + "_bucket", (("le", le),) + store)]

    assert bucket("daxkv_item_bytes", "4096") >= 3  # "small", "1", "2"
    assert bucket("daxkv_item_bytes", "8192") == bucket("daxkv_item_bytes", "4096") + 2  # "big", in and out
    assert bucket("daxkv_item_bytes", "+Inf") == v[("daxkv_item_bytes_count", store)] == st.item_bytes.count
    assert v[("daxkv_item_bytes_sum", store)] == st.item_bytes.sum
    assert bucket("daxkv_put_latency_seconds", "1e-06") <= bucket("daxkv_put_latency_seconds", "2e-06")
    assert bucket("daxkv_put_latency_seconds", "+Inf") == st.put_latency.count == 2
    assert math.isclose(v[("daxkv_put_latency_seconds_sum", store)], st.put_latency.sum / 1e9)


def test_a_store_running_elsewhere_by_its_path(tmp_path, stats_dir):
    arena = tmp_path / "arena"
    with open_file_store(arena, stats_interval=10) as s:
        exercise(s)
        deadline = time.monotonic() + 10
        while daxkv.stats_peek(arena).removes < 1:  # the last operation of exercise()
            assert time.monotonic() < deadline, "the store did not publish within 10 s"
            time.sleep(0.005)
        by_path = scrape(arena)
        sid = daxkv.status_peek(arena)["publisher"]["store_id"]
        assert sid == store_id(s)
        # The path's series are the Store's (counters published after the
        # last operation: equal).
        assert samples(by_path) == samples(scrape(s))
        # A store reached through both is reported once.
        assert samples(scrape(s, str(arena))) == samples(by_path)
    v = samples(by_path)
    assert v[("daxkv_puts_total", (("store", sid),))] == 4
    assert v[("daxkv_device_slots_free", (("device", str(arena)), ("store", sid)))] >= 1
    # Gone: nothing to report (an exporter keeps running).
    assert scrape(arena) == ""


def plant_page(stats_dir, dev, status):
    """A statistics page of a store named "store" for dev, holding status
    (bytes) and no counters, under dev's page name; its path (held locked
    by the caller, as a running store holds its page)."""
    page = bytearray(32 * 1024)
    # magic, version, seq (even: whole), pid, published_unix_ns, stats_len, status_len
    struct.pack_into("<8s6Q", page, 0, b"DAXKVSTP", 1, 2, os.getpid(), 1, 0, len(status))
    page[56:61] = b"store"
    page[8192 : 8192 + len(status)] = status
    st = os.stat(dev)
    name = stats_dir / ("daxkv-stats.f%x.%x" % (st.st_dev, st.st_ino))
    name.write_bytes(bytes(page))
    return name


def test_a_page_with_counts_of_other_types(tmp_path, stats_dir):
    # A device count the collector could not turn into an int failed the
    # whole scrape (every store of the collector); the library reads such
    # a count as 0 in its own Prometheus text.
    dev = tmp_path / "other"
    dev.write_bytes(b"x")
    status = json.dumps(
        {
            "devices": [
                {"path": "a", "slots": "many", "slots_free": None},
                {"path": "b", "slots": 8, "slots_free": -1},
                {"path": "c", "slots": 1e300, "slots_free": 3},
                {"path": "d", "slots": None},
                {"path": "e", "slots": True},
            ]
        }
    ).encode()
    name = plant_page(stats_dir, dev, status)
    with open(name, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_SH)
        v = samples(scrape(dev))
        lib = samples(daxkv.stats_prometheus_peek(dev))

    def gauge(samples_, family):
        return {dict(labels)["device"]: val for (n, labels), val in samples_.items() if n == family}

    assert gauge(v, "daxkv_device_slots") == {"a": 0, "b": 8, "c": 0, "d": 0, "e": 0}
    assert gauge(v, "daxkv_device_slots_free") == {"a": 0, "b": 0, "c": 3, "d": 0, "e": 0}
    # As the library's own text of the same page.
    assert gauge(lib, "daxkv_device_slots") == gauge(v, "daxkv_device_slots")
    assert gauge(lib, "daxkv_device_slots_free") == gauge(v, "daxkv_device_slots_free")


def test_several_stores_in_one_collector(tmp_path):
    with open_file_store(tmp_path / "a") as a, open_file_store(tmp_path / "b") as b:
        a.put(b"k", b"v")
        text = scrape(a, b)
        ids = {store_id(a), store_id(b)}
    assert len(ids) == 2
    assert text.count("# TYPE daxkv_entries gauge\n") == 1  # one family, two series
    v = samples(text)
    assert {dict(labels)["store"] for (name, labels) in v if name == "daxkv_entries"} == ids
    assert sorted(val for (name, _), val in v.items() if name == "daxkv_puts_total") == [0, 1]


def test_closed_and_absent_sources_report_nothing(tmp_path, stats_dir):
    s = open_file_store(tmp_path / "arena")
    reg = CollectorRegistry()
    c = StoreCollector(s, tmp_path / "no-store-here", registry=reg)
    assert "daxkv_entries" in generate_latest(reg).decode()
    s.close()
    assert generate_latest(reg) == b""
    assert c.sources == [s, str(tmp_path / "no-store-here")]


def test_register_and_unregister(mem_store):
    reg = CollectorRegistry()
    c = StoreCollector(mem_store)
    assert generate_latest(reg) == b""
    assert c.register(reg) is c
    assert "daxkv_devices" in generate_latest(reg).decode()
    with pytest.raises(ValueError):
        c.register(reg)  # registered already
    # A second collector of daxkv families would repeat them: refused.
    with pytest.raises(ValueError, match="Duplicated"):
        StoreCollector(mem_store, registry=reg)
    c.unregister()
    c.unregister()  # not registered: nothing happens
    assert generate_latest(reg) == b""
    other = StoreCollector(mem_store, registry=reg)
    assert "daxkv_devices" in generate_latest(reg).decode()
    other.unregister()
    # The default registry.
    c.register()
    try:
        assert "daxkv_devices" in generate_latest(prometheus_client.REGISTRY).decode()
    finally:
        c.unregister()
    assert "daxkv_devices" not in generate_latest(prometheus_client.REGISTRY).decode()


def test_registration_reads_no_store(tmp_path):
    # describe() names the families without reading anything: a store that
    # is not running yet can be registered.
    reg = CollectorRegistry()
    StoreCollector(tmp_path / "later", registry=reg)
    assert generate_latest(reg) == b""


def test_add_and_remove(mem_store, tmp_path):
    c = StoreCollector()
    reg = CollectorRegistry()
    c.register(reg)
    assert generate_latest(reg) == b""
    c.add(mem_store).add(mem_store)  # once
    assert c.sources == [mem_store]
    assert "daxkv_devices" in generate_latest(reg).decode()
    c.add(os.fsencode(tmp_path / "x"))
    c.remove(str(tmp_path / "x"))
    c.remove(mem_store)
    assert generate_latest(reg) == b""
    with pytest.raises(KeyError):
        c.remove(mem_store)
    with pytest.raises(TypeError):
        c.add(42)


def test_memory_store_has_a_device_series(mem_store):
    v = samples(scrape(mem_store))
    sid = store_id(mem_store)
    assert v[("daxkv_device_slots", (("device", "mem:"), ("store", sid)))] == mem_store.stats().slots_total


def test_devices_of_one_path_get_series_of_their_own():
    # Two mem: devices of one pool were two series with the same labels
    # (device="mem:"), a scrape error; the collector and the library's own
    # text now tell them apart the same way, by a device_index label.
    s = daxkv.Store(devices=[("mem:", 1 << 20), ("mem:", 2 << 20)], slot_bytes="4KiB")
    try:
        sid = store_id(s)
        for text in (scrape(s), s.stats_prometheus()):
            v = samples(text)  # refuses a duplicate series
            one = v[("daxkv_device_slots", (("device", "mem:"), ("device_index", "1"), ("store", sid)))]
            two = v[("daxkv_device_slots", (("device", "mem:"), ("device_index", "2"), ("store", sid)))]
            assert 0 < one < two
    finally:
        s.close()


@pytest.mark.parametrize("devices", [5, "ab", {"path": "a"}, None])
def test_a_page_whose_devices_are_no_list(tmp_path, stats_dir, devices):
    # A planted page whose "devices" is no list (an int raised TypeError:
    # not iterable) failed the whole scrape, every store of the collector
    # with it; the library's own text of such a page names no device.
    dev = tmp_path / "other"
    dev.write_bytes(b"x")
    status = json.dumps({"devices": devices}).encode()
    name = plant_page(stats_dir, dev, status)
    with open(name, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_SH)
        v = samples(scrape(dev))
        lib = samples(daxkv.stats_prometheus_peek(dev))
    assert [k for k in v if k[0].startswith("daxkv_device_")] == []
    assert [k for k in lib if k[0].startswith("daxkv_device_")] == []
    assert v[("daxkv_puts_total", (("store", "store"),))] == 0
