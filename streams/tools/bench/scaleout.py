"""Part (h): scale-out of the prediction and outcome paths on 4 partitions.

- **Throughput**: the run's bookings, prefilled into 4 partitions, predicted by one worker, then
  (on fresh topics) by two workers of the same group started together: throughput between the
  first and the last prediction, and CPU per booking summed over the workers and their engines.
  The same for the outcome path: the run's predictions and actuals joined by one, then two
  outcome workers (each with its recorder), per outcome.
  On one machine two workers share its cores with the broker: the figure says what a second
  worker costs and gains here; on a second machine each would have cores of its own.
- **Rebalance pauses**: bookings sent at a share of (b) to one worker; a second worker joins
  (its group rebalances: aiokafka has no cooperative protocol, so every member stops), then
  leaves (SIGTERM: it leaves the group, which rebalances again). For the steady period before,
  the period after the join and the one after the leave: the latency p50, p99 and maximum of the
  bookings sent in it, and the longest time no prediction arrived at all (the pause).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from connectors.kafka import BlockingProducer
from connectors.kafka_admin import ensure_topics
from streams.tools.bench import kafka_io
from streams.tools.bench.children import Child
from streams.tools.bench.latency import Receiver, bookings, send_paced
from streams.tools.bench.probes import CpuSampler
from streams.tools.bench.runs import (
    NO_PROGRESS_S,
    Bench,
    child_env,
    clean_up_noting,
    loadavg,
    prefill_outcome_inputs,
    run_names,
    set_flags,
)
from streams.tools.bench.stats import cpu_at, latency_summary, rate_from_timestamps

PARTITIONS = 4
READY_LIMIT_S = 120.0
PAUSE_SHARE = 0.2  # of (b): a load one worker carries with room to spare
STEADY_S = 15.0  # each period of the pause run


def create_topics(bench: Bench, prefix: str) -> None:
    ensure_topics(
        bench.bootstrap, [f"{prefix}{name}" for name in kafka_io.RUN_TOPICS], partitions=PARTITIONS
    )


def longest_gap_ms(times: list[float], start: float, end: float) -> float:
    """The longest stretch of ``[start, end]`` without an arrival, in ms.

    >>> longest_gap_ms([1.0, 1.1, 2.0, 2.05], 1.0, 2.5)
    900.0
    """
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return round(max(b - a for a, b in itertools.pairwise(edges)) * 1000, 1)


def run_throughput(bench: Bench, workers: int, path: str = "predict") -> dict[str, Any]:
    """``workers`` workers of ``path`` (predict: bookings to predictions; outcomes: predictions
    and actuals to outcomes, each outcome worker with its recorder) on topics prefilled with the
    run's events."""
    short = "h" if path == "predict" else "ho"
    prefix, tag = run_names(bench, f"{short}{workers}", 0)
    out: dict[str, Any] = {
        "path": path,
        "workers": workers,
        "partitions": PARTITIONS,
        "loadavg": loadavg(),
    }
    children: list[Child] = []
    samplers: list[CpuSampler] = []
    try:
        create_topics(bench, prefix)
        env = child_env(bench, prefix, TOPIC_PARTITIONS=str(PARTITIONS))
        if path == "predict":
            kafka_io.produce_all(
                bench.bootstrap, f"{prefix}bookings", bench.data.tagged(bench.data.bookings, tag)
            )
            env.update(set_flags(bench, prefix, 100.0))
            output_topic = f"{prefix}predictions"
        else:
            prefill_outcome_inputs(bench, prefix, tag)
            env.update(DATABASE_URL=bench.database.url, JOIN_HORIZON_DAYS="60")
            output_topic = f"{prefix}outcomes"
        arrivals = Receiver(bench.bootstrap, output_topic, PARTITIONS)
        try:
            for i in range(workers):
                child = Child.worker(path, env, bench.logs / f"{prefix}{i}.log")
                children.append(child)
                samplers.append(CpuSampler(child.pid).start())
            last_count, last_change = 0, time.monotonic()
            while arrivals.count() < bench.count:
                for child in children:
                    problem = child.problem()
                    if problem is not None:
                        raise RuntimeError(problem)
                if arrivals.count() != last_count:
                    last_count, last_change = arrivals.count(), time.monotonic()
                elif time.monotonic() - last_change > NO_PROGRESS_S:
                    raise TimeoutError(f"stuck at {last_count} of {bench.count} in {output_topic}")
                time.sleep(0.1)
        finally:
            arrivals.close()
        for sampler in samplers:
            sampler.stop()
        output = kafka_io.read_output(bench.bootstrap, output_topic, bench.count)
        stamps = output.timestamps_ms
        first_s, last_s = min(stamps) / 1000, max(stamps) / 1000
        cpu = sum(cpu_at(s.samples, last_s) - cpu_at(s.samples, first_s) for s in samplers)
        out["events"] = len(set(output.keys))
        out["throughput_per_s"] = round(rate_from_timestamps(stamps), 1)
        out["cpu_us_per_event"] = round(cpu / max(1, len(stamps)) * 1e6, 1)
        out["peak_rss_mb"] = [c.peak_rss_mb() for c in children]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for sampler in samplers:
            sampler.stop()
        for child in children:
            child.stop()
        clean_up_noting(bench, prefix, out)
    return out


