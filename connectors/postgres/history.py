"""The history in PostgreSQL: predictions, outcomes with their hourly metric buckets, A/B results,
alerts, monitor checkpoints and pipeline counters.

Every function takes an Engine (one transaction per call) or a Connection (the caller's
transaction when one is open, which the caller then commits). ``write_predictions``,
``write_outcomes`` and ``write_alerts`` are idempotent: a batch written again (redelivered by
Kafka, or retried after a connection lost during COMMIT) changes nothing and returns 0.
``write_ab_result`` and ``add_counters`` add on every call.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.selectable import CTE, TableValuedAlias

from schemas import tables
from schemas.alert import Alert
from schemas.outcome import UNDERESTIMATE_MINUTES, Outcome
from schemas.prediction import Arm, Prediction

Bind = sa.Engine | sa.Connection
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
E = TypeVar("E", bound=BaseModel)

# The sums of a metric_buckets row, in the order of models.rolling.MetricSums' fields.
SUM_COLUMNS = (
    "n",
    "sum_error",
    "sum_abs_error",
    "sum_sq_error",
    "sum_actual",
    "sum_actual_sq",
    "n_underestimated",
    "p90_n",
    "p90_covered",
)


@contextlib.contextmanager
def _transaction(bind: Bind) -> Iterator[sa.Connection]:
    if isinstance(bind, sa.Engine):
        with bind.begin() as connection:
            yield connection
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


def _json_batch(events: Sequence[E], key: Callable[[E], Any]) -> str:
    """The events as one JSON array, in the form they have on Kafka, sorted by their table key.

    Writers then take row locks in one order: two sinks writing overlapping batches wait for each
    other instead of deadlocking.
    """
    return "[" + ",".join(event.model_dump_json() for event in sorted(events, key=key)) + "]"


def _batch_rows(*fields: sa.ColumnClause[Any]) -> TableValuedAlias:
    """One row per event of the ``batch`` parameter (a JSON array), ``fields`` read from it by
    name and cast to their types; other fields of the events are ignored.

    One parameter for the whole batch keeps the SQL text the same for every batch size (compiled
    once, parsed fast), and PostgreSQL reads each number from its shortest round-trip text, so a
    stored float equals the event's.
    """
    batch = sa.cast(sa.bindparam("batch", type_=sa.Text), JSON)
    return (
        sa.func.json_to_recordset(batch)
        .table_valued(*fields)
        .render_derived(name="batch", with_types=True)
    )


def _fields_like(columns: Iterable[sa.Column[Any]]) -> list[sa.ColumnClause[Any]]:
    return [sa.column(c.name, c.type) for c in columns]


def _count(inserted: CTE, *also: CTE) -> sa.Select[int]:
    # Data-modifying CTEs run exactly once, referenced or not, in the statement's snapshot.
    return sa.select(sa.func.count()).select_from(inserted).add_cte(*also)


def _predictions_statement() -> sa.Select[int]:
    table = tables.predictions
    stored = [c for c in table.c if c.name != "weather_source"]
    batch = _batch_rows(*_fields_like(stored), sa.column("weather", JSON))
    inserted = (
        pg_insert(table)
        .from_select(
            [*(c.name for c in stored), "weather_source"],
            sa.select(*(batch.c[c.name] for c in stored), batch.c.weather["source"].astext),
        )
        # No conflict target: a row is skipped when it repeats (booking_id, predicted_at) (the
        # same event redelivered) and also when its booking already has a live prediction
        # (uq_predictions_live_booking: predicted again after a crash, a replay of the input or
        # a group reset). The first stored prediction wins: it is the one dispatch saw first,
        # and keeping it makes every later write a no-op, so the counts never move.
        .on_conflict_do_nothing()
        .returning(table.c.booking_id)
        .cte("inserted")
    )
    return _count(inserted)


_WRITE_PREDICTIONS = _predictions_statement()


def _prediction_key(p: Prediction) -> tuple[str, datetime]:
    return p.booking_id, p.predicted_at


def write_predictions(bind: Bind, *, predictions: Sequence[Prediction]) -> int:
    """Store a batch of predictions; returns how many were new. A redelivered one is not, nor
    a live prediction of a booking that already has one (the first stored wins; within a
    batch, the earliest predicted_at)."""
    if not predictions:
        return 0
    with _transaction(bind) as connection:
        result = connection.execute(
            _WRITE_PREDICTIONS, {"batch": _json_batch(predictions, _prediction_key)}
        )
        return int(result.scalar_one())


def _utc_floor(unit: str, column: sa.ColumnElement[Any]) -> sa.ColumnElement[datetime]:
    """``column`` floored to its UTC ``unit`` (hour, minute), whatever the session's TimeZone."""
    floored = sa.func.date_trunc(unit, sa.func.timezone("UTC", column))
    return sa.func.timezone("UTC", floored, type_=sa.DateTime(timezone=True))


