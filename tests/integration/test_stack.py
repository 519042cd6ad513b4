"""The local stack against real servers: up, reuse, status, env, taken ports, down; and topics.

The lifecycle tests share one stack in its own home and ports (Kafka starts once for them) and run
in file order: the last ones stop it. The topic tests use the session ``stack``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psycopg2
import pytest
import redis
from click.testing import CliRunner

from connectors.kafka_admin import KafkaAdminError, delete_topics, ensure_topics, list_topics
from schemas.topics import TOPICS, topic_name
from streams.operate.cli.main import cli
from streams.tools.stack import Endpoints, StackManager, UpResult
from streams.tools.stack.endpoints import ENV_NAMES
from streams.tools.stack.health import libpq_url
from streams.tools.stack.process import ProcessRef, is_alive, owns, start_time
from tests.integration.conftest import TEST_PARTITIONS, xdist_ports

# Apart from the runbooks' stack, which may run at the same time in another xdist process.
PREFERRED = xdist_ports(kafka=49092, redis=46379, postgres=45432)
SERVERS = ("kafka", "redis", "postgres")
_BYSTANDER = "import os, sys, time\nwhile os.getppid() == int(sys.argv[1]): time.sleep(0.2)"


@dataclass
class Lifecycle:
    home: Path
    #: For stacks that only use the lifecycle stack's servers.
    other_home: Path
    manager: StackManager
    first: UpResult
    taken_port: int
    bystander: subprocess.Popen[bytes]

    def pids(self) -> dict[str, int]:
        return {name: rec.process.pid for name, rec in self.first.records.items() if rec.process}


def _processes_mentioning(path: Path) -> list[int]:
    """PIDs whose command line or working directory names ``path``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            cwd = str((proc / "cwd").readlink())
        except OSError:
            continue
        if str(path) in cmdline or cwd.startswith(str(path)):
            found.append(int(proc.name))
    return found


def _cli(home: Path, *args: str, **env: str | None) -> tuple[int, str]:
    # The server variables of the developer's shell must not leak into these stacks.
    clean: dict[str, str | None] = {name: None for name in ENV_NAMES.values()}
    result = CliRunner().invoke(cli, list(args), env={**clean, "DELAYCAST_HOME": str(home), **env})
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def lifecycle(session_dir: Path) -> Iterator[Lifecycle]:
    home = session_dir / "lifecycle"
    with socket.socket() as blocker:
        # Something else already listens on the port Redis prefers.
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = int(blocker.getsockname()[1])
        manager = StackManager(home, ports=replace(PREFERRED, redis=taken))
        # A process that is not the stack's, though its command line names the stack's
        # directories: `down` must leave it alone. It ends when pytest does, even on SIGKILL.
        bystander = subprocess.Popen(
            [sys.executable, "-c", _BYSTANDER, str(os.getpid()), str(home / "stack" / "redis")]
        )
        try:
            first = manager.up()
            yield Lifecycle(home, session_dir / "other", manager, first, taken, bystander)
        finally:
            manager.down()
            bystander.kill()
            bystander.wait()


