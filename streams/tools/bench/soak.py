"""Part (s): a soak, to show that memory stays flat.

A predict worker and an outcome worker (with its recorder), as ``make demo`` starts them, on
topics of their own, fed at half of the framework's ceiling (b) for ``--soak-minutes``: each
actual follows its booking ten seconds later, and event times move with the clock, as in
production (the bookings are generated in cycles of ``CYCLE``, each cycle's pickups in the
world's 5-minute slot three hours before the moment it was made). The load generator is a paced
producer in this process: the synthetic CLI producer draws each booking one by one and manages
a few hundred per second. After a warm-up (the join's done-marker retention and two sweeps,
seven minutes by default, so that the table has reached its working size), the resident memory
of every process (each worker and its engine or recorder) is read at the start, every
``SAMPLE_S`` and at the end; the report gives each one's start and end, and its growth per
thousand outcomes.

A process that grows steadily with the outcomes holds state it never lets go (the join's done
markers did, at about 150 bytes per outcome). The rate the producer achieved, the outcomes the
join made and the lag each worker's group has at the end tell whether the path kept up: a soak
that lags measures a backlog, not a steady state.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.kafka import BlockingProducer
from connectors.kafka_lag import KafkaLagError, LagReader
from streams.tools.bench import kafka_io
from streams.tools.bench.children import Child
from streams.tools.bench.dataset import generate
from streams.tools.bench.probes import rss_mb, tree_rss_per_process_mb
from streams.tools.bench.runs import (
    Bench,
    child_env,
    clean_up_noting,
    loadavg,
    run_names,
    set_flags,
)

SHARE = 0.5
ACTUAL_AFTER_S = 10
READY_LIMIT_S = 120.0
SAMPLE_S = 30.0
CYCLE = 20_000  # bookings generated at a time
SPAN = timedelta(minutes=5)  # a cycle's pickups: the synthetic world's 5-minute slot before it


def live_events(tag: str, rate: float) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(key, booking, actual) without end, cycle after cycle, event times following the clock."""
    for cycle in itertools.count():
        data = generate(CYCLE, now=datetime.now(UTC), seed=cycle, span=SPAN)
        name = f"{tag}c{cycle}"
        for (key, booking), (_, actual) in zip(
            data.tagged(data.bookings, name), data.tagged(data.actuals, name), strict=True
        ):
            yield key, booking, actual


class PacedLoad(threading.Thread):
    """Sends ``rate`` bookings per second, and each one's actual ``ACTUAL_AFTER_S`` later."""

    def __init__(self, bootstrap: str, prefix: str, tag: str, rate: float) -> None:
        super().__init__(name="soak-load", daemon=True)
        self._producer = BlockingProducer(bootstrap)
        self._bookings, self._actuals = f"{prefix}bookings", f"{prefix}actual-delays"
        self._source = live_events(tag, rate)
        self._rate = rate
        self._halt = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the soak, which stops
            self.error = exc

    def _run(self) -> None:
        waiting: deque[tuple[float, bytes, bytes]] = deque()
        started = time.perf_counter()
        while not self._halt.is_set():
            now = time.perf_counter()
            due = int((now - started) * self._rate)
            while self.sent < due:
                key, booking, actual = next(self._source)
                self._producer.send(self._bookings, key, booking)
                waiting.append((now + ACTUAL_AFTER_S, key, actual))
                self.sent += 1
            while waiting and waiting[0][0] <= now:
                _, key, actual = waiting.popleft()
                self._producer.send(self._actuals, key, actual)
            time.sleep(0.002)
        self._producer.flush()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def warmup_s(done_retention_s: float, sweep_interval_s: float) -> float:
    """Long enough for the join's table to reach its working size: its done markers are kept
    ``done_retention_s`` and expired at the sweeps after that, so the start is read once the
    first markers have gone (two sweeps later), never before a minute.

    >>> warmup_s(300.0, 60.0), warmup_s(10.0, 5.0)
    (420.0, 60.0)
    """
    return max(60.0, done_retention_s + 2 * sweep_interval_s)


def growth_per_thousand(start_mb: float, end_mb: float, outcomes: int) -> float | None:
    """Bytes of growth per outcome, in MB per thousand outcomes (kB per outcome).

    >>> growth_per_thousand(154.0, 222.0, 450_000)
    0.1511
    >>> growth_per_thousand(100.0, 100.0, 0) is None
    True
    """
    if outcomes <= 0:
        return None
    return round((end_mb - start_mb) / outcomes * 1000, 4)


def _watch(children: dict[str, Child], load: PacedLoad, seconds: float) -> None:
    """Wait ``seconds``, raising as soon as a worker exits or the load generator fails."""
    end = time.monotonic() + seconds
    while True:
        for child in children.values():
            problem = child.problem()
            if problem is not None:
                raise RuntimeError(problem)
        if load.error is not None:
            raise RuntimeError(f"the load generator failed: {load.error!r}")
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(1.0, left))


def _rss(children: dict[str, Child]) -> dict[str, list[float]]:
    """Each child's tree: the process, then its descendants (engine, recorder), in MB."""
    out: dict[str, list[float]] = {}
    for name, child in children.items():
        with contextlib.suppress(OSError, ValueError):
            out[name] = [round(mb, 1) for mb in tree_rss_per_process_mb(child.pid)]
    return out


