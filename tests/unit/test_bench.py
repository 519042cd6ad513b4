"""The benchmark's pure helpers: summaries, percentiles, rates, CPU per event, /proc parsing,
the meter of its subprocesses, booking tags, and the JSON and text it writes."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import click
import pytest

from schemas import ActualDelay, BookingRequested
from streams.tools.bench.__main__ import CHOICES, parse_only
from streams.tools.bench.dataset import PLACEHOLDER, booking_id, generate, retag, retag_key
from streams.tools.bench.meter import Meter, parse_result
from streams.tools.bench.probes import (
    parse_machine_cpu_ticks,
    parse_stat_cpu_ticks,
    parse_vmhwm_mb,
    peak_rss_mb,
    process_tree,
    tree_peak_rss_mb,
    tree_peak_rss_per_process_mb,
)
from streams.tools.bench.report import (
    document,
    evaluate_targets,
    paired_ratio,
    render,
    result_filename,
    summarize,
)
from streams.tools.bench.runs import rotated
from streams.tools.bench.stats import (
    Summary,
    cpu_at,
    cpu_us_per_event,
    latency_summary,
    percentile,
    rate_from_timestamps,
    rate_per_s,
    ratios,
)

TITLES = {"a": "client", "b": "framework", "d": "predict ML", "e": "outcomes", "f": "old"}


# --- stats -------------------------------------------------------------------------------


def test_summary_gives_median_min_max_and_count():
    summary = Summary.of([7.0, 1.0, 4.0, 10.0])
    assert summary == Summary(median=5.5, min=1.0, max=10.0, n=4)
    assert summary.to_dict() == {"median": 5.5, "min": 1.0, "max": 10.0, "n": 4}


def test_summary_of_nothing_is_none():
    assert Summary.of([]) is None


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 1001)]  # 1 … 1000
    assert percentile(values, 50) == 500.0
    assert percentile(values, 99) == 990.0
    assert percentile(values, 100) == 1000.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.0], 99) == 3.0


def test_percentile_rejects_no_values_and_bad_quantiles():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside 0-100"):
        percentile([1.0], 101)


def test_latency_summary_reports_p50_p99_max_and_count():
    latencies = [10.0] * 98 + [50.0, 200.0]
    assert latency_summary(latencies) == {"n": 100, "p50_ms": 10.0, "p99_ms": 50.0, "max_ms": 200.0}


def test_rate_counts_only_events_after_the_first_instant():
    # A first batch of 500 at t=10 s, then 1,000 more until t=12 s: 500 per second.
    assert rate_per_s(1500, 10.0, 12.0, at_first=500) == 500.0
    assert rate_per_s(11, 0.0, 5.0) == 2.0


def test_rate_needs_time_between_first_and_last():
    with pytest.raises(ValueError, match="no time"):
        rate_per_s(10, 3.0, 3.0)
    with pytest.raises(ValueError, match="at the first instant"):
        rate_per_s(10, 0.0, 1.0, at_first=11)


def test_rate_from_timestamps_excludes_the_first_millisecond_and_ignores_order():
    stamps = [2000] + [1000] * 3 + [1250, 1500, 1750]  # 4 after the first ms, over 1 s
    assert rate_from_timestamps(stamps) == 4.0
    with pytest.raises(ValueError, match="two timestamps"):
        rate_from_timestamps([1000])


def test_cpu_is_interpolated_between_samples_and_held_at_the_ends():
    samples = [(10.0, 1.0), (11.0, 1.5), (13.0, 3.5)]
    assert cpu_at(samples, 10.5) == pytest.approx(1.25)
    assert cpu_at(samples, 12.0) == pytest.approx(2.5)
    assert cpu_at(samples, 11.0) == 1.5
    assert cpu_at(samples, 5.0) == 1.0
    assert cpu_at(samples, 99.0) == 3.5
    with pytest.raises(ValueError):
        cpu_at([], 1.0)


def test_cpu_per_event_in_microseconds():
    assert cpu_us_per_event(2.0, 2.5, 1000) == pytest.approx(500.0)
    with pytest.raises(ValueError):
        cpu_us_per_event(0.0, 1.0, 0)


def test_ratios_pair_repetitions_and_skip_missing_ones():
    assert ratios([10.0, None, 30.0, 8.0], [5.0, 4.0, None, 0.0]) == [2.0]


# --- /proc and the meter -------------------------------------------------------------------


def test_stat_parsing_survives_spaces_and_parentheses_in_the_command_name():
    fields = ["S"] + [str(i) for i in range(4, 14)] + ["300", "40", "5", "6"] + ["20", "0"]
    stat = "1234 (python -m (x) y) " + " ".join(fields)
    assert parse_stat_cpu_ticks(stat) == 351


def test_machine_time_splits_busy_from_stolen_and_leaves_out_idle_and_io_wait():
    # user nice system idle iowait irq softirq steal guest guest_nice, then per-CPU lines
    stat = "cpu  100 5 30 900 20 1 2 3 0 0\ncpu0 50 2 15 450 10 0 1 0 0 0\nintr 5\n"
    assert parse_machine_cpu_ticks(stat) == (100 + 5 + 30 + 1 + 2, 3)


def test_vmhwm_is_read_in_megabytes():
    assert parse_vmhwm_mb("Name:\tpython\nVmPeak:\t 9 kB\nVmHWM:\t  500000 kB\n") == 512.0
    with pytest.raises(ValueError, match="VmHWM"):
        parse_vmhwm_mb("Name:\tpython\n")


def test_meter_notes_the_first_batch_and_reports_once_when_the_target_is_reached():
    ticks = iter([100.0, 105.0])
    cpu = iter([1.0, 3.0])
    meter = Meter(1000, clock=lambda: next(ticks), cpu=lambda: next(cpu), rss=lambda: 80.0)
    assert meter.add(0) is False
    assert meter.add(400) is False
    assert meter.add(500) is False
    assert meter.add(100) is True
    assert meter.add(100) is False  # counted once
    result = meter.result()["bench"]
    assert result == {
        "events": 1000,
        "first_s": 100.0,
        "cpu_first_s": 1.0,
        "at_first": 400,
        "last_s": 105.0,
        "cpu_last_s": 3.0,
        "peak_rss_mb": 80.0,
    }
    assert parse_result(json.dumps(meter.result()) + "\n") == result


def test_meter_result_before_the_target_is_an_error():
    with pytest.raises(RuntimeError, match="not reached"):
        Meter(10).result()


def test_result_lines_are_told_apart_from_log_lines():
    assert parse_result("[2026-11-22 04:25:44] INFO starting\n") is None
    assert parse_result('{"other": 1}') is None
    assert parse_result("{not json") is None
    assert parse_result('{"bench": {"events": 3}}') == {"events": 3}


# --- bookings --------------------------------------------------------------------------------


def test_generated_bookings_and_actuals_are_valid_and_share_ids():
    data = generate(200, now=datetime(2026, 11, 22, 8, 0, tzinfo=UTC))
    assert len(data) == 200
    tagged = data.tagged(data.bookings, "r1d2")
    actuals = data.tagged(data.actuals, "r1d2")
    assert [k for k, _ in tagged] == [k for k, _ in actuals]
    assert len({k for k, _ in tagged}) == 200
    first = BookingRequested.model_validate_json(tagged[0][1])
    assert first.booking_id == "B-r1d2-0000000" == tagged[0][0].decode()
    assert first.scheduled_pickup_at > first.created_at
    actual = ActualDelay.model_validate_json(actuals[199][1])
    assert actual.booking_id == booking_id("r1d2", 199)
    assert -15 <= actual.actual_delay_minutes <= 180


def test_retagging_replaces_only_the_booking_id_tag():
    value = b'{"booking_id":"B-abc-0000042","note":"B-abc-"}'
    assert retag(value, "xyz", old="abc") == b'{"booking_id":"B-xyz-0000042","note":"B-abc-"}'
    assert retag_key(b"B-abc-0000042", "xyz", old="abc") == b"B-xyz-0000042"
    assert booking_id(PLACEHOLDER, 7) == "B-T0000000-0000007"


# --- options and order ------------------------------------------------------------------------


def test_only_keeps_the_canonical_order_and_rejects_unknown_parts():
    assert parse_only(None) == tuple(c for c in CHOICES if c != "s")  # the soak only on demand
    assert "h" in parse_only(None)
    assert parse_only("s,b") == ("b", "s")
    assert parse_only("g, d,a") == ("a", "d", "g")
    assert parse_only("model,b") == ("b", "model")
    with pytest.raises(click.BadParameter, match="expected a comma-separated list"):
        parse_only("a,z")
    with pytest.raises(click.BadParameter):
        parse_only(" , ")


def test_rotation_shifts_the_order_by_one_per_repetition():
    order = ["a", "b", "c", "d"]
    assert rotated(order, 1) == ["a", "b", "c", "d"]
    assert rotated(order, 3) == ["c", "d", "a", "b"]
    assert rotated(order, 5) == order
    assert rotated([], 2) == []


# --- report ------------------------------------------------------------------------------------


def run(scenario, rep, throughput, cpu=100.0, rss=300.0, error=None, **extra):
    return {
        "scenario": scenario,
        "rep": rep,
        "loadavg": "1.00 1.00 1.00",
        "events": 50_000,
        "throughput_per_s": None if error else throughput,
        "cpu_us_per_event": None if error else cpu,
        "peak_rss_mb": None if error else rss,
        "span_s": 10.0,
        **extra,
        "error": error,
    }


RUNS = [
    run("b", 1, 8000.0, rss=80.0),
    run("d", 1, 7000.0, rss=380.0),
    run("f", 1, 100.0),
    run("ds", 1, 6650.0, rss=385.0),
    run("b", 2, 10000.0, rss=82.0),
    run("d", 2, 7000.0, rss=390.0),
    run("f", 2, 200.0),
    run("b", 3, 9000.0, rss=81.0),
    run("d", 3, 0.0, error="TimeoutError: stuck"),
    run("f", 3, 150.0),
    run(
        "e",
        1,
        2000.0,
        rss=520.0,
        peak_rss_mb_per_process=[310.4, 209.6],
        history_all_recorded_after_first_outcome_s=30.0,
        history_lag_after_last_outcome_s=1.5,
    ),
]
LATENCY = {
    "reference_b_per_s": 9000.0,
    "peak_rss_mb": 400.0,
    "rates": [
        {"share_of_b": 0.2, "achieved_per_s": 1800.0, "sent": 10, "received": 10,
         "worker_cpu_cores": 0.3, "p50_ms": 20.0, "p99_ms": 40.0, "max_ms": 60.0},
        {"share_of_b": 0.5, "achieved_per_s": 4500.0, "sent": 10, "received": 10,
         "worker_cpu_cores": 0.6, "p50_ms": 30.0, "p99_ms": 49.0, "max_ms": 70.0,
         "machine_cpu_cores": 1.75, "stolen_cpu_cores": 0.25,
         "plain_consumer": {"n": 10, "p50_ms": 4.0, "p99_ms": 33.5, "max_ms": 40.0}},
        {"share_of_b": 0.7, "achieved_per_s": 6300.0, "sent": 10, "received": 10,
         "worker_cpu_cores": 0.9, "p50_ms": 90.0, "p99_ms": 150.0, "max_ms": 300.0},
    ],
}  # fmt: skip
MODEL = {
    "model": "champion rf-x",
    "repeats": 100,
    "batch_rows": 500,
    "one_booking_us": {"median": 80.0, "min": 70.0, "max": 400.0},
    "one_booking_cold_caches_us": {"median": 200.0, "min": 150.0, "max": 600.0},
    "batched_per_booking_us": {"median": 25.0, "min": 20.0, "max": 40.0},
    "per_booking_at_1000_rows_us": {"median": 10.0, "min": 9.0, "max": 30.0},
    "sklearn_one_booking_us": {"median": 9000.0, "min": 8000.0, "max": 20000.0},
    "max_abs_diff_vs_sklearn_batch": 0.0,
    "max_abs_diff_vs_sklearn_single_rows": 3e-15,
}


def test_summaries_pair_each_repetition_with_its_own_b():
    scenarios = summarize(RUNS, TITLES)
    assert list(scenarios) == ["b", "d", "e", "f"]  # in title order; (a) was not run
    d = scenarios["d"]
    assert (d["runs"], d["succeeded"]) == (3, 2)
    assert d["throughput_per_s"] == {"median": 7000.0, "min": 7000.0, "max": 7000.0, "n": 2}
    assert d["ratio_to_b"] == {"median": 0.7875, "min": 0.7, "max": 0.875, "n": 2}
    assert d["peak_rss_mb"] == 390.0
    assert scenarios["e"]["peak_rss_mb_per_process"] == [310.4, 209.6]
    assert d["errors"] == ["rep 3: TimeoutError: stuck"]
    assert scenarios["b"]["ratio_to_b"]["median"] == 1.0
    assert scenarios["f"]["throughput_per_s"]["median"] == 150.0


def test_paired_ratio_is_the_median_over_repetitions_where_both_ran():
    assert paired_ratio(RUNS, "d", "f") == pytest.approx(52.5)  # 70 and 35
    assert paired_ratio(RUNS, "d", "a") is None


def targets_by_name(runs, latency, model):
    return {t["target"]: t for t in evaluate_targets(runs, summarize(runs, TITLES), latency, model)}


def test_targets_say_met_not_met_and_by_how_much():
    t = targets_by_name(RUNS, LATENCY, MODEL)
    assert len(t) == 12
    assert t["(d) >= 0.75 x (b)"]["met"] is True
    assert t["(d) >= 0.75 x (b)"]["measured"] == pytest.approx(0.7875)
    assert t["(d) >= 5,000 bookings/s"]["met"] is True
    assert t["(e) >= 0.75 x (b)"]["met"] is False  # 2000 / 8000
    assert t["(e) >= 0.75 x (b)"]["margin_pct"] == pytest.approx((0.25 - 0.75) / 0.75 * 100)
    # Two input events per outcome: 4000 events/s against 8000.
    assert t["(e) input events >= 0.75 x (b)"]["measured"] == pytest.approx(0.5)
    assert t["(e) input events >= 0.75 x (b)"]["met"] is False
    assert t["(d) / (f) >= 10"]["met"] is True
    # The shadow, paired by repetition with (d): 6,650 against 7,000.
    shadow = t["(ds) >= 0.9 x (d): the shadow costs <= 10 %"]
    assert shadow["measured"] == pytest.approx(0.95) and shadow["met"] is True
    assert t["p99 at 50 % of (b) <= 50 ms"]["met"] is True
    assert t["p99 at 70 % of (b) <= 100 ms"] | {"margin_pct": None} == {
        "target": "p99 at 70 % of (b) <= 100 ms",
        "measured": 150.0,
        "limit": 100,
        "unit": "ms",
        "met": False,
        "margin_pct": None,
    }
    assert t["one booking's ML prediction <= 100 us"]["met"] is True
    assert t["batched ML prediction <= 20 us per booking"]["met"] is False
    assert t["predictions = scikit-learn's within 1e-9"]["met"] is True
    assert t["predictions = scikit-learn's within 1e-9"]["measured"] == 3e-15
    # The largest of the prediction and outcome workers, (g)'s included: (e)'s 520 MB.
    assert t["worker peak RSS <= 500 MB"]["measured"] == 520.0
    assert t["worker peak RSS <= 500 MB"]["met"] is False


def test_targets_without_a_measurement_are_neither_met_nor_missed():
    t = targets_by_name([run("b", 1, 8000.0)], None, None)
    assert {name: v["met"] for name, v in t.items()} == dict.fromkeys(t, None)


def test_the_document_is_json_and_the_text_shows_every_part():
    doc = document({"config": {"count": 50_000}}, RUNS, TITLES, LATENCY, MODEL)
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {"config", "scenarios", "runs", "latency", "model", "targets"}
    text = "\n".join(render(doc))
    assert "d predict ML" in text
    assert "7,000 (7,000-7,000)" in text
    assert "failed: rep 3: TimeoutError: stuck" in text
    assert "was complete 30.0 (30.0-30.0) s after the first outcome" in text
    assert "p99 at 70 % of (b) <= 100 ms" in text
    assert "NOT MET: 150 ms (50 % above the limit)" in text
    assert "met: 0.7875 x (b) (5 % above the limit)" in text
    assert "batch of 500" in text
    assert "helper processes' peaks: (e) 310 + 210" in text  # (d) has no split: not shown
    [at_half] = [line for line in text.splitlines() if line.strip().startswith("50%")]
    assert at_half.split()[-3:] == ["1.75", "0.25", "33.5"]  # machine, stolen, plain p99
    [at_fifth] = [line for line in text.splitlines() if line.strip().startswith("20%")]
    assert at_fifth.split()[-3:] == ["-", "-", "-"]  # not measured (an older document)


def test_result_files_are_named_by_utc_start_time():
    assert (
        result_filename(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "bench-20260102T030405Z.json"
    )


def test_a_process_tree_counts_a_child_and_its_memory():
    """A worker's figures include its engine process: the tree holds a child, and the summed
    peak RSS is the parent's plus the child's. Peaks only grow, so each figure is compared with
    ones read before it."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        me = os.getpid()
        assert process_tree(me)[0] == me
        assert child.pid in process_tree(me)
        child_peak = peak_rss_mb(child.pid)
        parts = peak_rss_mb(me) + child_peak
        summed = tree_peak_rss_mb(me)
        assert child_peak > 1.0  # a Python process: its megabytes are in the sum
        assert summed >= parts - 0.5
        mine, *children = tree_peak_rss_per_process_mb(me)
        assert len(children) >= 1 and mine + sum(children) >= summed - 0.5
        assert mine <= peak_rss_mb(me)
    finally:
        child.kill()
        child.wait()
    assert child.pid not in process_tree(os.getpid())


