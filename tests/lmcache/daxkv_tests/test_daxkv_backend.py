# SPDX-License-Identifier: Apache-2.0
"""daxkv.lmcache.backend.DaxkvBackend, loaded the way LMCache loads storage
plugins: storage_plugin_launcher builds it from the engine configuration
alone (storage_plugins=["daxkv"] and extra_config).

Bad inputs tried here:

* a batch with an object larger than the slot, one reporting a size of -1; keys and objects of
  different lengths (2 and 1); a batch larger than the free slots (sync and
  async); a key stored twice (sync and async); an on_complete_callback that raises
  KeyError; a put while close waits; async put futures cancelled by the
  caller before their copy completed;
* unpin and remove (not forced) of a pinned key, unpin of a key no longer
  stored; a non-blocking restore whose first key is missing;
* dax.async_put true without an event loop;
* configurations: no dax.device_path, a blank one; dax.max_dax_size absent,
  0, -1, "abc", "inf" and "nan"; daxkv.workers 4.0, daxkv.meta_bytes and
  daxkv.grow_limit None, daxkv.durability ["power"]; dax.restore_max_regions
  0 and "x" (also on a persistent arena larger than its new size),
  dax.retrieve_staging_slab_bytes -1 and smaller than its regions' chunks
  (beside LMCache's own DaxBackend); world_size 2; config, metadata or local_cpu_backend
  None; dax.device_path naming a missing file (through the launcher, which
  logs the failure and skips the plugin);
* lookups and restores of keys never stored, after a delete and after close;
* a key longer than libdaxkv's 512-byte limit once encoded (a 500-character
  request tag) through every call; token positions whose metadata is larger
  than meta_bytes; restores when LMCache's CPU allocator has no room (beside
  LMCache's own DaxBackend);
* an entry whose recorded layout is 2**40 bfloat16 values (restores);
* token positions the metadata cannot hold (fractional floats 0.5 and 1.5,
  a 2-D tensor) in a batch beside a plain object, sync and async;
* a non-blocking restore cancelled by its caller while it copies;
* writes cancelled by a forced remove (the library's -ECANCELED), async
  and sync.
"""

# Standard
import array
import asyncio
import concurrent.futures
import errno
import importlib
import logging
import os
import threading
from collections import OrderedDict

# Third Party
import pytest
import torch

# First Party
import daxkv
from daxkv import _lib
from daxkv.lmcache import _native
from daxkv.lmcache.backend import DaxkvBackend
from dk_helpers import (
    interrupt_after_submit_call,
    interrupted_at_line,
    SizedAs,
    ekey,
    hold_completions,
    kv_obj,
    make_device,
    obj_bytes,
    open_fds,
    release,
    wait_until,
)
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.memory_allocators.mixed_memory_allocator import MixedMemoryAllocator
from lmcache.v1.memory_management import MemoryFormat
from lmcache.v1.metadata import LMCacheMetadata
from lmcache.v1.storage_backend import storage_plugin_launcher
from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend

CHUNK = 16
CHUNK_BYTES = 2 * 2 * CHUNK * 2 * 8 * 2  # kv_shape (2, 2, 16, 2, 8) in bf16
GIB = 1024**3
SHAPE = (2, CHUNK, 8)  # one KV_T2D chunk object (512 bytes) ...
FULL = (2, 4 * CHUNK, 8)  # ... and a full-slot one (2048 bytes)


@pytest.fixture(scope="module")
def allocator():
    alloc = MixedMemoryAllocator(64 << 20)
    yield alloc
    alloc.close()


def _metadata(world_size=1):
    return LMCacheMetadata(
        model_name="test_model",
        world_size=world_size,
        local_world_size=world_size,
        worker_id=0,
        local_worker_id=0,
        kv_dtype=torch.bfloat16,
        kv_shape=(2, 2, CHUNK, 2, 8),
        role="worker",
    )


def _config(extra, plugin=True):
    config = LMCacheEngineConfig.from_defaults(
        chunk_size=CHUNK, local_cpu=True, max_local_cpu_size=0.1, lmcache_instance_id="daxkv_tests"
    )
    if plugin:
        config.storage_plugins = ["daxkv"]
        extra = {
            "storage_plugin.daxkv.module_path": "daxkv.lmcache.backend",
            "storage_plugin.daxkv.class_name": "DaxkvBackend",
            **extra,
        }
    config.extra_config = extra
    return config


@pytest.fixture
def launch(tmp_path, allocator):
    """launch(slots=4, extra=None, loop=None, path=None) -> (backend or
    None, local_cpu_backend, device path), through storage_plugin_launcher."""
    made = []

    def _launch(slots=4, extra=None, loop=None, path=None, metadata=None):
        if path is None:
            path = make_device(tmp_path / "dax.bin", 1 << 20)
        config = _config({"dax.device_path": path, "dax.max_dax_size": slots * CHUNK_BYTES / GIB, **(extra or {})})
        metadata = metadata or _metadata()
        cpu = LocalCPUBackend(config=config, metadata=metadata, dst_device="cpu", memory_allocator=allocator)
        backends = OrderedDict()
        storage_plugin_launcher(config, metadata, loop, cpu, "cpu", backends)
        backend = backends.get("daxkv")
        if backend is not None:
            made.append(backend)
        return backend, cpu, path

    yield _launch
    for b in made:
        b.close()


