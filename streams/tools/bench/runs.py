"""Scenarios (a) to (f): one run each, on topics of its own, with the same pre-filled input.

Every run gets a fresh topic prefix (``bench-<run id>-<scenario><rep>.``), one partition per
topic, its input produced before its consumer starts, so that startup is never measured:
throughput is taken between the first and the last output. Afterwards the run's topics,
consumer groups and Redis keys are removed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from connectors.flags import FlagState, FlagStore
from connectors.model_store import champion_version, set_challenger, set_champion
from connectors.postgres import make_engine
from connectors.weather import MILD_WEATHER
from streams.clock import utc_now
from streams.settings import Settings
from streams.tools.bench import kafka_io
from streams.tools.bench.children import Child
from streams.tools.bench.database import BenchDatabase, outcomes_recorded
from streams.tools.bench.dataset import Dataset, retag, retag_key
from streams.tools.bench.probes import CpuSampler
from streams.tools.bench.stats import cpu_at, cpu_us_per_event, rate_from_timestamps, rate_per_s

NO_PROGRESS_S = 120.0  # a run fails when its output stops growing for this long
RECORDER_LIMIT_S = 300.0

SCENARIOS: dict[str, str] = {
    "a": "confluent-kafka consume-only (client ceiling)",
    "b": "no-op Faust agent (framework ceiling)",
    "c": "prediction path, 0 % rollout (heuristic)",
    "d": "prediction path, 100 % rollout (ML)",
    "e": "outcome path (join, history, metrics, drift)",
    "f": "old design: one event at a time, sklearn",
    "ds": "prediction path, 100 % ML, a challenger in shadow",
}


@dataclass
class RunResult:
    scenario: str
    rep: int
    loadavg: str
    events: int | None = None
    throughput_per_s: float | None = None
    cpu_us_per_event: float | None = None
    peak_rss_mb: float | None = None
    span_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "rep": self.rep,
            "loadavg": self.loadavg,
            "events": self.events,
            "throughput_per_s": self.throughput_per_s,
            "cpu_us_per_event": self.cpu_us_per_event,
            "peak_rss_mb": self.peak_rss_mb,
            "span_s": self.span_s,
            **self.extra,
            "error": self.error,
        }


@dataclass
class Bench:
    """What every run of one benchmark needs."""

    settings: Settings  # the benchmark's own: servers, hash salt, batch settings
    env: dict[str, str]  # the environment of every child (servers, home, weather)
    logs: Path
    run_id: str
    data: Dataset
    count: int
    old_design_count: int
    database: BenchDatabase
    watermarks: kafka_io.Watermarks
    redis: redis.Redis
    # The latest predictions of scenario (d) and the tag of their booking ids: the input of (e).
    predictions: tuple[str, list[tuple[bytes, bytes]]] | None = None
    # A copy of the model directory with a challenger beside the champion, for (ds).
    shadow_model_dir: Path | None = None

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_names(bench: Bench, scenario: str, rep: int) -> tuple[str, str]:
    """(topic prefix, booking id tag) of one run."""
    return f"bench-{bench.run_id}-{scenario}{rep}.", f"{bench.run_id}{scenario}{rep}"


def child_env(bench: Bench, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **bench.env,
        "TOPIC_PREFIX": prefix,
        "TOPIC_PARTITIONS": "1",
        "FLAGS_REDIS_KEY": f"{prefix}flags",
        **extra,
    }


def set_flags(bench: Bench, prefix: str, percentage: float) -> dict[str, str]:
    """Write the rollout to the run's flag key in Redis; returns the matching initial-flag
    settings for the worker."""
    enabled = percentage > 0
    FlagStore(bench.redis, f"{prefix}flags").update(
        initial=FlagState(
            ml_enabled=False, ml_traffic_percentage=0.0, salt=bench.settings.ml_hash_salt
        ),
        ml_enabled=enabled,
        ml_traffic_percentage=percentage,
        actor="bench",
        now=utc_now(),
    )
    return {"ML_ENABLED": str(enabled).lower(), "ML_TRAFFIC_PERCENTAGE": f"{percentage:g}"}


def clean_up(bench: Bench, prefix: str) -> None:
    kafka_io.remove_run(bench.bootstrap, prefix)
    for key in bench.redis.scan_iter(match=f"{prefix}*", count=1000):
        bench.redis.delete(key)
    home = Path(bench.env["DELAYCAST_HOME"])
    for parent in (home / "faust", home / "bench" / "faust"):
        for path in parent.glob(f"{prefix}*"):
            shutil.rmtree(path, ignore_errors=True)


def clean_up_noting(bench: Bench, prefix: str, out: dict[str, Any]) -> None:
    """:func:`clean_up`, noting a failure in ``out["cleanup_error"]``: a run's figures are kept
    whatever its clean-up meets."""
    try:
        clean_up(bench, prefix)
    except Exception as exc:
        out["cleanup_error"] = f"{type(exc).__name__}: {exc}"


def rotated(scenarios: list[str], rep: int) -> list[str]:
    """The order of the scenarios in repetition ``rep`` (from 1): shifted by one each time, so
    that no scenario always follows the same one.

    >>> rotated(["a", "b", "c"], 1), rotated(["a", "b", "c"], 2)
    (['a', 'b', 'c'], ['b', 'c', 'a'])
    """
    shift = (rep - 1) % len(scenarios) if scenarios else 0
    return scenarios[shift:] + scenarios[:shift]


def run(bench: Bench, scenario: str, rep: int) -> RunResult:
    """One run of ``scenario``; a failure is recorded in the result, never raised."""
    prefix, tag = run_names(bench, scenario, rep)
    result = RunResult(scenario, rep, loadavg())
    try:
        kafka_io.create_run_topics(bench.bootstrap, prefix)
        RUNNERS[scenario](bench, prefix, tag, result)
    except Exception as exc:  # one failed run must not lose the others' figures
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        clean_up_noting(bench, prefix, result.extra)
    return result


def fill_bookings(bench: Bench, prefix: str, tag: str) -> None:
    kafka_io.produce_all(
        bench.bootstrap, f"{prefix}bookings", bench.data.tagged(bench.data.bookings, tag)
    )


def metered(
    bench: Bench, prefix: str, tag: str, result: RunResult, module: str, count: int
) -> Child:
    """Run a bench-only program on the run's bookings; fill ``result`` from its report."""
    fill_bookings(bench, prefix, tag)
    env = child_env(bench, prefix, BENCH_COUNT=str(count), BENCH_WEATHER_KEY=f"{prefix}weather")
    child = Child.program(module, env, bench.logs / f"{prefix}log")
    try:
        # Start-up, then the slowest program (the old design, 40-100/s) with room to spare.
        report = child.wait_for_result(NO_PROGRESS_S + count / 20)
    except BaseException:
        child.stop()
        raise
    after_first = report["events"] - report["at_first"]
    result.events = report["events"]
    result.span_s = report["last_s"] - report["first_s"]
    result.throughput_per_s = rate_per_s(
        report["events"], report["first_s"], report["last_s"], report["at_first"]
    )
    result.cpu_us_per_event = cpu_us_per_event(
        report["cpu_first_s"], report["cpu_last_s"], after_first
    )
    result.peak_rss_mb = report["peak_rss_mb"]
    return child


