#!/usr/bin/python3
"""LMCache's workload through LMCache's DAX code and through libdaxkv's plugins.

Six ways to run LMCache's DAX tier, measured in one run on the same arena
location, for each chunk size:

    lmcache-mp       LMCache's dax L2 adapter (MP mode) on LMCache's DaxCore
    dropin-mp        the same adapter on daxkv.lmcache.DaxCore
    daxkv-mp         daxkv.lmcache.l2.DaxkvL2Adapter (loaded as a plugin)
    lmcache-backend  LMCache's DaxBackend (non-MP storage plugin) on LMCache's DaxCore
    dropin-backend   the same backend on daxkv.lmcache.DaxCore
    daxkv-backend    daxkv.lmcache.backend.DaxkvBackend

The workload: chunks of Llama-3.1-8B KV (256 tokens x 128 KiB = 32 MiB),
and 1 MiB and 64 KiB chunks; store them all, look the prefix up (lock and
unlock in MP mode), restore them (MP: into preallocated torch tensors;
non-MP: the backend allocates from LMCache's CPU allocator). Each figure is
the best of --rounds, timed with the garbage collector off (as timeit
does); a lookup round starts with an untimed lookup, then repeats the
lookup until it has covered 4096 keys and counts the mean; every restore is
checked byte for byte. The daxkv rows also time the library's C batch
calls (daxkv_put_batch, daxkv_get_batch) on the plugin's own store with the
same chunks, one round of each in turn, and print the plugin's ratio to
them.

LMCache's files come from $LMCACHE_SRC or ../shared/lmcache-upstream beside
the repository, assembled with the stand-ins of tests/lmcache (as the
conformance harness does); without them only the daxkv rows run.

    bench_lmcache.py [--dir /dev/shm] [--sizes 32MiB,1MiB,64KiB] [--rounds 3]
                     [--bytes 1GiB] [--small-bytes 256MiB] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MiB = 1 << 20
GiB = 1 << 30

CONFIGS = ["lmcache-mp", "dropin-mp", "daxkv-mp", "lmcache-backend", "dropin-backend", "daxkv-backend"]
NEEDS_LMCACHE_FILES = {"lmcache-mp", "dropin-mp", "lmcache-backend", "dropin-backend"}


def parse_size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": MiB, "GiB": GiB}
    for u, m in units.items():
        if text.endswith(u):
            return int(float(text[: -len(u)]) * m)
    return int(text)


def human(n: int) -> str:
    for u, m in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= m and n % m == 0:
            return f"{n // m} {u}"
    return f"{n} B"


# -- the worker: one configuration, one chunk size, in its own process --------------


def kv_geometry(chunk: int):
    """(layers, tokens, kv heads, head dim) giving chunk bytes of bf16 KV."""
    if chunk == 32 * MiB:
        return 32, 256, 8, 128  # Llama-3.1-8B, 256 tokens
    per_token_layer = 2 * 8 * 128 * 2  # K and V, 8 heads of 128, bf16
    for layers in (32, 16, 8, 4, 2, 1):
        tokens, rem = divmod(chunk, per_token_layer * layers)
        if rem == 0 and tokens >= 1:
            return layers, tokens, 8, 128
    raise SystemExit(f"no KV geometry gives chunks of {chunk} bytes")


def timed_best(rounds, prepare, run, cleanup, reps=1, warmup=False):
    """Best of rounds of the mean time of run over reps calls (prepare and
    cleanup around each call are not timed; with warmup, neither is a
    first call of each round)."""
    best = None
    for _ in range(rounds):
        dt = 0.0
        # As timeit does: a full collection of the hundred thousand objects
        # torch and LMCache keep alive takes tens of milliseconds, and would
        # land in whichever phase happened to allocate past the threshold.
        # Once per round: right after a collection the caches are cold, and
        # a lookup of a few keys takes ten times as long (hence the warm-up
        # call for lookups, which take a millisecond or less).
        gc.collect()
        if warmup:
            state = prepare()
            cleanup(state, run(state))
        for _ in range(reps):
            state = prepare()
            gc.disable()
            try:
                t0 = time.perf_counter()
                out = run(state)
                dt += time.perf_counter() - t0
            finally:
                gc.enable()
            cleanup(state, out)
        dt /= reps
        best = dt if best is None else min(best, dt)
    return best


def timed_best_pair(rounds, a, b):
    """timed_best of two (prepare, run, cleanup) triples, one round of each
    in turn, so that both meet the same states of the machine (two figures
    measured one after the other move by 10-20 % here)."""
    best = [None, None]
    for _ in range(rounds):
        for side, (prepare, run, cleanup) in enumerate((a, b)):
            dt = timed_best(1, prepare, run, cleanup)
            best[side] = dt if best[side] is None else min(best[side], dt)
    return best


class CBatches:
    """The C reference for daxkv's plugins: daxkv_put_batch and
    daxkv_get_batch of the same chunks, keys and metadata on the plugin's
    own store, one call each, item arrays built outside the timing."""

    def __init__(self, store, keys, srcs, make_obj):
        from daxkv import _lib
        from daxkv.lmcache import _native
        from daxkv.lmcache.core import _data_ptr, _meta_of
        from daxkv.lmcache.keys import encode_keys

        self.store, self.n, self.native, self.force = store, len(keys), _native, _lib.FORCE
        self.srcs = srcs
        # Destinations of its own: the plugin's restored bytes are checked
        # apart from these.
        self.dsts = dsts = [make_obj(-1) for _ in keys]
        kbs = encode_keys(keys)
        self.put = _native.PutBatch(kbs, [_data_ptr(o) for o in srcs], [int(o.get_size()) for o in srcs],
                                    [_meta_of(o) for o in srcs])
        self.get = _native.GetBatch(kbs, [_data_ptr(o) for o in dsts], [int(o.get_size()) for o in dsts],
                                    store.stats().meta_bytes)

    def store_one(self, _):
        assert self.native.run_batch(self.store, "daxkv_put_batch", self.put.batch) == self.n, "C store failed"

    def delete_all(self, _, __):
        self.native.run_batch(self.store, "daxkv_remove_batch", self.put.batch, self.force)

    def restore(self, _):
        assert self.native.run_batch(self.store, "daxkv_get_batch", self.get.batch) == self.n, "C restore missed"

    def close(self):
        """Check the bytes the C restores gave, and free the destinations."""
        import torch

        for src, dst in zip(self.srcs, self.dsts):
            assert torch.equal(src.raw_tensor, dst.raw_tensor), "restored bytes differ (C reference)"
            dst.ref_count_down()


def timed_with_c(rounds, triple, c_triple):
    """timed_best of a (prepare, run, cleanup) triple, and with c_triple
    (the C reference) that one's too, in alternating rounds; None without."""
    if c_triple is None:
        return timed_best(rounds, *triple), None
    return timed_best_pair(rounds, triple, c_triple)


