# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.native_storage_ops`` extension module.

LMCache's DAX adapter imports ``Bitmap`` from here and its tests import it
from ``lmcache.lmcache_native``; both names refer to the one class.
"""

# First Party
from lmcache.lmcache_native import Bitmap

__all__ = ["Bitmap"]
