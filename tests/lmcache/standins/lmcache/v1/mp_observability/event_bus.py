# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's MP observability ``EventBus``: callbacks subscribe
per event type; ``publish`` queues an event (dropped when disabled or the
queue is full) and a drain thread, started by ``start``, dispatches them;
``stop`` joins it and drains what is left.  LMCache's typed event classes
and subscriber base are left out (any object with an ``event_type`` works)."""

# Future
from __future__ import annotations

# Standard
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable
import threading
import time

# First Party
from lmcache.logging import init_logger

logger = init_logger(__name__)

EventCallback = Callable[[Any], None]


@dataclass
class EventBusConfig:
    enabled: bool = True
    max_queue_size: int = 10_000


class EventBus:
    def __init__(self, config: EventBusConfig | None = None) -> None:
        self._config = config or EventBusConfig()
        self._subscribers: dict[Any, list[EventCallback]] = defaultdict(list)
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._discard_count = 0

    def subscribe(self, event_type: Any, callback: EventCallback) -> None:
        with self._lock:
            self._subscribers[event_type].append(callback)

    def publish(self, event: Any) -> None:
        if not self._config.enabled:
            return
        if len(self._queue) >= self._config.max_queue_size:
            self._discard_count += 1
            return
        event.timestamp = time.time()
        self._queue.append(event)
        self._wake.set()

    def start(self) -> None:
        if not self._config.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop_flag.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="EventBus")
        self._thread.start()

    def stop(self) -> None:
        self._stop_flag.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        self._drain_all()

    def _run(self) -> None:
        while not self._stop_flag.is_set():
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            self._drain_all()

    def _drain_all(self) -> None:
        with self._lock:
            snapshot = dict(self._subscribers)
        while True:
            try:
                event = self._queue.popleft()
            except IndexError:
                break
            for cb in snapshot.get(getattr(event, "event_type", None), []):
                try:
                    cb(event)
                except Exception:
                    logger.exception("EventBus: error in callback")
