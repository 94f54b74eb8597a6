"""The loaded libdaxkv, and what belongs to the library rather than to a store.

_lib declares the C ABI and finds the library; this module loads it once
and keeps the handle (library()), turns a failed call's code and message
into a DaxKVError (_error, _item_error, _item_errors), finds the calls an older library
may lack (_optional), and offers the process-wide calls: version(),
version_number(), strerror() and set_log_callback(). It imports nothing of
the package but _lib and errors, so that every other module can import it.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import re
import threading
from typing import Any, Callable, Dict, List, Optional

from . import _lib
from .errors import DaxKVError, error_class

# ---------------------------------------------------------------------------
# The library handle (loaded on first use so that `import daxkv` works for
# help() and for tests of the loader itself).

_lib_lock = threading.Lock()
_L: Optional[ctypes.CDLL] = None


def library() -> ctypes.CDLL:
    """The loaded, version-checked libdaxkv (see daxkv._lib.load)."""
    global _L
    if _L is None:
        with _lib_lock:
            if _L is None:
                _L = _lib.load()
    return _L


def version() -> str:
    """The version string of the library actually loaded."""
    return library().daxkv_version_string().decode()


def version_number() -> int:
    """major*10000 + minor*100 + patch of the library actually loaded."""
    return int(library().daxkv_version_number())


def strerror(code: int) -> str:
    """The library's static description of an error code."""
    code = int(code)
    if not -(2**31) <= code < 2**31:
        # Past a C int (it was cut to one: 2**40 read as 0, "success").
        code = _lib.E_BASE  # a code with no description: "unknown error"
    return library().daxkv_strerror(code).decode("utf-8", "replace")


def _error(rc: int, op: str) -> DaxKVError:
    # The detail message is thread-local and valid only until this thread's
    # next daxkv call, so it is read first, before daxkv_strerror.
    L = library()
    msg = L.daxkv_errmsg()
    text = msg.decode("utf-8", "replace") if msg else ""
    return error_class(rc)(rc, text, op, L.daxkv_strerror(rc).decode("utf-8", "replace"))


def _item_error(rc: int, op: str, index: int, detail: str = "") -> DaxKVError:
    L = library()
    s = L.daxkv_strerror(rc).decode("utf-8", "replace")
    return error_class(rc)(rc, detail or s, op, s)


def _errmsg() -> str:
    """This thread's detail message of its last failed library call."""
    msg = library().daxkv_errmsg()
    return msg.decode("utf-8", "replace") if msg else ""


def _item_errors(op: str, statuses: List[int], bad: List[int],
                 detail: Optional[Callable[[], str]]) -> Dict[int, DaxKVError]:
    """The errors of a batch's failed items (indexes bad). detail, given
    for a batch this thread just ran (read before any other library call),
    returns the library's message of the last item with a negative status
    (a miss and a busy key leave one too): it is the message of the item it
    names ("item N: "), or of the failed item when no other item's status
    is negative."""
    text = detail() if bad and detail is not None else ""
    named = re.match(r"item (\d+): ", text)
    alone = len(bad) == 1 and sum(1 for s in statuses if s < 0) == 1
    errors = {}
    for i in bad:
        if named:
            mine = text[named.end():] if int(named.group(1)) == i else ""
        else:
            mine = text if alone else ""
        errors[i] = _item_error(statuses[i], op, i, mine)
    return errors


def _optional(name: str) -> Any:
    fn = getattr(library(), name, None)
    if fn is None:
        from .errors import NotSupported

        raise NotSupported(-_errno.ENOTSUP, f"the loaded libdaxkv has no {name}", name)
    return fn


# Every callback ever installed is kept: a library thread may still be
# running the previous one while it is being replaced.
_log_callbacks: List[Any] = []
# Per thread, how deep it is in log callbacks: the library may run one on
# the caller's thread before the call returns, so a Store call of this
# thread may be in flight around it (Store.close must not wait for it).
_in_log_callback = threading.local()


def in_log_callback() -> bool:
    """Whether this thread is running the log callback."""
    return getattr(_in_log_callback, "depth", 0) > 0


def set_log_callback(fn: Optional[Callable[[int, str], None]], max_level: int = _lib.LOG_WARNING) -> None:
    """Route the library's log messages (level, text) to fn; None turns the
    callback off (the library is then silent, or logs as DAXKV_LOG_LEVEL and
    DAXKV_LOG_FILE say when they were set at load).

    fn may run on library threads; exceptions it raises are printed by
    ctypes and otherwise ignored.
    """
    L = library()
    if fn is None:
        L.daxkv_set_log_fn(_lib.LOG_FN(), 0, None)
        return

    def trampoline(level: int, msg: bytes, _arg: Any) -> None:
        _in_log_callback.depth = getattr(_in_log_callback, "depth", 0) + 1
        try:
            fn(level, msg.decode("utf-8", "replace") if msg else "")
        finally:
            _in_log_callback.depth -= 1

    cb = _lib.LOG_FN(trampoline)
    _log_callbacks.append(cb)
    L.daxkv_set_log_fn(cb, int(max_level), None)
