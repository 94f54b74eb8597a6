# SPDX-License-Identifier: Apache-2.0
"""Stand-in for the shared helper module of LMCache's distributed tests.

``single_row_spec`` builds a prefetch request for one key row (object
group 0).  LMCache's newer helper returns its ``PrefetchTaskSpec``; that
type is not stood in (only LMCache's StorageManager consumes it), so the
equivalent ``PrefetchRequestSpec`` with one layout for group 0 is returned.
"""

# Standard
from typing import Any

# First Party
from lmcache.v1.distributed.api import MemoryLayoutDesc, ObjectKey, PrefetchRequestSpec
from lmcache.v1.platform import current_device_spec


def should_use_lazy_alloc() -> bool:
    """Return whether the current platform supports lazy L1 allocation."""
    return current_device_spec.is_pin_supported


def single_row_spec(
    keys: list[ObjectKey], layout_desc: MemoryLayoutDesc, **spec_kwargs: Any
) -> PrefetchRequestSpec:
    """A prefetch spec with one key row: object group 0, a single kv rank."""
    return PrefetchRequestSpec(keys, {0: layout_desc}, **spec_kwargs)
