"""GPU transfers: cuda_available, Store.cuda_register / cuda_unregister,
get_many_cuda and put_many_cuda.

The library loads its CUDA runtime once per process, on first use, so each
runtime is tried in a child process of its own (this file, run as a
script), chosen with DAXKV_TEST_CUDART: none at all, the test suite's fake
runtime without a GPU, and the fake runtime with one (libfakecudart, built
next to the library under test: its "device memory" is host memory from
its cudaMalloc, its copies run on a simulated stream thread, and it counts
uses a real GPU would not allow).
"""

import ctypes
import os
import pathlib
import subprocess
import sys
import types

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import daxkv  # noqa: E402
from daxkv import _cuda  # noqa: E402


def fake_runtime():
    """The fake runtime of the build tree whose library is under test."""
    lib = os.environ.get("DAXKV_LIBRARY")
    candidates = []
    if lib:  # <build>/lib/.libs/libdaxkv.so.0
        candidates.append(pathlib.Path(lib).resolve().parents[2])
    top = HERE.parents[2]
    candidates += [top / "build", top]
    for build in candidates:
        p = build / "tests" / "fakecuda" / ".libs" / "libfakecudart.so"
        if p.is_file():
            return str(p)
    return None


def run_child(scenario, cudart, **env):
    e = dict(os.environ, DAXKV_TEST_CUDART=cudart, PYTHONDONTWRITEBYTECODE="1", **env)
    r = subprocess.run(
        [sys.executable, __file__, scenario], env=e, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"child {scenario} failed:\n{r.stdout}\n{r.stderr}"
    assert f"{scenario}: ok" in r.stdout, r.stdout


def test_without_a_runtime():
    run_child("none", "/nonexistent/libcudart.so")


def test_a_runtime_without_a_gpu():
    fake = fake_runtime()
    if fake is None:
        pytest.skip("no fake CUDA runtime in the build tree (tests/fakecuda)")
    run_child("nodevice", fake, FAKECUDA_DEVICES="0")


def test_batches_through_the_fake_runtime():
    fake = fake_runtime()
    if fake is None:
        pytest.skip("no fake CUDA runtime in the build tree (tests/fakecuda)")
    run_child("fake", fake)


# -- in this process: argument handling, no runtime touched -----------------


class FakeTensor:
    """What get/put_many_cuda use of a torch tensor."""

    def __init__(self, ptr, numel, element_size=2, is_cuda=True, contiguous=True):
        self.ptr, self.n, self.es = ptr, numel, element_size
        self.is_cuda, self.contiguous, self.device = is_cuda, contiguous, "cuda:0" if is_cuda else "cpu"

    def data_ptr(self):
        return self.ptr

    def numel(self):
        return self.n

    def element_size(self):
        return self.es

    def is_contiguous(self):
        return self.contiguous


class FakeArray:
    def __init__(self, ptr, shape, typestr="<f4", strides=None, readonly=False):
        self.__cuda_array_interface__ = {
            "data": (ptr, readonly),
            "shape": shape,
            "typestr": typestr,
            "strides": strides,
            "version": 3,
        }


def test_device_buffers():
    dev = _cuda._device_buffer
    assert dev((0x1000, 64), True, "x") == (0x1000, 64)
    assert dev((0, 0), True, "x") == (0, 0)
    assert dev(FakeTensor(0x2000, 10, 4), True, "x") == (0x2000, 40)
    assert dev(FakeArray(0x3000, (4, 8)), True, "x") == (0x3000, 128)
    assert dev(FakeArray(0x3000, (4, 8), strides=(32, 4)), True, "x") == (0x3000, 128)
    assert dev(FakeArray(0x3000, (4, 8), readonly=True), False, "x") == (0x3000, 128)
    with pytest.raises(TypeError, match="not a CUDA tensor"):
        dev(FakeTensor(0x2000, 10, is_cuda=False), True, "x")
    with pytest.raises(TypeError, match="contiguous"):
        dev(FakeTensor(0x2000, 10, contiguous=False), True, "x")
    with pytest.raises(TypeError, match="not C-contiguous"):
        dev(FakeArray(0x3000, (4, 8), strides=(4, 16)), True, "x")
    with pytest.raises(TypeError, match="read-only"):
        dev(FakeArray(0x3000, (4,), readonly=True), True, "x")
    for bad in (b"host bytes", bytearray(8), None, 0x1000, (1, 2, 3), ("a", 1), (True, 1)):
        with pytest.raises(TypeError):
            dev(bad, True, "x")
    for bad in ((0, 16), (-1, 0), (1, -1), (1 << 64, 1)):
        with pytest.raises(daxkv.InvalidArgument):
            dev(bad, True, "x")


class LazyViewTensor(FakeTensor):
    """A tensor whose conjugate or negative bit is set (torch's x.conj() of
    a complex tensor, x._neg_view()): contiguous, and its data_ptr() holds
    the values before the conjugation or negation."""

    def __init__(self, conj=False, neg=False):
        super().__init__(0x2000, 10, 8)
        self.conj, self.neg = conj, neg

    def is_conj(self):
        return self.conj

    def is_neg(self):
        return self.neg


def test_lazy_conjugate_or_negative_views_are_refused():
    # Their bytes are not their values: a put stored the unconjugated
    # values and a get wrote values that read back conjugated (or negated).
    dev = _cuda._device_buffer
    assert dev(LazyViewTensor(), True, "x") == (0x2000, 80)
    for view in (LazyViewTensor(conj=True), LazyViewTensor(neg=True)):
        for writable in (True, False):
            with pytest.raises(TypeError, match="resolve"):
                dev(view, writable, "x")


def test_streams(monkeypatch):
    st = _cuda._cuda_stream
    assert st(0x1234) == 0x1234
    assert st(types.SimpleNamespace(cuda_stream=0x55)) == 0x55  # torch.cuda.Stream
    assert st(types.SimpleNamespace(ptr=0x66)) == 0x66  # cupy.cuda.Stream
    for bad in (True, "s", 1.0, types.SimpleNamespace()):
        with pytest.raises(TypeError):
            st(bad)
    with pytest.raises(daxkv.InvalidArgument):
        st(-1)
    # None: torch's current stream once torch has initialized CUDA, else
    # the legacy default stream. torch itself is never imported here.
    current = types.SimpleNamespace(cuda_stream=0x77)
    initialized = [False]
    fake_torch = types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_initialized=lambda: initialized[0], current_stream=lambda: current)
    )
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert st(None) == 0
    initialized[0] = True
    assert st(None) == 0x77
    monkeypatch.delitem(sys.modules, "torch")
    assert st(None) == 0


