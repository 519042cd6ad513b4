"""write_until_done's decisions, without a server: what it waits for, what it raises at once,
and what it says."""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa

from connectors.postgres.retry import write_until_done

LOGGER = "test.postgres.retry"


def down() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, Exception("server closed the connection"))


def test_a_connection_error_is_waited_out_with_the_doubling_backoff(caplog):
    failures = iter([down(), down(), down()])
    sleeps: list[float] = []

    def write() -> int:
        error = next(failures, None)
        if error is not None:
            raise error
        return 7

    caplog.set_level(logging.INFO, logger=LOGGER)
    assert (
        write_until_done(write, what="batch", sleep=sleeps.append, log=logging.getLogger(LOGGER))
        == 7
    )
    assert sleeps == [0.2, 0.4, 0.8]
    assert "batch waits for PostgreSQL since" in caplog.text
    assert "batch written after waiting for PostgreSQL" in caplog.text
    assert "3 failed attempts" in caplog.text


def test_a_worker_stopping_at_the_first_failure_says_what_failed_and_raises_it(caplog):
    cancel = threading.Event()
    cancel.set()
    sleeps: list[float] = []

    def write() -> None:
        raise down()

    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(sa.exc.OperationalError):
        write_until_done(
            write, what="batch", sleep=sleeps.append, log=logging.getLogger(LOGGER), cancel=cancel
        )
    assert sleeps == []
    assert "batch waits for PostgreSQL since" in caplog.text
    assert "server closed the connection" in caplog.text
    assert "batch given up after 1 attempts: the worker stops" in caplog.text


def test_an_error_in_the_statement_is_raised_at_once():
    sleeps: list[float] = []

    def write() -> None:
        raise sa.exc.ProgrammingError("SELECT", {}, Exception("syntax error"))

    with pytest.raises(sa.exc.ProgrammingError):
        write_until_done(write, what="batch", sleep=sleeps.append)
    assert sleeps == []