@pytest.fixture
def running_loop():
    """An asyncio loop running on a thread of its own, as LMCache's engine
    gives its storage backends for async puts."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def _obj(fill, shape=SHAPE):
    return kv_obj(shape, float(fill), fmt=MemoryFormat.KV_T2D)


def _first(obj):
    return None if obj is None else float(obj.tensor.flatten()[0])


def _release_all(objs):
    release(*[o for o in objs if o is not None])


def test_launcher_builds_the_backend_from_config(launch):
    backend, cpu, path = launch(slots=4)
    assert type(backend) is DaxkvBackend
    assert str(backend) == "DaxkvBackend"
    assert backend.device_path == path
    assert backend.slot_bytes == cpu.get_full_chunk_size_bytes() == CHUNK_BYTES
    assert (backend.core.max_slots, backend.core.slot_bytes) == (4, CHUNK_BYTES)
    assert backend.get_allocator_backend() is cpu
    assert backend.core.report_status()["supports_restart_recovery"] is False


def test_restore_workers_past_the_librarys_threads_start_the_backend(launch):
    # LMCache's own DaxBackend starts with any positive dax.restore_workers;
    # passed on unclamped, 257 failed the start ("workers: 257 is not in
    # 1..256"). The copy engine gets its most, 256, as the L2 adapter's
    # num_load_workers does.
    backend, _, _ = launch(extra={"dax.restore_workers": 257})
    assert type(backend) is DaxkvBackend
    obj = _obj(9)
    backend.batched_submit_put_task([ekey(0)], [obj])
    assert _first(backend.get_blocking(ekey(0))) == 9.0
    release(obj)


def test_roundtrip(launch):
    backend, cpu, _ = launch()
    obj = _obj(5, FULL)
    obj.metadata.cached_positions = torch.arange(0, 64)
    assert backend.batched_submit_put_task([ekey(1)], [obj]) is None
    assert backend.contains(ekey(1)) is True
    out = backend.get_blocking(ekey(1))
    assert out is not obj
    assert out.get_shape() == torch.Size(FULL) and out.get_dtype() == torch.bfloat16
    assert out.get_memory_format() is MemoryFormat.KV_T2D
    assert obj_bytes(out) == obj_bytes(obj)
    assert out.metadata.cached_positions.tolist() == list(range(64))
    assert backend.get_blocking(ekey(2)) is None
    release(obj, out)


def test_batched_get_blocking_keeps_positional_holes(launch):
    backend, _, _ = launch()
    objs = [_obj(1), _obj(3)]
    backend.batched_submit_put_task([ekey(0), ekey(2)], objs)
    out = backend.batched_get_blocking([ekey(0), ekey(1), ekey(2), ekey(3)])
    assert [_first(o) for o in out] == [1.0, None, 3.0, None]
    assert obj_bytes(out[2]) == obj_bytes(objs[1])
    assert backend.batched_get_blocking([]) == []
    _release_all(objs + out)


def test_batched_get_non_blocking_returns_the_hit_prefix(launch):
    backend, _, _ = launch()
    objs = [_obj(1), _obj(2), _obj(4)]
    backend.batched_submit_put_task([ekey(0), ekey(1), ekey(3)], objs)
    run = lambda keys: asyncio.run(backend.batched_get_non_blocking("lookup", keys))  # noqa: E731
    got = run([ekey(0), ekey(1), ekey(2), ekey(3)])
    assert [_first(o) for o in got] == [1.0, 2.0]
    none = run([ekey(2), ekey(0)])
    assert none == []
    all_hits = run([ekey(3), ekey(0)])
    assert [_first(o) for o in all_hits] == [4.0, 1.0]
    _release_all(objs + got + all_hits)


def test_a_shutdown_between_the_leases_and_their_metadata_is_a_miss_and_keeps_none(launch, monkeypatch):
    # The metadata of the leased entries is read in a second library call;
    # one that failed as a whole (a shutdown landing between the two, no
    # memory) raised with every lease taken still held, for good.
    backend, _, _ = launch()
    obj = _obj(3, FULL)
    backend.batched_submit_put_task([ekey(0)], [obj])

    def shut(*args, **kwargs):
        raise daxkv.Shutdown(-errno.ESHUTDOWN, "the store is shut down", "daxkv_lease_read_batch")

    monkeypatch.setattr(_native, "_read_leases", shut)
    assert backend.get_blocking(ekey(0)) is None
    assert backend.batched_get_blocking([ekey(0)]) == [None]
    assert backend.core.store.stats().leases_active == 0
    assert backend.core.report_status()["active_read_count"] == 0
    monkeypatch.undo()
    assert _first(backend.get_blocking(ekey(0))) == 3.0
    release(obj)


def _data_offset(path):
    """The arena's data_offset (superblock A, docs/on-device-format.md)."""
    with open(path, "rb") as f:
        f.seek(72)
        return int.from_bytes(f.read(8), "little")


@pytest.mark.parametrize("cut", ["values", "headers"])
def test_restores_of_a_truncated_arena_are_misses_with_sigbus_handle(launch, cut):
    # The arena file is cut under the running backend, below the last two
    # slots' payloads (values) or below every slot header (headers).
    # daxkv.sigbus=handle kept the backend's stores and lookups alive, but
    # a restore read the leased entries' metadata and values itself: SIGBUS
    # ended the process. The library now copies both out under its guard
    # (daxkv_lease_read_batch): the entries it cannot read are misses, and
    # gone; every hit is the bytes stored.
    backend, _, path = launch(extra={"daxkv.sigbus": "handle"})
    objs = [_obj(i + 1, FULL) for i in range(4)]
    keys = [ekey(i) for i in range(4)]
    backend.batched_submit_put_task(keys, objs)
    os.truncate(path, _data_offset(path) + 4096 if cut == "values" else 4096 * 2)
    out = backend.batched_get_blocking(keys)
    hits = [i for i, o in enumerate(out) if o is not None]
    assert len(hits) == (2 if cut == "values" else 0)
    for i in hits:
        assert obj_bytes(out[i]) == obj_bytes(objs[i])
    for i in set(range(4)) - set(hits):
        assert backend.contains(keys[i]) is False
        assert backend.get_blocking(keys[i]) is None
    got = asyncio.run(backend.batched_get_non_blocking("l", keys))
    assert len(got) <= len(hits)
    for o, i in zip(got, range(4)):
        assert i in hits and obj_bytes(o) == obj_bytes(objs[i])
    for i in hits:
        again = backend.get_blocking(keys[i])
        assert obj_bytes(again) == obj_bytes(objs[i])
        release(again)
    _release_all(objs + out + got)


def test_an_entry_larger_than_its_layout_is_a_miss_not_an_overflow(launch):
    # An entry's value longer than its recorded shape and dtype hold (a
    # put_reserved_from_ptr with a size beyond the shape, or an arena
    # recovered from another writer) was copied whole into an output
    # allocated for that shape: past its end, over the allocator's next
    # object.
    backend, _, _ = launch()
    src = _obj(5, FULL)
    small = torch.Size((2, 1, 8))  # 64 bytes of bf16; the value is 2048
    assert backend.core.put_reserved_from_ptr(
        ekey(1), src.data_ptr, src.get_size(), small, torch.bfloat16, MemoryFormat.KV_T2D, None
    ).name == "INSERTED"
    good = _obj(3)
    backend.batched_submit_put_task([ekey(2)], [good])
    assert backend.get_blocking(ekey(1)) is None
    out = backend.batched_get_blocking([ekey(1), ekey(2)])
    assert out[0] is None and _first(out[1]) == 3.0
    prefix = asyncio.run(backend.batched_get_non_blocking("l", [ekey(2), ekey(1), ekey(2)]))
    assert [_first(o) for o in prefix] == [3.0]
    _release_all([src, good, *out, *prefix])


def test_batched_contains_counts_the_prefix_and_pins_it(launch):
    backend, _, _ = launch()
    objs = [_obj(1), _obj(3)]
    backend.batched_submit_put_task([ekey(0), ekey(2)], objs)
    assert backend.batched_contains([ekey(0), ekey(1), ekey(2)]) == 1
    assert backend.batched_contains([ekey(1), ekey(0)]) == 0
    assert asyncio.run(backend.batched_async_contains("l", [ekey(0), ekey(2)])) == 2
    # nothing pinned so far: the status counts no locked key
    assert backend.core.report_status()["locked_key_count"] == 0

    assert backend.batched_contains([ekey(0), ekey(1), ekey(2)], pin=True) == 1
    # the prefix (key 0) is pinned, key 2 past the miss is not
    assert backend.core.report_status()["locked_key_count"] == 1
    assert backend.remove(ekey(0), force=False) is False
    assert backend.remove(ekey(2), force=False) is True
    assert backend.unpin(ekey(0)) is True  # still present after the unpin
    assert backend.remove(ekey(0), force=False) is True
    assert backend.contains(ekey(0)) is False
    assert backend.unpin(ekey(0)) is False
    _release_all(objs)


