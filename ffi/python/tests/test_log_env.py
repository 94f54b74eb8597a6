"""Logging without code (DAXKV_LOG_LEVEL, DAXKV_LOG_FILE) and its relation to
set_log_callback: a callback takes precedence while it is set, and setting
None brings the environment's logging back. The library reads the
environment once when it is loaded, so each case runs in a child process.
"""
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import daxkv  # noqa: E402

CHILD = r"""
import sys
import daxkv

path = sys.argv[1]

def open_close(tag):
    sys.stderr.write("--- " + tag + "\n")
    sys.stderr.flush()
    with daxkv.Store(path=path, size=1 << 20, slot_bytes=4096):
        pass

got = []
open_close("environment")
daxkv.set_log_callback(lambda level, msg: got.append((level, msg)), daxkv.LOG_INFO)
open_close("callback")
assert any("opened store" in m for _, m in got), got
daxkv.set_log_callback(None)
open_close("environment again")
print("child: ok")
"""


def run_child(tmp_path, **env):
    e = dict(os.environ, PYTHONPATH=str(HERE.parent), **env)
    for k in ("DAXKV_LOG_LEVEL", "DAXKV_LOG_FILE"):
        if k not in env:
            e.pop(k, None)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "arena")],
        env=e, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0 and "child: ok" in r.stdout, r.stdout + r.stderr
    # The stderr of each phase, by its marker.
    phases, cur = {}, None
    for line in r.stderr.splitlines():
        if line.startswith("--- "):
            cur = line[4:]
            phases[cur] = []
        elif cur is not None:
            phases[cur].append(line)
    return phases


def opened(lines):
    return [l for l in lines if " info: opened store" in l]


def test_the_environment_logs_and_a_callback_takes_precedence(tmp_path):
    phases = run_child(tmp_path, DAXKV_LOG_LEVEL="info")
    assert len(opened(phases["environment"])) == 1, phases
    assert opened(phases["callback"]) == [], "a callback is set: nothing goes to stderr"
    assert len(opened(phases["environment again"])) == 1, phases


def test_without_the_environment_the_library_prints_nothing(tmp_path):
    phases = run_child(tmp_path)
    assert all(lines == [] for lines in phases.values()), phases


def test_a_log_file_takes_the_lines(tmp_path):
    log = tmp_path / "daxkv.log"
    phases = run_child(tmp_path, DAXKV_LOG_LEVEL="debug", DAXKV_LOG_FILE=str(log))
    assert all(opened(lines) == [] for lines in phases.values()), phases
    text = log.read_text()
    assert text.count(" info: opened store") == 2, text  # not while the callback was set
    assert all(" daxkv[" in line for line in text.splitlines()), text
