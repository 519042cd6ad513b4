"""``make bench`` / ``python -m streams.tools.bench``: how close delaycast comes to its machine's
limits.

Runs, interleaved, each scenario of :mod:`streams.tools.bench.runs` ``--reps`` times on the real
local stack (one broker, one partition per topic) with the same ``--count`` bookings, then the
latency scenario (g) and the model figures; prints medians with minima and maxima, each throughput
as a ratio to (b), CPU time per event, peak memory, latencies and every target with its verdict, and
writes the same as JSON to ``$DELAYCAST_HOME/bench/bench-<UTC time>.json`` and ``latest.json``.

It measures and asserts nothing: on a shared machine figures vary; compare the ratios of one run.
The stack is started unless it runs already (and stopped again only then), as ``make demo`` does.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import redis

from connectors.model_store import champion_version
from streams.settings import Settings, delaycast_home, load_settings
from streams.tools.bench import kafka_io
from streams.tools.bench.database import BenchDatabase, bench_database
from streams.tools.bench.dataset import generate
from streams.tools.bench.latency import Timing, run_latency
from streams.tools.bench.model_figures import model_figures
from streams.tools.bench.probes import machine_cpu_seconds
from streams.tools.bench.report import document, render, result_filename
from streams.tools.bench.runs import (
    SCENARIOS,
    Bench,
    RunResult,
    loadavg,
    rotated,
    run,
    twin_challenger,
)
from streams.tools.bench.scaleout import PARTITIONS, render_scaleout, run_pauses, run_throughput
from streams.tools.bench.soak import render_soak, run_soak
from streams.tools.demo import delaycast, ensure_model

SERVER_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL")
CHOICES = (*SCENARIOS, "g", "h", "model", "s")
DEFAULT_PARTS = tuple(c for c in CHOICES if c != "s")  # the soak runs only when asked for


def parse_only(value: str | None) -> tuple[str, ...]:
    """The parts to run, in their order; all but the soak (s) without ``--only``.

    >>> parse_only(None)[-3:], parse_only("s,b")
    (('g', 'h', 'model'), ('b', 's'))
    """
    if value is None:
        return DEFAULT_PARTS
    wanted = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(CHOICES))
    if unknown or not wanted:
        raise click.BadParameter(
            f"expected a comma-separated list of {', '.join(CHOICES)}; got {value!r}",
            param_hint="--only",
        )
    return tuple(c for c in CHOICES if c in wanted)


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:5.0f} s] {text}")


def describe(result: RunResult) -> str:
    if result.error is not None:
        return f"FAILED: {result.error}"
    parts = [f"{result.throughput_per_s:,.0f}/s over {result.events:,} events"]
    if result.cpu_us_per_event is not None:
        parts.append(f"CPU {result.cpu_us_per_event:.1f} us/event")
    if result.peak_rss_mb is not None:
        parts.append(f"peak RSS {result.peak_rss_mb:.0f} MB")
    recorded = result.extra.get("history_all_recorded_after_first_outcome_s")
    if recorded is not None:
        parts.append(f"history complete {recorded:.1f} s after the first outcome")
    return ", ".join(parts) + f" (load {result.loadavg})"


def weather_env(home: Path) -> dict[str, str]:
    csv = home / "demo-data" / "weather.csv"
    if csv.is_file():
        return {"WEATHER_PROVIDER": "recorded", "WEATHER_HISTORY_CSV": str(csv)}
    return {"WEATHER_PROVIDER": "default"}


@click.command()
@click.option(
    "--count",
    type=click.IntRange(min=1000),
    default=50_000,
    show_default=True,
    help="Bookings per run (every scenario gets the same).",
)
@click.option(
    "--reps",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Repetitions of each scenario, interleaved.",
)
@click.option(
    "--only",
    default=None,
    help=f"Comma-separated parts to run, of: {', '.join(CHOICES)} (default: all but the soak, s).",
)
@click.option(
    "--old-design-count",
    type=click.IntRange(min=100),
    default=5_000,
    show_default=True,
    help="Predictions (f) makes of the --count bookings in its topic: at ~100/s, all 50,000 "
    "would take eight minutes per repetition.",
)
@click.option(
    "--latency-seconds",
    type=click.FloatRange(min=3),
    default=15.0,
    show_default=True,
    help="Measured seconds at each offered rate of (g).",
)
@click.option(
    "--soak-minutes",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Length of the soak (s), after its warm-up.",
)
@click.option(
    "--soak-share",
    type=click.FloatRange(min=0.01, max=1.0),
    default=0.5,
    show_default=True,
    help="The soak's booking rate, as a share of (b).",
)
def main(
    count: int,
    reps: int,
    only: str | None,
    old_design_count: int,
    latency_seconds: float,
    soak_minutes: float,
    soak_share: float,
) -> None:
    """Measure delaycast's throughput, latency, CPU and memory against its ceilings.

    \b
    Examples:
      make bench
      python -m streams.tools.bench --count 5000 --reps 1
      python -m streams.tools.bench --only a,b,d
      python -m streams.tools.bench --only b,s --soak-minutes 30    # make soak
    """
    parts = parse_only(only)
    home = delaycast_home()
    run_id = secrets.token_hex(3)
    started_at = datetime.now(UTC)
    logs = home / "bench" / "logs" / run_id
    logs.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    env = dict(os.environ)
    started_stack = not (home / "stack" / "state.json").is_file()
    start_load = loadavg()
    start_cpu = machine_cpu_seconds()
    clock.say(f"bench {run_id}: load average {start_load}; logs in {logs}")
    delaycast("stack", "up", env=env)
    try:
        ensure_model(home, env)
        settings = load_settings()
        url = settings.database_url.get_secret_value()
        with bench_database(url, run_id) as database:
            if not database.own:
                clock.say("cannot create a database of its own: history goes to the configured one")
            child_env = {k: v for k, v in env.items() if k not in SERVER_VARS}
            child_env |= {
                "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                "REDIS_URL": settings.redis_url.get_secret_value(),
                "DATABASE_URL": database.url,
                "DELAYCAST_HOME": str(home),
                "MODEL_DIR": str(settings.model_dir),
                "LOG_LEVEL": "info",
                **weather_env(home),
            }
            doc = measure(
                parts=parts,
                settings=settings,
                child_env=child_env,
                database=database,
                logs=logs,
                run_id=run_id,
                count=count,
                reps=reps,
                old_design_count=old_design_count,
                timing=Timing(measure_s=latency_seconds),
                soak_minutes=soak_minutes,
                soak_share=soak_share,
                clock=clock,
            )
    finally:
        if started_stack:
            delaycast("stack", "down", env=env, check=False)
    busy, stolen = (
        end - start for end, start in zip(machine_cpu_seconds(), start_cpu, strict=True)
    )
    elapsed = time.monotonic() - clock.started
    doc = {
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "duration_s": round(time.monotonic() - clock.started, 1),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": start_load,
            "loadavg_end": loadavg(),
            # Cores in use on average over the run, and those the hypervisor gave to other
            # guests: on a shared machine, a run with much stolen CPU is slower throughout.
            "busy_cpu_cores": round(busy / elapsed, 2),
            "stolen_cpu_cores": round(stolen / elapsed, 2),
        },
        **doc,
    }
    out = home / "bench"
    path = out / result_filename(started_at)
    text = json.dumps(doc, indent=2, default=str)
    path.write_text(text)
    (out / "latest.json").write_text(text)
    click.echo("")
    click.echo(
        f"machine: {doc['host']['cpus']} cores, on average {doc['host']['busy_cpu_cores']} busy "
        f"and {doc['host']['stolen_cpu_cores']} stolen by the hypervisor over the run"
    )
    for line in render(doc):
        click.echo(line)
    if doc.get("scaleout") is not None:
        for line in render_scaleout(doc["scaleout"]):
            click.echo(line)
    if doc.get("soak") is not None:
        for line in render_soak(doc["soak"]):
            click.echo(line)
    click.echo(f"written to {path} and {out / 'latest.json'}")


def measure(
    *,
    parts: tuple[str, ...],
    settings: Settings,
    child_env: dict[str, str],
    database: BenchDatabase,
    logs: Path,
    run_id: str,
    count: int,
    reps: int,
    old_design_count: int,
    timing: Timing,
    soak_minutes: float,
    soak_share: float,
    clock: Clock,
) -> dict[str, Any]:
    clock.say(f"generating {count:,} bookings and their actual delays")
    data = generate(count, now=datetime.now(UTC))
    model = None
    if "model" in parts:
        clock.say("model figures (streams.tools.bench.forest_timing on the champion)")
        model = model_figures(settings.model_dir, settings.batch_max)
        clock.say(
            f"  one booking {model['one_booking_us']['median']:.1f} us, batch of "
            f"{model['batch_rows']} {model['batched_per_booking_us']['median']:.1f} us per booking"
        )
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    watermarks = kafka_io.Watermarks(settings.kafka_bootstrap_servers)
    bench = Bench(
        settings=settings,
        env=child_env,
        logs=logs,
        run_id=run_id,
        data=data,
        count=count,
        old_design_count=old_design_count,
        database=database,
        watermarks=watermarks,
        redis=client,
        shadow_model_dir=twin_challenger(settings.model_dir, logs / "shadow-models")
        if "ds" in parts
        else None,
    )
    runs: list[RunResult] = []
    latency = None
    scaleout: dict[str, Any] | None = None
    soak = None
    try:
        scenarios = [s for s in SCENARIOS if s in parts]
        for rep in range(1, reps + 1) if scenarios else ():
            for scenario in rotated(scenarios, rep):
                clock.say(f"rep {rep}/{reps} ({scenario}) {SCENARIOS[scenario]}")
                result = run(bench, scenario, rep)
                runs.append(result)
                clock.say(f"  {describe(result)}")
        reference: list[float] = [
            r.throughput_per_s for r in runs if r.scenario == "b" and r.throughput_per_s
        ]
        if ("g" in parts or "h" in parts or "s" in parts) and not reference:
            clock.say("(b) once more, as the reference of the offered rates")
            result = run(bench, "b", 0)
            clock.say(f"  {describe(result)}")
            reference = [result.throughput_per_s] if result.throughput_per_s else []
        base = statistics.median(reference) if reference else None
        if "g" in parts:
            if base is not None:
                clock.say(f"(g) latency at 20, 50 and 70 % of {base:,.0f}/s")
                latency = run_latency(bench, base, timing)
                if latency.get("error"):
                    clock.say(f"  FAILED: {latency['error']}")
            else:
                clock.say("(g) skipped: no throughput of (b) to take the rates from")
        if "h" in parts:
            clock.say(f"(h) scale-out: 1 then 2 predict workers on {PARTITIONS} partitions")
            scaleout = {
                "throughput": [
                    run_throughput(bench, workers, path)
                    for path in ("predict", "outcomes")
                    for workers in (1, 2)
                ]
            }
            if base is not None:
                clock.say("(h) rebalance pauses: a second worker joins, then leaves")
                scaleout["pauses"] = run_pauses(bench, base)
            one_outcome_worker = scaleout["throughput"][2].get("throughput_per_s")
            if one_outcome_worker:
                clock.say("(h) the same for outcome workers")
                scaleout["outcome_pauses"] = run_pauses(bench, one_outcome_worker, "outcomes")
            for line in render_scaleout(scaleout):
                clock.say(line)
        if "s" in parts:
            if base is not None:
                clock.say(f"(s) soak: {soak_minutes:g} min at {soak_share:.0%} of {base:,.0f}/s")
                soak = run_soak(bench, base, soak_minutes, share=soak_share, say=clock.say)
                for line in render_soak(soak):
                    clock.say(line)
            else:
                clock.say("(s) skipped: no throughput of (b) to take the rate from")
    finally:
        watermarks.close()
        client.close()
    meta = {
        "config": {
            "count": count,
            "reps": reps,
            "parts": list(parts),
            "old_design_count": min(old_design_count, count),
            "latency_warmup_s": timing.warmup_s,
            "latency_measure_s": timing.measure_s,
            "soak_minutes": soak_minutes if "s" in parts else None,
            "soak_share_of_b": soak_share if "s" in parts else None,
            "partitions": 1,  # of (a) to (g); (h) runs on scaleout.PARTITIONS
            "scaleout_partitions": PARTITIONS if "h" in parts else None,
            "batch_max": settings.batch_max,
            "batch_within_s": settings.batch_within_s,
            "weather_provider": child_env["WEATHER_PROVIDER"],
            "model_version": champion_version(settings.model_dir),
            "bench_database": database.name if database.own else "(the configured one)",
            "python_executable": sys.executable,
        }
    }
    doc = document(meta, [r.to_dict() for r in runs], SCENARIOS, latency, model)
    if scaleout is not None:
        doc["scaleout"] = scaleout
    if soak is not None:
        doc["soak"] = soak
    return doc


if __name__ == "__main__":
    main()