def consume_only(bench: Bench, prefix: str, tag: str, result: RunResult) -> None:
    metered(bench, prefix, tag, result, "streams.tools.bench.consume_only", bench.count).stop()


def noop_agent(bench: Bench, prefix: str, tag: str, result: RunResult) -> None:
    metered(bench, prefix, tag, result, "streams.tools.bench.noop_agent", bench.count).stop()


def old_design(bench: Bench, prefix: str, tag: str, result: RunResult) -> None:
    bench.redis.set(f"{prefix}weather", MILD_WEATHER.model_dump_json())
    count = min(bench.old_design_count, bench.count)
    child = metered(bench, prefix, tag, result, "streams.tools.bench.old_design", count)
    try:
        # Faust's producer sends in the background: wait until Kafka holds every prediction.
        kafka_io.wait_for_count(
            bench.watermarks, f"{prefix}predictions", count, timeout_s=30, alive=child.problem
        )
    finally:
        child.stop()
    output = kafka_io.read_output(bench.bootstrap, f"{prefix}predictions", count)
    result.throughput_per_s = rate_from_timestamps(output.timestamps_ms)
    result.span_s = (max(output.timestamps_ms) - min(output.timestamps_ms)) / 1000
    result.extra["bookings_in_topic"] = bench.count


@dataclass
class WorkerRun:
    """A real worker run: output read back, CPU samples and peak memory."""

    output: kafka_io.Output
    samples: list[tuple[float, float]]
    peak_rss_mb: float | None
    extra: dict[str, Any]