class PacedBookings(threading.Thread):
    def __init__(self, bench: Bench, topic: str, tag: str, rate: float) -> None:
        super().__init__(name="scaleout-load", daemon=True)
        self.sent: dict[bytes, float] = {}
        self._producer = BlockingProducer(bench.bootstrap)
        self._topic, self._rate = topic, rate
        self._source = bookings(bench.data, tag)
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                send_paced(self._producer, self._topic, self._source, self._rate, 0.5, self.sent)
            self._producer.flush()
        except BaseException as exc:  # reported by the run, which then fails
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def run_pauses(bench: Bench, reference_per_s: float) -> dict[str, Any]:
    prefix, tag = run_names(bench, "hp", 0)
    rate = PAUSE_SHARE * reference_per_s
    out: dict[str, Any] = {"offered_per_s": round(rate, 1), "loadavg": loadavg()}
    first = second = None
    load = arrivals = None
    try:
        create_topics(bench, prefix)
        env = child_env(
            bench, prefix, TOPIC_PARTITIONS=str(PARTITIONS), **set_flags(bench, prefix, 100.0)
        )
        first = Child.worker("predict", env, bench.logs / f"{prefix}first.log")
        first.wait_for_log("Worker ready", READY_LIMIT_S)
        arrivals = Receiver(bench.bootstrap, f"{prefix}predictions", PARTITIONS)
        load = PacedBookings(bench, f"{prefix}bookings", tag, rate)
        load.start()
        time.sleep(STEADY_S)
        joined_at = time.perf_counter()
        second = Child.worker("predict", env, bench.logs / f"{prefix}second.log")
        second.wait_for_log("Worker ready", READY_LIMIT_S)
        out["second_ready_after_s"] = round(time.perf_counter() - joined_at, 1)
        time.sleep(STEADY_S)
        left_at = time.perf_counter()
        second.stop()
        out["second_stopped_after_s"] = round(time.perf_counter() - left_at, 1)
        time.sleep(STEADY_S)
        ended_at = time.perf_counter()
        load.stop()
        if load.error is not None:
            raise RuntimeError(f"the load generator failed: {load.error!r}")
        time.sleep(5.0)  # the last bookings' predictions
        periods = {
            "steady": (joined_at - STEADY_S + 3.0, joined_at),
            "a worker joins": (joined_at, left_at),
            "a worker leaves": (left_at, ended_at),
        }
        for name, (start, end) in periods.items():
            sent = {k: t for k, t in load.sent.items() if start <= t < end}
            latencies = [
                (arrivals.received[k] - t) * 1000 for k, t in sent.items() if k in arrivals.received
            ]
            entry: dict[str, Any] = {
                "sent": len(sent),
                "received": len(latencies),
                "longest_gap_ms": longest_gap_ms(arrivals.times, start, end),
            }
            if latencies:
                entry.update(latency_summary(latencies))
            out[name] = entry
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            if load is not None and load.is_alive():
                load.stop()
            if arrivals is not None:
                arrivals.close()
        finally:  # the workers end whatever happened to the load and the receiver
            for child in (second, first):
                if child is not None:
                    child.stop()
        clean_up_noting(bench, prefix, out)
    return out


def render_scaleout(scaleout: dict[str, Any]) -> list[str]:
    lines = [f"(h) scale-out, {PARTITIONS} partitions:"]
    for run in scaleout.get("throughput", []):
        path = run.get("path", "predict")
        unit = "booking" if path == "predict" else "outcome"
        who = f"    {run['workers']} {path} worker(s)"
        if run.get("error"):
            lines.append(f"{who}: FAILED: {run['error']}")
            continue
        lines.append(
            f"{who}: {run['throughput_per_s']:,.0f} {unit}s/s, "
            f"CPU {run['cpu_us_per_event']:.0f} us/{unit} (load {run['loadavg']})"
        )
    pauses = scaleout.get("pauses") or {}
    if pauses.get("error"):
        lines.append(f"    rebalance pauses: FAILED: {pauses['error']}")
    elif pauses:
        lines.append(f"    rebalance pauses at {pauses['offered_per_s']:,.0f} bookings/s:")
        for name in ("steady", "a worker joins", "a worker leaves"):
            p = pauses[name]
            lines.append(
                f"      {name}: {p['received']}/{p['sent']} predicted, p50 "
                f"{p.get('p50_ms', float('nan')):.0f} ms, p99 {p.get('p99_ms', float('nan')):.0f}"
                f" ms, max {p.get('max_ms', float('nan')):.0f} ms, longest with no prediction "
                f"{p['longest_gap_ms']:.0f} ms"
            )
    return lines
