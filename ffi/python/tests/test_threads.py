"""Concurrent use from Python threads (ctypes releases the GIL)."""

import threading

import pytest

import daxkv

from conftest import open_store


def test_parallel_put_get(store):
    errors = []

    def worker(t):
        try:
            for i in range(200):
                k = b"t%d-%d" % (t, i % 8)
                v = b"%d:%d" % (t, i)
                store.put(k, v, replace=True)
                got = store.get(k)
                # Only this thread writes k, so it reads its own last value
                # unless LRU evicted it meanwhile.
                assert got in (v, None), (k, got)
                store.contains_many([k, b"absent"])
        except Exception as e:  # collected and reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_errmsg_is_per_thread(store):
    # Each thread's failure carries its own message, read right after its call.
    results = {}
    barrier = threading.Barrier(2)

    def miss():
        barrier.wait()
        try:
            store.pin(b"absent")
        except daxkv.NotFound as e:
            results["miss"] = e

    def too_big():
        barrier.wait()
        try:
            store.put(b"k", bytes(store.stats().slot_bytes + 1))
        except daxkv.TooBig as e:
            results["big"] = e

    ts = [threading.Thread(target=miss), threading.Thread(target=too_big)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert isinstance(results["miss"], daxkv.NotFound)
    assert isinstance(results["big"], daxkv.TooBig)


def test_close_while_threads_run(tmp_path):
    s = open_store(tmp_path)
    stop = threading.Event()
    outcomes = []

    def hammer(t):
        n = 0
        while not stop.is_set():
            try:
                s.put(b"k%d-%d" % (t, n % 16), b"x" * 512, replace=True)
                s.contains_many([b"k%d-%d" % (t, i) for i in range(16)])
                n += 1
            except daxkv.Shutdown:
                outcomes.append("shutdown")
                return
            except Exception as e:
                outcomes.append(e)
                return

    ts = [threading.Thread(target=hammer, args=(t,)) for t in range(3)]
    for t in ts:
        t.start()
    threading.Event().wait(0.2)
    s.close()  # must wait for calls in flight, never free under them
    stop.set()
    for t in ts:
        t.join(10)
    assert outcomes == ["shutdown"] * 3


def test_leases_across_threads(store):
    store.put(b"shared", b"s" * 4096)
    leases = [store.lease(b"shared") for _ in range(8)]
    out = []

    def read(lease):
        out.append(lease.tobytes())
        lease.release()

    ts = [threading.Thread(target=read, args=(l,)) for l in leases]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == [b"s" * 4096] * 8


def test_a_forked_child_cannot_use_the_store_and_its_exit_does_not_hang(tmp_path):
    # A child forked after the open (os.fork, multiprocessing's fork start)
    # inherits the store without its threads. Its calls are PermissionDenied
    # (-EPERM), and the close its exit runs (the store's finalizer) returns
    # at once instead of waiting for threads that are not there.
    import os
    import time

    s = open_store(tmp_path)
    s.put(b"k", b"v" * 100)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            try:
                s.put(b"n", b"x")
                code = 2
            except daxkv.PermissionDenied as e:
                code = 0 if "forked" in str(e) else 3
            s.close()
        except BaseException:
            code = 4
        os._exit(code)
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the child hung")
    assert os.waitstatus_to_exitcode(status) == 0
    assert s.get(b"k") == b"v" * 100
    assert s.get(b"n") is None
    s.close()


_EXIT_WITH_DAEMONS = r"""
import threading, time, daxkv
s = daxkv.Store(path="mem:", size=64 << 20, slot_bytes="64KiB")
s.put(b"k", b"v" * 1000)
def writer():
    while True:
        try:
            s.put(b"x", b"y" * 5000, replace=True)
            s.get(b"k")
        except daxkv.DaxKVError:
            pass
def reader():
    while True:
        try:
            with s.lease(b"k") as l:
                bytes(l.data)
        except daxkv.DaxKVError:
            pass
for f in (writer, writer, reader, reader):
    threading.Thread(target=f, daemon=True).start()
time.sleep(0.05)
"""


def test_exit_with_daemon_threads_inside_calls_does_not_crash():
    # Daemon threads run on while the exit handlers do: closing a store
    # left open must shut it down and wait for their calls, not free the
    # handle under them (a use after free: the interpreter died of SIGSEGV
    # at exit in about one run in five).
    import os
    import subprocess
    import sys

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=pkg)
    for _ in range(12):
        r = subprocess.run([sys.executable, "-c", _EXIT_WITH_DAEMONS], env=env, capture_output=True, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr.decode()[-2000:])