# -- the children ----------------------------------------------------------


def _store():
    return daxkv.Store(path="mem:", size=24 << 20, slot_bytes="1MiB")


def child_none():
    assert not daxkv.cuda_available()
    s = _store()
    s.put(b"k", b"v")
    with pytest.raises(daxkv.NotSupported):
        s.cuda_register()
    with pytest.raises(daxkv.NotSupported):
        s.cuda_unregister()
    with pytest.raises(daxkv.NotSupported):
        s.get_many_cuda([b"k"], [(0x1000, 16)])
    with pytest.raises(daxkv.NotSupported) as e:
        s.put_many_cuda([b"k"], [(0x1000, 16)])
    assert "CUDA" in str(e.value) or "cuda" in str(e.value)
    with pytest.raises(daxkv.NotSupported):
        s.get_many_cuda([], [])  # says so for an empty batch too
    assert s.get(b"k") == b"v"  # everything else works
    s.close()
    with pytest.raises(daxkv.Shutdown):
        s.get_many_cuda([b"k"], [(0x1000, 16)])


def child_nodevice():
    assert not daxkv.cuda_available()
    s = _store()
    with pytest.raises(daxkv.NoDevice):
        s.cuda_register(mapped=True)
    with pytest.raises(daxkv.NoDevice):
        s.get_many_cuda([b"k"], [(0x1000, 16)])
    with pytest.raises(daxkv.NoDevice):
        s.put_many_cuda([b"k"], [(0x1000, 16)])
    s.close()


