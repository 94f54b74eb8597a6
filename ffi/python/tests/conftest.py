"""Shared fixtures. The library is found as daxkv itself finds it
($DAXKV_LIBRARY, a build tree next to the sources, or libdaxkv.so.0)."""

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import daxkv  # noqa: E402

MiB = 1 << 20
SLOT = 1 * MiB
SLOTS = 16


def open_store(tmp_path, **kw):
    opts = dict(path=str(tmp_path / "arena"), size=SLOTS * SLOT + 8 * MiB, slot_bytes=SLOT)
    opts.update(kw)
    return daxkv.Store(**opts)


@pytest.fixture
def store(tmp_path):
    """A file-backed store (the embedded default) with LRU eviction."""
    s = open_store(tmp_path)
    yield s
    s.close()


@pytest.fixture
def nstore(tmp_path):
    """A store without internal eviction: a full arena fails puts."""
    s = open_store(tmp_path, eviction="none")
    yield s
    s.close()


@pytest.fixture
def mem_store():
    s = daxkv.Store(path="mem:", size=SLOTS * SLOT + 8 * MiB, slot_bytes=SLOT)
    yield s
    s.close()


@pytest.fixture
def stats_dir(tmp_path, monkeypatch):
    """A statistics directory ($DAXKV_STATS_DIR) of the test's own: stores
    of other tests, and other programs, publish into /dev/shm. Set before
    the test's stores open and kept until they are closed (the library
    reads it at open, close and peek)."""
    d = tmp_path / "stats"
    d.mkdir()
    monkeypatch.setenv("DAXKV_STATS_DIR", str(d))
    return d
