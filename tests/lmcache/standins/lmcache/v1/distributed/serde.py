# SPDX-License-Identifier: Apache-2.0
"""Stand-in for the ``SerdeConfig`` record of LMCache's
``lmcache.v1.distributed.serde`` (the serializers themselves are left out)."""

# Standard
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SerdeConfig:
    """A serde type name and the keyword arguments for its factory."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