def worker_run(
    bench: Bench,
    prefix: str,
    role: str,
    env: dict[str, str],
    output_topic: str,
    expect: int,
    *,
    keep_values: bool = False,
    after: Callable[[Child, CpuSampler], dict[str, Any]] | None = None,
) -> WorkerRun:
    started = time.monotonic()
    child = Child.worker(role, env, bench.logs / f"{prefix}log")
    sampler = CpuSampler(child.pid).start()
    try:
        kafka_io.wait_for_count(
            bench.watermarks,
            f"{prefix}{output_topic}",
            expect,
            timeout_s=NO_PROGRESS_S,
            alive=child.problem,
            every_s=0.1,
        )
        extra = after(child, sampler) if after is not None else {}
        rss = child.peak_rss_mb()
        extra["peak_rss_mb_per_process"] = child.peak_rss_per_process_mb()
        output_done = time.monotonic()
    finally:
        child.stop()
        samples = sampler.stop()
    stopped = time.monotonic()
    output = kafka_io.read_output(
        bench.bootstrap, f"{prefix}{output_topic}", expect, keep_values=keep_values
    )
    extra["phases_s"] = {
        "start_to_output_complete": round(output_done - started, 2),
        "worker_stop": round(stopped - output_done, 2),
        "read_back": round(time.monotonic() - stopped, 2),
    }
    return WorkerRun(output, samples, rss, extra)


def fill_result(result: RunResult, done: WorkerRun, expect: int) -> None:
    stamps = done.output.timestamps_ms
    distinct = len(set(done.output.keys))
    if distinct != expect:
        raise RuntimeError(f"{distinct} distinct outputs read back, {expect} expected")
    first, last = min(stamps), max(stamps)
    first_s, last_s = first / 1000, last / 1000
    result.events = len(stamps)
    result.span_s = last_s - first_s
    result.throughput_per_s = rate_from_timestamps(stamps)
    at_first = stamps.count(first)
    result.cpu_us_per_event = cpu_us_per_event(
        cpu_at(done.samples, first_s), cpu_at(done.samples, last_s), len(stamps) - at_first
    )
    result.peak_rss_mb = done.peak_rss_mb
    result.extra.update(done.extra)


def prediction_path(
    percentage: float, *, shadow: bool = False
) -> Callable[[Bench, str, str, RunResult], None]:
    def runner(bench: Bench, prefix: str, tag: str, result: RunResult) -> None:
        fill_bookings(bench, prefix, tag)
        scoring: dict[str, str] = {"SHADOW_ENABLED": "true" if shadow else "false"}
        if shadow:
            if bench.shadow_model_dir is None:
                raise RuntimeError("no challenger to score in shadow")
            scoring["MODEL_DIR"] = str(bench.shadow_model_dir)
        env = child_env(bench, prefix, **set_flags(bench, prefix, percentage), **scoring)
        done = worker_run(
            bench, prefix, "predict", env, "predictions", bench.count, keep_values=percentage > 0
        )
        fill_result(result, done, bench.count)
        if percentage > 0:
            bench.predictions = (tag, list(zip(done.output.keys, done.output.values, strict=True)))

    return runner


