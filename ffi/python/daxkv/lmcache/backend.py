"""A storage backend for LMCache (non-MP mode), on libdaxkv.

LMCache's ``storage_plugin_launcher`` loads it by configuration::

    storage_plugins: [daxkv]
    extra_config:
      storage_plugin.daxkv.module_path: daxkv.lmcache.backend
      storage_plugin.daxkv.class_name: DaxkvBackend
      dax.device_path: /dev/dax0.0
      dax.max_dax_size: 64          # GiB
      daxkv.persist_enabled: true   # optional: keep the cache across restarts

It takes the ``dax.*`` keys of LMCache's own DAX plugin (so switching is a
matter of the two plugin lines) and libdaxkv's own as ``daxkv.<option>``
(``persist_enabled``, ``durability``, ``verify``, ``workers``,
``meta_bytes``, ``on_mismatch``, ``numa``, ``nt_stores``, ``sigbus``).

Stores are one libdaxkv batch per call (``dax.async_put``: submitted to the
asynchronous engine, completed from its event fd); restores lease the
entries and copy them once, on libdaxkv's worker pool, straight into the
MemoryObjs LMCache's CPU allocator hands out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno as _errno
import logging
import math
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from lmcache.v1.storage_backend.abstract_backend import StoragePluginInterface

from .. import _lib
from . import _native
from .core import NO_FREE_SLOTS, DaxCore, _data_ptr, _is_multi_tensor, _metas_of, _warn_key_too_long
from .keys import KeyNotStorable, encode_key, encode_keys_partial

__all__ = ["DaxkvBackend"]

logger = logging.getLogger("daxkv.lmcache")

_OPTIONS = ("durability", "verify", "workers", "meta_bytes", "on_mismatch", "numa", "nt_stores",
            "sigbus", "grow_limit")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in {"true", "1", "yes", "on"}


def _positive_int_extra(extra: Dict[str, Any], key: str) -> int:
    """An integer knob as LMCache's DaxBackend reads it: anything int()
    takes, above zero; else ValueError naming the key, as its constructor
    documents for a bad setting (int() alone raises TypeError for None)."""
    try:
        value = int(extra[key])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra_config['{key}'] must be a positive integer") from exc
    if value <= 0:
        raise ValueError(f"extra_config['{key}'] must be a positive integer")
    return value


def _check_restore_settings(extra: Dict[str, Any], slot_bytes: int) -> None:
    """Refuse the restore settings LMCache's DaxBackend refuses, so that a
    configuration moves between the two unchanged. LMCache stages restores
    through a pinned slab (dax.retrieve_staging_slab_bytes) cut into
    dax.restore_max_regions regions of at least one chunk each; this backend
    copies into LMCache's buffers directly and has no slab, so only
    dax.restore_workers (the copy engine's workers) is used."""
    def setting(key: str, default: int) -> int:
        return _positive_int_extra(extra, key) if key in extra else default

    workers = setting("dax.restore_workers", min(8, max(1, os.cpu_count() or 1)))
    regions = setting("dax.restore_max_regions", workers)
    slab = setting("dax.retrieve_staging_slab_bytes", max(256 << 20, regions * slot_bytes))
    if slab < regions * slot_bytes:
        raise ValueError(
            f"extra_config['dax.retrieve_staging_slab_bytes'] must be at least "
            f"{regions * slot_bytes} bytes"
        )


def _settle(fut: concurrent.futures.Future, result: Any, exc: Optional[BaseException]) -> None:
    """Set a returned future's outcome, unless its caller has cancelled it
    meanwhile (which makes setting it raise InvalidStateError)."""
    try:
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)
    except concurrent.futures.InvalidStateError:
        pass


def _release_all(objs: Sequence[Any]) -> None:
    """Drop the reference a restore handed out on each object."""
    for o in objs:
        o.ref_count_down()


