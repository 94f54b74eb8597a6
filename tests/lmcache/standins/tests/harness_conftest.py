# SPDX-License-Identifier: Apache-2.0
"""The parts of LMCache's test-suite conftest that its DAX tests use, plus
the harness's core selection.

* ``memory_allocator``: one ``MixedMemoryAllocator`` of 5 GiB for the whole
  session; ``close()`` on it is a no-op per test, the real close happens at
  session end (as in LMCache).
* ``use_shared_allocator``: autouse, opt out with
  ``@pytest.mark.no_shared_allocator``.  LMCache patches its engine builder
  to hand out the shared allocator; no engine is built here, so there is
  nothing to patch and the fixture only honours the marker.
* ``LMCACHE_HARNESS_CORE=daxkv``: before any test module imports LMCache's
  DAX backend or adapter, ``lmcache.v1.storage_backend.dax.core`` is bound
  to libdaxkv's drop-in ``daxkv.lmcache``.
* ``LMCACHE_HARNESS_CORE=daxkv-l2``: LMCache's ``dax`` adapter module name
  is bound to the shim that presents libdaxkv's own L2 adapter
  (``daxkv.lmcache.l2``) under LMCache's names.
"""

# Standard
import importlib
import os
import sys

# Third Party
import pytest

if os.environ.get("LMCACHE_HARNESS_CORE") == "daxkv":
    sys.modules["lmcache.v1.storage_backend.dax.core"] = importlib.import_module(
        "daxkv.lmcache"
    )
elif os.environ.get("LMCACHE_HARNESS_CORE") == "daxkv-l2":
    sys.modules["lmcache.v1.distributed.l2_adapters.dax_l2_adapter"] = (
        importlib.import_module("dax_l2_adapter_on_daxkv")
    )

# First Party
from lmcache.v1.memory_allocators.mixed_memory_allocator import (  # noqa: E402
    MixedMemoryAllocator,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "no_shared_allocator: do not patch the engine builder to use the "
        "session-wide allocator",
    )


@pytest.fixture(scope="session", autouse=True)
def disable_usage_tracking():
    """Keep the test suite from sending usage telemetry."""
    os.environ["LMCACHE_TRACK_USAGE"] = "false"
    yield


@pytest.fixture(scope="session")
def memory_allocator():
    """One MixedMemoryAllocator (5GB) for the whole test session;
    .close() is a no-op per-test."""
    _real = MixedMemoryAllocator(5 * 1024 * 1024 * 1024)  # 5GB

    class _NoCloseWrapper:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return getattr(self._real, name)

        def close(self):
            pass

    try:
        yield _NoCloseWrapper(_real)
    finally:
        _real.close()


@pytest.fixture(autouse=True)
def use_shared_allocator(request, memory_allocator):
    """Default: use the shared allocator. Opt out with
    @pytest.mark.no_shared_allocator."""
    if request.node.get_closest_marker("no_shared_allocator"):
        yield
        return
    yield
