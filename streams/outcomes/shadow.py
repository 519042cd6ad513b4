"""The challenger in shadow against what was served, paired on identical bookings.

Every outcome that carries a shadow prediction gives both absolute errors on the same booking,
so the comparison is paired (:mod:`models.paired`): the MAE difference challenger - served with
its 95 % interval and p-value, against the champion (bookings ML served), against the heuristic
(bookings it served), and against whatever was served (all of them), over the window and per
UTC hour. ``delaycast ab report --shadow``, ``/api/shadow/report`` and the dashboard show it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from connectors.postgres.history import Bind
from connectors.postgres.monitoring import shadow_sums
from models.paired import paired_from_sums
from streams.outcomes.windows import Window

AGAINST = {"ml": "champion", "heuristic": "heuristic"}
_FIELDS = ("n", "sum_shadow", "sum_served", "sum_d", "sum_d2")


def _compare(challenger: str, against: str, sums: dict[str, float]) -> dict[str, Any] | None:
    paired = paired_from_sums(
        challenger,
        against,
        n=int(sums["n"]),
        sum_a=sums["sum_shadow"],
        sum_b=sums["sum_served"],
        sum_d=sums["sum_d"],
        sum_d2=sums["sum_d2"],
    )
    if paired is None:
        return None
    return {
        "challenger": challenger,
        "against": against,
        "n": paired.n,
        "mae_challenger": paired.mae_a,
        "mae_against": paired.mae_b,
        "difference": paired.difference,
        "ci_low": paired.low,
        "ci_high": paired.high,
        "p_value": paired.p_value,
    }


def _merged(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    total = dict.fromkeys(_FIELDS, 0.0)
    for row in rows:
        for name in _FIELDS:
            total[name] += float(row[name])
    return total


def _comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per challenger: against the champion, the heuristic, and all that was served."""
    by_challenger: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_challenger[row["shadow_model_version"]].append(row)
    found = []
    for challenger in sorted(by_challenger):
        mine = by_challenger[challenger]
        for served, against in AGAINST.items():
            part = [r for r in mine if r["served_by"] == served]
            if part and (item := _compare(challenger, against, _merged(part))) is not None:
                found.append(item)
        if (item := _compare(challenger, "served", _merged(mine))) is not None:
            found.append(item)
    return found


def shadow_report(bind: Bind, window: Window) -> dict[str, Any]:
    rows = shadow_sums(bind, start=window.start, end=window.end)
    by_hour: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_hour[row["hour_start"]].append(row)
    return {
        "window": window.name,
        "window_start": window.start,
        "window_end": window.end,
        "challengers": sorted({r["shadow_model_version"] for r in rows}),
        "comparisons": _comparisons(rows),
        "hours": [
            {"hour_start": hour, "comparisons": _comparisons(by_hour[hour])}
            for hour in sorted(by_hour)
        ],
    }


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"Shadow comparison, {report['window']}: {report['window_start'].isoformat()} to "
        f"{report['window_end'].isoformat()} (paired on identical bookings, challenger - served)"
    ]
    if not report["comparisons"]:
        lines.append("No outcome carries a shadow prediction in this window: no challenger was")
        lines.append("scored (delaycast retrain registers one; SHADOW_ENABLED scores it).")
        return "\n".join(lines)
    lines.append(
        f"{'challenger':<34} {'against':<10} {'n':>7} {'MAE ch.':>8} {'MAE ag.':>8} "
        f"{'diff':>7} {'95 % CI':>17} {'p':>8}"
    )
    for c in report["comparisons"]:
        lines.append(
            f"{c['challenger']:<34} {c['against']:<10} {c['n']:>7,} {c['mae_challenger']:>8.3f} "
            f"{c['mae_against']:>8.3f} {c['difference']:>+7.3f} "
            f"[{c['ci_low']:>+7.3f}, {c['ci_high']:>+7.3f}] {c['p_value']:>8.2g}"
        )
    lines.append(f"{len(report['hours'])} hour buckets (--json lists each).")
    return "\n".join(lines)
