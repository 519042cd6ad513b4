"""The guarded ramp's controller: looks at the current step's evidence, moves ML's share by the
decision of :func:`models.ramp.decide`, and says why.

It runs as a process of its own (``delaycast ramp run``), holding a PostgreSQL session lock so
that one controller acts at a time. Everything it knows is in PostgreSQL (the ramp, its moves,
the live history) and Redis (the flags), so a controller killed at any point resumes where the
ramp stands:

- a move is recorded (state and move row, one transaction, conditional on ``move_seq``) before
  its flag change is written; a move recorded but not yet in Redis is finished at the next look,
  never decided again;
- the flags changed by someone else mid-ramp pause the ramp: an operator's hand wins.

Every move is a flag change by the actor ``ramp``, audited in ``flag_changes``, alerted (an alert
of kind ``ramp`` in PostgreSQL, so the API, the dashboard and the timeline show it), and logged,
with its one-sentence reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError

from connectors.flags import FlagConflict, FlagState, FlagStore
from connectors.postgres import ramp as store
from connectors.postgres import write_alerts
from connectors.postgres.ramp import COMPLETED, RUNNING, Ramp
from models.alert_rules import alert_id
from models.ramp import Action, Decision, decide
from schemas import Alert, AlertKind, Severity
from streams.clock import utc_now
from streams.operate.flag_change import AuditNotRecorded, change_flags

log = logging.getLogger("delaycast.ramp")

ACTOR = "ramp"
_STATUS_AFTER = {
    Action.ADVANCE: RUNNING,
    Action.COMPLETE: COMPLETED,
    Action.ROLLBACK: store.ROLLED_BACK,
}


class RampController:
    def __init__(
        self,
        engine: sa.Engine,
        flags: FlagStore,
        initial: FlagState,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._flags = flags
        self._initial = initial
        self._clock = clock

    def tick(self) -> Decision | None:
        """One look: finish a move not yet in Redis, then decide and act. None when no ramp is
        running."""
        ramp: Ramp | None = store.latest_ramp(self._engine)
        if ramp is not None and not ramp.flag_applied:
            ramp = self.apply_flag(ramp)
        if ramp is None or ramp.status != RUNNING:
            return None
        flags = self._flags.read() or self._initial
        if not _flags_at(flags, ramp.percentage):
            self._pause_for_outside_change(ramp, flags)
            return None
        now = self._clock()
        evidence = store.step_evidence(
            self._engine, config=ramp.config, step_started_at=ramp.step_started_at, now=now
        )
        decision = decide(ramp.config, ramp.step_index, evidence)
        store.save_evaluation(
            self._engine,
            ramp,
            now=now,
            evaluation=decision.to_dict() | {"evidence": evidence.to_dict()},
        )
        if not decision.moves:
            return decision
        moved = store.record_move(
            self._engine,
            ramp,
            kind=decision.action.value,
            actor=ACTOR,
            now=now,
            reason=decision.reason,
            status=_STATUS_AFTER[decision.action],
            step_index=decision.to_index,
            percentage=decision.to_percentage,
            evidence=evidence.to_dict(),
            new_step=True,
            flag_version=flags.version,
        )
        if moved is None:
            log.info("[Ramp] ramp %d moved on before this decision; nothing done", ramp.id)
            return decision
        severity = _severity(decision)
        log_at = logging.INFO if severity is Severity.INFO else logging.WARNING
        log.log(log_at, "[Ramp] %s", decision.reason)
        # The alert first: a flag write that fails now is finished at the next look, and the
        # move must not go unannounced meanwhile.
        self._alert(moved, decision.reason, severity, now, decision.action.value)
        if not moved.flag_applied:
            self.apply_flag(moved)
        return decision

    def apply_flag(self, ramp: Ramp) -> Ramp | None:
        """Finish the ramp's pending flag change: write its percentage while the flags are
        still at the version its move was decided on. When someone changed them since, nothing
        is written and the ramp pauses: an operator's hand wins. Returns the ramp as it now
        stands (None when it moved on meanwhile)."""
        flags = self._flags.read() or self._initial
        if _flags_at(flags, ramp.percentage):  # written already (a look that died after it)
            return store.mark_flag_applied(self._engine, ramp, flag_version=flags.version)
        if ramp.flag_version is not None and flags.version != ramp.flag_version:
            return self._pause_for_outside_change(ramp, flags)
        try:
            _, new = change_flags(
                self._flags,
                self._engine,
                initial=self._initial,
                ml_enabled=True,
                percentage=ramp.percentage,
                actor=ACTOR,
                now=self._clock(),
                expected_version=ramp.flag_version,
            )
        except FlagConflict as exc:
            return self._pause_for_outside_change(ramp, exc.current)
        except AuditNotRecorded as exc:
            log.warning("[Ramp] %s", exc)
            new = exc.new
        return store.mark_flag_applied(self._engine, ramp, flag_version=new.version)

    def _pause_for_outside_change(self, ramp: Ramp, flags: FlagState) -> Ramp | None:
        """Pause ``ramp``: the flags were changed by someone else; a pending change of its own
        is dropped."""
        now = self._clock()
        reason = (
            f"Paused the ramp at {ramp.percentage:g} %: the flags were changed outside it "
            f"({flags.describe()} by {flags.updated_by or 'unknown'}); run delaycast ramp "
            "resume to go on from this step (its share is put back), or delaycast ramp stop."
        )
        moved = store.record_move(
            self._engine, ramp, kind="pause", actor=ACTOR, now=now, reason=reason,
            status=store.PAUSED, evidence={"flags": flags.describe()}, flag_applied=True,
            flag_version=flags.version,
        )  # fmt: skip
        if moved is not None:
            log.warning("[Ramp] %s", reason)
            self._alert(moved, reason, Severity.WARNING, now, "pause")
        return moved

    def _alert(
        self, ramp: Ramp, reason: str, severity: Severity, now: datetime, action: str
    ) -> None:
        subject = f"ramp {ramp.id} move {ramp.move_seq}"
        alert = Alert(
            alert_id=alert_id(AlertKind.RAMP, subject, now),
            kind=AlertKind.RAMP,
            severity=severity,
            subject=subject,
            message=reason[:1000],
            evidence={"action": action, "ramp_id": float(ramp.id), "to": ramp.percentage},
            event_time=now,
            raised_at=now,
        )
        try:
            write_alerts(self._engine, alerts=[alert])
        except sa.exc.SQLAlchemyError as exc:
            log.warning("[Ramp] the alert of move %d was not stored: %s", ramp.move_seq, exc)


def _flags_at(flags: FlagState, percentage: float) -> bool:
    return flags.ml_enabled and flags.ml_traffic_percentage == percentage


def _severity(decision: Decision) -> Severity:
    if decision.action is not Action.ROLLBACK:
        return Severity.INFO
    return Severity.CRITICAL if decision.to_index < 0 else Severity.WARNING


def run(
    controller: RampController,
    engine: sa.Engine,
    *,
    interval_s: float,
    stop: threading.Event,
) -> None:
    """Look every ``interval_s`` until ``stop`` is set, holding the controller lock; a look that
    fails (PostgreSQL or Redis away, anything unexpected) is logged and tried again at the next
    one. The lock's session is checked before each look: when PostgreSQL lost it (a restart),
    the lock is taken again before the controller acts."""
    holder: sa.Connection | None = None
    waiting_said = False
    while not stop.is_set():
        try:
            if holder is not None and not _still_held(holder):
                log.warning("[Ramp] the controller lock's session was lost; taking it again")
                _release(holder)
                holder = None
            if holder is None:
                holder = _take_lock(engine)
                if holder is None:
                    if not waiting_said:
                        log.info("[Ramp] another controller holds the ramp lock; waiting")
                        waiting_said = True
                    stop.wait(interval_s)
                    continue
                log.info("[Ramp] controller running: a look every %g s", interval_s)
            controller.tick()
        except (sa.exc.SQLAlchemyError, RedisError, OSError) as exc:
            log.warning("[Ramp] look failed, trying again in %g s: %s", interval_s, _brief(exc))
        except Exception:  # never end the controller on one bad look
            log.exception("[Ramp] look failed; trying again in %g s", interval_s)
        stop.wait(interval_s)
    if holder is not None:
        _release(holder)


def _take_lock(engine: sa.Engine) -> sa.Connection | None:
    connection = engine.connect()
    try:
        taken = connection.execute(
            sa.select(sa.func.pg_try_advisory_lock(store.CONTROLLER_LOCK))
        ).scalar()
        connection.commit()
    except BaseException:
        _release(connection)
        raise
    if taken:
        return connection
    _release(connection)
    return None


def _still_held(connection: sa.Connection) -> bool:
    try:
        connection.execute(sa.select(1)).scalar()
        connection.commit()
    except sa.exc.SQLAlchemyError:
        return False
    return True


def _release(connection: sa.Connection) -> None:
    """End the lock's session itself: a session lock ends with its session, and a connection
    returned to the pool would keep it."""
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        connection.invalidate()
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        connection.close()


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"


def status(
    engine: sa.Engine, flags: FlagStore, initial: FlagState, *, now: datetime
) -> dict[str, Any]:
    """Where the ramp stands, whether its next step is allowed now and what blocks it, from a
    fresh look at the evidence (the controller's own last look is shown beside it)."""
    ramp = store.latest_ramp(engine)
    current = flags.read() or initial
    flag_view = {
        "ml_enabled": current.ml_enabled,
        "ml_traffic_percentage": current.ml_traffic_percentage,
        "updated_by": current.updated_by,
    }
    if ramp is None:
        return {"ramp": None, "flags": flag_view, "next_step_allowed": False,
                "summary": "No ramp has been started (delaycast ramp start)."}  # fmt: skip
    view: dict[str, Any] = {
        "ramp": {
            "id": ramp.id,
            "status": ramp.status,
            "steps": list(ramp.config.steps),
            "step_index": ramp.step_index,
            "percentage": ramp.percentage,
            "started_at": ramp.started_at.isoformat(),
            "started_by": ramp.started_by,
            "step_started_at": ramp.step_started_at.isoformat(),
            "reason": ramp.reason,
            "flag_applied": ramp.flag_applied,
            "config": ramp.config.to_dict(),
        },
        "flags": flag_view,
        "controller": {
            "last_look_at": ramp.evaluated_at.isoformat() if ramp.evaluated_at else None,
            "seconds_since_last_look": None
            if ramp.evaluated_at is None
            else round((now - ramp.evaluated_at).total_seconds(), 1),
        },
        "moves": [_move_view(m) for m in store.ramp_moves(engine, ramp.id)],
    }
    if ramp.status != RUNNING:
        view["next_step_allowed"] = False
        view["summary"] = f"The ramp is {ramp.status.replace('_', ' ')}: {ramp.reason}"
        return view
    evidence = store.step_evidence(
        engine, config=ramp.config, step_started_at=ramp.step_started_at, now=now
    )
    decision = decide(ramp.config, ramp.step_index, evidence)
    view["next_step_allowed"] = decision.action in (Action.ADVANCE, Action.COMPLETE)
    view["decision"] = decision.action.value
    view["summary"] = _summary(decision)
    view["blockers"] = [{"name": c.name, "kind": c.kind.value, "detail": c.detail}
                        for c in decision.blockers]  # fmt: skip
    view["checks"] = [
        {
            "name": c.name,
            "kind": c.kind.value,
            "ok": c.ok,
            "judged": c.judged,
            "detail": c.detail,
            "value": c.value,
        }
        for c in decision.checks
    ]
    view["evidence"] = evidence.to_dict()
    return view


def _summary(decision: Decision) -> str:
    """One sentence on what the controller would do at its next look, and why."""
    why = "; ".join(c.detail for c in decision.blockers)
    if decision.action is Action.ADVANCE:
        return (
            f"Next step allowed: ML from {decision.from_percentage:g} % to "
            f"{decision.to_percentage:g} % at the controller's next look."
        )
    if decision.action is Action.COMPLETE:
        return f"Ready to complete at {decision.from_percentage:g} % at the next look."
    if decision.action is Action.ROLLBACK:
        return f"Next step blocked; roll back to {decision.to_percentage:g} % due: {why}."
    return f"Next step blocked ({decision.action.value}): {why}."


class RampRefused(Exception):
    """An operator's request the ramp's status does not allow; the message says why."""


def pause(engine: sa.Engine, *, actor: str, now: datetime, flags: FlagState) -> Ramp:
    """Stop the controller moving the running ramp; ML keeps the share it has (a flag change
    of the ramp's still pending is dropped)."""
    ramp = _latest(engine, (RUNNING,), "pause")
    reason = f"Paused at {ramp.percentage:g} % by {actor}."
    return _operator_move(engine, ramp, "pause", actor, now, reason, store.PAUSED, flags)


def resume(engine: sa.Engine, *, actor: str, now: datetime, flags: FlagState) -> Ramp:
    """Let the controller move a paused or rolled-back ramp again, from a fresh step whose
    share is put back in the flags (a ramp rolled back to 0 % resumes at its first step)."""
    ramp = _latest(engine, (store.PAUSED, store.ROLLED_BACK), "resume")
    index = max(ramp.step_index, 0)
    pct = ramp.config.steps[index]
    reason = f"Resumed at {pct:g} % by {actor}; the step's evidence starts again."
    return _operator_move(
        engine, ramp, "resume", actor, now, reason, RUNNING, flags, index, pct,
        pending=not _flags_at(flags, pct),
    )  # fmt: skip


def stop(engine: sa.Engine, *, actor: str, now: datetime, flags: FlagState) -> Ramp:
    """End the ramp for good; the flags stay as they are (a pending change is dropped)."""
    ramp = _latest(engine, (RUNNING, store.PAUSED, store.ROLLED_BACK), "stop")
    reason = f"Stopped at {ramp.percentage:g} % by {actor}; the flags stay as they are."
    return _operator_move(engine, ramp, "stop", actor, now, reason, store.STOPPED, flags)


def _latest(engine: sa.Engine, allowed: tuple[str, ...], what: str) -> Ramp:
    ramp = store.latest_ramp(engine)
    if ramp is None:
        raise RampRefused(f"no ramp to {what}: start one with delaycast ramp start")
    if ramp.status not in allowed:
        raise RampRefused(
            f"cannot {what} ramp {ramp.id}: it is {ramp.status.replace('_', ' ')} (only a "
            f"{' or '.join(s.replace('_', ' ') for s in allowed)} ramp can be)"
        )
    return ramp


def _operator_move(
    engine: sa.Engine,
    ramp: Ramp,
    kind: str,
    actor: str,
    now: datetime,
    reason: str,
    status: str,
    flags: FlagState,
    index: int | None = None,
    pct: float | None = None,
    *,
    pending: bool = False,
) -> Ramp:
    moved = store.record_move(
        engine, ramp, kind=kind, actor=actor, now=now, reason=reason, status=status,
        step_index=index, percentage=pct, new_step=kind == "resume",
        flag_applied=not pending, flag_version=flags.version,
    )  # fmt: skip
    if moved is None:
        raise RampRefused("the ramp moved while this request was made; look again with status")
    log.info("[Ramp] %s", reason)
    return moved


def _move_view(move: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": move["seq"],
        "at": move["at"].isoformat(),
        "kind": move["kind"],
        "actor": move["actor"],
        "from_percentage": move["from_percentage"],
        "to_percentage": move["to_percentage"],
        "reason": move["reason"],
    }