def test_duplicate_put_is_a_noop_without_callback(launch):
    backend, _, _ = launch()
    seen = []
    first, second = _obj(1), _obj(9)
    assert backend.batched_submit_put_task([ekey(0)], [first], on_complete_callback=seen.append) is None
    assert backend.batched_submit_put_task([ekey(0)], [second], on_complete_callback=seen.append) is None
    assert seen == [ekey(0)]
    out = backend.get_blocking(ekey(0))
    assert _first(out) == 1.0
    assert backend.core.report_status()["live_slot_count"] == 1
    release(first, second, out)


def test_on_complete_callback_for_each_new_key(launch):
    backend, _, _ = launch()
    seen = []
    objs = [_obj(i) for i in range(3)]
    backend.batched_submit_put_task([ekey(0)], objs[:1])
    backend.batched_submit_put_task([ekey(0), ekey(1), ekey(2)], objs, on_complete_callback=seen.append)
    assert seen == [ekey(1), ekey(2)]

    def failing(key):
        raise KeyError("listener bug")

    # a failing callback is LMCache's to log; the put still counts
    extra = _obj(7)
    backend.batched_submit_put_task([ekey(3)], [extra], on_complete_callback=failing)
    assert backend.contains(ekey(3)) is True
    _release_all(objs + [extra])


def test_oversize_object_is_a_value_error(launch):
    backend, _, _ = launch()
    big = kv_obj((2, 4 * CHUNK + 1, 8), 1.0, fmt=MemoryFormat.KV_T2D)  # 2080 bytes
    with pytest.raises(ValueError) as info:
        backend.batched_submit_put_task([ekey(5)], [big])
    assert str(info.value) == f"DaxkvBackend: object size 2080 for key {ekey(5)} exceeds slot size {CHUNK_BYTES}"
    assert backend.contains(ekey(5)) is False
    with pytest.raises(ValueError, match=r"^keys and objs must have the same length, got 2 and 1$"):
        backend.batched_submit_put_task([ekey(1), ekey(2)], [big])
    # an object reporting a negative size (a broken MemoryObj)
    small = _obj(1)
    with pytest.raises(ValueError) as info:
        backend.batched_submit_put_task([ekey(6)], [SizedAs(small, -1)])
    assert str(info.value) == f"DaxkvBackend: object size -1 for key {ekey(6)} is negative"
    assert backend.core.report_status()["live_slot_count"] == 0
    release(big, small)


def test_full_arena_is_a_runtime_error_after_storing_what_fits(launch):
    backend, _, _ = launch(slots=2)
    seen = []
    objs = [_obj(i) for i in range(3)]
    with pytest.raises(RuntimeError, match=r"^No free slots available; eviction required$"):
        backend.batched_submit_put_task([ekey(0), ekey(1), ekey(2)], objs, on_complete_callback=seen.append)
    assert seen == [ekey(0), ekey(1)]
    assert [backend.contains(ekey(i)) for i in range(3)] == [True, True, False]
    # eviction (LMCache's) makes room again
    assert backend.batched_remove([ekey(0)]) == 1
    backend.batched_submit_put_task([ekey(2)], objs[2:])
    assert _first(backend.get_blocking(ekey(2))) == 2.0
    _release_all(objs)


def test_a_full_arena_fails_an_async_put_as_it_fails_a_put(launch, running_loop):
    # LMCache's own async put runs its core's put_one in a coroutine: the
    # future fails with the same RuntimeError a synchronous put raises.
    backend, _, _ = launch(slots=2, extra={"dax.async_put": "true"}, loop=running_loop)
    seen = []
    objs = [_obj(i) for i in range(3)]
    futures = backend.batched_submit_put_task([ekey(i) for i in range(3)], objs, on_complete_callback=seen.append)
    outcomes = []
    for f in futures:
        exc = f.exception(timeout=10)
        outcomes.append(None if exc is None else (type(exc), str(exc)))
    assert outcomes == [None, None, (RuntimeError, "No free slots available; eviction required")]
    assert sorted(k.chunk_hash for k in seen) == [0, 1]
    assert [o.get_ref_count() for o in objs] == [1, 1, 1]
    backend.close()
    _release_all(objs)


def test_async_put_with_a_running_loop_returns_futures(launch, running_loop):
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    seen = []
    objs = [_obj(5), _obj(6)]
    futures = backend.batched_submit_put_task([ekey(0), ekey(1)], objs, on_complete_callback=seen.append)
    assert isinstance(futures, list) and len(futures) == 2
    assert [f.result(timeout=10) for f in futures] == [None, None]
    assert sorted(k.chunk_hash for k in seen) == [0, 1]
    # the objects were held for the copy and handed back
    assert [o.get_ref_count() for o in objs] == [1, 1]
    assert [_first(backend.get_blocking(ekey(i))) for i in range(2)] == [5.0, 6.0]
    # a duplicate is still a no-op: no futures, no callback
    assert backend.batched_submit_put_task([ekey(0)], objs[:1], on_complete_callback=seen.append) is None
    assert len(seen) == 2
    backend.close()
    _release_all(objs)


def test_async_put_futures_cancelled_by_the_caller_do_not_stop_the_others(launch, running_loop, monkeypatch):
    # A caller may cancel a returned future before its copy completes
    # (concurrent.futures lets a pending future be cancelled). Setting a
    # result on it raises InvalidStateError; that once ended the completion
    # there: the later keys' futures never settled, their objects kept the
    # reference taken for the copy, and their callbacks never ran.
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    release_completion = threading.Event()
    hold_completions(monkeypatch, backend._engine, release_completion)
    seen = []
    objs = [_obj(5), _obj(6), _obj(7)]
    futures = backend.batched_submit_put_task([ekey(0), ekey(1), ekey(2)], objs, on_complete_callback=seen.append)
    assert futures[0].cancel() and futures[1].cancel()
    release_completion.set()
    assert futures[2].result(timeout=10) is None
    assert wait_until(lambda: [o.get_ref_count() for o in objs] == [1, 1, 1])
    assert sorted(k.chunk_hash for k in seen) == [0, 1, 2]  # stored, so reported
    assert [backend.contains(ekey(i)) for i in range(3)] == [True, True, True]
    _release_all(objs)