def _lags(bench: Bench, prefix: str) -> dict[str, int | str]:
    groups = {
        "predict (bookings)": (f"{prefix}{bench.settings.consumer_group}", "bookings"),
        "outcomes (predictions)": (
            f"{prefix}{bench.settings.consumer_group}-outcomes",
            "predictions",
        ),
        "outcomes (actual-delays)": (
            f"{prefix}{bench.settings.consumer_group}-outcomes",
            "actual-delays",
        ),
    }
    reader = LagReader(bench.bootstrap, timeout_s=5.0)
    out: dict[str, int | str] = {}
    try:
        for name, (group, topic) in groups.items():
            try:
                out[name] = reader.lag(group=group, topic=f"{prefix}{topic}")
            except KafkaLagError as exc:
                out[name] = f"{type(exc).__name__}: {exc}"
    finally:
        reader.close()
    return out


def run_soak(
    bench: Bench,
    reference_per_s: float,
    minutes: float,
    *,
    share: float = SHARE,
    say: Any = print,
) -> dict[str, Any]:
    prefix, tag = run_names(bench, "s", 0)
    rate = share * reference_per_s
    out: dict[str, Any] = {
        "reference_b_per_s": reference_per_s,
        "share_of_b": share,
        "offered_per_s": rate,
        "minutes": minutes,
        "loadavg_start": loadavg(),
    }
    children: dict[str, Child] = {}
    load: PacedLoad | None = None
    try:
        kafka_io.create_run_topics(bench.bootstrap, prefix)
        env = child_env(bench, prefix, **set_flags(bench, prefix, 50.0))
        for role in ("predict", "outcomes"):
            children[f"{role} worker"] = Child.worker(role, env, bench.logs / f"{prefix}{role}.log")
        for child in children.values():
            child.wait_for_log("Worker ready", READY_LIMIT_S)
        load = PacedLoad(bench.bootstrap, prefix, tag, rate)
        load.start()
        warmup = warmup_s(
            bench.settings.join_done_retention_minutes * 60.0,
            bench.settings.join_sweep_interval_s,
        )
        out["warmup_s"] = warmup
        say(f"    warming up for {warmup:.0f} s: the join's done markers reach their working size")
        _watch(children, load, warmup)
        topics = {t: f"{prefix}{t}" for t in ("bookings", "predictions", "outcomes")}
        counts_start = {t: bench.watermarks.count(name) for t, name in topics.items()}
        started = time.monotonic()
        out["rss_start_mb"] = _rss(children)
        samples: list[dict[str, Any]] = []
        end = started + minutes * 60.0
        while time.monotonic() < end:
            _watch(children, load, min(SAMPLE_S, max(0.0, end - time.monotonic())))
            at_s, rss = round(time.monotonic() - started), _rss(children)
            samples.append({"at_s": at_s, "rss_mb": rss})
            say(f"    {at_s:>5} s: " + _rss_line(rss))
        elapsed = time.monotonic() - started
        counts = {t: bench.watermarks.count(name) - counts_start[t] for t, name in topics.items()}
        out["rss_end_mb"] = _rss(children)
        out["samples"] = samples
        out["elapsed_s"] = round(elapsed, 1)
        out["counted"] = counts
        out["achieved_per_s"] = round(counts["bookings"] / elapsed, 1)
        out["outcomes_per_s"] = round(counts["outcomes"] / elapsed, 1)
        out["lag_end"] = _lags(bench, prefix)
        out["rss_this_process_mb"] = round(rss_mb(os.getpid()), 1)  # the load generator
        out["growth_mb_per_1000_outcomes"] = {
            name: growth_per_thousand(
                sum(out["rss_start_mb"].get(name, [0.0])),
                sum(out["rss_end_mb"].get(name, [0.0])),
                counts["outcomes"],
            )
            for name in children
        }
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            if load is not None:
                load.stop()
        finally:  # the workers end whatever happened to the load generator
            for child in children.values():
                child.stop()
        out["loadavg_end"] = loadavg()
        clean_up_noting(bench, prefix, out)
    return out


def _rss_line(rss: dict[str, list[float]]) -> str:
    """``name a+b MB`` for each child: the process and its descendants.

    >>> _rss_line({"outcomes worker": [150.0, 90.5], "predict worker": [60.0]})
    'outcomes worker 150+90 MB, predict worker 60 MB'
    """
    return ", ".join(
        f"{name} {'+'.join(f'{mb:.0f}' for mb in sizes)} MB" for name, sizes in rss.items()
    )


def render_soak(soak: dict[str, Any]) -> list[str]:
    """The soak's lines of the report."""
    if soak.get("error"):
        return [f"(s) soak FAILED: {soak['error']}"]
    lines = [
        f"(s) soak: {soak['minutes']:g} min at {soak['offered_per_s']:,.0f} bookings/s offered "
        f"({soak['share_of_b']:.0%} of (b)), {soak['achieved_per_s']:,.0f}/s sent, "
        f"{soak['outcomes_per_s']:,.0f} outcomes/s; lag at the end {soak['lag_end']}",
    ]
    for name, start in soak["rss_start_mb"].items():
        end = soak["rss_end_mb"].get(name, [])
        growth = soak["growth_mb_per_1000_outcomes"].get(name)
        per = "-" if growth is None else f"{growth * 1000:.0f} bytes per outcome"
        lines.append(
            f"    {name}: RSS {'+'.join(f'{mb:.0f}' for mb in start)} MB at the start, "
            f"{'+'.join(f'{mb:.0f}' for mb in end)} MB at the end ({per})"
        )
    return lines
