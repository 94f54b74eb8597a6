# SPDX-License-Identifier: Apache-2.0
"""Shared helpers of daxkv's LMCache integration tests (imported by the test
modules; conftest.py has set up sys.path before)."""

# Standard
import ctypes
import hashlib
import importlib.util
import inspect
import os
import sys
import threading
import time

# Third Party
import torch

# First Party
from lmcache.utils import CacheEngineKey
from lmcache.v1.memory_allocators.ad_hoc_memory_allocator import AdHocMemoryAllocator
from lmcache.v1.memory_management import MemoryFormat

_ALLOC = AdHocMemoryAllocator(device="cpu")


class SizedAs:
    """A MemoryObj that reports another size than its buffer's (a hostile
    or broken object)."""

    def __init__(self, obj, size):
        self._obj, self._size = obj, size

    def __getattr__(self, name):
        return getattr(self._obj, name)

    def get_size(self):
        return self._size


def load_lmcache_core(tree: str):
    """LMCache's DaxCore module from the assembled ``tree``, unchanged, under
    a name of its own (one module however many tests load it), so that
    nothing binding lmcache.v1.storage_backend.dax.core to daxkv can hand
    over the drop-in instead."""
    path = os.path.join(tree, "lmcache", "v1", "storage_backend", "dax", "core.py")
    name = "lmcache_dax_core_control"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class NamedKey:
    """A key type of an application's own, equal by its name."""

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, NamedKey) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


def register_named_key(monkeypatch, tag: int, decode) -> None:
    """Registers NamedKey under ``tag``, its name's bytes as its body and
    ``decode`` as its decoder. The registry is global: this registers into
    copies of it, which monkeypatch undoes."""
    # First Party
    from daxkv.lmcache import keys as keys_module

    monkeypatch.setattr(keys_module, "_DECODERS", dict(keys_module._DECODERS))
    monkeypatch.setattr(keys_module, "_ENCODERS", dict(keys_module._ENCODERS))
    keys_module.register_key_type(NamedKey, tag, lambda k: k.name.encode(), decode)


def make_device(path, size: int, content: bytes = b"") -> str:
    """A sparse file of ``size`` bytes, starting with ``content``."""
    path = str(path)
    with open(path, "wb") as f:
        f.truncate(size)
        if content:
            f.seek(0)
            f.write(content)
    return path


def pattern(n: int, seed: int) -> bytes:
    """n distinct-looking bytes, different for each seed."""
    return bytes((i * 7 + seed * 31 + (i >> 8)) & 0xFF for i in range(n))


def byte_obj(n: int, seed: int, *, fmt=MemoryFormat.KV_2LTD):
    """A single-tensor uint8 MemoryObj of n bytes holding pattern(n, seed)."""
    obj = _ALLOC.allocate([torch.Size([n])], [torch.uint8], fmt=fmt)
    obj.tensor.copy_(torch.frombuffer(bytearray(pattern(n, seed)), dtype=torch.uint8))
    return obj


def kv_obj(shape, fill, *, dtype=torch.bfloat16, fmt=MemoryFormat.KV_T2D):
    obj = _ALLOC.allocate([torch.Size(shape)], [dtype], fmt=fmt)
    obj.tensor.fill_(fill)
    return obj


def multi_obj():
    """A two-tensor MemoryObj (LMCache's DAX tiers refuse these)."""
    return _ALLOC.allocate(
        [torch.Size([2, 4]), torch.Size([2, 4])], [torch.uint8, torch.uint8]
    )


def obj_bytes(obj) -> bytes:
    return ctypes.string_at(obj.data_ptr, obj.get_size())


def ekey(i, *, model="test_model", dtype=torch.bfloat16) -> CacheEngineKey:
    return CacheEngineKey(model, 1, 0, i, dtype)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sha256_file(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll predicate until it holds (a wait, never an assertion by itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def release(*objs) -> None:
    for o in objs:
        if o is not None and o.get_ref_count() > 0:
            o.ref_count_down()


def hold_completions(monkeypatch, engine, until: threading.Event, timeout: float = 10.0) -> None:
    """Every batch submitted to the copy engine from now on completes only
    once until is set (its completion fails the test after timeout)."""
    real_submit = engine.submit

    def submit(op, batch, flags, done, submission=None):
        def held(rc, b):
            assert until.wait(timeout)
            done(rc, b)

        return real_submit(op, batch, flags, held, submission)

    monkeypatch.setattr(engine, "submit", submit)


def interrupted_at_line(fn, code, k):
    """fn() with KeyboardInterrupt raised at the k-th line code runs (a
    trace function's exception is raised where the traced code stands, as
    a signal handler's is). Whether it was raised. Not on a `with` line:
    raised there as the block ends, it skips the context manager's exit,
    a point no code of ours can guard (CPython's own with statement); nor
    on a `try:` or `return` line, whose first instruction does nothing a
    signal handler runs after (raised there, it may lie outside the
    enclosing try: a return runs its finally inline)."""
    seen = [0]
    lines = inspect.getsourcelines(code)
    first, source = lines[1], lines[0]

    def interruptible(lineno):
        text = source[lineno - first].strip()
        return not text.startswith(("with ", "return")) and text != "try:"

    def local(frame, event, arg):
        if event == "line" and interruptible(frame.f_lineno):
            seen[0] += 1
            if seen[0] == k:
                raise KeyboardInterrupt
        return local

    def calls(frame, event, arg):
        return local if event == "call" and frame.f_code is code else None

    sys.settrace(calls)
    try:
        fn()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def interrupt_after_submit_call(monkeypatch, returned=lambda rc: True):
    """KeyboardInterrupt raised as daxkv_submit returns, through
    daxkv.lmcache's engine (Python runs signal handlers right after a
    call); returned(rc) checks what the call gave first."""
    from daxkv.lmcache import _native

    real_library = _native.library

    class Interrupted:
        def __getattr__(self, name):
            fn = getattr(real_library(), name)
            if name != "daxkv_submit":
                return fn

            def call(*args):
                assert returned(fn(*args))
                raise KeyboardInterrupt

            return call

    monkeypatch.setattr(_native, "library", lambda: Interrupted())
