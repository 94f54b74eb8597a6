# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.logging`` (``init_logger``).

LMCache configures one package-wide handler with its own formatter and the
level from ``LMCACHE_LOG_LEVEL``; callers only use ``init_logger(name)``,
which returns a standard ``logging.Logger``.
"""

# Standard
import logging
import os

_FORMAT = "[%(asctime)s] LMCache %(levelname)s: %(message)s (%(filename)s:%(lineno)d:%(name)s)"
_root = logging.getLogger("lmcache")
if not _root.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter(_FORMAT))
    _root.addHandler(_handler)
    _root.setLevel(os.getenv("LMCACHE_LOG_LEVEL", "INFO").upper())
    _root.propagate = True


def init_logger(name: str) -> logging.Logger:
    """Return the logger for ``name`` (a module of the ``lmcache`` package)."""
    logger = logging.getLogger(name)
    if not name.startswith("lmcache"):
        logger.setLevel(_root.level)
    return logger