class DaxkvBackend(StoragePluginInterface):
    """LMCache storage plugin backed by a libdaxkv store on one DAX device."""

    def __init__(
        self,
        config: Any = None,
        metadata: Any = None,
        local_cpu_backend: Any = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        dst_device: str = "cpu",
    ) -> None:
        """Raises ValueError for a missing or bad setting, RuntimeError when
        the device cannot be opened or mapped (as LMCache's DaxBackend)."""
        super().__init__(dst_device=dst_device, config=config, metadata=metadata,
                         local_cpu_backend=local_cpu_backend, loop=loop)
        if self.config is None:
            raise ValueError("DaxkvBackend requires config")
        if self.metadata is None:
            raise ValueError("DaxkvBackend requires metadata")
        if self.metadata.world_size != 1:
            raise ValueError(
                f"DaxkvBackend currently only supports TP=1 (world_size={self.metadata.world_size})"
            )
        if self.metadata.get_num_groups() != 1:
            raise ValueError("DaxkvBackend currently supports only single-group KV layout")
        extra = self.config.extra_config or {}
        self.device_path = str(extra.get("dax.device_path", "")).strip()
        if not self.device_path:
            raise ValueError("extra_config['dax.device_path'] is required")
        self.async_put = _to_bool(extra.get("dax.async_put", False))
        if self.async_put and self.loop is None:
            raise ValueError("DaxkvBackend async_put=true requires an asyncio event loop")
        try:
            self.max_dax_size = float(extra.get("dax.max_dax_size", 0))
        except (TypeError, ValueError) as exc:
            raise ValueError("extra_config['dax.max_dax_size'] must be a number of GiB") from exc
        if not self.max_dax_size > 0:
            raise ValueError("extra_config['dax.max_dax_size'] must be > 0")
        if self.max_dax_size == math.inf:
            raise ValueError("extra_config['dax.max_dax_size'] must be a finite number of GiB")
        if self.local_cpu_backend is None:
            raise ValueError("DaxkvBackend requires local_cpu_backend")

        options: Dict[str, Any] = {}
        if "dax.restore_workers" in extra:
            # Checked, with LMCache's other restore settings, once the
            # device is open: LMCache reports a device it cannot open first.
            # Past the library's 256 copy threads, as the L2 adapter takes
            # num_load_workers: LMCache's own backend starts with any count.
            with contextlib.suppress(ValueError):
                options["workers"] = min(_positive_int_extra(extra, "dax.restore_workers"), 256)
        for name in _OPTIONS:
            if f"daxkv.{name}" in extra:
                v = extra[f"daxkv.{name}"]
                # YAML gives floats (4.0) and None (an empty value): refused
                # here as the bad settings they are, not as the store's
                # TypeError.
                if not isinstance(v, (str, int)):
                    raise ValueError(f"extra_config['daxkv.{name}'] must be a string or an integer, "
                                     f"not {type(v).__name__}")
                options[name] = v
        persist = _to_bool(extra.get("daxkv.persist_enabled", False))

        self._close_lock = threading.Lock()
        self._closing = False
        self._closed = False
        full_chunk = int(self.local_cpu_backend.get_full_chunk_size_bytes())
        self._core: DaxCore = DaxCore(
            device_path=self.device_path,
            max_dax_size_bytes=int(self.max_dax_size * 1024**3),
            slot_bytes=max(1, full_chunk),
            persist_enabled=persist,
            # Once the device is open (LMCache reports a device it cannot
            # open first), and before a persistent arena is fitted to its
            # size: a refused setting must not cost the oldest entries.
            before_fit=lambda: _check_restore_settings(extra, max(1, full_chunk)),
            **options,
        )
        self.slot_bytes = self._core.slot_bytes
        self._engine: Optional[_native.AsyncEngine] = None
        # Keys of async puts in flight: a token per submission, ended by it
        # once or again (an interrupt never leaves a key counted).
        self._async_keys: Dict[bytes, Set[object]] = {}
        try:
            if self.async_put:
                self._engine = _native.AsyncEngine(self._core.store, "daxkv-backend-puts")
        except BaseException:
            self._core.close()
            raise
        logger.info(
            "DaxkvBackend: device=%s slots=%d of %d bytes persist=%s async_put=%s",
            self.device_path, self._core.max_slots, self.slot_bytes, persist, self.async_put,
        )

    def __str__(self) -> str:
        return "DaxkvBackend"

    @property
    def core(self) -> DaxCore:
        return self._core

    def _is_closed_or_closing(self) -> bool:
        with self._close_lock:
            return self._closing or self._closed

    # -- lookups, locks, removal ------------------------------------------------

    def contains(self, key: Any, pin: bool = False) -> bool:
        return self._core.exists_many([key], lock=pin)[0]

    def exists_in_put_tasks(self, key: Any) -> bool:
        if self._core.has_inflight(key):
            return True
        try:
            kb = encode_key(key)
        except KeyNotStorable:
            return False  # a key libdaxkv cannot hold is never written
        with self._close_lock:
            return kb in self._async_keys

    def pin(self, key: Any) -> bool:
        return self._core.exists_many([key], lock=True)[0]

    def unpin(self, key: Any) -> bool:
        self._core.unlock_many([key])
        return self._core.exists_many([key], lock=False)[0]

    def remove(self, key: Any, force: bool = True) -> bool:
        return self._core.delete_many([key], force=force)[0]

    def batched_remove(self, keys: List[Any], force: bool = True) -> int:
        return sum(self._core.delete_many(keys, force=force))

    def batched_contains(self, keys: List[Any], pin: bool = False) -> int:
        """Consecutive hits from the start (one libdaxkv prefix lookup)."""
        return self._core.prefix_hits(keys, pin=pin)

    async def batched_async_contains(self, lookup_id: str, keys: List[Any], pin: bool = False) -> int:
        del lookup_id
        return self.batched_contains(keys, pin=pin)

    # -- stores --------------------------------------------------------------------

    def batched_submit_put_task(
        self,
        keys: Sequence[Any],
        objs: List[Any],
        transfer_spec: Any = None,
        on_complete_callback: Optional[Callable[[Any], None]] = None,
    ) -> Optional[List[concurrent.futures.Future]]:
        """Store a batch in one libdaxkv call (or one submission with
        dax.async_put, returning a future per key).

        A key the store cannot hold (longer than libdaxkv's 512-byte key
        limit once encoded) and an item the library refuses for another
        reason than room (metadata larger than meta_bytes, a failed copy)
        are logged and not stored: no completion callback, as for a failed
        write in LMCache's backend.

        Raises:
            ValueError: lengths differ, or an object exceeds the slot size.
            RuntimeError: the backend is closing, or no slot is free.
        """
        del transfer_spec
        if len(keys) != len(objs):
            raise ValueError(f"keys and objs must have the same length, got {len(keys)} and {len(objs)}")
        if self._is_closed_or_closing():
            raise RuntimeError("DaxkvBackend is closing")
        todo: List[Tuple[Any, Any]] = []
        sizes: List[int] = []
        slot = self.slot_bytes
        for key, obj in zip(keys, objs):
            if _is_multi_tensor(obj):
                logger.error("DaxkvBackend does not support multi-tensor allocations: key=%s", key)
                continue
            size = int(obj.get_size())
            if size > slot:
                raise ValueError(f"DaxkvBackend: object size {size} for key {key} exceeds slot size {slot}")
            if size < 0:
                raise ValueError(f"DaxkvBackend: object size {size} for key {key} is negative")
            todo.append((key, obj))
            sizes.append(size)
        if not todo:
            return None
        too_long: List[Tuple[int, KeyNotStorable]] = []
        kbs, pos = encode_keys_partial([k for k, _ in todo], too_long)
        if pos is not None:
            for i, exc in too_long:
                _warn_key_too_long("DaxkvBackend skips", todo[i][0], exc)
            todo = [todo[i] for i in pos]
            sizes = [sizes[i] for i in pos]
            if not todo:
                return None
        # Metadata the encoding cannot hold (logged): not stored, no callback.
        metas, bad = _metas_of("DaxkvBackend skips", [k for k, _ in todo], [o for _, o in todo])
        if bad:
            keep = [i for i, m in enumerate(metas) if m is not None]
            todo = [todo[i] for i in keep]
            sizes = [sizes[i] for i in keep]
            metas = [metas[i] for i in keep]
            kbs = [kbs[i] for i in keep]
            if not todo:
                return None
        if self._engine is not None and self.loop is not None and self.loop.is_running():
            # A duplicate is a no-op success without a completion callback:
            # it is left out here, as LMCache's backend does.
            kept = [i for i, (key, _) in enumerate(todo) if not (self.contains(key) or self.exists_in_put_tasks(key))]
            if not kept:
                return None
            return self._submit_async(
                [todo[i] for i in kept], [kbs[i] for i in kept], [metas[i] for i in kept], on_complete_callback
            )
        # A key already stored or being written comes back EXISTED from the
        # batch, without a copy: a no-op success without a callback, which
        # spares asking the library about every key first.
        statuses = self._core._put_encoded(kbs, [o for _, o in todo], sizes, metas)  # type: ignore[arg-type]
        full = False
        for (key, _), s in zip(todo, statuses):
            if s == 0:
                self._callback(key, on_complete_callback)
            elif s == -_errno.ENOSPC:
                full = True
            # Other failures (logged by the core, with the reason) leave the
            # key not stored; a closing store (-ESHUTDOWN) stores nothing.
        if full:
            raise RuntimeError(NO_FREE_SLOTS)
        return None

    def _submit_async(
        self, todo: List[Tuple[Any, Any]], kbs: List[bytes], metas: List[Any], cb: Optional[Callable[[Any], None]]
    ) -> List[concurrent.futures.Future]:
        """Submit the (key, object) pairs of todo, their keys encoded (kbs)
        and their metadata blobs (metas) in the same order: a future each."""
        # Built before anything is counted: what raises here leaves no
        # reference taken and no key marked in flight.
        put = _native.PutBatch(kbs, [_data_ptr(o) for _, o in todo], [int(o.get_size()) for _, o in todo],
                               metas)
        futures = [concurrent.futures.Future() for _ in todo]
        # The objects referenced so far, counted as it goes, so that a
        # failure (an interrupt included) anywhere before the library takes
        # the batch gives back exactly those; its keys are marked in flight
        # with a token of its own.
        referenced = [0]
        token = object()

        def done(rc: int, batch: _native.PutBatch) -> None:
            statuses = batch.batch.statuses()
            self._async_keys_done(kbs, token)
            for (key, obj), fut, s in zip(todo, futures, statuses):
                if s == 0:
                    self._callback(key, cb)
                obj.ref_count_down()
                if s >= 0 or s == -_errno.ECANCELED:
                    # Cancelled by a forced remove of its key: not stored,
                    # and no error, as LMCache's own async put ends then.
                    _settle(fut, None, None)
                elif s == -_errno.ENOSPC:
                    # As the synchronous path and LMCache's own async put
                    # (its core's put_one raising in the coroutine) fail.
                    _settle(fut, None, RuntimeError(NO_FREE_SLOTS))
                else:
                    why = self._core._write_failure(s)
                    if s not in _native.QUIET_WRITE_FAILURES:
                        logger.warning("DAX write of key %s failed: %s", key, why)
                    _settle(fut, None, RuntimeError(f"DAX write failed for key {key}: {why}"))

        submission = _native.Submission()
        try:
            for _, obj in todo:
                obj.ref_count_up()  # the objects stay allocated until the copy is done
                referenced[0] += 1
            with self._close_lock:
                _native.add_marks(self._async_keys, kbs, token)
            self._engine.submit(_lib.OP_PUT, put, 0, done, submission)  # type: ignore[union-attr]
        except BaseException as exc:
            if submission.accepted:
                # The library took the batch (an interrupt as its call
                # returned): the completion lets go of the objects and
                # settles the futures.
                raise
            # Only this submission's marks: another one of the same key
            # (from another thread) may be in flight with its own.
            self._async_keys_done(kbs, token)
            for _, obj in todo[: referenced[0]]:
                obj.ref_count_down()
            for fut in futures:
                fut.set_exception(RuntimeError(f"DAX write submission failed: {exc!r}"))
            if not isinstance(exc, Exception):
                raise  # an interrupt reaches the caller, with nothing left taken
        return futures

    def _async_keys_done(self, kbs: List[bytes], token: object) -> None:
        """Drop a submission's in-flight marks (token) of kbs, those it
        made; idempotent."""
        with self._close_lock:
            _native.end_marks(self._async_keys, kbs, token)

    @staticmethod
    def _callback(key: Any, cb: Optional[Callable[[Any], None]]) -> None:
        if cb is None:
            return
        try:
            cb(key)
        except Exception as exc:
            logger.warning("on_complete_callback failed for key %s: %s", key, exc)

    # -- restores ------------------------------------------------------------------

    def _restore(self, keys: List[Any], prefix_only: bool, miss_on_no_memory: bool = False) -> List[Optional[Any]]:
        """Lease the entries, allocate outputs of their layouts, copy each
        once on libdaxkv's workers, release the leases. When the CPU
        allocator cannot give the outputs: every key a miss with
        miss_on_no_memory (get_blocking, as LMCache's), else RuntimeError
        (the batched restores, as LMCache's)."""
        results: List[Optional[Any]] = [None] * len(keys)
        entries = _native.Leases()
        outputs: Optional[List[Any]] = []
        # The leases are taken inside the try that gives them back: an
        # interrupt (KeyboardInterrupt, or what a signal handler raises) as
        # lease_entries returned left them, and the read close() waits for,
        # held for good.
        try:
            entries = self._core.lease_entries(keys, prefix_only=prefix_only)
            if not len(entries):
                return [] if prefix_only else results
            outputs = self._allocate(entries.meta)
            if outputs is None:
                if miss_on_no_memory:
                    return [] if prefix_only else results
                raise RuntimeError("DaxkvBackend batched restore allocation failed")
            keep = self._fitting(keys, entries, outputs, prefix_only)
            if len(keep) != len(outputs):
                kept = set(keep)
                dropped = [o for j, o in enumerate(outputs) if j not in kept]
                outputs = [outputs[j] for j in keep]
                for o in dropped:
                    o.ref_count_down()
            kept = entries if len(keep) == len(entries) else entries.subset(keep)
            statuses = self._core.read_entries(keys, kept, [_data_ptr(o) for o in outputs])
            good = [st == 0 for st in statuses]
            if prefix_only and not all(good):
                # The library dropped an entry it could not read (a fault, a
                # checksum): a miss, and the end of the prefix.
                first = good.index(False)
                good = [j < first for j in range(len(good))]
            if not all(good):
                dropped = [o for o, g in zip(outputs, good) if not g]
                outputs = [o for o, g in zip(outputs, good) if g]
                keep = [j for j, g in zip(keep, good) if g]
                for o in dropped:
                    o.ref_count_down()
            for j, o in zip(keep, outputs):
                o.metadata.cached_positions = entries.meta[j].cached_positions
                results[entries.index[j]] = o
        except BaseException:
            for o in outputs or ():
                o.ref_count_down()
            raise
        finally:
            try:
                self._core.release_entries(entries)
            finally:
                # Again: it ends what an interrupt as the first began left.
                self._core.release_entries(entries)
        if prefix_only:
            return outputs
        return results

    @staticmethod
    def _fitting(keys: List[Any], entries: "_native.Leases", outputs: List[Any], prefix_only: bool) -> List[int]:
        """The positions in entries whose value fits the output allocated
        for its layout (with prefix_only, up to the first that does not).
        An entry longer than its recorded shape and dtype hold (stored by
        put_reserved_from_ptr with a larger size, or recovered from another
        writer) would be copied past its output's end: it is a miss."""
        keep = []
        for j, (o, size) in enumerate(zip(outputs, entries.size)):
            if int(o.get_size()) >= size:
                keep.append(j)
                continue
            logger.warning(
                "DaxkvBackend: DAX entry of key %s holds %d bytes, more than its layout %s %s (%d bytes); "
                "treated as a miss", keys[entries.index[j]], size, tuple(entries.meta[j].shape),
                entries.meta[j].dtype, int(o.get_size()),
            )
            if prefix_only:
                break
        return keep

    def _allocate(self, metas: List[Any]) -> Optional[List[Any]]:
        """One output per entry metadata, in order; batched per layout. None
        (nothing left allocated) when the CPU allocator has no room."""
        groups: "OrderedDict[Tuple[Any, ...], List[int]]" = OrderedDict()
        for i, m in enumerate(metas):
            groups.setdefault((tuple(m.shape), m.dtype, m.fmt), []).append(i)
        outputs: List[Any] = [None] * len(metas)
        allocated: List[Any] = []
        try:
            for (_, dtype, fmt), idx in groups.items():
                first = metas[idx[0]]
                objs = None
                if len(idx) > 1:
                    objs = self.local_cpu_backend.batched_allocate(first.shape, dtype, len(idx), fmt)
                if objs is None:
                    objs = []
                    for _ in idx:
                        o = self.local_cpu_backend.allocate(first.shape, dtype, fmt)
                        if o is None:
                            for a in allocated:
                                a.ref_count_down()
                            return None
                        objs.append(o)
                        allocated.append(o)
                else:
                    allocated.extend(objs)
                for i, o in zip(idx, objs):
                    outputs[i] = o
        except BaseException:
            for o in allocated:
                o.ref_count_down()
            raise
        return outputs

    def get_blocking(self, key: Any) -> Optional[Any]:
        if self._is_closed_or_closing():
            return None
        # As LMCache's DaxBackend.get_blocking: no CPU memory for the output
        # is a miss (its batched restores raise instead).
        return self._restore([key], False, miss_on_no_memory=True)[0]

    def batched_get_blocking(self, keys: List[Any]) -> List[Optional[Any]]:
        if not keys or self._is_closed_or_closing():
            return []
        return self._restore(list(keys), False)

    async def batched_get_non_blocking(self, lookup_id: str, keys: List[Any], transfer_spec: Any = None) -> List[Any]:
        """The hits from the start, restored on an executor thread (the copy
        runs on libdaxkv's workers without the GIL)."""
        del lookup_id, transfer_spec
        if not keys or self._is_closed_or_closing():
            return []
        loop = asyncio.get_running_loop()
        # A caller cancelled while the restore runs never receives the
        # outputs it allocated from LMCache's allocator: whichever of the
        # restore's end and the cancellation comes second gives them back.
        lock = threading.Lock()
        state: Dict[str, Any] = {"abandoned": False, "outputs": None}

        def restore() -> List[Any]:
            outputs = self._restore(list(keys), True)
            with lock:
                if not state["abandoned"]:
                    state["outputs"] = outputs
                    return outputs
            _release_all(outputs)
            return []

        try:
            return await loop.run_in_executor(None, restore)
        except BaseException:
            with lock:
                state["abandoned"] = True
                outputs, state["outputs"] = state["outputs"], None
            _release_all(outputs or ())
            raise

    def get_allocator_backend(self) -> Any:
        if self.local_cpu_backend is None:
            raise RuntimeError("DaxkvBackend has no allocator backend available")
        return self.local_cpu_backend

    def close(self) -> None:
        """Wait for submitted stores and for restores in flight, then close
        the store."""
        with self._close_lock:
            if self._closed:
                return
            self._closing = True
        if self._engine is not None:
            self._engine.close()
        self._core.close()
        with self._close_lock:
            self._closed = True
