"""Alerts handed to the webhook through a bounded queue, sent by a thread of their own.

A webhook that hangs (up to timeout × (retries + 1) plus backoff per alert) then delays only
other alerts, never the caller: :meth:`WebhookQueue.submit` returns at once. When the queue is
full the oldest waiting alert is dropped (during a storm the newest say most about now), counted,
and logged with the webhook's host only: its URL may carry a token. Alerts are in PostgreSQL and
on the ``alerts`` topic anyway; the webhook is a courtesy copy.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from typing import Protocol

from schemas import Alert

log = logging.getLogger("delaycast.alerts")


class Sender(Protocol):
    host: str

    def send(self, alert: Alert) -> bool: ...


class WebhookQueue:
    def __init__(
        self, sender: Sender, *, capacity: int = 100, stopping: threading.Event | None = None
    ) -> None:
        """``stopping`` is set at :meth:`stop`; give the sender a backoff that waits on it."""
        if capacity < 1:
            raise ValueError("the webhook queue needs room for at least one alert")
        self._sender = sender
        self._capacity = capacity
        self._waiting: deque[Alert] = deque()
        self._lock = threading.Condition()
        self._stopping = stopping or threading.Event()
        self._thread: threading.Thread | None = None
        self.counts: Counter[str] = Counter()  # submitted, delivered, failed, dropped

    def start(self) -> None:
        if self._thread is None:
            # A daemon: a webhook hanging at exit must not keep the process alive.
            self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
            self._thread.start()

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for the webhook; never blocks."""
        with self._lock:
            self.counts["submitted"] += 1
            if len(self._waiting) >= self._capacity:
                self._waiting.popleft()
                self.counts["dropped"] += 1
                if self.counts["dropped"] == 1 or self.counts["dropped"] % 100 == 0:
                    log.warning(
                        "[ML] webhook at %s is behind: queue of %d full, oldest alert dropped "
                        "(%d dropped so far)",
                        self._sender.host,
                        self._capacity,
                        self.counts["dropped"],
                    )
            self._waiting.append(alert)
            self._lock.notify()

    def pending(self) -> int:
        with self._lock:
            return len(self._waiting)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop sending: what is waiting is not sent; a call in flight gets ``timeout_s`` to end
        before it is left behind (its thread is a daemon)."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        c = self.counts
        log.info(
            "[ML] webhook at %s: %d alerts submitted, %d delivered, %d failed, %d dropped, "
            "%d not sent at stop",
            self._sender.host,
            c["submitted"],
            c["delivered"],
            c["failed"],
            c["dropped"],
            self.pending(),
        )

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping.is_set():
                    self._lock.wait()
                if self._stopping.is_set():
                    return
                alert = self._waiting.popleft()
            delivered = self._sender.send(alert)  # never raises
            with self._lock:
                self.counts["delivered" if delivered else "failed"] += 1
