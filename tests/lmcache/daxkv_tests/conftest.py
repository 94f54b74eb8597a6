# SPDX-License-Identifier: Apache-2.0
"""daxkv's own tests of its LMCache integration (``daxkv.lmcache``).

    cd /work/main && /usr/bin/python3 -m pytest tests/lmcache/daxkv_tests

Imports are set up before any test module is collected:

* ``<repo>/ffi/python`` (the ``daxkv`` package) and
  ``tests/lmcache/standins`` (LMCache's modules as the conformance harness
  stands them in, importable as ``lmcache.*``) go on ``sys.path``;
* ``DAXKV_LIBRARY`` is pointed at ``<repo>/build/lib/.libs/libdaxkv.so.0``
  when it is unset and that file exists;
* when LMCache's sources are found (``$LMCACHE_SRC``, else
  ``../shared/lmcache-upstream`` beside the repository root, the lookup of
  ``tests/lmcache/run.py``), the harness's own ``assemble()`` (run.py is
  imported, not copied) builds its tree in a temporary directory: the
  stand-ins plus LMCache's unchanged L2 adapter factory, plugin loader and
  reconfiguration modules, which ``daxkv.lmcache.l2`` and LMCache's
  ``{"type": "plugin"}`` loader import and which no stand-in provides. That
  tree goes first on ``sys.path``; its ``lmcache/`` is the stand-ins
  byte for byte plus those files. Without LMCache's sources the stand-ins
  alone serve, and the L2 adapter tests are skipped (saying why).
"""

# Standard
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS_DIR = os.path.dirname(HERE)  # tests/lmcache
REPO = os.path.dirname(os.path.dirname(HARNESS_DIR))
STANDINS = os.path.join(HARNESS_DIR, "standins")
FFI_PYTHON = os.path.join(REPO, "ffi", "python")
LIBRARY = os.path.join(REPO, "build", "lib", ".libs", "libdaxkv.so.0")

if not os.environ.get("DAXKV_LIBRARY") and os.path.exists(LIBRARY):
    os.environ["DAXKV_LIBRARY"] = LIBRARY
# The tree and the stand-ins are read-only inputs: no __pycache__ in them.
sys.dont_write_bytecode = True

for _p in (FFI_PYTHON, STANDINS):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def _load_harness():
    spec = importlib.util.spec_from_file_location(
        "daxkv_lmcache_harness_run", os.path.join(HARNESS_DIR, "run.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The assembled tree (None without LMCache's sources).
LMCACHE_TREE = None
#: Why the L2 adapter tests cannot run (None when they can).
L2_UNAVAILABLE = None

_harness = _load_harness()
_src = _harness.find_sources(None)
if _src is None:
    L2_UNAVAILABLE = _harness.NOT_FOUND
else:
    LMCACHE_TREE = tempfile.mkdtemp(prefix="daxkv-lmcache-tests-")
    atexit.register(shutil.rmtree, LMCACHE_TREE, True)
    try:
        _harness.assemble(_src, LMCACHE_TREE)
    except (OSError, RuntimeError) as exc:
        L2_UNAVAILABLE = f"could not assemble LMCache's tree from {_src}: {exc}"
        LMCACHE_TREE = None
    else:
        sys.path.insert(0, LMCACHE_TREE)
