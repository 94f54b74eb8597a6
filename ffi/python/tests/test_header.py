"""Every constant, struct size and field offset the binding hard-codes
(daxkv._lib) against what a C compiler sees in daxkv.h.

A small C probe is compiled against the header and prints each value; the
test compares them one by one, so a change to the header that the binding
has not followed fails here, naming the constant or field.
"""

import ctypes
import os
import pathlib
import shutil
import subprocess

import pytest

from daxkv import _lib

TOP = pathlib.Path(__file__).resolve().parents[3]

STRUCTS = {
    "daxkv_item": _lib.Item,
    "struct daxkv_histogram": _lib.Histogram,
    "struct daxkv_stats": _lib.Stats,
    "daxkv_completion": _lib.Completion,
    "daxkv_hotplug_result": _lib.HotplugResult,
    "daxkv_device_info": _lib.DeviceInfo,
    "daxkv_slot_info": _lib.SlotInfo,
    "daxkv_lease_item": _lib.LeaseItem,
    "daxkv_device_layout": _lib.DeviceLayout,
    "daxkv_key_info": _lib.KeyInfo,
}

CONSTANTS = {
    "DAXKV_KEY_MAX": _lib.KEY_MAX,
    "DAXKV_EXISTED": _lib.EXISTED,
    "DAXKV_E_CORRUPT": _lib.E_CORRUPT,
    "DAXKV_E_FOREIGN": _lib.E_FOREIGN,
    "DAXKV_REPLACE": _lib.REPLACE,
    "DAXKV_FORCE": _lib.FORCE,
    "DAXKV_PREFIX": _lib.PREFIX,
    "DAXKV_PIN": _lib.PIN,
    "DAXKV_CUDA_MAPPED": _lib.CUDA_MAPPED,
    "DAXKV_LOG_ERR": _lib.LOG_ERR,
    "DAXKV_LOG_WARNING": _lib.LOG_WARNING,
    "DAXKV_LOG_INFO": _lib.LOG_INFO,
    "DAXKV_LOG_DEBUG": _lib.LOG_DEBUG,
    "DAXKV_OP_PUT": _lib.OP_PUT,
    "DAXKV_OP_GET": _lib.OP_GET,
    "DAXKV_OP_CONTAINS": _lib.OP_CONTAINS,
    "DAXKV_OP_REMOVE": _lib.OP_REMOVE,
    "DAXKV_DEV_ACTIVE": _lib.DEV_ACTIVE,
    "DAXKV_DEV_DRAINING": _lib.DEV_DRAINING,
    "DAXKV_DEV_MIGRATING": _lib.DEV_MIGRATING,
    "DAXKV_DEV_RESIZING": _lib.DEV_RESIZING,
    "DAXKV_DEV_REMOVING": _lib.DEV_REMOVING,
    "DAXKV_DEV_REMOVED": _lib.DEV_REMOVED,
    "DAXKV_DEV_MISSING": _lib.DEV_MISSING,
    "DAXKV_MIGRATE": _lib.MIGRATE,
    "DAXKV_EVICT": _lib.EVICT,
    "DAXKV_DRAIN": _lib.DRAIN,
    "DAXKV_HIST_BUCKETS": _lib.HIST_BUCKETS,
    "DAXKV_HIST_NS_UNIT": _lib.HIST_NS_UNIT,
    "DAXKV_HIST_BYTES_UNIT": _lib.HIST_BYTES_UNIT,
}
CONSTANTS.update({f"DAXKV_KIND_{v.upper()}": k for k, v in _lib.KINDS.items() if v != "memory"})
CONSTANTS["DAXKV_KIND_MEMORY"] = 2
CONSTANTS.update({"DAXKV_MODE_NONE": 0, "DAXKV_MODE_DEVDAX": 1, "DAXKV_MODE_SYSTEM_RAM": 2})


def _probe_source():
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <daxkv.h>", "int main(void) {"]
    for cname, st in STRUCTS.items():
        lines.append(f'    printf("size {cname} %zu\\n", sizeof({cname}));')
        for f in st._fields_:
            lines.append(f'    printf("offset {cname}.{f[0]} %zu\\n", offsetof({cname}, {f[0]}));')
    for c in CONSTANTS:
        lines.append(f'    printf("const {c} %lld\\n", (long long)({c}));')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_values(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.fail("no C compiler to probe daxkv.h with (apt-get install build-essential)")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(_probe_source())
    incs = [f"-I{TOP / 'include'}"]
    builds = [TOP / "build", TOP]
    lib = os.environ.get("DAXKV_LIBRARY")
    if lib:
        # An out-of-tree build (configure run elsewhere) generates
        # daxkv_version.h in its own include/: <build>/lib/.libs/libdaxkv.so.0.
        p = pathlib.Path(lib).resolve()
        builds += [p.parent.parent.parent, p.parent.parent, p.parent]
    for build in builds:
        if (build / "include" / "daxkv_version.h").exists():
            incs.append(f"-I{build / 'include'}")
            break
    subprocess.run([cc, "-std=c99", *incs, str(d / "probe.c"), "-o", str(d / "probe")], check=True)
    out = subprocess.run([str(d / "probe")], check=True, capture_output=True, text=True).stdout
    values = {}
    for line in out.splitlines():
        kind, rest = line.split(" ", 1)
        name, value = rest.rsplit(" ", 1)
        values[(kind, name)] = int(value)
    return values


@pytest.mark.parametrize("cname", list(STRUCTS))
def test_struct_layout(c_values, cname):
    st = STRUCTS[cname]
    assert ctypes.sizeof(st) == c_values[("size", cname)], f"sizeof({cname})"
    c_fields = [n for (k, n) in c_values if k == "offset" and n.startswith(cname + ".")]
    assert len(c_fields) == len(st._fields_)
    for f in st._fields_:
        assert getattr(st, f[0]).offset == c_values[("offset", f"{cname}.{f[0]}")], f"{cname}.{f[0]}"


def test_constants(c_values):
    for name, value in CONSTANTS.items():
        assert value == c_values[("const", name)], name


def test_every_struct_field_of_the_header_is_declared():
    """A member added to a public struct in daxkv.h must appear in the
    binding's declaration (the offsets test would not notice a missing
    trailing member)."""
    import re

    text = (TOP / "include" / "daxkv.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    for cname, st in STRUCTS.items():
        tag = cname.split()[-1]
        m = re.search(r"struct\s+" + tag + r"\s*\{(.*?)\}", text, flags=re.S)
        assert m, cname
        members = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[[^\]]*\])?\s*;", m.group(1))
        assert members == [f[0] for f in st._fields_], cname
