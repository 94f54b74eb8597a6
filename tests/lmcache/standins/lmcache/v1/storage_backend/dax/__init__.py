# SPDX-License-Identifier: Apache-2.0
"""LMCache's ``lmcache.v1.storage_backend.dax`` package module (re-exports the core)."""

from .core import DaxCore, DaxReadReservation

__all__ = [
    "DaxCore",
    "DaxReadReservation",
]
