"""Running real ``delaycast worker`` processes against the test stack, and reading their output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connectors.kafka import BlockingProducer, read_topic

SERVER_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL")


def worker_env(stack: Any, prefix: str, home: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers,
        REDIS_URL=stack.redis_url,
        DATABASE_URL=stack.database_url,
        DELAYCAST_HOME=str(home),
        TOPIC_PREFIX=prefix,
        FLAGS_REDIS_KEY=f"{prefix}flags",
        MODEL_DIR=str(home / "models"),
        WEATHER_PROVIDER="default",
        LOG_LEVEL="info",
        BATCH_WITHIN_S="0.02",
        # Tests publish actual delays observed over the coming days all at once; event time
        # would call the oldest pending entries stale under the default 7-day horizon.
        JOIN_HORIZON_DAYS="60",
    )
    env.update(overrides)
    return env


class Worker:
    """A worker subprocess with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 60.0) -> Worker:
        handle = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for_log("worker ready", ready_timeout_s)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float, start_at: int = 0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log()[start_at:]:
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.process.returncode}):\n{self.log()[-4000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"worker log never said {text!r}:\n{self.log()[-4000:]}")

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Worker:
        return self

    def report(self, wait_s: float = 2.0) -> str:
        """Ask the running worker what it waits on (SIGUSR2); return its log, without the
        periodic totals, up to its last 30,000 characters."""
        if self.process is not None and self.process.poll() is None:
            start = len(self.log())
            self.process.send_signal(signal.SIGUSR2)
            with contextlib.suppress(AssertionError):
                self.wait_for_log("state on SIGUSR2", wait_s, start_at=start)
        lines = [line for line in self.log().splitlines() if "[ML] totals:" not in line]
        return "\n".join(lines)[-30000:]

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:  # the test failed inside: show where the worker stood
            print(f"--- worker log ({self.log_path}) ---\n{self.report()}")
        self.stop()


def produce(stack: Any, topic: str, items: Iterable[tuple[bytes, bytes]]) -> int:
    producer = BlockingProducer(stack.kafka_bootstrap_servers)
    n = 0
    for key, value in items:
        producer.send(topic, key, value)
        n += 1
    producer.flush()
    return n


def collect(stack: Any, topic: str, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Read ``count`` JSON events from the start of ``topic`` (fewer if the timeout passes)."""
    messages = read_topic(
        stack.kafka_bootstrap_servers, topic, from_beginning=True, count=count, timeout_s=timeout_s
    )
    return [json.loads(m.value()) for m in messages]


def collect_until_quiet(
    stack: Any, topic: str, quiet_s: float = 3.0, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Read every event of ``topic`` until nothing new arrives for ``quiet_s``."""
    messages = read_topic(
        stack.kafka_bootstrap_servers,
        topic,
        from_beginning=True,
        count=None,
        timeout_s=timeout_s,
        idle_timeout_s=quiet_s,
    )
    return [json.loads(m.value()) for m in messages]