def test_the_scale_out_report_names_each_path_and_its_unit():
    from streams.tools.bench.scaleout import render_scaleout

    lines = render_scaleout(
        {
            "throughput": [
                {
                    "workers": 1,
                    "throughput_per_s": 8105.2,
                    "cpu_us_per_event": 194.4,
                    "loadavg": "1 1 1",
                },  # a document written before (h) measured the outcome path
                {
                    "path": "outcomes",
                    "workers": 2,
                    "throughput_per_s": 1508.0,
                    "cpu_us_per_event": 915.0,
                    "loadavg": "2 2 2",
                },
                {"path": "outcomes", "workers": 1, "error": "TimeoutError: stuck"},
            ]
        }
    )
    assert lines == [
        "(h) scale-out, 4 partitions:",
        "    1 predict worker(s): 8,105 bookings/s, CPU 194 us/booking (load 1 1 1)",
        "    2 outcomes worker(s): 1,508 outcomes/s, CPU 915 us/outcome (load 2 2 2)",
        "    1 outcomes worker(s): FAILED: TimeoutError: stuck",
    ]


def test_the_scale_out_report_shows_the_pauses_of_each_path():
    from streams.tools.bench.scaleout import render_scaleout

    def period(sent: int, received: int, gap: float) -> dict:
        return {"sent": sent, "received": received, "longest_gap_ms": gap, "p50_ms": 40.0,
                "p99_ms": 90.0, "max_ms": 120.0}  # fmt: skip

    steady, joins = period(100, 100, 50.0), period(100, 100, 3100.0)
    lines = render_scaleout(
        {
            "throughput": [],
            "pauses": {
                "offered_per_s": 2000.0,
                "steady": steady,
                "a worker joins": joins,
                "a worker leaves": steady,
            },  # written before (h) named the path
            "outcome_pauses": {
                "path": "outcomes",
                "offered_per_s": 800.0,
                "inputs_used_up": True,
                "steady": steady,
                "a worker joins": joins,
                "a worker leaves": steady,
            },
        }
    )
    assert lines[1] == "    predict rebalance pauses at 2,000 bookings/s:"
    assert "a worker joins: 100/100 predicted" in lines[3] and "no prediction 3100 ms" in lines[3]
    assert lines[5] == (
        "    outcomes rebalance pauses at 800 bookings/s (inputs used up before the end):"
    )
    assert "a worker joins: 100/100 outcomes" in lines[7] and "no outcome 3100 ms" in lines[7]