def test_async_put_refused_beside_one_in_flight_of_the_same_key(launch, running_loop, monkeypatch):
    # Two threads store the same key at once: both pass the duplicate check
    # before either registers it. The first submission is in flight (its
    # completion held back) when the second is refused; the first must
    # still complete its future and hand its object back.
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    both_checked = threading.Barrier(2, timeout=10)
    real_check = backend.exists_in_put_tasks

    def racing_check(key):
        found = real_check(key)
        both_checked.wait()
        return found

    monkeypatch.setattr(backend, "exists_in_put_tasks", racing_check)
    engine = backend._engine
    real_submit = engine.submit
    submissions = []
    submissions_lock = threading.Lock()
    second_refused = threading.Event()

    def submit(op, batch, flags, done, submission=None):
        with submissions_lock:
            submissions.append(batch)
            first = len(submissions) == 1
        if not first:
            raise RuntimeError("refused")

        def held_done(rc, b):
            assert second_refused.wait(10)
            done(rc, b)

        real_submit(op, batch, flags, held_done, submission)

    monkeypatch.setattr(engine, "submit", submit)
    objs = [_obj(7), _obj(7)]
    futures = [None, None]

    def put(i):
        futures[i] = backend.batched_submit_put_task([ekey(0)], [objs[i]])

    threads = [threading.Thread(target=put, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    outcomes = []
    for fs in futures:
        try:
            outcomes.append(fs[0].result(timeout=0))
        except concurrent.futures.TimeoutError:
            outcomes.append("pending")
        except RuntimeError:
            outcomes.append("refused")
    assert sorted(outcomes, key=str) == ["pending", "refused"]
    second_refused.set()
    pending = futures[outcomes.index("pending")][0]
    assert pending.result(timeout=10) is None
    assert [o.get_ref_count() for o in objs] == [1, 1]
    assert real_check(ekey(0)) is False
    assert _first(backend.get_blocking(ekey(0))) == 7.0
    backend.close()
    _release_all(objs)


def test_an_async_put_interrupted_as_its_submission_returns_completes(launch, running_loop, monkeypatch):
    # KeyboardInterrupt (Python runs signal handlers right after a call
    # returns) between daxkv_submit's return and its result being looked
    # at. The engine dropped the batch the library had taken, and the
    # backend handed the objects back and failed the futures: the library
    # then copied from objects given back to LMCache's allocator, and wrote
    # its statuses into the freed batch (wrong bytes stored, a crash).
    # The interrupt now reaches the caller, and the completion settles the
    # batch: its objects are handed back once, and the key is stored whole.
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    interrupt_after_submit_call(monkeypatch)
    seen = []
    objs = [_obj(3), _obj(4)]
    with pytest.raises(KeyboardInterrupt):
        backend.batched_submit_put_task([ekey(0), ekey(1)], objs, on_complete_callback=seen.append)
    monkeypatch.undo()
    assert wait_until(lambda: [o.get_ref_count() for o in objs] == [1, 1])
    assert wait_until(lambda: not backend.exists_in_put_tasks(ekey(0)))
    assert sorted(k.chunk_hash for k in seen) == [0, 1]
    assert [_first(backend.get_blocking(ekey(i))) for i in range(2)] == [3.0, 4.0]
    backend.close()
    _release_all(objs)


def test_an_async_put_interrupted_on_any_line_leaves_nothing_counted(launch, running_loop):
    # An interrupt between the put's counting its keys in flight (and
    # taking its objects' references) and the try that gives them back
    # left the keys counted for good: every later async put of them was
    # skipped as one in flight, storing nothing. Here one lands on every
    # line of the submission in turn.
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    code = DaxkvBackend._submit_async.__code__
    objs = [_obj(1), _obj(2)]
    keys = [ekey(0), ekey(1)]
    for k in range(1, 200):
        before = [o.get_ref_count() for o in objs]
        interrupted = interrupted_at_line(lambda: backend.batched_submit_put_task(keys, objs), code, k)
        assert wait_until(lambda: not any(backend.exists_in_put_tasks(key) for key in keys)), f"line {k}"
        # A reference is handed back unless the interrupt lands between its
        # taking and its counting (one step: at most one object's).
        assert wait_until(lambda: sum(o.get_ref_count() for o in objs) - sum(before) <= 1), f"line {k}"
        if not interrupted:
            break
        backend.batched_remove(keys)
    assert k > 5
    assert [_first(backend.get_blocking(key)) for key in keys] == [1.0, 2.0]
    backend.close()
    _release_all(objs)


def test_a_restore_interrupted_on_any_line_leaves_no_lease_or_read(launch):
    # An interrupt as lease_entries returned, before the try that gives the
    # leases back, left them held and the read counted: close() waited for
    # it for good. Here one lands on every line of the restore in turn.
    backend, _, _ = launch()
    objs = [_obj(1), _obj(2)]
    keys = [ekey(0), ekey(1)]
    backend.batched_submit_put_task(keys, objs)
    code = DaxkvBackend._restore.__code__
    for k in range(1, 200):
        got = []
        interrupted = interrupted_at_line(lambda: got.extend(backend.batched_get_blocking(keys)), code, k)
        assert backend.core.report_status()["active_read_count"] == 0, f"line {k}"
        assert backend.core.store.stats().leases_active == 0, f"line {k}"
        if not interrupted:
            assert [_first(o) for o in got] == [1.0, 2.0]
            _release_all(got)
            break
    assert k > 5
    backend.close()
    _release_all(objs)


def test_async_puts_complete_when_the_core_is_closed_under_them(launch, running_loop, monkeypatch):
    # The core (a public property) closed directly while a submitted put's
    # completion is not yet collected: its future must still settle, its
    # object be handed back, and the backend's close() return.
    fds_before = open_fds()
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    engine = backend._engine
    real_submit = engine.submit
    in_first_completion = threading.Event()
    core_closed = threading.Event()
    calls = []

    def submit(op, batch, flags, done, submission=None):
        calls.append(batch)
        if len(calls) > 1:
            return real_submit(op, batch, flags, done, submission)

        def held_done(rc, b):
            # The completion thread waits here while the second put
            # completes in the library and the core is closed.
            in_first_completion.set()
            assert core_closed.wait(10)
            done(rc, b)

        return real_submit(op, batch, flags, held_done, submission)

    monkeypatch.setattr(engine, "submit", submit)
    objs = [_obj(1), _obj(2)]
    first = backend.batched_submit_put_task([ekey(0)], objs[:1])
    assert in_first_completion.wait(10)
    second = backend.batched_submit_put_task([ekey(1)], objs[1:])
    backend.core.close()
    core_closed.set()
    assert first[0].result(timeout=10) is None
    try:
        second[0].result(timeout=10)  # stored before the close, or refused by it
    except RuntimeError:
        pass
    closer = threading.Thread(target=backend.close, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() hangs on a put whose completion was lost"
    assert [o.get_ref_count() for o in objs] == [1, 1]
    assert open_fds() == fds_before
    _release_all(objs)


def test_close_from_an_async_put_completion_callback(launch, running_loop):
    # on_complete_callback runs on the completion thread; a close() from it
    # once waited for that thread to complete the other puts and to join
    # itself: it hung, and so did every future still pending.
    fds_before = open_fds()
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    closed = threading.Event()
    both_submitted = threading.Event()

    def close_backend(key):
        assert both_submitted.wait(10)  # the second put is pending
        backend.close()
        closed.set()

    objs = [_obj(1), _obj(2)]
    futures = backend.batched_submit_put_task([ekey(0)], objs[:1], on_complete_callback=close_backend)
    futures += backend.batched_submit_put_task([ekey(1)], objs[1:])
    both_submitted.set()
    assert closed.wait(10), "close() from the completion callback hangs"
    done, pending = concurrent.futures.wait(futures, timeout=10)
    assert not pending
    assert wait_until(lambda: not backend._engine._thread.is_alive())
    assert [o.get_ref_count() for o in objs] == [1, 1]
    assert open_fds() == fds_before
    _release_all(objs)


def test_async_put_needs_an_event_loop(tmp_path, allocator):
    path = make_device(tmp_path / "dax.bin", 1 << 20)
    config = _config({"dax.device_path": path, "dax.max_dax_size": 0.001, "dax.async_put": True}, plugin=False)
    cpu = LocalCPUBackend(config=config, metadata=_metadata(), dst_device="cpu", memory_allocator=allocator)
    with pytest.raises(ValueError, match=r"^DaxkvBackend async_put=true requires an asyncio event loop$"):
        DaxkvBackend(config=config, metadata=_metadata(), local_cpu_backend=cpu, loop=None)


def test_close_waits_for_a_restore_in_flight(launch, monkeypatch):
    backend, cpu, _ = launch()
    obj = _obj(8, FULL)
    backend.batched_submit_put_task([ekey(0)], [obj])
    in_allocate = threading.Event()
    go_on = threading.Event()
    real_allocate = cpu.allocate

    def gated_allocate(*args, **kwargs):
        in_allocate.set()
        assert go_on.wait(10)
        return real_allocate(*args, **kwargs)

    monkeypatch.setattr(cpu, "allocate", gated_allocate)
    restored = {}
    reader = threading.Thread(target=lambda: restored.setdefault("obj", backend.get_blocking(ekey(0))))
    reader.start()
    assert in_allocate.wait(5)  # the entry is reserved, its copy not done
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (backend.close(), closed.set()))
    closer.start()
    assert wait_until(backend.core.is_closing)
    assert closer.is_alive() and not closed.is_set()
    assert backend.core.report_status()["active_read_count"] == 1
    # new work is refused while it waits
    assert backend.get_blocking(ekey(0)) is None
    assert backend.batched_get_blocking([ekey(0)]) == []
    with pytest.raises(RuntimeError, match=r"^DaxkvBackend is closing$"):
        backend.batched_submit_put_task([ekey(1)], [obj])
    go_on.set()
    reader.join(5)
    closer.join(5)
    assert closed.is_set()
    assert obj_bytes(restored["obj"]) == obj_bytes(obj)
    assert backend.contains(ekey(0)) is False
    assert backend.batched_contains([ekey(0)]) == 0
    assert asyncio.run(backend.batched_get_non_blocking("l", [ekey(0)])) == []
    release(obj, restored["obj"])


@pytest.mark.parametrize("persist", [None, "true"])
def test_restart_through_daxkv_persist_enabled(launch, tmp_path, persist):
    extra = {} if persist is None else {"daxkv.persist_enabled": persist}
    backend, _, path = launch(extra=extra)
    objs = [_obj(3), _obj(4, FULL)]
    objs[1].metadata.cached_positions = torch.tensor([9, 4, 1])
    backend.batched_submit_put_task([ekey(0), ekey(1)], objs)
    backend.close()

    again, _, _ = launch(extra=extra, path=path)
    status = again.core.report_status()
    if persist is None:
        assert status["supports_restart_recovery"] is False
        assert [again.contains(ekey(i)) for i in range(2)] == [False, False]
        assert again.batched_get_blocking([ekey(0), ekey(1)]) == [None, None]
    else:
        assert status["supports_restart_recovery"] is True
        assert again.batched_contains([ekey(0), ekey(1)]) == 2
        out = again.batched_get_blocking([ekey(0), ekey(1)])
        assert [obj_bytes(o) for o in out] == [obj_bytes(o) for o in objs]
        assert [o.get_shape() for o in out] == [torch.Size(SHAPE), torch.Size(FULL)]
        assert out[1].metadata.cached_positions.tolist() == [9, 4, 1]
        _release_all(out)
    _release_all(objs)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"dax.max_dax_size": 0.001}, "extra_config['dax.device_path'] is required"),
        ({"dax.device_path": "   ", "dax.max_dax_size": 0.001}, "extra_config['dax.device_path'] is required"),
        ({"dax.device_path": "DEV"}, "extra_config['dax.max_dax_size'] must be > 0"),
        ({"dax.device_path": "DEV", "dax.max_dax_size": 0}, "extra_config['dax.max_dax_size'] must be > 0"),
        ({"dax.device_path": "DEV", "dax.max_dax_size": -1}, "extra_config['dax.max_dax_size'] must be > 0"),
        ({"dax.device_path": "DEV", "dax.max_dax_size": "abc"}, "extra_config['dax.max_dax_size'] must be a number of GiB"),
        ({"dax.device_path": "DEV", "dax.max_dax_size": "inf"}, "extra_config['dax.max_dax_size'] must be a finite number of GiB"),
        ({"dax.device_path": "DEV", "dax.max_dax_size": "nan"}, "extra_config['dax.max_dax_size'] must be > 0"),
        # dax.restore_workers is LMCache's positive integer knob, checked once
        # the device is open (so on a size the 1 MiB device holds)
        *(
            ({"dax.device_path": "DEV", "dax.max_dax_size": 0.0009, "dax.restore_workers": bad},
             "extra_config['dax.restore_workers'] must be a positive integer")
            for bad in (None, "x", "0", 0, -2, [4])
        ),
        # libdaxkv's own options as YAML gives them: a float, an empty value
        *(
            ({"dax.device_path": "DEV", "dax.max_dax_size": 0.001, key: bad},
             f"extra_config['{key}'] must be a string or an integer, not {type(bad).__name__}")
            for key, bad in (("daxkv.workers", 4.0), ("daxkv.meta_bytes", None), ("daxkv.grow_limit", None),
                             ("daxkv.durability", ["power"]))
        ),
    ],
)
def test_bad_configuration_is_a_value_error(tmp_path, allocator, extra, message, caplog):
    path = make_device(tmp_path / "dax.bin", 1 << 20)
    extra = {k: (path if v == "DEV" else v) for k, v in extra.items()}
    config = _config(extra, plugin=False)
    cpu = LocalCPUBackend(config=config, metadata=_metadata(), dst_device="cpu", memory_allocator=allocator)
    with pytest.raises(ValueError) as info:
        DaxkvBackend(config=config, metadata=_metadata(), local_cpu_backend=cpu)
    assert str(info.value) == message
    # through LMCache's launcher: logged, and the plugin is left out
    config = _config(extra)
    backends = OrderedDict()
    with caplog.at_level(logging.ERROR, logger="lmcache"):
        storage_plugin_launcher(config, _metadata(), None, cpu, "cpu", backends)
    assert list(backends) == []
    assert f"Failed to create backend daxkv: {message}" in caplog.text


