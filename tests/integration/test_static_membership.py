"""Rolling restarts with static membership (WORKER_INSTANCE_ID): a predict worker restarted
within the session timeout gets its partitions back without a rebalance of its group, while
the same restart without it rebalances the other worker; no booking is lost either way."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.integration.test_prediction_path import booking_payloads, set_flags
from tests.integration.workers import Worker, collect_until_quiet, produce, worker_env

GENERATION = re.compile(r"Joined group '[^']+' \(generation (\d+)\)")


def generations(text: str) -> list[int]:
    return [int(g) for g in GENERATION.findall(text)]


def start(stack: Any, prefix: str, home: Path, name: str, **env: str) -> Worker:
    settings = worker_env(
        stack, prefix, home, WORKER_ROLE="predict", CONSUMER_SESSION_TIMEOUT_S="30", **env
    )
    worker = Worker(settings, home / f"worker-{name}-{time.time_ns()}.log").start()
    worker.wait_for_log("Worker ready", 90)
    return worker


def restart_b_and_watch_a(
    stack: Any, prefix: str, home: Path, static: bool, tag: str
) -> tuple[list[int], int]:
    """Start A and B, let them settle, restart B; the generations A joined after B's restart,
    and the predictions of bookings produced around it."""
    ids = (lambda name: {"WORKER_INSTANCE_ID": f"{tag}-{name}"}) if static else (lambda _: {})
    a = start(stack, prefix, home, "a", **ids("a"))
    try:
        b = start(stack, prefix, home, "b", **ids("b"))
        deadline = time.monotonic() + 60
        while not any(g >= 2 for g in generations(a.log())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(g >= 2 for g in generations(a.log())), a.log()[-3000:]
        time.sleep(3)  # settled
        mark = len(a.log())
        produce(stack, f"{prefix}bookings", booking_payloads(100, f"{tag}-1-"))
        b.stop()
        b = start(stack, prefix, home, "b2", **ids("b"))
        produce(stack, f"{prefix}bookings", booking_payloads(100, f"{tag}-2-", seed=2))
        predictions = collect_until_quiet(stack, f"{prefix}predictions", quiet_s=5, timeout_s=90)
        b.stop()
        return generations(a.log()[mark:]), len({p["booking_id"] for p in predictions})
    finally:
        a.stop()


def test_a_named_worker_restarted_in_time_keeps_its_group_from_rebalancing(
    stack: Any, topic_prefix: str, tmp_path: Path
) -> None:
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    rejoined, predicted = restart_b_and_watch_a(stack, topic_prefix, tmp_path, True, "st")
    assert rejoined == []  # A never joined the group again: no rebalance
    assert predicted == 200


def test_without_a_name_the_same_restart_rebalances_the_group(
    stack: Any, topic_prefix: str, tmp_path: Path
) -> None:
    """The control: what static membership saves."""
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    rejoined, predicted = restart_b_and_watch_a(stack, topic_prefix, tmp_path, False, "dy")
    assert len(rejoined) >= 1  # B's leave and its return each make A join again
    assert predicted == 200
