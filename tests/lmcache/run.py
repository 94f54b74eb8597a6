#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Run LMCache's own DAX tests, unedited, against LMCache's own DAX code.

    /usr/bin/python3 tests/lmcache/run.py [--core lmcache|daxkv|both]
                                          [--lmcache-src DIR] [-k EXPR] [-v]

LMCache's files (its DaxCore, DaxBackend, DAX L2 adapter, L2 adapter
factory/plugin/reconfiguration modules and three test files) are taken from
--lmcache-src, else $LMCACHE_SRC, else ../shared/lmcache-upstream next to
the repository root (the first of these that is given is used, no
fallback).  A fresh temporary directory receives:

    lmcache/   the stand-ins of standins/lmcache plus LMCache's files, copied
               byte for byte (checked)
    tests/     LMCache's three test files, package __init__.py files, the
               stood-in tests/v1/distributed/utils.py and a conftest.py

and pytest runs there once per core:

    lmcache   the control: lmcache.v1.storage_backend.dax.core is LMCache's
              own core.py
    daxkv     the conftest binds that module name to libdaxkv's drop-in
              daxkv.lmcache before LMCache's backend and adapter import it
              (<repo>/ffi/python goes on PYTHONPATH; DAXKV_LIBRARY is set to
              <repo>/build/lib/.libs/libdaxkv.so.0 when unset and present)

Tests that need LMCache's StorageManager (not stood in) are deselected by
the explicit list below.  A failed, erroring or skipped test counts as
failed, and so does a run that collects nothing.  The last line is
"N passed, M failed" summed over the cores run; the exit status is 0 only
when nothing failed.  Without LMCache's sources the harness prints one line
saying so and "0 passed, 0 failed", and exits 0 (nothing is counted).
"""

# Standard
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STANDINS = os.path.join(HERE, "standins")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

NOT_FOUND = "lmcache: LMCache sources not found (set LMCACHE_SRC); nothing counted"

# LMCache's files, unchanged, at the same relative paths in the tree.
LMCACHE_FILES = [
    "lmcache/v1/storage_backend/dax/core.py",
    "lmcache/v1/storage_backend/plugins/dax_backend.py",
    "lmcache/v1/distributed/l2_adapters/dax_l2_adapter.py",
    "lmcache/v1/distributed/l2_adapters/factory.py",
    "lmcache/v1/distributed/l2_adapters/plugin_l2_adapter.py",
    "lmcache/v1/distributed/l2_adapters/reconfiguration.py",
    "tests/v1/storage_backend/test_dax_backend.py",
    "tests/v1/distributed/test_dax_l2_adapter.py",
    "tests/v1/distributed/test_dax_l2_integration.py",
]
TEST_FILES = [p for p in LMCACHE_FILES if p.startswith("tests/")]

NEEDS_STORAGE_MANAGER = "needs LMCache's StorageManager"
DESELECTED = {
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_storage_manager_routes_generic_l2_reconfigure_to_adapter": NEEDS_STORAGE_MANAGER,
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_storage_manager_finds_serde_wrapped_reconfigurable_adapter": NEEDS_STORAGE_MANAGER,
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_storage_manager_dax_adapter_roundtrip": NEEDS_STORAGE_MANAGER,
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_storage_manager_dax_adapter_uses_global_l2_eviction": NEEDS_STORAGE_MANAGER,
    "tests/v1/distributed/test_dax_l2_integration.py::"
    "test_storage_manager_dram_l1_roundtrip": NEEDS_STORAGE_MANAGER,
    "tests/v1/distributed/test_dax_l2_integration.py::"
    "test_storage_manager_combined_dax_roundtrip": NEEDS_STORAGE_MANAGER,
}

# --core daxkv-l2 runs LMCache's adapter test bodies against libdaxkv's own
# L2 adapter; these use the internals of LMCache's adapter class instead.
ADAPTER_TESTS = [p for p in TEST_FILES if "/distributed/" in p]
USES_INTERNALS = "uses the internals of LMCache's adapter (_core, _devices, _key_to_device)"
DESELECTED_L2 = {
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_dax_hotplug_remove_migrate_rejects_duplicate_destination_key": USES_INTERNALS,
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_dax_lookup_batches_unmapped_keys_by_device": USES_INTERNALS,
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_dax_adapter_usage_and_status_track_pending_free_slots": USES_INTERNALS,
    "tests/v1/distributed/test_dax_l2_adapter.py::"
    "test_dax_adapter_close_waits_for_inflight_tasks": USES_INTERNALS,
}

PYTEST_INI = """\
[pytest]
markers =
    no_shared_allocator: do not use the session-wide shared allocator