RESTORE_SETTINGS = [
    ({"dax.restore_max_regions": 0}, "extra_config['dax.restore_max_regions'] must be a positive integer"),
    ({"dax.restore_max_regions": "x"}, "extra_config['dax.restore_max_regions'] must be a positive integer"),
    ({"dax.retrieve_staging_slab_bytes": -1},
     "extra_config['dax.retrieve_staging_slab_bytes'] must be a positive integer"),
    ({"dax.restore_max_regions": 4, "dax.retrieve_staging_slab_bytes": 3 * CHUNK_BYTES},
     f"extra_config['dax.retrieve_staging_slab_bytes'] must be at least {4 * CHUNK_BYTES} bytes"),
    ({"dax.restore_workers": 3, "dax.retrieve_staging_slab_bytes": 2 * CHUNK_BYTES},
     f"extra_config['dax.retrieve_staging_slab_bytes'] must be at least {3 * CHUNK_BYTES} bytes"),
    ({"dax.restore_workers": 0}, "extra_config['dax.restore_workers'] must be a positive integer"),
    ({"dax.restore_max_regions": 2, "dax.retrieve_staging_slab_bytes": 2 * CHUNK_BYTES}, None),
]


@pytest.mark.parametrize("plugin", ["daxkv", "dax"])
@pytest.mark.parametrize("settings, message", RESTORE_SETTINGS)
def test_restore_settings_are_refused_as_lmcache_refuses_them(tmp_path, allocator, plugin, settings, message):
    # LMCache's own DaxBackend (plugin "dax") is the reference: it stages
    # restores through a slab these settings size, and refuses a slab too
    # small for its regions once the device is open. The drop-in has no
    # slab but takes and refuses the same settings; the device is closed
    # again after a refusal.
    if plugin == "dax":
        try:
            from lmcache.v1.storage_backend.plugins.dax_backend import DaxBackend as backend_class
        except ImportError as exc:
            pytest.skip(f"LMCache's DaxBackend is not available ({exc})")
    else:
        backend_class = DaxkvBackend
    path = make_device(tmp_path / "dax.bin", 1 << 20)
    config = _config({"dax.device_path": path, "dax.max_dax_size": 4 * CHUNK_BYTES / GIB, **settings},
                     plugin=False)
    cpu = LocalCPUBackend(config=config, metadata=_metadata(), dst_device="cpu", memory_allocator=allocator)
    fds = open_fds()
    if message is None:
        backend_class(config=config, metadata=_metadata(), local_cpu_backend=cpu).close()
    else:
        with pytest.raises(ValueError) as info:
            backend_class(config=config, metadata=_metadata(), local_cpu_backend=cpu)
        assert str(info.value) == message
    assert open_fds() == fds