def _add_to_buckets(inserted: CTE, buckets: sa.Table, unit: str, start: str) -> CTE:
    """Add the ``inserted`` outcomes' sums to ``buckets``, keyed by their UTC ``unit``."""
    c = inserted.c
    key = (_utc_floor(unit, c.observed_at).label(start), c.arm, c.model_version, c.replay)
    late = c.actual_delay_minutes - c.predicted_delay_minutes > UNDERESTIMATE_MINUTES
    # Outcome.within_p90: actual <= P90, unknown (not counted) without a P90.
    covered = c.actual_delay_minutes <= c.predicted_p90_minutes
    sums = (
        sa.select(
            *key,
            sa.func.count(),
            sa.func.sum(c.error),
            sa.func.sum(c.abs_error),
            sa.func.sum(c.error * c.error),
            sa.func.sum(c.actual_delay_minutes),
            sa.func.sum(c.actual_delay_minutes * c.actual_delay_minutes),
            sa.func.count().filter(late),
            sa.func.count(c.predicted_p90_minutes),
            sa.func.count().filter(covered),
        )
        .group_by(*key)
        # Rows locked in one order: two writers adding to the same buckets cannot deadlock.
        .order_by(*key)
    )
    add = pg_insert(buckets).from_select(
        [start, "arm", "model_version", "replay", *SUM_COLUMNS], sums
    )
    add = add.on_conflict_do_update(
        index_elements=list(buckets.primary_key),
        set_={name: buckets.c[name] + add.excluded[name] for name in SUM_COLUMNS},
    )
    return add.cte(f"added_{unit}")


def _outcomes_statement() -> sa.Select[int]:
    """Insert a batch of outcomes and add exactly the inserted ones to ``metric_buckets`` (per
    hour) and ``metric_minutes`` (per minute)."""
    table = tables.outcomes
    batch = _batch_rows(*_fields_like(table.c))
    inserted = (
        pg_insert(table)
        .from_select([c.name for c in table.c], sa.select(*batch.c))
        .on_conflict_do_nothing()
        .returning(
            *(
                table.c[name]
                for name in (
                    "arm",
                    "model_version",
                    "replay",
                    "observed_at",
                    "predicted_delay_minutes",
                    "predicted_p90_minutes",
                    "actual_delay_minutes",
                    "error",
                    "abs_error",
                )
            )
        )
        .cte("inserted")
    )
    # Every writer runs this one statement, hence one plan: the rows of both tables are locked
    # in the same order by each.
    return _count(
        inserted,
        _add_to_buckets(inserted, tables.metric_buckets, "hour", "hour_start"),
        _add_to_buckets(inserted, tables.metric_minutes, "minute", "minute_start"),
    )


_WRITE_OUTCOMES = _outcomes_statement()


def _outcome_key(o: Outcome) -> tuple[str, bool]:
    return o.booking_id, o.replay


def write_outcomes(bind: Bind, *, outcomes: Sequence[Outcome]) -> int:
    """Store a batch of outcomes and count each new one exactly once in ``metric_buckets``.

    One statement, hence one transaction: an outcome already stored (same booking_id and replay
    flag) is skipped and not counted again, so a redelivered batch changes nothing. Returns how
    many outcomes were new.
    """
    if not outcomes:
        return 0
    with _transaction(bind) as connection:
        result = connection.execute(_WRITE_OUTCOMES, {"batch": _json_batch(outcomes, _outcome_key)})
        return int(result.scalar_one())


def _alerts_statement() -> sa.Select[int]:
    table = tables.alerts
    stored = [c for c in table.c if c.name != "stored_at"]
    batch = _batch_rows(*_fields_like(stored))
    inserted = (
        pg_insert(table)
        .from_select([c.name for c in stored], sa.select(*batch.c))
        .on_conflict_do_nothing()
        .returning(table.c.alert_id)
        .cte("inserted")
    )
    return _count(inserted)


_WRITE_ALERTS = _alerts_statement()


def _alert_key(a: Alert) -> str:
    return a.alert_id