def prepare_predictions(bench: Bench) -> None:
    """Predictions for (e) when no (d) run made them: a prediction run, not reported."""
    prefix, tag = run_names(bench, "p", 0)
    try:
        kafka_io.create_run_topics(bench.bootstrap, prefix)
        prediction_path(100.0)(bench, prefix, tag, RunResult("p", 0, loadavg()))
    finally:
        clean_up(bench, prefix)


def prefill_outcome_inputs(bench: Bench, prefix: str, tag: str) -> None:
    """The run's predictions (made once, by a (d) run or for this) and actual delays, retagged
    with ``tag``, into the run's topics."""
    if bench.predictions is None:
        prepare_predictions(bench)
    assert bench.predictions is not None
    source_tag, predictions = bench.predictions
    kafka_io.produce_all(
        bench.bootstrap,
        f"{prefix}predictions",
        ((retag_key(k, tag, source_tag), retag(v, tag, source_tag)) for k, v in predictions),
    )
    kafka_io.produce_all(
        bench.bootstrap, f"{prefix}actual-delays", bench.data.tagged(bench.data.actuals, tag)
    )


def outcome_path(bench: Bench, prefix: str, tag: str, result: RunResult) -> None:
    prefill_outcome_inputs(bench, prefix, tag)
    env = child_env(bench, prefix, DATABASE_URL=bench.database.url, JOIN_HORIZON_DAYS="60")
    engine = make_engine(bench.database.url, pool_size=1)

    def until_recorded(child: Child, sampler: CpuSampler) -> dict[str, Any]:
        return wait_recorded(engine, tag, bench.count, child)

    try:
        done = worker_run(
            bench, prefix, "outcomes", env, "outcomes", bench.count, after=until_recorded
        )
    finally:
        engine.dispose()
    fill_result(result, done, bench.count)
    recorded_at = result.extra.pop("recorded_at_s")
    first_s = min(done.output.timestamps_ms) / 1000
    last_s = max(done.output.timestamps_ms) / 1000
    result.extra["history_all_recorded_after_first_outcome_s"] = recorded_at - first_s
    result.extra["history_lag_after_last_outcome_s"] = recorded_at - last_s
    result.extra["history_rate_per_s"] = bench.count / (recorded_at - first_s)
    result.extra["cpu_us_per_event_until_recorded"] = cpu_us_per_event(
        cpu_at(done.samples, first_s), cpu_at(done.samples, recorded_at), bench.count
    )


def wait_recorded(engine: sa.Engine, tag: str, count: int, child: Child) -> dict[str, Any]:
    """Poll PostgreSQL until the history holds every outcome of ``tag``; when it does."""
    deadline = time.monotonic() + RECORDER_LIMIT_S
    while True:
        held = outcomes_recorded(engine, tag)
        if held >= count:
            return {"recorded_at_s": time.time()}
        problem = child.problem()
        if problem is not None:
            raise RuntimeError(problem)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the history holds {held} of {count} outcomes after {RECORDER_LIMIT_S:g} s"
            )
        time.sleep(0.2)


RUNNERS: dict[str, Callable[[Bench, str, str, RunResult], None]] = {
    "a": consume_only,
    "b": noop_agent,
    "c": prediction_path(0.0),
    "d": prediction_path(100.0),
    "e": outcome_path,
    "f": old_design,
    "ds": prediction_path(100.0, shadow=True),
}


def twin_challenger(model_dir: Path, out: Path) -> Path:
    """A model directory in ``out`` holding the champion of ``model_dir`` and, as challenger,
    its twin under another version name: a challenger of the same kind and size, so (ds)
    measures what scoring one costs. Returns ``out``."""
    champion = champion_version(model_dir)
    if champion is None:
        raise RuntimeError(f"no champion in {model_dir}")
    twin = f"{champion}-twin"
    shutil.copytree(model_dir / champion, out / champion, dirs_exist_ok=True)
    shutil.copytree(model_dir / champion, out / twin, dirs_exist_ok=True)
    metadata_path = out / twin / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["model_version"] = twin
    metadata_path.write_text(json.dumps(metadata))
    set_champion(out, champion)
    set_challenger(out, twin)
    return out