"""


def find_sources(cli_dir):
    """The first of --lmcache-src, $LMCACHE_SRC and the shared default that
    is given; None when that directory does not exist (an explicit choice
    never falls back to another tree)."""
    candidate = cli_dir or os.environ.get("LMCACHE_SRC") or os.path.join(
        os.path.dirname(REPO), "shared", "lmcache-upstream"
    )
    return os.path.abspath(candidate) if os.path.isdir(candidate) else None


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assemble(src, root):
    """Build the lmcache/ and tests/ tree under ``root``."""
    shutil.copytree(os.path.join(STANDINS, "lmcache"), os.path.join(root, "lmcache"))
    shutil.copytree(os.path.join(STANDINS, "tests"), os.path.join(root, "tests"))
    # Kept under another name in the repository so that no pytest run there
    # picks it up; in the tree it is the tests' conftest.py.
    os.rename(
        os.path.join(root, "tests", "harness_conftest.py"),
        os.path.join(root, "tests", "conftest.py"),
    )
    for rel in LMCACHE_FILES:
        dst = os.path.join(root, rel)
        if os.path.exists(dst):
            raise RuntimeError(f"a stand-in shadows LMCache's {rel}")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(src, rel), dst)
        if sha256(dst) != sha256(os.path.join(src, rel)):
            raise RuntimeError(f"copy of {rel} differs from LMCache's file")
    shutil.copyfile(
        os.path.join(HERE, "shims", "dax_l2_adapter_on_daxkv.py"),
        os.path.join(root, "dax_l2_adapter_on_daxkv.py"),
    )
    for pkg in ("tests", "tests/v1", "tests/v1/distributed", "tests/v1/storage_backend"):
        init = os.path.join(root, pkg, "__init__.py")
        if not os.path.exists(init):
            open(init, "w").close()
    with open(os.path.join(root, "pytest.ini"), "w") as f:
        f.write(PYTEST_INI)


def node_id(testcase):
    classname = testcase.get("classname", "")
    name = testcase.get("name", "")
    if not classname:
        return name
    parts = classname.split(".")
    # tests.v1.distributed.test_x[.Class] -> tests/v1/distributed/test_x.py[::Class]
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if path in TEST_FILES:
            return "::".join([path] + parts[i:] + [name])
    return f"{classname}::{name}"


def first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def parse_junit(path):
    """[(node id, outcome, detail)] with outcome passed/failed/skipped."""
    results = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        problems = [c for c in tc if c.tag in ("failure", "error")]
        skipped = [c for c in tc if c.tag == "skipped"]
        if problems:
            c = problems[0]
            detail = first_line(c.get("message")) or first_line(c.text)
            results.append((node_id(tc), "failed", f"{c.tag}: {detail}"))
        elif skipped:
            detail = first_line(skipped[0].get("message")) or first_line(skipped[0].text)
            results.append((node_id(tc), "skipped", f"skipped: {detail}"))
        else:
            results.append((node_id(tc), "passed", ""))
    return results


def deselected_for(core):
    out = {k: v for k, v in DESELECTED.items()}
    if core == "daxkv-l2":
        out = {k: v for k, v in out.items() if k.split("::")[0] in ADAPTER_TESTS}
        out.update(DESELECTED_L2)
    return out


def run_core(core, root, args):
    env = dict(os.environ)
    env["RUN_DAX_L2_INTEGRATION"] = "1"
    env["LMCACHE_HARNESS_CORE"] = core
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    path = [root]
    if core.startswith("daxkv"):
        path.append(os.path.join(REPO, "ffi", "python"))
        lib = os.path.join(REPO, "build", "lib", ".libs", "libdaxkv.so.0")
        if not env.get("DAXKV_LIBRARY") and os.path.exists(lib):
            env["DAXKV_LIBRARY"] = lib
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)

    junit = os.path.join(root, f"junit-{core}.xml")
    cmd = [
        PYTHON, "-m", "pytest",
        "-p", "no:cacheprovider",
        "-rA",
        "-c", os.path.join(root, "pytest.ini"),
        "--rootdir", root,
        f"--junitxml={junit}",
        *(ADAPTER_TESTS if core == "daxkv-l2" else TEST_FILES),
    ]
    for nid in deselected_for(core):
        cmd += ["--deselect", nid]
    if args.k:
        cmd += ["-k", args.k]
    if args.verbose:
        cmd.append("-v")

    problems = []
    try:
        proc = subprocess.run(
            cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=args.timeout,
        )
        output, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as e:
        output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc = None
        problems.append(("(pytest run)", f"timed out after {args.timeout} s"))

    with open(os.path.join(root, f"pytest-{core}.log"), "w") as f:
        f.write(output)
    if args.verbose:
        print(output, end="" if output.endswith("\n") else "\n")

    results = parse_junit(junit) if os.path.exists(junit) else []
    passed = [r for r in results if r[1] == "passed"]
    failed = [(nid, detail) for nid, outcome, detail in results if outcome != "passed"]
    failed += problems

    deselected = 0
    m = re.search(r"(\d+) deselected", output)
    if m:
        deselected = int(m.group(1))
    if rc is not None and rc not in (0, 1, 5):  # 5: nothing collected, see below
        tail = first_line("\n".join(output.strip().splitlines()[-1:]))
        failed.append((f"(pytest exit status {rc})", tail))
    if not results:
        failed.append(("(collection)", "pytest collected 0 tests"))

    print(f"lmcache[{core}]: {len(passed)} passed, {len(failed)} failed, "
          f"{deselected} deselected")
    for nid, detail in failed:
        print(f"  FAILED {nid}" + (f" -- {detail}" if detail else ""))
    return len(passed), len(failed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", choices=("lmcache", "daxkv", "daxkv-l2", "both", "all"),
                        default="all",
                        help="lmcache: the control; daxkv: LMCache's code on daxkv.lmcache's "
                             "DaxCore; daxkv-l2: LMCache's adapter tests on daxkv's own "
                             "adapter; both: lmcache and daxkv; all (default): the three")
    parser.add_argument("--lmcache-src", metavar="DIR")
    parser.add_argument("-k", metavar="EXPR", help="pytest -k expression")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show pytest's own output")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds per core before the run counts as failed")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary tree (its path is printed)")
    args = parser.parse_args()

    src = find_sources(args.lmcache_src)
    if src is None:
        print(NOT_FOUND)
        print("0 passed, 0 failed")
        return 0
    missing = [rel for rel in LMCACHE_FILES if not os.path.isfile(os.path.join(src, rel))]
    if missing:
        print(f"lmcache: LMCache sources at {src} lack {', '.join(missing)}")
        print("0 passed, 1 failed")
        return 1

    cores = {"both": ["lmcache", "daxkv"], "all": ["lmcache", "daxkv", "daxkv-l2"]}.get(
        args.core, [args.core])
    root = tempfile.mkdtemp(prefix="daxkv-lmcache-")
    total_passed = total_failed = 0
    try:
        assemble(src, root)
        print(f"lmcache: LMCache sources {src}")
        for core in cores:
            for nid, reason in deselected_for(core).items():
                print(f"lmcache[{core}]: deselected {nid} ({reason})")
            p, f = run_core(core, root, args)
            total_passed += p
            total_failed += f
    finally:
        if args.keep:
            print(f"lmcache: tree kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{total_passed} passed, {total_failed} failed")
    return 0 if total_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
