"""The guarded ramp in PostgreSQL: its state, its moves, and the evidence of its current step.

A move is recorded by one conditional update: the ramp row changes only if it still stands where
the mover saw it (same ``move_seq``), and the move's row takes that sequence number. Two
controllers, or one restarted after a crash, can therefore never record the same move twice.
Whether the move's flag change reached Redis is a column of its own (``flag_applied``), so a
controller that died between the two finishes the change instead of deciding again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connectors.postgres.history import Bind, _transaction
from connectors.postgres.monitoring import label_counts
from models.ramp import RampConfig, StepEvidence
from models.sequential import ArmErrors
from schemas import Arm, FallbackReason, tables

RUNNING = "running"
PAUSED = "paused"
ROLLED_BACK = "rolled_back"
COMPLETED = "completed"
STOPPED = "stopped"
LIVE = (RUNNING, PAUSED)  # at most one ramp is in one of these

# The controller holds this session lock while it runs: one controller acts at a time.
CONTROLLER_LOCK = 0x6463_7261_6D70  # "dcramp"
_START_LOCK = CONTROLLER_LOCK + 1


class RampConflict(Exception):
    """The ramp is not where the request expected it; the message says where it is."""


@dataclass(frozen=True)
class Ramp:
    id: int
    started_at: datetime
    started_by: str
    config: RampConfig
    status: str
    step_index: int
    percentage: float
    step_started_at: datetime
    move_seq: int
    flag_applied: bool
    flag_version: int | None  # the flags' version its pending move was decided on
    reason: str
    updated_at: datetime
    evaluated_at: datetime | None
    evaluation: dict[str, Any] | None


def _ramp(row: sa.Row[Any]) -> Ramp:
    data = dict(row._mapping)
    data["config"] = RampConfig.from_dict(data["config"])
    return Ramp(**data)


def latest_ramp(bind: Bind) -> Ramp | None:
    """The newest ramp, whatever its status; None when none was ever started."""
    query = tables.ramps.select().order_by(tables.ramps.c.id.desc()).limit(1)
    with _transaction(bind) as connection:
        row = connection.execute(query).first()
    return None if row is None else _ramp(row)


def start_ramp(
    bind: Bind,
    *,
    config: RampConfig,
    actor: str,
    now: datetime,
    from_percentage: float,
    flag_version: int,
) -> Ramp:
    """A new running ramp at its first step, with its start move; refused while another ramp is
    running or paused."""
    r = tables.ramps
    first = config.steps[0]
    reason = f"Ramp started by {actor}: ML to {first:g} % (steps {_steps(config)})."
    with _transaction(bind) as connection:
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_START_LOCK)))
        live = connection.execute(
            sa.select(r.c.id, r.c.status, r.c.percentage).where(r.c.status.in_(LIVE))
        ).first()
        if live is not None:
            raise RampConflict(
                f"ramp {live.id} is {live.status} at {live.percentage:g} %: stop it first "
                "(delaycast ramp stop)"
            )
        row = connection.execute(
            r.insert()
            .values(
                started_at=now,
                started_by=actor,
                config=config.to_dict(),
                status=RUNNING,
                step_index=0,
                percentage=first,
                step_started_at=now,
                move_seq=1,
                flag_applied=False,
                flag_version=flag_version,
                reason=reason,
                updated_at=now,
            )
            .returning(*r.c)
        ).one()
        connection.execute(
            tables.ramp_moves.insert().values(
                ramp_id=row.id,
                seq=1,
                at=now,
                kind="start",
                actor=actor,
                from_percentage=from_percentage,
                to_percentage=first,
                reason=reason,
                evidence={"config": config.to_dict()},
            )
        )
    return _ramp(row)


def _steps(config: RampConfig) -> str:
    return ",".join(f"{s:g}" for s in config.steps)


def record_move(
    bind: Bind,
    ramp: Ramp,
    *,
    kind: str,
    actor: str,
    now: datetime,
    reason: str,
    status: str,
    step_index: int | None = None,
    percentage: float | None = None,
    evidence: dict[str, Any] | None = None,
    new_step: bool = False,
    flag_version: int | None = None,
    flag_applied: bool | None = None,
) -> Ramp | None:
    """Record a move of ``ramp`` as the mover saw it; None when the ramp has moved on since
    (another move was recorded first), in which case nothing is written.

    A move to another percentage leaves its flag change pending (``flag_applied`` false),
    to be written while the flags are still at ``flag_version``, the version it was decided on;
    ``flag_applied`` given says it outright (a pause or a stop cancels a pending change)."""
    r = tables.ramps
    to_index = ramp.step_index if step_index is None else step_index
    to_pct = ramp.percentage if percentage is None else percentage
    changes_flag = to_pct != ramp.percentage
    values: dict[str, Any] = {
        "status": status,
        "step_index": to_index,
        "percentage": to_pct,
        "move_seq": ramp.move_seq + 1,
        "reason": reason,
        "updated_at": now,
        "flag_applied": (ramp.flag_applied and not changes_flag)
        if flag_applied is None
        else flag_applied,
    }
    if flag_version is not None:
        values["flag_version"] = flag_version
    if changes_flag or new_step:
        values["step_started_at"] = now
    with _transaction(bind) as connection:
        row = connection.execute(
            r.update()
            .where(r.c.id == ramp.id, r.c.move_seq == ramp.move_seq)
            .values(**values)
            .returning(*r.c)
        ).first()
        if row is None:
            return None
        connection.execute(
            tables.ramp_moves.insert().values(
                ramp_id=ramp.id,
                seq=ramp.move_seq + 1,
                at=now,
                kind=kind,
                actor=actor,
                from_percentage=ramp.percentage,
                to_percentage=to_pct,
                reason=reason,
                evidence=evidence or {},
            )
        )
    return _ramp(row)


def mark_flag_applied(bind: Bind, ramp: Ramp, *, flag_version: int) -> Ramp | None:
    """The flag change of the ramp's move ``ramp.move_seq`` is in Redis, at ``flag_version``;
    the ramp as it now stands (None when it moved on meanwhile)."""
    r = tables.ramps
    with _transaction(bind) as connection:
        row = connection.execute(
            r.update()
            .where(r.c.id == ramp.id, r.c.move_seq == ramp.move_seq)
            .values(flag_applied=True, flag_version=flag_version)
            .returning(*r.c)
        ).first()
    return None if row is None else _ramp(row)


def save_evaluation(bind: Bind, ramp: Ramp, *, now: datetime, evaluation: dict[str, Any]) -> None:
    """The controller's latest look at ``ramp`` (also its heartbeat)."""
    r = tables.ramps
    with _transaction(bind) as connection:
        connection.execute(
            r.update().where(r.c.id == ramp.id).values(evaluated_at=now, evaluation=evaluation)
        )


