# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.platform`` package, reduced to its
event notifier (LMCache's ``event_notifier`` module, re-exported here) and
``current_device_spec.is_pin_supported``.

An ``EventNotifier`` is a binary, poll-able signal: ``notify()`` makes
``fileno()`` readable, ``consume()`` resets it, repeated notifies coalesce.
On Linux it is an ``eventfd`` (non-blocking, close-on-exec); elsewhere a
non-blocking pipe.  ``consume_fd(fd)`` drains a raw fd and swallows only
``BlockingIOError`` (a closed fd raises).
"""

# Standard
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
import os

# Third Party
import torch

HAS_EVENTFD: bool = hasattr(os, "eventfd")


class EventNotifier(ABC):
    @abstractmethod
    def fileno(self) -> int:
        """Return a poll-able fd, readable after ``notify()``."""

    @abstractmethod
    def notify(self) -> None:
        """Signal (idempotent if already signaled)."""

    @abstractmethod
    def consume(self) -> None:
        """Consume the pending signal (non-blocking)."""

    @abstractmethod
    def notify_fileno(self) -> int:
        """The fd written by ``notify`` (the pipe's write end for pipes)."""

    @abstractmethod
    def close(self) -> None:
        """Release the OS resources (idempotent)."""

    def __enter__(self) -> "EventNotifier":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()


class EventfdNotifier(EventNotifier):
    """Linux eventfd-based notifier; ``_efd`` is -1 once closed."""

    def __init__(self) -> None:
        if not HAS_EVENTFD:
            raise RuntimeError(
                "EventfdNotifier requires os.eventfd (Linux + Python 3.10+); "
                "use PipeNotifier instead."
            )
        self._efd: int = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def fileno(self) -> int:
        return self._efd

    def notify(self) -> None:
        os.eventfd_write(self._efd, 1)

    def notify_fileno(self) -> int:
        return self._efd

    def consume(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._efd >= 0:
            try:
                os.close(self._efd)
            except OSError:
                pass
            self._efd = -1


class PipeNotifier(EventNotifier):
    """Pipe-based fallback notifier for platforms without eventfd."""

    def __init__(self) -> None:
        r, w = os.pipe()
        try:
            os.set_blocking(r, False)
            os.set_blocking(w, False)
        except OSError:
            os.close(r)
            os.close(w)
            raise
        self._read_fd: int = r
        self._write_fd: int = w

    def fileno(self) -> int:
        return self._read_fd

    def notify(self) -> None:
        try:
            os.write(self._write_fd, b"\x01")
        except BlockingIOError:
            pass

    def notify_fileno(self) -> int:
        return self._write_fd

    def consume(self) -> None:
        while True:
            try:
                if not os.read(self._read_fd, 4096):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        for attr in ("_read_fd", "_write_fd"):
            fd = getattr(self, attr, -1)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, attr, -1)


def create_event_notifier() -> EventNotifier:
    """An ``EventfdNotifier`` on Linux, else a ``PipeNotifier``."""
    if HAS_EVENTFD:
        return EventfdNotifier()
    return PipeNotifier()


def consume_fd(fd: int) -> None:
    """Consume a pending signal from a raw fd (only ``BlockingIOError`` is
    swallowed)."""
    if HAS_EVENTFD:
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            pass
        return
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except BlockingIOError:
            return


@dataclass(frozen=True)
class _DeviceSpec:
    is_pin_supported: bool


# LMCache describes the active accelerator; page-locking needs one.
current_device_spec = _DeviceSpec(is_pin_supported=torch.cuda.is_available())

__all__ = [
    "HAS_EVENTFD",
    "EventNotifier",
    "EventfdNotifier",
    "PipeNotifier",
    "consume_fd",
    "create_event_notifier",
    "current_device_spec",
]
