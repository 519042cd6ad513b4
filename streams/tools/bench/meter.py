"""Counting events in a benchmark subprocess and reporting them as one JSON line on stdout.

The subprocesses of scenarios (a), (b) and (f) use it: it notes the wall time and the process's
CPU time when the first batch arrives and when the target count is reached, and the peak
resident memory at that moment. The runner reads the line (``{"bench": {...}}``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from streams.tools.bench.probes import own_cpu_seconds, peak_rss_mb

RESULT_KEY = "bench"


class Meter:
    def __init__(
        self,
        target: int,
        *,
        clock: Callable[[], float] = time.time,
        cpu: Callable[[], float] = own_cpu_seconds,
        rss: Callable[[], float] = lambda: peak_rss_mb(os.getpid()),
    ) -> None:
        self.target = target
        self.events = 0
        self._clock, self._cpu, self._rss = clock, cpu, rss
        self.first: tuple[float, float, int] | None = None  # (time, CPU s, events in it)
        self.last: tuple[float, float] | None = None
        self.rss_mb: float | None = None

    @property
    def done(self) -> bool:
        return self.last is not None

    def add(self, events: int) -> bool:
        """Count a batch of ``events``; True exactly once: when the target is reached."""
        if events <= 0 or self.done:
            return False
        self.events += events
        if self.first is None:
            self.first = (self._clock(), self._cpu(), events)
        if self.events < self.target:
            return False
        self.last = (self._clock(), self._cpu())
        self.rss_mb = self._rss()
        return True

    def result(self) -> dict[str, Any]:
        if self.first is None or self.last is None:
            raise RuntimeError("the target was not reached")
        return {
            RESULT_KEY: {
                "events": self.events,
                "first_s": self.first[0],
                "cpu_first_s": self.first[1],
                "at_first": self.first[2],
                "last_s": self.last[0],
                "cpu_last_s": self.last[1],
                "peak_rss_mb": self.rss_mb,
            }
        }

    def report(self) -> None:
        # To the file descriptor itself: a Faust worker replaces sys.stdout with its logger.
        os.write(1, (json.dumps(self.result()) + "\n").encode())


def parse_result(line: str) -> dict[str, Any] | None:
    """The result in a line of a subprocess's stdout, or None when the line is something else."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    result = data.get(RESULT_KEY) if isinstance(data, dict) else None
    return result if isinstance(result, dict) else None
