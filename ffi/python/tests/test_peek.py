"""stats_peek, status_peek and stats_prometheus_peek: a store opened here
publishes every 10 ms into a private statistics directory and is read back
by its device path, as another process would read it."""

import os
import time

import pytest

import daxkv
from conftest import MiB, SLOT, SLOTS


def open_published(path, interval=10):
    return daxkv.Store(path=str(path), size=SLOTS * SLOT + 8 * MiB, slot_bytes=SLOT, stats_interval=interval)


def wait_published(path, done, timeout=10.0):
    """Peek until done(stats) holds for what the store published."""
    deadline = time.monotonic() + timeout
    while True:
        st = daxkv.stats_peek(path)
        if done(st):
            return st
        assert time.monotonic() < deadline, f"the store did not publish within {timeout} s: {st}"
        time.sleep(0.005)


def test_peek_a_running_store(tmp_path, stats_dir):
    arena = tmp_path / "arena"
    with open_published(arena) as s:
        own = s.stats()
        st = daxkv.stats_peek(arena)  # published at open already; a PathLike
        assert isinstance(st, daxkv.Stats)
        assert (st.slots_total, st.slot_bytes, st.devices) == (own.slots_total, SLOT, 1)

        s.put(b"single", b"x" * 5000)
        assert s.put_many([b"a", b"b"], [b"1", b"2"]) == [True, True]
        st = wait_published(arena, lambda st: st.puts >= 3)
        assert (st.puts, st.entries, st.batches) == (3, 3, 1)
        # The histograms travel too.
        assert isinstance(st.put_latency, daxkv.Histogram) and st.put_latency.count == 1
        assert st.item_bytes.buckets[1] == 1 and st.item_bytes.unit == 4096

        status = daxkv.status_peek(str(arena))
        pub = status["publisher"]
        assert pub["pid"] == os.getpid()
        assert len(pub["store_id"]) == 36 and pub["published_unix_ns"] > 0
        assert [d["path"] for d in status["devices"]] == [str(arena)]
        assert status["entries"] == 3

        # The same exposition as the store's own, labelled with the same id
        # (longer than the first buffer: the retry is exercised).
        text = daxkv.stats_prometheus_peek(os.fsencode(arena))
        assert len(text) > 4096
        label = f'{{store="{pub["store_id"]}"}}'
        assert f"daxkv_puts_total{label} 3\n" in text
        assert f"daxkv_slots{label} {own.slots_total}\n" in text
        assert f'daxkv_device_slots{{store="{pub["store_id"]}",device="{arena}"}} ' in text
        assert f"daxkv_puts_total{label} 3\n" in s.stats_prometheus()

    # The page goes with the store.
    for fn in (daxkv.stats_peek, daxkv.status_peek, daxkv.stats_prometheus_peek):
        with pytest.raises(daxkv.NotFound):
            fn(arena)
    assert list(stats_dir.iterdir()) == []


def test_peek_where_no_store_publishes(tmp_path, stats_dir):
    plain = tmp_path / "plain"
    plain.write_bytes(b"\0" * 4096)
    for path in (plain, tmp_path / "missing"):
        for fn in (daxkv.stats_peek, daxkv.status_peek, daxkv.stats_prometheus_peek):
            with pytest.raises(daxkv.NotFound) as e:
                fn(path)
            assert e.value.message
    # stats_interval 0 publishes nothing.
    with open_published(tmp_path / "arena", interval=0):
        with pytest.raises(daxkv.NotFound):
            daxkv.stats_peek(tmp_path / "arena")


@pytest.mark.parametrize("path", ["", b"", "mem:", "a\0b"])
def test_peek_bad_paths(stats_dir, path):
    # "mem:" is anonymous memory, which no other process can name.
    for fn in (daxkv.stats_peek, daxkv.status_peek, daxkv.stats_prometheus_peek):
        with pytest.raises(daxkv.InvalidArgument) as e:
            fn(path)
        assert e.value.message


def test_peek_of_a_mem_store_is_refused(stats_dir, mem_store):
    with pytest.raises(daxkv.InvalidArgument):
        daxkv.stats_peek("mem:")


def test_exported():
    for name in ("stats_peek", "status_peek", "stats_prometheus_peek", "cuda_available"):
        assert name in daxkv.__all__ and callable(getattr(daxkv, name))
