"""The processes a benchmark run starts: a real ``delaycast worker``, or a bench-only program
that reports a :mod:`~streams.tools.bench.meter` line on stdout. Each is stopped by its PID."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from streams.tools.bench.meter import parse_result
from streams.tools.bench.probes import tree_peak_rss_mb, tree_peak_rss_per_process_mb
from streams.tools.demo import spawn, stop_all


class Child:
    """A subprocess with its log in a file; a bench-only program's result line is kept."""

    def __init__(self, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
        self.process = process
        self.name = name
        self.log = log
        self.result: dict[str, Any] | None = None
        if process.stdout is not None:
            threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    @classmethod
    def worker(cls, role: str, env: dict[str, str], log: Path) -> Child:
        """``delaycast worker --role ROLE``, started the way ``make demo`` starts it."""
        return cls(spawn("worker", "--role", role, env=env, log=log), f"{role} worker", log)

    @classmethod
    def program(cls, module: str, env: dict[str, str], log: Path) -> Child:
        """``python -m MODULE``: its stdout is read for the result line, its stderr logged."""
        with log.open("ab") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        return cls(process, module.rsplit(".", 1)[-1], log)

    def _read(self, stream: IO[bytes]) -> None:
        with self.log.open("ab") as log:
            for raw in stream:
                line = raw.decode(errors="replace")
                found = parse_result(line)
                if found is not None and self.result is None:
                    self.result = found
                else:
                    log.write(raw)
                    log.flush()

    @property
    def pid(self) -> int:
        return self.process.pid

    def problem(self) -> str | None:
        """Why this child cannot go on (it exited), or None while it runs."""
        code = self.process.poll()
        if code is None or self.result is not None:
            return None
        return f"{self.name} exited ({code}); last lines of {self.log}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_has(self, text: str) -> bool:
        try:
            return text in self.log.read_text(errors="replace")
        except OSError:
            return False

    def _wait(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Until ``done()``; raises when the process fails first or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not done():
            problem = self.problem()
            if problem is not None:
                raise RuntimeError(problem)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} {what} within {timeout_s:g} s")
            time.sleep(0.1)

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        self._wait(lambda: self.log_has(text), timeout_s, f"did not log {text!r}")

    def wait_for_result(self, timeout_s: float) -> dict[str, Any]:
        self._wait(lambda: self.result is not None, timeout_s, "reported nothing")
        assert self.result is not None
        return self.result

    def peak_rss_mb(self) -> float | None:
        """Of the process and its descendants together (a worker and its engine)."""
        try:
            return tree_peak_rss_mb(self.pid)
        except (OSError, ValueError):
            return None

    def peak_rss_per_process_mb(self) -> list[float] | None:
        """Of the process, then of each of its descendants."""
        try:
            return [round(mb, 1) for mb in tree_peak_rss_per_process_mb(self.pid)]
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        stop_all({self.name: self.process})
