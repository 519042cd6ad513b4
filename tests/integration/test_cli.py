"""The operator commands against the real stack: flags with their audit trail, consume, db."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis
import sqlalchemy as sa

from connectors.flags import FlagStore
from connectors.postgres import head_revision
from schemas.tables import flag_changes
from tests.integration.workers import produce


def cli(
    stack, prefix: str, home: Path, *args: str, check: bool = True, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL")
    }
    env.update(
        stack.as_env(),
        DELAYCAST_HOME=str(home),
        TOPIC_PREFIX=prefix,
        FLAGS_REDIS_KEY=f"{prefix}flags",
    )
    env.update(extra)
    result = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_flag_changes_are_stored_in_redis_and_audited_in_postgres(
    stack, topic_prefix, tmp_path, migrated_database
):
    engine = sa.create_engine(migrated_database)
    with engine.connect() as connection:
        before = connection.execute(sa.select(sa.func.max(flag_changes.c.id))).scalar() or 0

    status = json.loads(cli(stack, topic_prefix, tmp_path, "flags", "status", "--json").stdout)
    assert (status["ml_enabled"], status["stored_in_redis"]) == (False, False)

    out = cli(
        stack, topic_prefix, tmp_path, "flags", "enable", "--percentage", "25", "--actor", "alice"
    )
    assert "[FeatureFlag]" in out.stderr and "by alice" in out.stderr
    cli(stack, topic_prefix, tmp_path, "flags", "enable", "--percentage", "50", "--actor", "bob")
    cli(stack, topic_prefix, tmp_path, "flags", "disable", "--actor", "carol")

    state = FlagStore(redis.Redis.from_url(stack.redis_url), f"{topic_prefix}flags").read()
    assert state is not None
    assert (state.ml_enabled, state.ml_traffic_percentage, state.version) == (False, 50.0, 3)
    assert state.updated_by == "carol"

    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(flag_changes).where(flag_changes.c.id > before).order_by(flag_changes.c.id)
        ).all()
    engine.dispose()
    audited = [
        (
            r.actor,
            r.old_ml_enabled,
            r.old_ml_traffic_percentage,
            r.new_ml_enabled,
            r.new_ml_traffic_percentage,
            r.version,
        )
        for r in rows
        if r.salt == "delaycast-v1" and r.actor in ("alice", "bob", "carol")
    ]
    assert audited == [
        ("alice", False, 0.0, True, 25.0, 1),
        ("bob", True, 25.0, True, 50.0, 2),
        ("carol", True, 50.0, False, 50.0, 3),
    ]
    assert all(r.changed_at.tzinfo is not None for r in rows)


def test_the_kill_switch_works_with_postgres_down_and_says_the_audit_is_missing(
    stack, topic_prefix, tmp_path
):
    down = "postgresql+psycopg2://delaycast:s3cret@127.0.0.1:1/delaycast"
    out = cli(stack, topic_prefix, tmp_path, "flags", "disable", check=False, DATABASE_URL=down)
    assert out.returncode == 1
    assert "in force" in out.stderr and "not record the audit row" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout
    state = FlagStore(redis.Redis.from_url(stack.redis_url), f"{topic_prefix}flags").read()
    assert state is not None and state.ml_enabled is False and state.version == 1


def test_bad_cli_arguments_say_what_was_expected(stack, topic_prefix, tmp_path):
    result = cli(
        stack, topic_prefix, tmp_path, "flags", "enable", "--percentage", "150", check=False
    )
    assert result.returncode == 2
    assert "0<=x<=100" in result.stderr
    result = cli(
        stack,
        topic_prefix,
        tmp_path,
        "produce",
        "synthetic",
        "--invalid-fraction",
        "2",
        check=False,
    )
    assert result.returncode == 2 and "--invalid-fraction" in result.stderr


def test_produce_and_consume_round_trip_through_kafka(stack, topic_prefix, tmp_path):
    out = cli(
        stack,
        topic_prefix,
        tmp_path,
        "produce",
        "synthetic",
        "--count",
        "40",
        "--rate",
        "0",
        "--invalid-fraction",
        "0.25",
        "--seed",
        "11",
        "--id-prefix",
        "CLI",
    )
    assert f"produced 40 events to {topic_prefix}bookings" in out.stdout
    lines = cli(
        stack, topic_prefix, tmp_path, "consume", "bookings", "--count", "40", "--timeout", "30"
    ).stdout.splitlines()
    assert len(lines) == 40
    valid = [line for line in lines if line.startswith("{") and '"vehicle_type"' in line]
    assert 20 <= len(valid) <= 40

    produce(stack, f"{topic_prefix}predictions", [(b"k", b'{"booking_id": "P-1"}')] * 3)
    printed = cli(
        stack, topic_prefix, tmp_path, "consume", "predictions", "--count", "3", "--timeout", "20"
    ).stdout
    assert [json.loads(line)["booking_id"] for line in printed.splitlines()] == ["P-1"] * 3


def test_consume_stops_at_its_timeout_on_a_quiet_topic(stack, topic_prefix, tmp_path):
    result = cli(stack, topic_prefix, tmp_path, "consume", "dead-letters", "--timeout", "2")
    assert result.stdout == ""


def test_db_upgrade_is_idempotent(stack, tmp_path, migrated_database):
    env_prefix = "t-db-"
    first = cli(stack, env_prefix, tmp_path, "db", "upgrade").stdout
    assert "already at revision" in first
    head = head_revision()
    assert head is not None
    assert (
        f"current {head}, head {head}" in cli(stack, env_prefix, tmp_path, "db", "current").stdout
    )