class FakeCall(ctypes.Structure):
    """struct fakecuda_call (tests/fakecuda/fakecuda.h)."""

    _fields_ = [
        ("fn", ctypes.c_char * 32),
        ("a", ctypes.c_void_p),
        ("b", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("kind", ctypes.c_int),
        ("result", ctypes.c_int),
    ]


H2D, D2H = 1, 2


def child_fake():
    # The same library the store loads: libdaxkv looks for one already in
    # the process first (dlopen RTLD_NOLOAD of the DAXKV_TEST_CUDART path).
    cu = ctypes.CDLL(os.environ["DAXKV_TEST_CUDART"])
    cu.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
    cu.cudaFree.argtypes = [ctypes.c_void_p]
    cu.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    cu.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    cu.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
    cu.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
    cu.fakecuda_get.argtypes = [ctypes.c_char_p]
    cu.fakecuda_get.restype = ctypes.c_long
    cu.fakecuda_log.argtypes = [ctypes.POINTER(FakeCall), ctypes.c_size_t]
    cu.fakecuda_log.restype = ctypes.c_size_t
    cu.fakecuda_violation.restype = ctypes.c_char_p

    def malloc(n):
        p = ctypes.c_void_p()
        assert cu.cudaMalloc(ctypes.byref(p), n) == 0
        return p.value

    def to_dev(p, data):
        assert cu.cudaMemcpy(p, data, len(data), H2D) == 0

    def from_dev(p, n):
        out = ctypes.create_string_buffer(n)
        assert cu.cudaMemcpy(out, p, n, D2H) == 0
        return out.raw

    def streams_used():
        """The streams that the calls logged since the last reset waited on
        or queued work for."""
        log = (FakeCall * 4096)()
        n = min(cu.fakecuda_log(log, 4096), 4096)
        names = (b"cudaLaunchHostFunc", b"cudaEventRecord", b"cudaStreamSynchronize")
        return {log[i].b or 0 for i in range(n) if log[i].fn in names}

    assert daxkv.cuda_available()
    s = _store()
    vals = [bytes([i + 1]) * (1000 * (i + 1)) for i in range(3)]
    keys = [f"gpu{i}".encode() for i in range(3)]
    dev = [malloc(4096) for _ in vals]
    for p, v in zip(dev, vals):
        to_dev(p, v)

    for registered in (False, True):
        if registered:
            s.cuda_register()  # the direct path; the first round was staged
            s.cuda_register()  # again, same flags: fine
            with pytest.raises(daxkv.Busy):
                s.cuda_register(mapped=True)
        assert s.put_many_cuda(keys, [(p, len(v)) for p, v in zip(dev, vals)], replace=True) == [True] * 3
        for k, v in zip(keys, vals):
            assert s.get(k) == v
        assert s.put_many_cuda(keys[:1], [(dev[0], 1000)]) == [False]  # present, not replaced
        for p in dev:
            to_dev(p, b"\0" * 4096)
        got = s.get_many_cuda(keys + [b"absent"], [(p, 4096) for p in dev] + [(dev[0], 16)])
        assert cu.cudaStreamSynchronize(None) == 0
        assert got == [1000, 2000, 3000, None]
        for p, v in zip(dev, vals):
            assert from_dev(p, len(v)) == v
        # Stop at the first miss.
        assert s.get_many_cuda([keys[0], b"absent", keys[2]], [(dev[0], 4096)] * 3, prefix=True) == [1000]
        assert s.get_many_cuda([], []) == [] and s.put_many_cuda([], []) == []

    # Streams: a handle, a stream object, None (torch is not loaded here:
    # the legacy default stream).
    stream = ctypes.c_void_p()
    assert cu.cudaStreamCreate(ctypes.byref(stream)) == 0
    assert "torch" not in sys.modules
    for arg, want in ((stream.value, stream.value), (types.SimpleNamespace(cuda_stream=stream.value), stream.value),
                      (None, 0)):
        cu.fakecuda_reset()
        got = s.get_many_cuda(keys, [(p, 4096) for p in dev], arg)
        assert got == [1000, 2000, 3000], got
        # The values just copied out go back in.
        assert s.put_many_cuda(keys, [(p, len(v)) for p, v in zip(dev, vals)], arg, replace=True) == [True] * 3
        assert streams_used() == {want}, (arg, streams_used())
    assert cu.cudaStreamSynchronize(stream) == 0

    # Tensors and CUDA arrays in place of pairs.
    out = malloc(4096)
    assert s.get_many_cuda([keys[1]], [FakeTensor(out, 2048, 2)]) == [2000]
    assert s.get_many_cuda([keys[2]], [FakeArray(out, (1024,), "<f4")]) == [3000]
    cu.cudaStreamSynchronize(None)
    assert from_dev(out, 3000) == vals[2]
    to_dev(out, b"t" * 100)
    assert s.put_many_cuda([b"tensor"], [FakeTensor(out, 50, 2)]) == [True]
    assert s.get(b"tensor") == b"t" * 100
    with pytest.raises(TypeError):
        s.get_many_cuda([keys[0]], [FakeTensor(out, 100, is_cuda=False)])
    with pytest.raises(TypeError):
        s.put_many_cuda([keys[0]], [b"host bytes"])
    with pytest.raises(daxkv.InvalidArgument):
        s.get_many_cuda(keys, [(out, 16)])  # lengths differ

    # A destination too small, and a host pointer where a device one
    # belongs (CUDA refuses the copy): those items fail, the others not.
    host = ctypes.create_string_buffer(4096)
    with pytest.raises(daxkv.BatchError) as e:
        s.get_many_cuda(keys, [(ctypes.addressof(host), 4096), (dev[1], 16), (dev[2], 4096)])
    cu.cudaStreamSynchronize(None)
    assert isinstance(e.value.errors[0], daxkv.MediaError)
    assert isinstance(e.value.errors[1], daxkv.BufferTooSmall)
    assert e.value.results == [None, None, 3000]
    with pytest.raises(daxkv.BatchError) as e:
        s.put_many_cuda([b"from-host", b"ok"], [(ctypes.addressof(host), 100), (dev[0], 100)])
    assert isinstance(e.value.errors[0], daxkv.MediaError) and e.value.results == [False, True]
    assert not s.contains(b"from-host")  # a failed copy stores nothing

    s.cuda_unregister()
    with pytest.raises(daxkv.NotFound):
        s.cuda_unregister()
    assert cu.fakecuda_get(b"violations") == 0, cu.fakecuda_violation()
    s.close()
    with pytest.raises(daxkv.Shutdown):
        s.cuda_register()
    assert cu.cudaStreamDestroy(stream) == 0
    for p in dev + [out]:
        assert cu.cudaFree(p) == 0


if __name__ == "__main__":
    scenario = sys.argv[1]
    {"none": child_none, "nodevice": child_nodevice, "fake": child_fake}[scenario]()
    print(f"{scenario}: ok")
