# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.distributed.error``."""

# Standard
import enum


class L1ReconfigureError(RuntimeError):
    """HTTP-mappable runtime L1 reconfiguration error."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.payload: dict[str, object] = {"error": message}


class L1Error(enum.Enum):
    """Errors for L1Manager class APIs."""

    SUCCESS = enum.auto()
    KEY_NOT_EXIST = enum.auto()
    KEY_NOT_READABLE = enum.auto()
    KEY_NOT_WRITABLE = enum.auto()
    KEY_IN_WRONG_STATE = enum.auto()
    KEY_IS_LOCKED = enum.auto()
    OUT_OF_MEMORY = enum.auto()


ErrorType = L1Error

_MESSAGES = {
    L1Error.SUCCESS: "Operation succeeded.",
    L1Error.KEY_NOT_EXIST: "The specified key does not exist.",
    L1Error.KEY_NOT_READABLE: "The specified key exists but cannot be read.",
    L1Error.KEY_NOT_WRITABLE: "The specified key exists but cannot be written.",
    L1Error.KEY_IN_WRONG_STATE: "The specified key is in the wrong state for the operation.",
    L1Error.KEY_IS_LOCKED: "The specified key is locked and cannot perform the operation.",
    L1Error.OUT_OF_MEMORY: "Not enough memory to complete the operation.",
}


def strerror(error: ErrorType) -> str:
    """Convert error code to human-readable string."""
    return _MESSAGES.get(error, "Unknown error.")