def ramp_moves(bind: Bind, ramp_id: int) -> list[dict[str, Any]]:
    m = tables.ramp_moves
    query = m.select().where(m.c.ramp_id == ramp_id).order_by(m.c.seq)
    with _transaction(bind) as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def moves_between(bind: Bind, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every ramp's moves with ``since <= at < until``, oldest first."""
    m = tables.ramp_moves
    query = m.select().where(m.c.at >= since, m.c.at < until).order_by(m.c.at, m.c.seq)
    with _transaction(bind) as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def step_evidence(
    bind: Bind, *, config: RampConfig, step_started_at: datetime, now: datetime
) -> StepEvidence:
    """What the live history says about the step that began at ``step_started_at``: every
    prediction made from its settle time on, and the outcomes of those predictions."""
    start = step_started_at + timedelta(seconds=config.settle_s)
    p, o = tables.predictions.c, tables.outcomes.c
    ml, heuristic = Arm.ML.value, Arm.HEURISTIC.value
    share = sa.case((p.ml_enabled, p.ml_traffic_percentage / 100.0), else_=0.0)
    live = (sa.not_(p.replay), p.predicted_at >= start)
    assigned = (
        sa.select(
            p.arm,
            sa.func.count(),
            sa.func.sum(share),
            sa.func.count().filter(p.fallback_reason == FallbackReason.MODEL_ERROR.value),
            sa.func.count().filter(p.served_by != p.arm),
        )
        .where(*live)
        .group_by(p.arm)
    )
    errors = (
        sa.select(
            o.arm,
            sa.func.count(),
            sa.func.avg(o.abs_error),
            sa.func.var_samp(o.abs_error),
            sa.func.count(o.predicted_p90_minutes),
            sa.func.count().filter(o.actual_delay_minutes <= o.predicted_p90_minutes),
        )
        .where(sa.not_(o.replay), o.predicted_at >= start)
        .group_by(o.arm)
    )
    window = timedelta(seconds=config.latency_window_s)

    def p99_between(since: datetime, until: datetime) -> sa.Select[Any]:
        return sa.select(
            sa.func.count(p.latency_ms),
            sa.func.percentile_cont(0.99).within_group(p.latency_ms),
        ).where(
            sa.not_(p.replay),
            p.arm == ml,
            p.predicted_at >= max(start, since),
            p.predicted_at < until,
            p.latency_ms.is_not(None),
        )

    a = tables.alerts.c
    drift = sa.select(sa.func.max(a.raised_at)).where(a.kind == "feature_drift")
    with _transaction(bind) as connection:
        by_arm = {row[0]: row[1:] for row in connection.execute(assigned)}
        err = {row[0]: row[1:] for row in connection.execute(errors)}
        lab = label_counts(
            connection,
            due_before=now - timedelta(seconds=config.label_wait_s),
            predicted_since=start,
        )
        latency_n, p99 = connection.execute(p99_between(now - window, now)).one()
        before_n, before_p99 = connection.execute(p99_between(now - 2 * window, now - window)).one()
        last_drift = connection.execute(drift).scalar()
    n_total = sum(int(v[0]) for v in by_arm.values())
    expected = sum(float(v[1] or 0.0) for v in by_arm.values()) / n_total if n_total else 0.0
    ml_row = by_arm.get(ml, (0, 0.0, 0, 0))

    def arm_errors(arm: str) -> ArmErrors:
        n, mean, variance, *_ = err.get(arm, (0, None, None, 0, 0))
        return ArmErrors(int(n), float(mean or 0.0), float(variance or 0.0))

    ml_err = err.get(ml, (0, None, None, 0, 0))
    return StepEvidence(
        step_age_s=max(0.0, (now - step_started_at).total_seconds()),
        assigned_ml=int(ml_row[0]),
        assigned_heuristic=int(by_arm.get(heuristic, (0,))[0]),
        expected_ml_share=expected,
        errors_ml=arm_errors(ml),
        errors_heuristic=arm_errors(heuristic),
        due_ml=int(lab.get(ml, (0, 0))[0]),
        due_heuristic=int(lab.get(heuristic, (0, 0))[0]),
        labelled_ml=int(lab.get(ml, (0, 0))[1]),
        labelled_heuristic=int(lab.get(heuristic, (0, 0))[1]),
        model_errors=int(ml_row[2]),
        fallbacks=int(ml_row[3]),
        latency_n=int(latency_n),
        latency_p99_ms=None if p99 is None else float(p99),
        latency_before_n=int(before_n),
        latency_before_p99_ms=None if before_p99 is None else float(before_p99),
        coverage_n=int(ml_err[3]),
        coverage_within=int(ml_err[4]),
        drift_age_s=None if last_drift is None else max(0.0, (now - last_drift).total_seconds()),
    )