def test_a_refused_restore_setting_removes_no_entries(tmp_path, allocator):
    # A persistent arena holding 4 entries restarted with 2 slots and a
    # refused restore setting: the open fitted the arena to its 2 slots,
    # removing the 2 oldest entries, and only then refused the setting.
    path = make_device(tmp_path / "dax.bin", 1 << 20)
    base = {"dax.device_path": path, "daxkv.persist_enabled": True}
    objs = [_obj(i) for i in range(4)]

    def backend(slots, **extra):
        config = _config({**base, "dax.max_dax_size": slots * CHUNK_BYTES / GIB, **extra}, plugin=False)
        cpu = LocalCPUBackend(config=config, metadata=_metadata(), dst_device="cpu", memory_allocator=allocator)
        return DaxkvBackend(config=config, metadata=_metadata(), local_cpu_backend=cpu)

    b = backend(4)
    b.batched_submit_put_task([ekey(i) for i in range(4)], objs)
    b.close()
    with pytest.raises(ValueError, match="restore_max_regions"):
        backend(2, **{"dax.restore_max_regions": 0})
    b = backend(4)
    try:
        assert [b.contains(ekey(i)) for i in range(4)] == [True] * 4
    finally:
        b.close()
        _release_all(objs)


def test_missing_pieces_are_value_errors(tmp_path, allocator):
    path = make_device(tmp_path / "dax.bin", 1 << 20)
    config = _config({"dax.device_path": path, "dax.max_dax_size": 0.001}, plugin=False)
    cpu = LocalCPUBackend(config=config, metadata=_metadata(), dst_device="cpu", memory_allocator=allocator)
    cases = [
        (dict(config=config, metadata=_metadata(2), local_cpu_backend=cpu), "DaxkvBackend currently only supports TP=1 (world_size=2)"),
        (dict(config=None, metadata=_metadata(), local_cpu_backend=cpu), "DaxkvBackend requires config"),
        (dict(config=config, metadata=None, local_cpu_backend=cpu), "DaxkvBackend requires metadata"),
        (dict(config=config, metadata=_metadata(), local_cpu_backend=None), "DaxkvBackend requires local_cpu_backend"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            DaxkvBackend(**kwargs)
        assert str(info.value) == message


def test_missing_device_is_logged_and_skipped(launch, tmp_path, caplog):
    missing = str(tmp_path / "absent.bin")
    with caplog.at_level(logging.ERROR, logger="lmcache"):
        backend, _, _ = launch(path=missing)
    assert backend is None
    assert (
        f"Failed to create backend daxkv: Failed to open dax device {missing}: "
        f"[Errno 2] No such file or directory: '{missing}'"
    ) in caplog.text
    assert not os.path.exists(missing)


# -- keys longer than the library holds -------------------------------------------------


def _long_key(i):
    # A request tag long enough that the key's encoding passes libdaxkv's
    # 512-byte limit; LMCache's own DaxBackend indexes it as any other key.
    return CacheEngineKey("test_model", 1, 0, i, torch.bfloat16, request_configs={"lmcache.tag.user": "u" * 500})


def test_keys_too_long_for_the_library_are_never_stored_and_never_raise(launch, caplog):
    backend, _, _ = launch()
    long_key = _long_key(7)
    objs = [_obj(1), _obj(2), _obj(3)]
    seen = []
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        assert backend.batched_submit_put_task([ekey(1), long_key, ekey(2)], objs, on_complete_callback=seen.append) is None
    # The other keys of the batch are stored; the long one is logged once,
    # with its length, and gets no completion callback.
    assert seen == [ekey(1), ekey(2)]
    skipped = [r for r in caplog.records if "above libdaxkv's key limit of 512 bytes" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert " bytes once encoded" in skipped[0].getMessage()
    assert backend.core.report_status()["live_slot_count"] == 2
    # Every lookup, restore and removal of it is a miss or a no-op.
    assert backend.contains(long_key) is False
    assert backend.contains(long_key, pin=True) is False
    assert backend.pin(long_key) is False
    assert backend.unpin(long_key) is False
    assert backend.exists_in_put_tasks(long_key) is False
    assert backend.batched_contains([long_key]) == 0
    assert backend.batched_contains([ekey(1), long_key, ekey(2)]) == 1  # the prefix ends there
    assert backend.get_blocking(long_key) is None
    got = backend.batched_get_blocking([ekey(1), long_key, ekey(2)])
    assert [_first(o) for o in got] == [1.0, None, 3.0]
    prefix = asyncio.run(backend.batched_get_non_blocking("lookup", [ekey(1), long_key, ekey(2)]))
    assert [_first(o) for o in prefix] == [1.0]
    assert backend.remove(long_key) is False
    assert backend.batched_remove([long_key, ekey(2)]) == 1
    assert backend.contains(ekey(2)) is False and backend.contains(ekey(1)) is True
    # a batch of only such keys stores nothing
    assert backend.batched_submit_put_task([long_key], objs[1:2]) is None
    assert backend.core.report_status()["live_slot_count"] == 1
    _release_all(objs + got + prefix)


# -- metadata larger than meta_bytes ----------------------------------------------------


def _scattered_positions(n=300, seed=0):
    # 300 token positions in no progression: about 1 KiB encoded, more than
    # the default meta_bytes (512).
    import random

    rng = random.Random(seed)
    return torch.tensor(sorted(rng.sample(range(1_000_000), n)))


def test_metadata_larger_than_meta_bytes_is_not_stored_and_is_not_a_full_arena(launch, caplog):
    backend, _, _ = launch(slots=4)
    big_meta = _obj(5)
    big_meta.metadata.cached_positions = _scattered_positions()
    plain = _obj(6)
    seen = []
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        # Every slot is free: this is no reason for LMCache to evict.
        assert backend.batched_submit_put_task([ekey(1), ekey(2)], [big_meta, plain], on_complete_callback=seen.append) is None
    assert seen == [ekey(2)]
    assert backend.contains(ekey(1)) is False and backend.contains(ekey(2)) is True
    assert backend.get_blocking(ekey(1)) is None
    why = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "meta_bytes" in r.getMessage()]
    assert len(why) == 1 and "larger than meta_bytes (512 bytes)" in why[0] and "raise the meta_bytes option" in why[0]
    # A full arena still asks for eviction.
    more = [_obj(i) for i in range(4)]
    with pytest.raises(RuntimeError, match=r"^No free slots available; eviction required$"):
        backend.batched_submit_put_task([ekey(10 + i) for i in range(4)], more)
    _release_all([big_meta, plain] + more)


def test_a_layout_larger_than_a_slot_is_a_miss_not_an_endless_allocation(launch):
    # An entry whose recorded layout is 2**40 bfloat16 values (damaged or
    # foreign metadata; put_reserved_from_ptr takes any layout): LMCache's
    # CPU backend waited for two TiB to be freed, by default forever, and the
    # restore hung. Here it waits 2 s at most, so that such a wait fails the
    # test rather than hanging it; the entry must be a miss at once.
    import time

    from daxkv.lmcache import encode_key, encode_meta

    backend, _, _ = launch(extra={"local_cpu.evict_max_wait_ms": 2000})
    meta = encode_meta(torch.Size([2**40]), torch.bfloat16, MemoryFormat.KV_T2D)
    assert backend.core.store.put(encode_key(ekey(1)), b"\x01" * 64, meta=meta)
    got = []
    start = time.monotonic()
    reader = threading.Thread(
        target=lambda: got.append((backend.get_blocking(ekey(1)), backend.batched_get_blocking([ekey(1)]))),
        daemon=True,
    )
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "the restore of an entry with a two-TiB layout hangs"
    assert got == [(None, [None])]
    assert time.monotonic() - start < 1.5, "the restore waited for memory for a layout no slot holds"
    assert asyncio.run(backend.batched_get_non_blocking("l", [ekey(1)])) == []


@pytest.mark.parametrize("async_put", [False, True])
def test_positions_the_metadata_cannot_hold_are_not_stored_and_never_raise(launch, running_loop, async_put, caplog):
    # Fractional float positions would come back truncated, a 2-D tensor
    # cannot be encoded at all: the key is skipped (logged), its neighbours
    # stored, nothing raises, and no reference or in-flight mark is left.
    extra = {"dax.async_put": "true"} if async_put else {}
    backend, _, _ = launch(slots=4, extra=extra, loop=running_loop if async_put else None)
    fractional, flat, plain = _obj(5), _obj(6), _obj(7)
    fractional.metadata.cached_positions = torch.tensor([0.5, 1.5])
    flat.metadata.cached_positions = torch.zeros(2, 2, dtype=torch.long)
    seen = []
    with caplog.at_level(logging.WARNING, logger="daxkv.lmcache"):
        futures = backend.batched_submit_put_task(
            [ekey(1), ekey(2), ekey(3)], [fractional, flat, plain], on_complete_callback=seen.append
        )
    if async_put:
        assert len(futures) == 1
        futures[0].result(timeout=10)
    else:
        assert futures is None
    assert seen == [ekey(3)]
    assert sum("metadata cannot be stored" in r.getMessage() for r in caplog.records) == 2
    assert [backend.contains(ekey(i)) for i in (1, 2, 3)] == [False, False, True]
    assert [backend.exists_in_put_tasks(ekey(i)) for i in (1, 2, 3)] == [False, False, False]
    assert [o.get_ref_count() for o in (fractional, flat, plain)] == [1, 1, 1]
    assert backend.get_blocking(ekey(1)) is None
    # The keys stay storable with metadata that can be held.
    again = _obj(8)
    futures = backend.batched_submit_put_task([ekey(1)], [again])
    if async_put:
        futures[0].result(timeout=10)
    assert backend.contains(ekey(1)) is True
    _release_all([fractional, flat, plain, again])


@pytest.mark.parametrize("async_put", [False, True])
def test_keys_left_out_for_length_and_for_metadata_leave_each_other_key_with_its_own_bytes(
    launch, running_loop, async_put
):
    # The backend encodes the keys and the metadata once and leaves out, in
    # steps, the keys too long to hold, the metadata that cannot be encoded
    # and (asynchronous puts) the keys already stored: every key that is
    # stored must come back with its own object's bytes, whatever those
    # steps left out before and between them.
    extra = {"dax.async_put": "true"} if async_put else {}
    backend, _, _ = launch(slots=8, extra=extra, loop=running_loop if async_put else None)
    before = _obj(99)
    futures = backend.batched_submit_put_task([ekey(2)], [before])
    if async_put:
        futures[0].result(timeout=10)
    objs = [_obj(10 + i) for i in range(7)]
    objs[2].metadata.cached_positions = torch.tensor([0.5, 1.5])  # cannot be encoded
    objs[4].metadata.cached_positions = torch.tensor([3, 1, 4])  # can
    keys = [_long_key(1), ekey(2), ekey(3), _long_key(4), ekey(5), ekey(6), ekey(7)]
    seen = []
    futures = backend.batched_submit_put_task(keys, objs, on_complete_callback=seen.append)
    if async_put:
        for f in futures:
            f.result(timeout=10)
    assert seen == [ekey(5), ekey(6), ekey(7)]
    got = backend.batched_get_blocking([ekey(2), ekey(3), ekey(5), ekey(6), ekey(7)])
    assert [_first(o) for o in got] == [99.0, None, 14.0, 15.0, 16.0]
    for o, want in zip([got[0], got[2], got[3], got[4]], [before, objs[4], objs[5], objs[6]]):
        assert torch.equal(o.tensor, want.tensor)
    assert torch.equal(got[2].metadata.cached_positions, torch.tensor([3, 1, 4]))
    assert got[0].metadata.cached_positions is None
    _release_all(objs + [before] + got)


def test_daxkv_meta_bytes_makes_room_for_the_positions(launch):
    backend, _, _ = launch(extra={"daxkv.meta_bytes": 4096})
    obj = _obj(5)
    obj.metadata.cached_positions = _scattered_positions()
    seen = []
    assert backend.batched_submit_put_task([ekey(1)], [obj], on_complete_callback=seen.append) is None
    assert seen == [ekey(1)]
    out = backend.get_blocking(ekey(1))
    assert torch.equal(out.metadata.cached_positions, obj.metadata.cached_positions)
    release(obj, out)


# -- restores without CPU memory -------------------------------------------------------


@pytest.mark.parametrize("plugin", ["daxkv", "dax"])
def test_restore_without_cpu_memory_as_lmcache_does(tmp_path, plugin):
    # LMCache's own DaxBackend (plugin "dax") is the reference: get_blocking
    # is a miss when its CPU allocator gives nothing; its batched restores
    # raise RuntimeError.
    alloc = MixedMemoryAllocator(1 << 20)
    path = make_device(tmp_path / "dax.bin", 1 << 20)
    modules = {"daxkv": ("daxkv.lmcache.backend", "DaxkvBackend"),
               "dax": ("lmcache.v1.storage_backend.plugins.dax_backend", "DaxBackend")}
    if plugin == "dax":
        # LMCache's own backend comes from LMCache's sources, not the stand-ins.
        try:
            importlib.import_module(modules[plugin][0])
        except ImportError as exc:
            pytest.skip(f"LMCache's DaxBackend is not available ({exc})")
    config = _config({f"storage_plugin.{plugin}.module_path": modules[plugin][0],
                      f"storage_plugin.{plugin}.class_name": modules[plugin][1],
                      "dax.device_path": path, "dax.max_dax_size": 4 * CHUNK_BYTES / GIB,
                      "local_cpu.evict_max_wait_ms": 50, "local_cpu.evict_retry_interval_ms": 10}, plugin=False)
    config.storage_plugins = [plugin]
    metadata = _metadata()
    cpu = LocalCPUBackend(config=config, metadata=metadata, dst_device="cpu", memory_allocator=alloc)
    backends = OrderedDict()
    storage_plugin_launcher(config, metadata, None, cpu, "cpu", backends)
    backend = backends[plugin]
    held = []
    try:
        obj = alloc.allocate([torch.Size(SHAPE)], [torch.bfloat16], fmt=MemoryFormat.KV_T2D)
        obj.tensor.fill_(3.0)
        backend.batched_submit_put_task([ekey(1)], [obj])
        assert wait_until(lambda: backend.contains(ekey(1)))
        held.append(obj)
        while True:  # the CPU tier fills with objects in use: nothing to evict
            x = alloc.allocate([torch.Size(SHAPE)], [torch.bfloat16], fmt=MemoryFormat.KV_T2D)
            if x is None:
                break
            held.append(x)
        assert backend.get_blocking(ekey(1)) is None
        with pytest.raises(RuntimeError, match=r"^\w+ batched restore allocation failed$"):
            backend.batched_get_blocking([ekey(1)])
        assert backend.contains(ekey(1)) is True  # still there once memory is back
        release(held.pop())
        out = backend.get_blocking(ekey(1))
        assert _first(out) == 3.0
        release(out)
    finally:
        release(*held)
        backend.close()
        alloc.close()


def test_a_cancelled_non_blocking_restore_gives_its_outputs_back(launch, running_loop, monkeypatch):
    # LMCache awaits batched_get_non_blocking in a task of its event loop; a
    # task cancelled while the restore runs on its executor thread never
    # receives the MemoryObjs the restore allocated from LMCache's CPU
    # allocator, so nobody else would give them back.
    backend, cpu, _ = launch()
    objs = [_obj(1), _obj(2)]
    backend.batched_submit_put_task([ekey(0), ekey(1)], objs)
    allocated = []
    real_allocate = backend._allocate

    def recording_allocate(metas):
        outs = real_allocate(metas)
        allocated.extend(outs or ())
        return outs

    in_copy = threading.Event()
    go_on = threading.Event()
    real_fitting = backend._fitting

    def gated_fitting(*args):
        in_copy.set()
        assert go_on.wait(10)
        return real_fitting(*args)

    monkeypatch.setattr(backend, "_allocate", recording_allocate)
    monkeypatch.setattr(backend, "_fitting", gated_fitting)
    fut = asyncio.run_coroutine_threadsafe(backend.batched_get_non_blocking("l", [ekey(0), ekey(1)]), running_loop)
    assert in_copy.wait(5)
    fut.cancel()
    assert wait_until(fut.cancelled)
    go_on.set()
    assert wait_until(lambda: backend.core.report_status()["borrowed_slot_count"] == 0)
    assert len(allocated) == 2
    assert wait_until(lambda: all(o.get_ref_count() == 0 for o in allocated))
    # a restore that is not cancelled still hands its outputs to the caller
    got = asyncio.run_coroutine_threadsafe(
        backend.batched_get_non_blocking("l", [ekey(0), ekey(1)]), running_loop).result(5)
    assert [_first(o) for o in got] == [1.0, 2.0]
    assert all(o.get_ref_count() == 1 for o in got)
    release(*objs, *got)


def _status_of_every_item(batch, status):
    """The library's answer to every item of a batch, as if it gave status."""
    items = batch.batch if hasattr(batch, "batch") else batch
    items.ints[_lib.I_STATUS :: _lib.ITEM_INTS] = array.array("i", [status] * items.n)


def test_a_write_cancelled_by_a_forced_remove_is_not_an_error(launch, running_loop, monkeypatch, caplog):
    # LMCache's remove() forces by default; one racing a store cancels the
    # copy under way (the library answers -ECANCELED). LMCache's own core
    # drops that write without an error: the async put's future raised and
    # each such write was logged at warning level.
    backend, _, _ = launch(extra={"dax.async_put": "true"}, loop=running_loop)
    engine = backend._engine
    real_submit = engine.submit

    def submit(op, batch, flags, done, submission=None):
        def cancelled(rc, b):
            _status_of_every_item(b, -errno.ECANCELED)
            done(rc, b)

        return real_submit(op, batch, flags, cancelled, submission)

    monkeypatch.setattr(engine, "submit", submit)
    seen = []
    objs = [_obj(5), _obj(6)]
    with caplog.at_level(logging.DEBUG, logger="daxkv.lmcache"):
        futures = backend.batched_submit_put_task([ekey(0), ekey(1)], objs, on_complete_callback=seen.append)
        assert [f.result(timeout=10) for f in futures] == [None, None]
        assert wait_until(lambda: [o.get_ref_count() for o in objs] == [1, 1])
        assert seen == []  # not stored: no completion callback
        assert backend.exists_in_put_tasks(ekey(0)) is False
        # the synchronous batch path: not stored, not logged as a failure
        monkeypatch.setattr(_native, "put_one", lambda *a: -errno.ECANCELED)
        assert backend.core._put_prepared([ekey(2)], [objs[0]], [objs[0].get_size()]) == [-errno.ECANCELED]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    _release_all(objs)
