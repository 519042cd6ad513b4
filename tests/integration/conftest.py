"""Fixtures for tests against the real local stack (Kafka, Redis, PostgreSQL).

``stack`` (session): the endpoints of a stack started for this test session, with attributes
``kafka_bootstrap_servers``, ``redis_url``, ``database_url`` and ``as_env()``. Servers named by
KAFKA_BOOTSTRAP_SERVERS, REDIS_URL or DATABASE_URL are used instead of started. It starts from
empty data, and at the end of the session (also after failures, Ctrl-C or SIGTERM) stops what
it started.

``topic_prefix`` (function): a prefix unique to the test, e.g. ``t-test-foo-1a2b3c4d.``, with
every catalogue topic created under it (TOPIC_PARTITIONS partitions); all topics with that prefix
are deleted afterwards, including ones a worker created. Tests pass it as TOPIC_PREFIX so that
they never see each other's messages.

``session_dir`` (session): this session's own directory under ``.delaycast/test-stack``, for
further stacks or files. Sessions run side by side (each stack picks free ports); a directory
whose session was killed (SIGKILL) is stopped and removed by the next session. After a session
with failures the directory is kept, logs included, until then.

Every test in this directory is marked ``integration``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import pytest

from connectors.kafka_admin import KafkaAdminError, delete_topics, ensure_topics, list_topics
from schemas.topics import TOPICS, topic_name
from streams.tools.stack import Endpoints, External, Ports, StackError, StackManager
from streams.tools.stack.manager import DEFAULT_PARTITIONS
from streams.tools.stack.process import start_time

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Under the checkout, not a 0700 pytest tmp dir: when tests run as root, PostgreSQL runs as the
# `postgres` user, which must be able to reach its data directory.
TEST_ROOT = REPO / ".delaycast" / "test-stack"


def xdist_ports(kafka: int, redis: int, postgres: int) -> Ports:
    """Preferred ports, 100 apart per pytest-xdist process (gw0, gw1, ...): sessions that start
    side by side would otherwise both find the same port free and race for it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    step = 100 * int(worker[2:]) if worker[2:].isdigit() else 0
    return Ports(
        kafka=kafka + step,
        kafka_controller=kafka + 1 + step,
        redis=redis + step,
        postgres=postgres + step,
    )


# Apart from a developer's own stack on the defaults (19092, 16379, 15432).
TEST_PORTS = xdist_ports(kafka=29092, redis=26379, postgres=25432)
TEST_PARTITIONS = DEFAULT_PARTITIONS
_OWNER = "owner.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _owner_alive(directory: Path) -> bool:
    try:
        owner = json.loads((directory / _OWNER).read_text())
    except (OSError, ValueError):
        return False
    return start_time(int(owner["pid"])) == owner["start_time"]


def _stop_homes_under(directory: Path) -> None:
    """Stop every stack whose home is ``directory`` or a directory below it."""
    for state in directory.glob("**/stack/state.json"):
        with contextlib.suppress(StackError):
            StackManager(state.parent.parent).down()


def _remove_stacks_under(directory: Path) -> None:
    """Stop them, then remove ``directory`` and the clusters it links to outside itself (a
    clone the postgres user cannot enter keeps its cluster elsewhere)."""
    _stop_homes_under(directory)
    for link in directory.glob("**/stack/postgres"):
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)


def _reap_abandoned_sessions() -> None:
    for directory in TEST_ROOT.glob("session-*"):
        if directory.is_dir() and not _owner_alive(directory):
            _remove_stacks_under(directory)


