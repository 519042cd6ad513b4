"""The benchmark's results as a JSON document and as text: per-scenario summaries, the latency
table, the model figures and each target, met or not. Pure: it only rearranges numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.tools.bench.stats import Summary, ratios

REFERENCE = "b"
# (e) counts outcomes; each is the join of two input events (a prediction and an actual delay),
# where (b) counts one event each. Its input rate is what compares with the framework's ceiling.
INPUTS_PER_OUTCOME = 2


def summarize(runs: Sequence[dict[str, Any]], titles: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per scenario: throughput, its ratio to (b) of the same repetition, CPU per event and peak
    memory, as median / min / max over the repetitions that succeeded."""
    reference = {r["rep"]: r["throughput_per_s"] for r in runs if r["scenario"] == REFERENCE}
    out: dict[str, dict[str, Any]] = {}
    for scenario, title in titles.items():
        mine = [r for r in runs if r["scenario"] == scenario]
        if not mine:
            continue
        good = [r for r in mine if r["error"] is None and r["throughput_per_s"] is not None]
        throughputs = [r["throughput_per_s"] for r in good]
        paired = ratios(throughputs, [reference.get(r["rep"]) for r in good])
        rss = [r["peak_rss_mb"] for r in good if r["peak_rss_mb"] is not None]
        largest = max(
            (r for r in good if r["peak_rss_mb"] is not None),
            key=lambda r: r["peak_rss_mb"],
            default=None,
        )
        out[scenario] = {
            "title": title,
            "runs": len(mine),
            "succeeded": len(good),
            "events": max((r["events"] or 0 for r in good), default=None),
            "throughput_per_s": _dict(Summary.of(throughputs)),
            "ratio_to_b": _dict(Summary.of(paired)),
            "cpu_us_per_event": _dict(
                Summary.of([r["cpu_us_per_event"] for r in good if r["cpu_us_per_event"]])
            ),
            "peak_rss_mb": max(rss, default=None),
            # The repetition with the largest sum: its worker, then each helper process.
            "peak_rss_mb_per_process": (largest or {}).get("peak_rss_mb_per_process"),
            "errors": [f"rep {r['rep']}: {r['error']}" for r in mine if r["error"] is not None],
        }
    return out


def _dict(summary: Summary | None) -> dict[str, Any] | None:
    return None if summary is None else summary.to_dict()


def _median(block: dict[str, Any] | None) -> float | None:
    return None if block is None else block["median"]


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    at_least: bool  # True: measured >= limit; False: measured <= limit
    unit: str

    def check(self, measured: float | None) -> dict[str, Any]:
        met = None
        margin = None
        if measured is not None:
            met = measured >= self.limit if self.at_least else measured <= self.limit
            margin = (measured - self.limit) / self.limit * 100 if self.limit else None
        return {
            "target": self.name,
            "measured": measured,
            "limit": self.limit,
            "unit": self.unit,
            "met": met,
            "margin_pct": margin,
        }


def paired_ratio(runs: Sequence[dict[str, Any]], top: str, bottom: str) -> float | None:
    """The median over repetitions of ``top``'s throughput over ``bottom``'s."""
    by = {
        (r["scenario"], r["rep"]): r["throughput_per_s"]
        for r in runs
        if r["error"] is None and r["throughput_per_s"]
    }
    reps = sorted({rep for _, rep in by})
    summary = Summary.of(
        ratios([by.get((top, rep)) for rep in reps], [by.get((bottom, rep)) for rep in reps])
    )
    return None if summary is None else summary.median


def latency_at(latency: dict[str, Any] | None, share: float) -> float | None:
    for entry in (latency or {}).get("rates", []):
        if abs(entry["share_of_b"] - share) < 1e-9 and "p99_ms" in entry:
            return float(entry["p99_ms"])
    return None