# A lookup of a few dozen keys takes tens of microseconds: each round looks
# up at least this many keys (the mean per lookup is reported), the same
# for every configuration.
LOOKUP_KEYS_PER_ROUND = 4096


def worker(config: str, chunk: int, total: int, rounds: int, arena_dir: str) -> dict:
    import importlib
    import select

    import torch

    if config.startswith("dropin"):
        # LMCache's own wrapper modules, with daxkv.lmcache bound to the name
        # of LMCache's core module before they import it.
        sys.modules["lmcache.v1.storage_backend.dax.core"] = importlib.import_module("daxkv.lmcache")

    from lmcache.utils import CacheEngineKey
    from lmcache.v1.memory_allocators.ad_hoc_memory_allocator import AdHocMemoryAllocator
    from lmcache.v1.memory_management import MemoryFormat

    layers, tokens, heads, hdim = kv_geometry(chunk)
    n = max(1, total // chunk)
    shape = torch.Size([2, layers, tokens, heads * hdim])
    alloc = AdHocMemoryAllocator(device="cpu")

    def make_obj(fill):
        o = alloc.allocate([shape], [torch.bfloat16], fmt=MemoryFormat.KV_2LTD)
        o.raw_tensor.view(torch.int16).copy_(
            torch.arange(o.raw_tensor.numel() // 2, dtype=torch.int16) + fill
        )
        return o

    srcs = [make_obj(i) for i in range(n)]
    path = os.path.join(arena_dir, f"bench-{config}-{chunk}")
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(n * chunk)
    out: dict = {"config": config, "chunk": chunk, "chunks": n}
    lookup_reps = -(-LOOKUP_KEYS_PER_ROUND // n)

    if config.endswith("-mp"):
        from lmcache.v1.distributed.api import ObjectKey

        if config == "daxkv-mp":
            from lmcache.v1.distributed.l2_adapters.factory import create_l2_adapter_from_registry
            from lmcache.v1.distributed.l2_adapters.plugin_l2_adapter import PluginL2AdapterConfig

            adapter = create_l2_adapter_from_registry(PluginL2AdapterConfig.from_dict({
                "module_path": "daxkv.lmcache.l2", "class_name": "DaxkvL2Adapter",
                "adapter_params": {"device_path": path, "max_dax_size_gb": n * chunk / GiB,
                                   "slot_bytes": chunk}}))
        else:
            from lmcache.v1.distributed.l2_adapters.dax_l2_adapter import (
                DaxDeviceConfig, DaxL2Adapter, DaxL2AdapterConfig)

            adapter = DaxL2Adapter(DaxL2AdapterConfig(
                devices=[DaxDeviceConfig(device_path=path, max_dax_size_gb=n * chunk / GiB)],
                slot_bytes=chunk))
        keys = [ObjectKey(chunk_hash=i.to_bytes(8, "big"), model_name="llama-3.1-8b", kv_rank=0)
                for i in range(n)]
        dsts = [make_obj(-1) for _ in range(n)]

        def wait(fd):
            p = select.poll()
            p.register(fd, select.POLLIN)
            if not p.poll(600_000):
                raise RuntimeError("task did not complete")
            os.eventfd_read(fd) if hasattr(os, "eventfd_read") else os.read(fd, 8)

        def store(_):
            t = adapter.submit_store_task(keys, srcs)
            while True:
                wait(adapter.get_store_event_fd())
                done = adapter.pop_completed_store_tasks()
                if t in done:
                    assert done[t].is_successful(), "store failed"
                    return

        def delete_all(_, __):
            adapter.delete(keys)

        def lookup(_):
            t = adapter.submit_lookup_and_lock_task(keys, None)
            while True:
                wait(adapter.get_lookup_and_lock_event_fd())
                b = adapter.query_lookup_and_lock_result(t)
                if b is not None:
                    return b

        def unlock(_, b):
            assert all(b.test(i) for i in range(n)), "lookup missed"
            adapter.submit_unlock(keys)

        def load(_):
            t = adapter.submit_load_task(keys, dsts)
            while True:
                wait(adapter.get_load_event_fd())
                b = adapter.query_load_result(t)
                if b is not None:
                    return b

        def check(_, b):
            assert all(b.test(i) for i in range(n)), "load missed"

        try:
            c = CBatches(adapter._store, keys, srcs, make_obj) if config == "daxkv-mp" else None
            out["store_s"], out["c_store_s"] = timed_with_c(
                rounds, (lambda: None, store, delete_all), c and (lambda: None, c.store_one, c.delete_all))
            store(None)
            out["lookup_s"] = timed_best(rounds, lambda: None, lookup, unlock, lookup_reps, warmup=True)
            if config != "daxkv-mp":
                # The same lookups straight on the adapter's core (LMCache's
                # or the drop-in), without the adapter's hand-off to its
                # lookup thread: that wake-up takes about 45 or about 115 µs
                # per call on this VM, whichever a process happens to get,
                # and swamps a lookup of a few dozen keys.
                core = adapter._devices[0].core
                out["core_lookup_s"] = timed_best(
                    rounds, lambda: None, lambda _: core.exists_many(keys, lock=True),
                    lambda _, __: core.unlock_many(keys), lookup_reps, warmup=True)
            out["restore_s"], out["c_restore_s"] = timed_with_c(
                rounds, (lambda: None, load, check), c and (lambda: None, c.restore, lambda _, __: None))
            for s, d in zip(srcs, dsts):
                assert torch.equal(s.raw_tensor, d.raw_tensor), "restored bytes differ"
            if c:
                c.close()
        finally:
            adapter.close()
    else:
        from collections import OrderedDict

        from lmcache.v1.config import LMCacheEngineConfig
        from lmcache.v1.memory_allocators.mixed_memory_allocator import MixedMemoryAllocator
        from lmcache.v1.metadata import LMCacheMetadata
        from lmcache.v1.storage_backend import storage_plugin_launcher
        from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend

        cfg = LMCacheEngineConfig.from_defaults(
            chunk_size=tokens, local_cpu=True, max_local_cpu_size=(n * chunk + 64 * MiB) / GiB,
            lmcache_instance_id="bench")
        name = "daxkv" if config == "daxkv-backend" else "dax"
        module, cls = (("daxkv.lmcache.backend", "DaxkvBackend") if name == "daxkv"
                       else ("lmcache.v1.storage_backend.plugins.dax_backend", "DaxBackend"))
        cfg.storage_plugins = [name]
        cfg.extra_config = {f"storage_plugin.{name}.module_path": module,
                            f"storage_plugin.{name}.class_name": cls,
                            "dax.device_path": path, "dax.max_dax_size": n * chunk / GiB}
        md = LMCacheMetadata(model_name="llama-3.1-8b", world_size=1, local_world_size=1, worker_id=0,
                             local_worker_id=0, kv_dtype=torch.bfloat16,
                             kv_shape=(layers, 2, tokens, heads, hdim), role="worker")
        cpu = LocalCPUBackend(config=cfg, metadata=md, dst_device="cpu",
                              memory_allocator=MixedMemoryAllocator(n * chunk + 64 * MiB))
        backends: "OrderedDict[str, object]" = OrderedDict()
        storage_plugin_launcher(cfg, md, None, cpu, "cpu", backends)
        if name not in backends:
            raise RuntimeError(f"{cls} did not load")
        backend = backends[name]
        keys = [CacheEngineKey("llama-3.1-8b", 1, 0, 0xC0FFEE00 + i, torch.bfloat16) for i in range(n)]

        def store(_):
            backend.batched_submit_put_task(keys, srcs)

        def delete_all(_, __):
            backend.batched_remove(keys, force=True)

        def lookup(_):
            return backend.batched_contains(keys, pin=False)

        def check_lookup(_, hits):
            assert hits == n, f"prefix lookup found {hits} of {n}"

        def restore(_):
            return backend.batched_get_blocking(keys)

        def check_restore(_, objs):
            assert len(objs) == n and all(o is not None for o in objs), "restore missed"
            for s, o in zip(srcs, objs):
                assert torch.equal(s.raw_tensor, o.raw_tensor[: s.raw_tensor.numel()]), "restored bytes differ"
                o.ref_count_down()

        try:
            c = CBatches(backend._core.store, keys, srcs, make_obj) if config == "daxkv-backend" else None
            out["store_s"], out["c_store_s"] = timed_with_c(
                rounds, (lambda: None, store, delete_all), c and (lambda: None, c.store_one, c.delete_all))
            store(None)
            out["lookup_s"] = timed_best(rounds, lambda: None, lookup, check_lookup, lookup_reps, warmup=True)
            out["restore_s"], out["c_restore_s"] = timed_with_c(
                rounds, (lambda: None, restore, check_restore), c and (lambda: None, c.restore, lambda _, __: None))
            if c:
                c.close()
        finally:
            backend.close()
    for s in srcs:
        s.ref_count_down()
    os.unlink(path)
    return out


# -- the parent: assemble the tree, run the workers, print the table ------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/dev/shm", help="where the arena files go (default /dev/shm)")
    ap.add_argument("--sizes", default="32MiB,1MiB,64KiB")
    ap.add_argument("--bytes", default="1GiB", help="bytes per run for chunks of 32 MiB and more")
    ap.add_argument("--small-bytes", default="256MiB", help="bytes per run for smaller chunks")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--worker", nargs=5, metavar=("CONFIG", "CHUNK", "BYTES", "ROUNDS", "DIR"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        c, chunk, total, rounds, d = args.worker
        print(json.dumps(worker(c, int(chunk), int(total), int(rounds), d)))
        return 0

    sys.path.insert(0, os.path.join(REPO, "tests", "lmcache"))
    import run as harness  # tests/lmcache/run.py: finds and assembles LMCache's files

    src = harness.find_sources(None)
    configs = [c for c in args.configs.split(",") if c]
    root = tempfile.mkdtemp(prefix="daxkv-bench-lmcache-")
    if src is None:
        print(harness.NOT_FOUND.replace("nothing counted", "only the daxkv rows run"))
        configs = [c for c in configs if c not in NEEDS_LMCACHE_FILES]
        shutil.copytree(os.path.join(harness.STANDINS, "lmcache"), os.path.join(root, "lmcache"))
    else:
        harness.assemble(src, root)
    env = dict(os.environ)
    pypath = [root, os.path.join(REPO, "ffi", "python")]
    lib = os.path.join(REPO, "build", "lib", ".libs", "libdaxkv.so.0")
    if not env.get("DAXKV_LIBRARY") and os.path.exists(lib):
        env["DAXKV_LIBRARY"] = lib
    elif env.get("DAXKV_LIBRARY") and os.sep in env["DAXKV_LIBRARY"]:
        # The workers run in the assembled tree: a path relative to here
        # would name nothing there.
        env["DAXKV_LIBRARY"] = os.path.abspath(env["DAXKV_LIBRARY"])
    results = []
    try:
        for size in [parse_size(s) for s in args.sizes.split(",")]:
            total = parse_size(args.bytes) if size >= 32 * MiB else parse_size(args.small_bytes)
            for c in configs:
                e = dict(env)
                e["PYTHONPATH"] = os.pathsep.join(pypath)
                proc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--worker", c, str(size), str(total),
                     str(args.rounds), args.dir],
                    env=e, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                if proc.returncode != 0:
                    # A failed run leaves its MemoryObjs to the garbage
                    # collector, whose warnings would bury the traceback.
                    err = "".join(line for line in proc.stderr.splitlines(True)
                                  if "is being garbage collected" not in line)
                    print(f"{c} {human(size)}: failed\n{err[-4000:]}", file=sys.stderr)
                    return 1
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results.append(r)
                gb = r["chunks"] * r["chunk"] / 1e9
                print(f"{c:16s} {human(size):>7s} x {r['chunks']:5d}: store {gb / r['store_s']:7.2f} GB/s  "
                      f"lookup {r['chunks'] / r['lookup_s'] / 1e6:7.3f} M keys/s  "
                      f"restore {gb / r['restore_s']:7.2f} GB/s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_ratios(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def print_ratios(results) -> None:
    by = {(r["config"], r["chunk"]): r for r in results}
    sizes = sorted({r["chunk"] for r in results}, reverse=True)
    pairs = [("daxkv-mp", "lmcache-mp"), ("dropin-mp", "lmcache-mp"), ("daxkv-backend", "lmcache-backend"),
             ("dropin-backend", "lmcache-backend"), ("daxkv-mp", "lmcache-backend")]
    print("\nratios (higher is faster; store and restore by time, lookup by keys/s):")
    print(f"{'':34s} {'chunk':>7s} {'store':>7s} {'lookup':>7s} {'restore':>7s}")
    for a, b in pairs:
        for size in sizes:
            ra, rb = by.get((a, size)), by.get((b, size))
            if not ra or not rb:
                continue
            print(f"{a + ' / ' + b:34s} {human(size):>7s} {rb['store_s'] / ra['store_s']:7.2f} "
                  f"{rb['lookup_s'] / ra['lookup_s']:7.2f} {rb['restore_s'] / ra['restore_s']:7.2f}")
    print("\ndaxkv's plugins against the C batch calls on the same store (rounds alternating):")
    for a in ("daxkv-mp", "daxkv-backend"):
        for size in sizes:
            ra = by.get((a, size))
            if ra and ra.get("c_store_s"):
                print(f"{a + ' / C batch calls':34s} {human(size):>7s} {ra['c_store_s'] / ra['store_s']:7.2f} "
                      f"{'':>7s} {ra['c_restore_s'] / ra['restore_s']:7.2f}   "
                      f"(C {ra['chunks'] * ra['chunk'] / 1e9 / ra['c_store_s']:.2f} / "
                      f"{ra['chunks'] * ra['chunk'] / 1e9 / ra['c_restore_s']:.2f} GB/s)")
    print("\nlookups (exists_many with lock) on the adapter's core itself, without its thread hand-off:")
    for size in sizes:
        ra, rb = by.get(("dropin-mp", size)), by.get(("lmcache-mp", size))
        if ra and rb and "core_lookup_s" in ra and "core_lookup_s" in rb:
            print(f"{'dropin-mp / lmcache-mp core':34s} {human(size):>7s} "
                  f"{rb['core_lookup_s'] / ra['core_lookup_s']:7.2f}   "
                  f"({ra['chunks'] / ra['core_lookup_s'] / 1e6:.2f} and "
                  f"{rb['chunks'] / rb['core_lookup_s'] / 1e6:.2f} M keys/s)")


if __name__ == "__main__":
    sys.exit(main())