@pytest.fixture(scope="session", autouse=True)
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM (a CI timeout, `kill`) into a Ctrl-C, which pytest unwinds through every
    fixture's teardown; by default SIGTERM ends Python at once and would orphan the servers."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield  # someone else handles it
        return
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def session_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    _reap_abandoned_sessions()
    directory = TEST_ROOT / f"session-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    # Made under a name the reapers of other sessions do not match, and renamed once it names
    # its owner: a session starting beside this one would otherwise find the directory without
    # its owner file, take it as abandoned and remove it.
    making = TEST_ROOT / f".making-{os.getpid()}"
    shutil.rmtree(making, ignore_errors=True)
    making.mkdir(parents=True)
    owner = {"pid": os.getpid(), "start_time": start_time(os.getpid())}
    (making / _OWNER).write_text(json.dumps(owner))
    making.rename(directory)
    yield directory
    if request.session.testsfailed == 0:
        _remove_stacks_under(directory)
    else:
        _stop_homes_under(directory)  # kept, with its logs, to read


class _Teardown:
    """Stops the servers this session started, exactly once, however the session ends."""

    def __init__(self, manager: StackManager, started: tuple[str, ...]) -> None:
        self.manager = manager
        self.started = started
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        if self.started:
            self.manager.down(only=self.started)


@pytest.fixture(scope="session")
def stack(session_dir: Path) -> Iterator[Endpoints]:
    manager = StackManager(
        session_dir / "stack", ports=TEST_PORTS, external=External.from_environ()
    )
    # On failure or interruption, up() itself stops what it had started.
    result = manager.up()
    teardown = _Teardown(manager, result.started)
    # The finally below covers failures and Ctrl-C; atexit covers an exit that skips it.
    atexit.register(teardown)
    try:
        yield result.endpoints
    finally:
        teardown()
        atexit.unregister(teardown)


@pytest.fixture
def topic_prefix(stack: Endpoints, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    prefix = f"t-{slug}-{uuid.uuid4().hex[:8]}."
    names = [topic_name(spec.name, prefix) for spec in TOPICS]
    ensure_topics(stack.kafka_bootstrap_servers, names, TEST_PARTITIONS)
    yield prefix
    with contextlib.suppress(KafkaAdminError):
        mine = [n for n in list_topics(stack.kafka_bootstrap_servers) if n.startswith(prefix)]
        delete_topics(stack.kafka_bootstrap_servers, mine)


def history_end(now: datetime) -> datetime:
    """The hour after ``now`` (``now`` itself on the hour): a history ending there has recorded
    weather for the pickup hour of every booking up to now, and 14 days beyond."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    return hour if hour == now else hour + timedelta(hours=1)


@pytest.fixture(scope="session")
def trained_model_dir(session_dir: Path) -> Path:
    """A model trained through the real CLI on a small synthetic history (shared, read-only),
    45 days ending at the current hour rounded up: the tests' world lives in the present."""
    data = session_dir / "model-data"
    models = session_dir / "trained-models"
    run = [sys.executable, "-m", "streams"]
    subprocess.run(
        [
            *run,
            "synthetic",
            "history",
            "--out",
            str(data),
            "--days",
            "45",
            "--bookings-per-day",
            "600",
            "--end",
            history_end(datetime.now(UTC)).isoformat(),
            "--seed",
            "5",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run,
            "train",
            "--history",
            str(data / "history.csv"),
            "--weather",
            str(data / "weather.csv"),
            "--out",
            str(models),
            "--trees",
            "60",
            # One ML candidate: the tests need a champion, not the choice among three.
            "--candidates",
            "boosting",
        ],
        check=True,
        capture_output=True,
    )
    assert (models / "CHAMPION").is_file()
    return models


@pytest.fixture(scope="session")
def migrated_database(stack: Endpoints) -> str:
    from connectors.postgres import make_engine, upgrade

    engine = make_engine(stack.database_url)
    try:
        assert upgrade(engine) is not None
    finally:
        engine.dispose()
    return stack.database_url


@pytest.fixture
def own_database(stack) -> str:
    """A fresh, migrated database of this test's own, so no other test's outcomes count."""
    import uuid

    import sqlalchemy as sa

    from connectors.postgres import make_engine, upgrade

    name = f"ab_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(stack.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url
