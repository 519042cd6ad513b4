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
  bookings sent in it, and the longest time no prediction arrived at all (the pause). The same
  for outcome workers: each booking's prediction and actual sent at half of one outcome
  worker's throughput, the latency from the actual to its outcome (the joining worker first
  recovers the join table of the partitions it gains).
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
from streams.tools.bench.dataset import retag, retag_key
from streams.tools.bench.latency import Receiver, bookings, send_paced
from streams.tools.bench.probes import CpuSampler
from streams.tools.bench.runs import (
    NO_PROGRESS_S,
    Bench,
    child_env,
    clean_up_noting,
    loadavg,
    prefill_outcome_inputs,
    prepare_predictions,
    run_names,
    set_flags,
)
from streams.tools.bench.stats import cpu_at, latency_summary, rate_from_timestamps

PARTITIONS = 4
READY_LIMIT_S = 120.0
PAUSE_SHARE = 0.2  # of (b): a load one worker carries with room to spare
OUTCOME_PAUSE_SHARE = 0.5  # of one outcome worker's throughput, for the same reason
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
                self.send(0.5)
            self._producer.flush()
        except BaseException as exc:  # reported by the run, which then fails
            self.error = exc

    def send(self, seconds: float) -> None:
        send_paced(self._producer, self._topic, self._source, self._rate, seconds, self.sent)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


class PacedOutcomeInputs(PacedBookings):
    """Each booking's prediction, then its actual delay, paced; ``sent`` notes the actual's
    time. Stops sending when the run's predictions are used up (a second pass would only make
    duplicates, joined once)."""

    def __init__(self, bench: Bench, prefix: str, tag: str, rate: float) -> None:
        super().__init__(bench, f"{prefix}predictions", tag, rate)
        assert bench.predictions is not None
        source_tag, predictions = bench.predictions
        actuals = dict(bench.data.tagged(bench.data.actuals, tag))
        self._pairs = (
            (retag_key(k, tag, source_tag), retag(v, tag, source_tag)) for k, v in predictions
        )
        self._actuals, self._actuals_topic = actuals, f"{prefix}actual-delays"

    def send(self, seconds: float) -> None:
        total, started, n = max(1, round(self._rate * seconds)), time.perf_counter(), 0
        while n < total:
            due = min(total, int((time.perf_counter() - started) * self._rate) + 1)
            while n < due:
                key, value = next(self._pairs)  # StopIteration: the inputs are used up
                self._producer.send(self._topic, key, value)
                actual = self._actuals.get(key)
                if actual is not None:
                    self.sent[key] = time.perf_counter()
                    self._producer.send(self._actuals_topic, key, actual)
                n += 1
            time.sleep(0.0005)


def run_pauses(bench: Bench, reference_per_s: float, path: str = "predict") -> dict[str, Any]:
    """``reference_per_s``: (b) for the prediction path (its share PAUSE_SHARE is sent), one
    outcome worker's throughput for the outcome path (half of it is sent)."""
    outcomes = path == "outcomes"
    prefix, tag = run_names(bench, "hpo" if outcomes else "hp", 0)
    rate = (OUTCOME_PAUSE_SHARE if outcomes else PAUSE_SHARE) * reference_per_s
    out: dict[str, Any] = {"path": path, "offered_per_s": round(rate, 1), "loadavg": loadavg()}
    first = second = None
    load: PacedBookings | None = None
    arrivals: Receiver | None = None
    try:
        create_topics(bench, prefix)
        extra = {"DATABASE_URL": bench.database.url, "JOIN_HORIZON_DAYS": "60"} if outcomes else {}
        env = child_env(
            bench, prefix, TOPIC_PARTITIONS=str(PARTITIONS), **set_flags(bench, prefix, 100.0),
            **extra,
        )  # fmt: skip
        first = Child.worker(path, env, bench.logs / f"{prefix}first.log")
        first.wait_for_log("Worker ready", READY_LIMIT_S)
        output = "outcomes" if outcomes else "predictions"
        arrivals = Receiver(bench.bootstrap, f"{prefix}{output}", PARTITIONS)
        if outcomes:
            if bench.predictions is None:
                prepare_predictions(bench)
            load = PacedOutcomeInputs(bench, prefix, tag, rate)
        else:
            load = PacedBookings(bench, f"{prefix}bookings", tag, rate)
        load.start()
        time.sleep(STEADY_S)
        joined_at = time.perf_counter()
        second = Child.worker(path, env, bench.logs / f"{prefix}second.log")
        second.wait_for_log("Worker ready", READY_LIMIT_S)
        out["second_ready_after_s"] = round(time.perf_counter() - joined_at, 1)
        time.sleep(STEADY_S)
        left_at = time.perf_counter()
        second.stop()
        out["second_stopped_after_s"] = round(time.perf_counter() - left_at, 1)
        time.sleep(STEADY_S)
        ended_at = time.perf_counter()
        load.stop()
        if load.error is not None and not isinstance(load.error, StopIteration):
            raise RuntimeError(f"the load generator failed: {load.error!r}")
        out["inputs_used_up"] = isinstance(load.error, StopIteration)
        time.sleep(5.0)  # the last bookings' outputs
        periods = {
            "steady": (joined_at - STEADY_S + 3.0, joined_at),
            "a worker joins": (joined_at, left_at),
            "a worker leaves": (left_at, ended_at),
        }
        # Inputs used up: nothing was sent after the last input, so no output is due after it.
        last_sent = max(load.sent.values(), default=ended_at) if out["inputs_used_up"] else None
        for name, (start, end) in periods.items():
            if last_sent is not None:
                end = max(start, min(end, last_sent))
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
    for key in ("pauses", "outcome_pauses"):
        pauses = scaleout.get(key) or {}
        path = pauses.get("path", "predict")
        made, what = ("outcomes", "outcome") if path == "outcomes" else ("predicted", "prediction")
        if pauses.get("error"):
            lines.append(f"    {path} rebalance pauses: FAILED: {pauses['error']}")
            continue
        if not pauses:
            continue
        lines.append(
            f"    {path} rebalance pauses at {pauses['offered_per_s']:,.0f} bookings/s"
            + (" (inputs used up before the end)" if pauses.get("inputs_used_up") else "")
            + ":"
        )
        for name in ("steady", "a worker joins", "a worker leaves"):
            p = pauses[name]
            lines.append(
                f"      {name}: {p['received']}/{p['sent']} {made}, p50 "
                f"{p.get('p50_ms', float('nan')):.0f} ms, p99 {p.get('p99_ms', float('nan')):.0f}"
                f" ms, max {p.get('max_ms', float('nan')):.0f} ms, longest with no {what} "
                f"{p['longest_gap_ms']:.0f} ms"
            )
    return lines