class TestLifecycle:
    def test_up_starts_kafka_redis_and_postgres_and_each_one_works(
        self, lifecycle: Lifecycle
    ) -> None:
        first = lifecycle.first
        assert first.started == SERVERS
        assert first.reused == first.external == ()
        eps = first.endpoints
        topics = list_topics(eps.kafka_bootstrap_servers)
        for spec in TOPICS:
            assert topics[spec.name] == TEST_PARTITIONS
        client = redis.Redis.from_url(eps.redis_url)
        client.set("lifecycle-probe", "42")
        assert client.get("lifecycle-probe") == b"42"
        client.close()
        conn = psycopg2.connect(libpq_url(eps.database_url))
        with conn, conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("delaycast", "delaycast")
        conn.close()
        written = json.loads(lifecycle.manager.paths.endpoints_file.read_text())
        assert written == asdict(eps)

    def test_a_taken_preferred_port_makes_up_pick_a_free_one(self, lifecycle: Lifecycle) -> None:
        redis_port = lifecycle.first.records["redis"].port
        assert redis_port is not None and redis_port != lifecycle.taken_port
        assert lifecycle.first.endpoints.redis_url == f"redis://127.0.0.1:{redis_port}/0"
        assert redis.Redis(port=redis_port).ping()

    def test_status_reports_every_server_running_and_healthy(self, lifecycle: Lifecycle) -> None:
        statuses = lifecycle.manager.status()
        assert [s.name for s in statuses] == list(SERVERS)
        assert all(s.running and s.healthy for s in statuses)
        code, output = _cli(lifecycle.home, "stack", "status")
        assert code == 0, output
        lines = output.splitlines()
        assert len(lines) == 3
        for line, (name, pid) in zip(lines, lifecycle.pids().items(), strict=True):
            assert line.startswith(name) and "running, healthy" in line and f"pid {pid}" in line

    def test_a_second_up_changes_nothing_and_keeps_the_same_pids(
        self, lifecycle: Lifecycle
    ) -> None:
        again = lifecycle.manager.up()
        assert again.started == ()
        assert again.reused == SERVERS
        assert again.endpoints == lifecycle.first.endpoints
        assert {n: r.process.pid for n, r in again.records.items() if r.process} == (
            lifecycle.pids()
        )
        code, output = _cli(lifecycle.home, "stack", "up")
        assert code == 0, output
        assert output.count("already running") == 3

    def test_a_server_that_stopped_comes_back_on_its_port_with_the_next_up(
        self, lifecycle: Lifecycle
    ) -> None:
        before = lifecycle.first.records["redis"]
        assert before.process is not None and before.port != lifecycle.taken_port
        os.kill(before.process.pid, 15)
        deadline = time.monotonic() + 10
        while is_alive(before.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_alive(before.process.pid)
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            elsewhere = int(spare.getsockname()[1])
        # `delaycast stack up` prefers the default ports, which need not be those of the stack
        # it restarts (here: a free port far from Redis's).
        manager = StackManager(lifecycle.home, ports=replace(PREFERRED, redis=elsewhere))
        again = manager.up()
        assert again.started == ("redis",)
        # Not the preferred port but its own: running clients find it again.
        assert again.records["redis"].port == before.port != elsewhere
        assert again.endpoints == lifecycle.first.endpoints
        assert redis.Redis(port=before.port).ping()
        lifecycle.first = again

    def test_env_prints_three_exports_with_the_chosen_ports(self, lifecycle: Lifecycle) -> None:
        records = lifecycle.first.records
        code, output = _cli(lifecycle.home, "stack", "env")
        assert code == 0, output
        assert output.splitlines() == [
            f"export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{records['kafka'].port}",
            f"export REDIS_URL=redis://127.0.0.1:{records['redis'].port}/0",
            "export DATABASE_URL=postgresql+psycopg2://delaycast@127.0.0.1:"
            f"{records['postgres'].port}/delaycast",
        ]

    def test_servers_named_by_the_environment_are_used_and_never_started_or_stopped(
        self, lifecycle: Lifecycle
    ) -> None:
        eps = lifecycle.first.endpoints
        shutil.rmtree(lifecycle.other_home, ignore_errors=True)
        code, output = _cli(lifecycle.other_home, "stack", "up", **eps.as_env())
        assert code == 0, output
        assert [line.split()[:2] for line in output.splitlines()[:3]] == [
            [name, "external"] for name in SERVERS
        ]
        assert Endpoints.read(lifecycle.other_home / "stack" / "endpoints.json") == eps
        assert not (lifecycle.other_home / "stack" / "kafka").exists()
        code, output = _cli(lifecycle.other_home, "stack", "down")
        assert code == 0 and "nothing of this stack was running" in output
        assert all(is_alive(pid) for pid in lifecycle.pids().values())
        shutil.rmtree(lifecycle.other_home, ignore_errors=True)

    def test_up_fails_on_a_named_server_that_does_not_answer_and_stops_what_it_started(
        self, lifecycle: Lifecycle
    ) -> None:
        shutil.rmtree(lifecycle.other_home, ignore_errors=True)
        dead = "postgresql+psycopg2://delaycast:hunter2@127.0.0.1:1/delaycast"
        kafka = lifecycle.first.endpoints.kafka_bootstrap_servers
        # Kafka is named, Redis gets started, PostgreSQL is named but dead.
        code, output = _cli(
            lifecycle.other_home, "stack", "up", KAFKA_BOOTSTRAP_SERVERS=kafka, DATABASE_URL=dead
        )
        assert code == 1
        assert "DATABASE_URL=postgresql+psycopg2://delaycast:***@127.0.0.1:1/delaycast" in output
        assert "does not answer" in output
        assert "hunter2" not in output
        assert not (lifecycle.other_home / "stack" / "state.json").exists()
        assert _processes_mentioning(lifecycle.other_home) == []
        shutil.rmtree(lifecycle.other_home, ignore_errors=True)

    def test_down_stops_every_process_up_started_and_nothing_else(
        self, lifecycle: Lifecycle
    ) -> None:
        pids = lifecycle.pids()
        stopped = lifecycle.manager.down()
        assert sorted(stopped) == sorted(SERVERS)
        assert not any(is_alive(pid) for pid in pids.values())
        assert lifecycle.bystander.poll() is None, "a process the stack did not start was killed"
        assert not lifecycle.manager.paths.endpoints_file.exists()
        assert not lifecycle.manager.paths.state_file.exists()
        code, output = _cli(lifecycle.home, "stack", "status")
        assert code == 1
        assert output.count("not running") == 3
        code, output = _cli(lifecycle.home, "stack", "env")
        assert code != 0
        assert lifecycle.manager.down() == []

    def test_a_recorded_pid_that_is_no_longer_the_started_process_is_never_signalled(
        self, lifecycle: Lifecycle
    ) -> None:
        bystander = lifecycle.bystander
        marker = lifecycle.home / "stack" / "redis"
        ticks = start_time(bystander.pid)
        assert ticks is not None
        # Same PID but another start time: the number was reused by a new process.
        reused = ProcessRef(bystander.pid, ticks + 1, marker)
        # Same PID and start time, but not running from the stack's directory.
        foreign = ProcessRef(bystander.pid, ticks, lifecycle.home / "stack" / "kafka")
        assert owns(ProcessRef(bystander.pid, ticks, marker))
        assert not owns(reused) and not owns(foreign)
        state = {
            "version": 1,
            "servers": {
                "redis": {
                    "managed": True,
                    "endpoint": "redis://127.0.0.1:1/0",
                    "port": 1,
                    "process": reused.to_json(),
                },
            },
        }
        lifecycle.manager.paths.state_file.write_text(json.dumps(state))
        assert lifecycle.manager.down() == []
        assert bystander.poll() is None
        assert not lifecycle.manager.paths.state_file.exists()


def test_down_stops_a_postgres_that_up_started_but_did_not_record(session_dir: Path) -> None:
    # As if `up` was killed while pg_ctl waited: the server runs, state.json does not say so.
    manager = StackManager(session_dir / "unrecorded")
    postgres = manager.servers["postgres"]
    record = postgres.launch()
    assert record.process is not None
    assert not manager.paths.state_file.exists()
    assert manager.down() == ["postgres"]
    assert not is_alive(record.process.pid)


def test_postgres_serves_a_stack_whose_home_other_users_may_not_enter(session_dir: Path) -> None:
    """A clone in root's home, or in any 0700 directory: as root the postgres user cannot
    enter it, so the cluster lives outside and the stack's directory links to it."""
    private = session_dir / "private"
    private.mkdir()
    private.chmod(0o700)
    manager = StackManager(private / "home")
    postgres = manager.servers["postgres"]
    record = postgres.launch()
    try:
        assert record.port is not None
        postgres.wait_ready(record, 60)
        conn = psycopg2.connect(libpq_url(record.endpoint), connect_timeout=5)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone() == ("delaycast",)
        conn.close()
        link = private / "home" / "stack" / "postgres"
        if os.geteuid() == 0:
            assert link.is_symlink() and (link / "data" / "PG_VERSION").is_file()
            assert not str(record.data_dir).startswith(str(private))
        else:  # its own user runs it: nothing to move
            assert not link.is_symlink()
    finally:
        assert manager.down() == ["postgres"]
    assert record.process is not None and not is_alive(record.process.pid)


def test_topics_create_is_idempotent_and_uses_the_configured_partitions(
    stack: Endpoints, tmp_path: Path
) -> None:
    prefix = f"t-create-{uuid.uuid4().hex[:8]}."
    names = [topic_name(spec.name, prefix) for spec in TOPICS]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "TOPIC_PREFIX": prefix,
        "TOPIC_PARTITIONS": "3",
    }
    try:
        code, output = _cli(tmp_path, "topics", "create", **env)
        assert code == 0, output
        assert output.splitlines() == [f"{n}: created" for n in names]
        code, output = _cli(tmp_path, "topics", "create", **env)
        assert code == 0, output
        assert output.splitlines() == [f"{n}: exists" for n in names]
        found = list_topics(stack.kafka_bootstrap_servers)
        assert {n: found[n] for n in names} == dict.fromkeys(names, 3)
        code, output = _cli(tmp_path, "topics", "list", **env)
        assert code == 0
        assert {f"{n}\t3" for n in names} <= set(output.splitlines())
        # A different partition count is reported, never applied.
        result = ensure_topics(stack.kafka_bootstrap_servers, names, 5)
        assert result.created == [] and result.mismatched == dict.fromkeys(names, (3, 5))
        code, output = _cli(tmp_path, "topics", "create", "--partitions", "5", **env)
        assert code == 1 and "exists with 3 partitions, wanted 5" in output
    finally:
        # Cleanup must not hide the assertion that failed.
        with contextlib.suppress(KafkaAdminError):
            delete_topics(stack.kafka_bootstrap_servers, names)


def test_topic_prefix_fixture_creates_every_catalogue_topic_under_its_prefix(
    stack: Endpoints, topic_prefix: str
) -> None:
    found = list_topics(stack.kafka_bootstrap_servers)
    for spec in TOPICS:
        assert found[topic_name(spec.name, topic_prefix)] == TEST_PARTITIONS
    assert sum(1 for name in found if name.startswith(topic_prefix)) == len(TOPICS)