def write_alerts(bind: Bind, *, alerts: Sequence[Alert]) -> int:
    """Store alerts once per alert_id; returns how many were new."""
    if not alerts:
        return 0
    with _transaction(bind) as connection:
        result = connection.execute(_WRITE_ALERTS, {"batch": _json_batch(alerts, _alert_key)})
        return int(result.scalar_one())


def _jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has neither), datetimes as ISO text and
    numpy scalars and arrays as Python numbers and lists."""
    if hasattr(value, "tolist"):  # numpy
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_ab_result(
    bind: Bind,
    *,
    result: Mapping[str, Any],
    verdict: str,
    computed_at: datetime,
    window_start: datetime,
    window_end: datetime,
) -> int:
    """Store one A/B analysis; returns its id. Not idempotent: each call adds a row."""
    statement = (
        tables.ab_test_results.insert()
        .values(
            computed_at=computed_at,
            window_start=window_start,
            window_end=window_end,
            verdict=verdict,
            result=_jsonable(result),
        )
        .returning(tables.ab_test_results.c.id)
    )
    with _transaction(bind) as connection:
        return int(connection.execute(statement).scalar_one())


def latest_ab_result(bind: Bind) -> dict[str, Any] | None:
    """The most recently computed A/B analysis (its row, ``result`` as a dict), or None."""
    query = (
        tables.ab_test_results.select()
        .order_by(tables.ab_test_results.c.computed_at.desc(), tables.ab_test_results.c.id.desc())
        .limit(1)
    )
    with _transaction(bind) as connection:
        row = connection.execute(query).first()
    return dict(row._mapping) if row else None


def save_checkpoint(bind: Bind, *, name: str, state: bytes) -> None:
    """Store (or replace) the saved state of the monitor ``name``."""
    statement = pg_insert(tables.monitor_checkpoints).values(name=name, state=state)
    statement = statement.on_conflict_do_update(
        index_elements=[tables.monitor_checkpoints.c.name],
        set_={"state": statement.excluded.state, "updated_at": sa.func.now()},
    )
    with _transaction(bind) as connection:
        connection.execute(statement)


def load_checkpoint(bind: Bind, *, name: str) -> bytes | None:
    query = sa.select(tables.monitor_checkpoints.c.state).where(
        tables.monitor_checkpoints.c.name == name
    )
    with _transaction(bind) as connection:
        state = connection.execute(query).scalar_one_or_none()
    return bytes(state) if state is not None else None


def add_counters(bind: Bind, *, deltas: Mapping[str, int]) -> None:
    """Add each delta to its named counter (created at 0).

    Not idempotent: a call repeated after a commit whose acknowledgement was lost counts twice.
    """
    if not deltas:
        return
    rows = [{"name": name, "value": int(deltas[name])} for name in sorted(deltas)]
    statement = pg_insert(tables.pipeline_counters).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[tables.pipeline_counters.c.name],
        set_={
            "value": tables.pipeline_counters.c.value + statement.excluded.value,
            "updated_at": sa.func.now(),
        },
    )
    with _transaction(bind) as connection:
        connection.execute(statement)


def read_counters(bind: Bind) -> dict[str, int]:
    query = sa.select(tables.pipeline_counters.c.name, tables.pipeline_counters.c.value)
    with _transaction(bind) as connection:
        return {name: int(value) for name, value in connection.execute(query)}


def metric_buckets_between(
    bind: Bind, *, start: datetime, end: datetime, replay: bool = False
) -> list[dict[str, Any]]:
    """The hourly buckets with ``start <= hour_start < end``, of live or of replayed outcomes,
    ordered by hour, arm and model version."""
    b = tables.metric_buckets.c
    query = (
        tables.metric_buckets.select()
        .where(b.hour_start >= start, b.hour_start < end, b.replay == replay)
        .order_by(b.hour_start, b.arm, b.model_version)
    )
    with _transaction(bind) as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def minute_sums_between(
    bind: Bind,
    *,
    start: datetime,
    end: datetime,
    step: timedelta | None = None,
    replay: bool = False,
    hourly: bool = False,
) -> list[dict[str, Any]]:
    """The minute buckets with ``start <= minute_start < end`` (live or replayed outcomes),
    model versions merged: one row per arm with ``step=None``, else one per arm and period of
    ``step`` (aligned on the Unix epoch, so on whole UTC hours and days), its start in
    ``period_start``; ordered by period and arm.

    ``hourly`` reads the hourly buckets instead, 60 times fewer rows: for bounds and a ``step``
    on whole hours (or a window holding every outcome), they sum the same outcomes."""
    table = tables.metric_buckets if hourly else tables.metric_minutes
    m = table.c
    time_column = m.hour_start if hourly else m.minute_start
    # sum() of a bigint is a numeric in PostgreSQL: counts are cast back to whole numbers.
    sums = [sa.cast(sa.func.sum(m[name]), m[name].type).label(name) for name in SUM_COLUMNS]
    keys: list[sa.ColumnElement[Any]] = [m.arm]
    if step is not None:
        period = sa.func.date_bin(
            sa.literal(step, sa.Interval), time_column, sa.literal(EPOCH, sa.DateTime(True))
        )
        keys.insert(0, period.label("period_start"))
    query = (
        sa.select(*keys, *sums)
        .where(time_column >= start, time_column < end, m.replay == replay)
        .group_by(*keys)
        .order_by(*keys)
    )
    with _transaction(bind) as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


@dataclass(frozen=True)
class AssignmentCounts:
    """Live predictions per arm (every arm present, 0 if none) and the ML share the flags
    asked for: the mean over those predictions of ml_traffic_percentage / 100 where ML was
    enabled, 0 where not; None when there were no predictions."""

    by_arm: dict[str, int]
    expected_ml_share: float | None

    @property
    def total(self) -> int:
        return sum(self.by_arm.values())


def assignment_counts(
    bind: Bind, *, since: datetime, until: datetime | None = None
) -> AssignmentCounts:
    """Counts of live (not replayed) predictions with ``since <= predicted_at < until``."""
    p = tables.predictions.c
    share = sa.case((p.ml_enabled, p.ml_traffic_percentage / 100.0), else_=0.0)
    query = (
        sa.select(p.arm, sa.func.count(), sa.func.sum(share))
        .where(sa.not_(p.replay), p.predicted_at >= since)
        .group_by(p.arm)
    )
    if until is not None:
        query = query.where(p.predicted_at < until)
    with _transaction(bind) as connection:
        rows = connection.execute(query).all()
    by_arm = {arm.value: 0 for arm in Arm} | {arm: int(n) for arm, n, _ in rows}
    n = sum(by_arm.values())
    expected = sum(float(s) for _, _, s in rows) / n if n else None
    return AssignmentCounts(by_arm=by_arm, expected_ml_share=expected)


def arrived_counts(bind: Bind, *, since: datetime, until: datetime | None = None) -> dict[str, int]:
    """Live outcomes per arm (every arm present) of the predictions made in
    ``since <= predicted_at < until``: the same population as ``assignment_counts``, so the two
    compare arm by arm."""
    o = tables.outcomes.c
    query = (
        sa.select(o.arm, sa.func.count())
        .where(sa.not_(o.replay), o.predicted_at >= since)
        .group_by(o.arm)
    )
    if until is not None:
        query = query.where(o.predicted_at < until)
    with _transaction(bind) as connection:
        rows = connection.execute(query).all()
    return {arm.value: 0 for arm in Arm} | {arm: int(n) for arm, n in rows}


@dataclass(frozen=True)
class ServedRow:
    """A live booking with its actual delay: the features it was served with (weather
    included, as they were at prediction time) and what was served."""

    booking_id: str
    features: dict[str, float]
    actual_delay_minutes: float
    served_delay_minutes: float
    served_by: str
    model_version: str
    scheduled_pickup_at: datetime


def served_rows(bind: Bind, *, since: datetime, until: datetime) -> list[ServedRow]:
    """The live bookings whose pickup was scheduled in ``since <= t < until`` and whose actual
    delay is known, by booking_id; each with the live prediction its outcome measured."""
    p, o = tables.predictions.c, tables.outcomes.c
    query = (
        sa.select(
            p.booking_id,
            p.features,
            o.actual_delay_minutes,
            p.predicted_delay_minutes,
            p.served_by,
            p.model_version,
            o.scheduled_pickup_at,
        )
        .join_from(
            tables.predictions,
            tables.outcomes,
            # The prediction the outcome measured (the A/B counts it), not a later one.
            sa.and_(
                o.booking_id == p.booking_id,
                o.predicted_at == p.predicted_at,
                sa.not_(o.replay),
            ),
        )
        .where(
            sa.not_(p.replay),
            o.scheduled_pickup_at >= since,
            o.scheduled_pickup_at < until,
        )
        .order_by(p.booking_id)
    )
    with _transaction(bind) as connection:
        rows = connection.execute(query).all()
    return [
        ServedRow(b, dict(f), float(actual), float(served), str(by), str(version), pickup)
        for b, f, actual, served, by, version, pickup in rows
    ]
