"""The failure policy: its table in the README, and the retry loop's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_fixed

from connectors.failures import POLICY, Decision, markdown_table, retrying

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_policy_table_as_generated():
    assert markdown_table() in README.read_text()


def test_every_decision_has_rules_and_every_rule_names_a_module_that_exists():
    assert {rule.decision for rule in POLICY} == set(Decision)
    root = README.parent
    for rule in POLICY:
        for where in rule.where.split(","):
            assert (root / where.strip()).is_file(), where


def test_a_retry_that_runs_out_raises_the_last_error_itself_after_the_scheduled_waits():
    sleeps: list[float] = []
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        raise TimeoutError(f"attempt {len(calls)}")

    loop = retrying(
        retry_on=lambda exc: isinstance(exc, TimeoutError),
        wait=wait_fixed(0.25),
        stop=stop_after_attempt(3),
        sleep=sleeps.append,
    )
    with pytest.raises(TimeoutError, match="attempt 3"):
        loop(flaky)
    assert len(calls) == 3
    assert sleeps == [0.25, 0.25]


def test_an_error_not_worth_retrying_is_raised_at_once():
    sleeps: list[float] = []
    calls: list[int] = []

    def wrong() -> None:
        calls.append(1)
        raise ValueError("bad statement")

    loop = retrying(
        retry_on=lambda exc: isinstance(exc, TimeoutError), wait=wait_fixed(1), sleep=sleeps.append
    )
    with pytest.raises(ValueError):
        loop(wrong)
    assert (len(calls), sleeps) == (1, [])


def test_a_call_that_succeeds_after_failures_returns_its_value():
    results = iter([TimeoutError("1"), TimeoutError("2"), 42])

    def call() -> int:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    loop = retrying(
        retry_on=lambda exc: isinstance(exc, TimeoutError), wait=wait_fixed(0), sleep=lambda s: None
    )
    assert loop(call) == 42
