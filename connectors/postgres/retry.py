"""Writing to PostgreSQL until it succeeds, across outages.

A sink agent acknowledges its Kafka batch only after ``write_until_done`` returned, so while
PostgreSQL is down the batch waits here (in a worker thread) instead of being lost. The writes it
wraps must be idempotent: after a connection lost during COMMIT, the write may have happened and
is done again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from tenacity import RetryCallState

from connectors.failures import postgres_wait, retrying

T = TypeVar("T")

_LOG = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0
#: While waiting, a reminder at most this often (the first failure is always logged).
REMIND_EVERY_S = 30.0


def is_connection_error(error: BaseException) -> bool:
    """True for errors that say the server or the connection is unavailable, not that the
    statement is wrong: worth waiting for. Deadlocks and serialization failures are
    OperationalErrors too; retrying them is right."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    # TimeoutError: no connection free in the pool in time.
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)


def is_data_error(error: BaseException) -> bool:
    """True for errors that say PostgreSQL refuses the data itself (a number out of range, an
    invalid value, a violated constraint): writing the same rows again fails again, so they are
    to be set apart, never waited for."""
    if is_connection_error(error):
        return False
    return isinstance(error, sa.exc.DataError | sa.exc.IntegrityError)


def describe(error: BaseException) -> str:
    """The driver's first line of the error: no SQL, no parameters, no connection URL."""
    original = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def write_until_done(
    fn: Callable[[], T],
    *,
    what: str,
    sleep: Callable[[float], object] = time.sleep,
    max_backoff_s: float = MAX_BACKOFF_S,
    log: logging.Logger = _LOG,
    clock: Callable[[], datetime] = _utcnow,
    cancel: threading.Event | None = None,
) -> T:
    """Call ``fn`` until it returns, waiting out connection errors with a backoff doubling up to
    ``max_backoff_s`` (:func:`connectors.failures.postgres_wait`); return its result. Any other
    error is raised at once.

    ``what`` names the write in the logs ("outcomes batch of 500"). Once ``cancel`` is set (the
    worker stops), the next failed attempt raises its connection error instead of waiting: the
    batch was not acknowledged, so Kafka delivers it again after the restart.
    """
    failures = 0
    since: datetime | None = None
    reminded: datetime | None = None

    def note(state: RetryCallState) -> None:  # before each wait: the first, then a reminder
        nonlocal failures, since, reminded
        error = state.outcome.exception() if state.outcome is not None else None
        now = clock()
        failures = state.attempt_number
        if since is None or reminded is None:
            since = reminded = now
            log.warning(
                "%s waits for PostgreSQL since %s and retries: %s",
                what,
                since.isoformat(timespec="seconds"),
                describe(error) if error is not None else "",
            )
        elif (now - reminded).total_seconds() >= REMIND_EVERY_S:
            reminded = now
            log.warning(
                "%s still waiting for PostgreSQL since %s (%.0f s, %d attempts; %s)",
                what,
                since.isoformat(timespec="seconds"),
                (now - since).total_seconds(),
                failures,
                describe(error) if error is not None else "",
            )

    def stopping(state: RetryCallState) -> bool:
        if cancel is not None and cancel.is_set():
            if since is None:  # given up at the first failure: say what it was
                note(state)
            log.warning(
                "%s given up after %d attempts: the worker stops", what, state.attempt_number
            )
            return True
        return False

    result = retrying(
        retry_on=is_connection_error,
        wait=postgres_wait(max_backoff_s),
        stop=stopping,
        sleep=sleep,
        before_sleep=note,
    )(fn)
    if since is not None:
        log.info(
            "%s written after waiting for PostgreSQL since %s (%.1f s, %d failed attempts)",
            what,
            since.isoformat(timespec="seconds"),
            (clock() - since).total_seconds(),
            failures,
        )
    return result