def evaluate_targets(
    runs: Sequence[dict[str, Any]],
    scenarios: dict[str, dict[str, Any]],
    latency: dict[str, Any] | None,
    model: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    def ratio_to_b(scenario: str) -> float | None:
        return _median(scenarios.get(scenario, {}).get("ratio_to_b"))

    e_ratio = ratio_to_b("e")

    d = scenarios.get("d", {})
    worker_rss = [scenarios.get(s, {}).get("peak_rss_mb") for s in ("c", "d", "e")]
    worker_rss.append((latency or {}).get("peak_rss_mb"))
    rss = [v for v in worker_rss if v is not None]
    diffs = [
        (model or {}).get(k)
        for k in ("max_abs_diff_vs_sklearn_batch", "max_abs_diff_vs_sklearn_single_rows")
    ]
    found = [v for v in diffs if v is not None]
    return [
        Target("(d) >= 0.75 x (b)", 0.75, True, "x (b)").check(ratio_to_b("d")),
        Target("(d) >= 5,000 bookings/s", 5000, True, "/s").check(
            _median(d.get("throughput_per_s"))
        ),
        Target("(e) >= 0.75 x (b)", 0.75, True, "x (b)").check(e_ratio),
        Target("(e) input events >= 0.75 x (b)", 0.75, True, "x (b)").check(
            None if e_ratio is None else INPUTS_PER_OUTCOME * e_ratio
        ),
        Target("(d) / (f) >= 10", 10, True, "x").check(paired_ratio(runs, "d", "f")),
        Target("(ds) >= 0.9 x (d): the shadow costs <= 10 %", 0.9, True, "x (d)").check(
            paired_ratio(runs, "ds", "d")
        ),
        Target("p99 at 50 % of (b) <= 50 ms", 50, False, "ms").check(latency_at(latency, 0.5)),
        Target("p99 at 70 % of (b) <= 100 ms", 100, False, "ms").check(latency_at(latency, 0.7)),
        Target("one booking's ML prediction <= 100 us", 100, False, "us").check(
            _median((model or {}).get("one_booking_us"))
        ),
        Target("batched ML prediction <= 20 us per booking", 20, False, "us").check(
            _median((model or {}).get("batched_per_booking_us"))
        ),
        Target("predictions = scikit-learn's within 1e-9", 1e-9, False, "").check(
            max(found) if found else None
        ),
        Target("worker peak RSS <= 500 MB", 500, False, "MB").check(max(rss) if rss else None),
    ]


def result_filename(started: datetime) -> str:
    """>>> from datetime import UTC
    >>> result_filename(datetime(2026, 11, 22, 9, 5, 3, tzinfo=UTC))
    'bench-20261122T090503Z.json'
    """
    return f"bench-{started:%Y%m%dT%H%M%SZ}.json"


def document(
    meta: dict[str, Any],
    runs: Sequence[dict[str, Any]],
    titles: dict[str, str],
    latency: dict[str, Any] | None,
    model: dict[str, Any] | None,
) -> dict[str, Any]:
    scenarios = summarize(runs, titles)
    return {
        **meta,
        "scenarios": scenarios,
        "runs": list(runs),
        "latency": latency,
        "model": model,
        "targets": evaluate_targets(runs, scenarios, latency, model),
    }


def _range(block: dict[str, Any] | None, fmt: str) -> str:
    if block is None:
        return "-"
    return f"{block['median']:{fmt}} ({block['min']:{fmt}}-{block['max']:{fmt}})"


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else f"{value:{fmt}}"


def render(doc: dict[str, Any]) -> list[str]:
    """The document as the text the benchmark prints."""
    lines = [
        f"{'scenario':<50}{'throughput/s, median (min-max)':>34}{'x (b)':>24}"
        f"{'CPU us/event':>26}{'RSS MB':>8}{'ok':>6}",
    ]
    for key, s in doc["scenarios"].items():
        lines.append(
            f"{key} {s['title']:<48}{_range(s['throughput_per_s'], ',.0f'):>34}"
            f"{_range(s['ratio_to_b'], '.2f'):>24}{_range(s['cpu_us_per_event'], ',.0f'):>26}"
            f"{_number(s['peak_rss_mb'], '.0f'):>8}{s['succeeded']:>4}/{s['runs']}"
        )
        lines.extend(f"    failed: {error}" for error in s["errors"])
    split = [
        f"({key}) {' + '.join(f'{mb:.0f}' for mb in s['peak_rss_mb_per_process'])}"
        for key, s in doc["scenarios"].items()
        if s.get("peak_rss_mb_per_process") and len(s["peak_rss_mb_per_process"]) > 1
    ]
    if split:
        lines.append(f"  RSS MB is a worker's and its helper processes' peaks: {', '.join(split)}")
    e = next((r for r in doc["runs"] if r["scenario"] == "e" and r["error"] is None), None)
    if e is not None:
        recorded = [
            r["history_all_recorded_after_first_outcome_s"]
            for r in doc["runs"]
            if r["scenario"] == "e" and r["error"] is None
        ]
        lags = [
            r["history_lag_after_last_outcome_s"]
            for r in doc["runs"]
            if r["scenario"] == "e" and r["error"] is None
        ]
        lines.append(
            f"  (e) counts outcomes, each the join of {INPUTS_PER_OUTCOME} input events; "
            f"the history in PostgreSQL "
            f"was complete {_range(_dict(Summary.of(recorded)), '.1f')} s after the first "
            f"outcome, {_range(_dict(Summary.of(lags)), '.1f')} s after the last"
        )
    latency = doc.get("latency")
    if latency:
        lines.append(
            f"latency, booking produced -> prediction read (reference (b) "
            f"{latency['reference_b_per_s']:,.0f}/s):"
        )
        lines.append(
            f"  {'load':>6}{'offered/s':>11}{'received':>16}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'worker cores':>14}{'machine cores':>15}{'stolen':>8}"
            f"{'plain p99 ms':>14}"
        )
        for r in latency.get("rates", []):
            plain = r.get("plain_consumer") or {}
            lines.append(
                f"  {r['share_of_b'] * 100:>5.0f}%{r['achieved_per_s']:>11,.0f}"
                f"{r['received']:>8}/{r['sent']:<7}{_number(r.get('p50_ms'), '.1f'):>9}"
                f"{_number(r.get('p99_ms'), '.1f'):>9}{_number(r.get('max_ms'), '.1f'):>9}"
                f"{r['worker_cpu_cores']:>14.2f}{_number(r.get('machine_cpu_cores'), '.2f'):>15}"
                f"{_number(r.get('stolen_cpu_cores'), '.2f'):>8}"
                f"{_number(plain.get('p99_ms'), '.1f'):>14}"
            )
        lines.append(
            "  plain p99: a plain confluent-kafka consumer of the same bookings (the broker "
            "alone); machine cores: all processes; stolen: cores the hypervisor gave to other "
            "guests"
        )
        if latency.get("error"):
            lines.append(f"  failed: {latency['error']}")
    model = doc.get("model")
    if model:
        lines.append(
            f"model ({model['model']}), per booking, median (min-max) over {model['repeats']}:"
        )
        for label, key in (
            ("one booking, compiled forest", "one_booking_us"),
            ("one booking, cold caches", "one_booking_cold_caches_us"),
            (f"batch of {model['batch_rows']}", "batched_per_booking_us"),
            ("batch of 1000", "per_booking_at_1000_rows_us"),
            ("one booking, scikit-learn predict", "sklearn_one_booking_us"),
        ):
            lines.append(f"  {label:<40}{_range(model[key], '.1f'):>26} us")
        lines.append(
            f"  max |compiled - scikit-learn|: {model['max_abs_diff_vs_sklearn_batch']:.3g} "
            f"(batch), {model['max_abs_diff_vs_sklearn_single_rows']:.3g} (single rows)"
        )
    lines.append("targets:")
    for t in doc["targets"]:
        if t["met"] is None:
            verdict = "not measured"
        else:
            word = "met" if t["met"] else "NOT MET"
            m = t["margin_pct"]
            side = "above" if m is not None and m > 0 else "below"
            margin = "" if m is None else f" ({abs(m):.0f} % {side} the limit)"
            verdict = f"{word}: {t['measured']:.4g} {t['unit']}{margin}"
        lines.append(f"  {t['target']:<48}{verdict}")
    return lines
